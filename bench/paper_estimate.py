"""How long does the ``paper`` preset take on 8 GPUs? An ESTIMATE (Chapter 7), not a measurement.

No GPU has run the paper preset for the course. This script computes what can be computed without one:

- the work: the extracts of an epoch of MUSDB18's training songs (``presets.extracts_per_epoch``, at the average
  song length: 10 hours over 150 songs), times the FLOPs of one 10-s example forward and backward
  (``presets.flops_per_example``, counted by torch on the meta device), times 120 epochs;
- the speed: either a per-GPU throughput measured on a real GPU (``--examples-per-second``, e.g. from
  ``bench/gpu_check.py``'s paper line, which runs one GPU's share of the batch), or rates assumed from the V100's
  datasheet peaks (15.7 TFLOP/s float32, 125 with mixed precision; ``literature.FACTS``): the fractions Chapter 7
  assumes for the T4, and the fraction of the T4's float32 peak that the seed re-implementation's reported 6 hours
  for 240 epochs of ``colab-t4`` imply (if its 16-GB Colab GPU was a T4; that time includes its data loading and
  validation);
- the gradient exchange: DDP's ring all-reduce sends ``2 (N - 1) / N`` times the float32 gradients per GPU per
  step; over a link between machines of ``--link-gbit`` Gbit/s (an assumption; set your cluster's) that is a time
  per step which DDP overlaps with the backward pass: at worst it adds, at best it hides.

Validation (the 14 songs separated whole every epoch) and the first read of MUSDB18 are not counted.

    python bench/paper_estimate.py                         # the assumed rates
    python bench/paper_estimate.py --examples-per-second 9.5 --gpus 8 --link-gbit 200
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))   # run from a checkout without installing


def estimate(gpus: int, link_gbit: float, examples_per_second: float | None) -> dict:
    from demucs_course import SAMPLE_RATE
    from demucs_course.literature import FACTS
    from demucs_course.model import Demucs, count_parameters
    from demucs_course.presets import extracts_per_epoch, flops_per_example, preset
    import torch

    fact = {name: float(FACTS[name].value) for name in ("musdb_hours", "musdb_songs", "musdb_train", "musdb_valid",
                                                          "report_hours", "t4_fp32_tflops", "v100_fp32_tflops",
                                                          "v100_tensor_tflops")}
    song_samples = round(fact["musdb_hours"] * 3600 / fact["musdb_songs"] * SAMPLE_RATE)
    songs = int(fact["musdb_train"] - fact["musdb_valid"])

    paper = preset("paper")
    extracts = extracts_per_epoch(paper, [song_samples] * songs)
    steps = extracts // paper.batch_size
    flops = flops_per_example(paper.model, paper.segment)
    run_tflop = steps * paper.batch_size * flops * paper.epochs / 1e12

    # The seed re-implementation: 240 epochs of colab-t4 in about 6 hours on one 16-GB Colab GPU.
    t4 = preset("colab-t4")
    t4_tflop = (extracts_per_epoch(t4, [song_samples] * songs) // t4.batch_size * t4.batch_size
                * flops_per_example(t4.model, t4.segment) * t4.epochs / 1e12)
    report_fraction = t4_tflop / (fact["report_hours"] * 3600) / fact["t4_fp32_tflops"]

    rates = {   # TFLOP/s per GPU, each with how it was chosen
        "AMP at 1/4 of the V100's tensor-core peak (assumed, as Chapter 7 for the T4)": fact["v100_tensor_tflops"] / 4,
        "AMP at 1/8 of it (assumed)": fact["v100_tensor_tflops"] / 8,
        "float32 at 1/2 of the V100's float32 peak (assumed)": fact["v100_fp32_tflops"] / 2,
        f"float32 at the seed report's {report_fraction:.0%} of a T4's float32 peak": report_fraction
        * fact["v100_fp32_tflops"],
    }
    if examples_per_second:
        rates = {f"measured: {examples_per_second:g} examples/s per GPU": examples_per_second * flops / 1e12}

    with torch.device("meta"):
        parameters = count_parameters(Demucs(**paper.model))
    ring_bytes = 2 * (gpus - 1) / gpus * 4 * parameters           # per GPU per step, float32 gradients
    exchange_seconds = ring_bytes / (link_gbit * 1e9 / 8)
    rows = []
    for label, tflops in rates.items():
        compute_hours = run_tflop / (tflops * gpus) / 3600
        exchange_hours = exchange_seconds * steps * paper.epochs / 3600
        rows.append({"rate": label, "tflops_per_gpu": tflops, "compute_hours": compute_hours,
                     "with_exchange_hours": compute_hours + exchange_hours})
    return {"gpus": gpus, "extracts_per_epoch": extracts, "steps_per_epoch": steps, "epochs": paper.epochs,
            "tflop_per_example": flops / 1e12, "run_tflop": run_tflop, "parameters": parameters,
            "per_gpu_batch": paper.batch_size // gpus, "link_gbit": link_gbit,
            "exchange_seconds_per_step": exchange_seconds, "seed_report_t4_fraction": report_fraction, "rows": rows}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gpus", type=int, default=8, help="GPUs in all (default 8, as v1's code)")
    parser.add_argument("--link-gbit", type=float, default=100.0,
                        help="Gbit/s between machines for the gradient exchange (an assumption; default 100)")
    parser.add_argument("--examples-per-second", type=float,
                        help="a measured training throughput of one GPU (examples of 10 s per second)")
    parser.add_argument("--json", action="store_true", help="print the numbers as JSON")
    args = parser.parse_args(argv)
    if args.gpus < 1 or 64 % args.gpus:
        parser.error("--gpus must divide the paper's global batch of 64")
    result = estimate(args.gpus, args.link_gbit, args.examples_per_second)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"ESTIMATE, not a measurement: the paper preset on {result['gpus']} GPUs ({result['per_gpu_batch']} "
          f"extracts each of the global batch of 64)")
    print(f"  {result['extracts_per_epoch']} extracts an epoch = {result['steps_per_epoch']} steps; "
          f"{result['tflop_per_example']:.3f} TFLOP per example; {result['run_tflop'] / 1e6:.2f} million TFLOP "
          f"for {result['epochs']} epochs")
    print(f"  gradient exchange: {result['exchange_seconds_per_step']:.2f} s a step at {result['link_gbit']:g} "
          f"Gbit/s between machines (overlapped with the backward pass by DDP: at worst it adds)")
    for row in result["rows"]:
        print(f"  {row['tflops_per_gpu']:5.1f} TFLOP/s per GPU, {row['rate']}: {row['compute_hours']:5.1f} h, "
              f"{row['with_exchange_hours']:5.1f} h if the exchange adds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
