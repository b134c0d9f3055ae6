#!/usr/bin/env bash
# Does the pitch/tempo augmentation (augment.Repitch) help on the sampled-instrument set? (Chapters 2 and 7.)
#
# Four runs of the sampled-cpu preset with the same budget of CPU time, without and with Repitch(0.2), seeds 0 and
# 1, two at a time on a 2-core machine (one thread each); each is scored on the sampled test set every 8 minutes
# (bench/train_sampled.py). The runs' records are combined into demucs_course/pretrained/repitch_experiment.json,
# which Chapter 7 reads.
#
#   bash bench/repitch_experiment.sh              # 24 CPU-minutes per run: about 2 hours of wall clock on 2 cores
#   MINUTES=8 bash bench/repitch_experiment.sh    # a shorter budget
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES="${MINUTES:-24}"
OUT="${OUT:-$(mktemp -d /tmp/repitch_experiment.XXXX)}"
PYTHON="${PYTHON:-.venv/bin/python}"
run() {   # repitch seed
    OMP_NUM_THREADS=1 "$PYTHON" bench/train_sampled.py --cpu --minutes "$MINUTES" --eval-every 8 --repitch "$1" \
        --seed "$2" --checkpoint-dir "$OUT/repitch$1-seed$2" --json "$OUT/repitch$1-seed$2.json" \
        > "$OUT/repitch$1-seed$2.log" 2>&1
}
for seed in 0 1; do
    run 0.0 "$seed" & run 0.2 "$seed" &
    wait
done
"$PYTHON" - "$OUT" <<'PY'
import json, sys
from pathlib import Path
runs = [json.loads(p.read_text()) for p in sorted(Path(sys.argv[1]).glob("repitch*-seed*.json"))]
record = {"what": "the sampled-cpu preset trained without and with Repitch(0.2), the same CPU-time budget per run, "
                  "scored on the sampled test set (median SDR, dB, no shift trick)",
          "command": "bash bench/repitch_experiment.sh", "runs": runs}
path = Path("demucs_course/pretrained/repitch_experiment.json")
path.write_text(json.dumps(record, indent=2) + "\n")
print(f"wrote {path}")
PY
