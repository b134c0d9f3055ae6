#!/bin/bash
# The paper preset on 8 GPUs, as the v1 code's README says Demucs v1 was trained: 2 machines x 4 GPUs, one torchrun
# per machine, which starts one training process per GPU (demucs_course.distributed; Chapter 7).
#
#   DATA=/shared/musdb18hq sbatch bench/slurm_paper.sh            # run it again to resume: same RUN folder
#
# - The batch of 64 is global: 8 extracts per GPU per step. The preset's 8 DataLoader workers are per GPU (32 CPU
#   cores per machine); lower --workers if the machines have fewer.
# - RUN (the checkpoints) must be a folder both machines see (a shared file system): rank 0 writes last.pt and
#   best.pt there, and every process reads last.pt to resume. DEMUCS_COURSE_CACHE too, ideally: rank 0 reads
#   MUSDB18 into it once (minutes) while the others wait, then they all read the cache.
# - The job trains until MINUTES of wall time would be passed by one more epoch (it stops cleanly after a
#   validated epoch), under the SLURM limit; submit it again and it continues from last.pt, at any number of GPUs.
# - Time: an ESTIMATE, no GPU measured it (the figures as this script was written): `python bench/paper_estimate.py`
#   divides the FLOPs of the 120 epochs by rates assumed from the V100's datasheet peaks: from about 2 hours (mixed
#   precision at a quarter of the tensor-core peak) to about 22 (float32 at the fraction of a T4's peak that the
#   seed re-implementation's reported 6 hours imply), plus up to 4 hours of gradient exchange at 100 Gbit/s between
#   the machines. Measure one GPU with bench/gpu_check.py; `python bench/paper_estimate.py --examples-per-second X`
#   then gives the time from that measurement.
#
# Why in bench/: it is a recipe to run, beside bench/repitch_experiment.sh, not a page of the book; the paper
# preset (demucs_course/presets.py) and demucs_course/distributed.py point here.

#SBATCH --job-name=demucs-paper
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=4
#SBATCH --cpus-per-task=32
#SBATCH --time=24:00:00
#SBATCH --output=demucs-paper-%j.out
#SBATCH --open-mode=append

set -euo pipefail

: "${DATA:?set DATA to the MUSDB18 / MUSDB18-HQ root, on a file system both machines see}"
RUN=${RUN:-$PWD/checkpoints/paper}                 # shared: last.pt and best.pt
PYTHON=${PYTHON:-python}                           # the Python with demucs_course and torch (e.g. .venv/bin/python)
GPUS_PER_NODE=${GPUS_PER_NODE:-4}
MINUTES=${MINUTES:-1410}                           # 23.5 h: stop cleanly before the 24-h limit
PORT=${PORT:-29500}
export DEMUCS_COURSE_CACHE=${DEMUCS_COURSE_CACHE:-$RUN/../cache}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-4}

head=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
echo "$(date): $SLURM_NNODES machines x $GPUS_PER_NODE GPUs, rendezvous at $head:$PORT, checkpoints in $RUN"

srun "$PYTHON" -m torch.distributed.run \
    --nnodes "$SLURM_NNODES" --nproc_per_node "$GPUS_PER_NODE" \
    --rdzv-id "$SLURM_JOB_ID" --rdzv-backend c10d --rdzv-endpoint "$head:$PORT" \
    -m demucs_course.cli train --preset paper --data "$DATA" --checkpoint-dir "$RUN" \
    --minutes "$MINUTES" --no-progress
