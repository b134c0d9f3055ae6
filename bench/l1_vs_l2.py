"""L1 or L2 (MSE) loss, over several seeds: the comparison of Chapter 7, at any length. (Chapter 7.)

Trains the ``tiny-cpu`` preset on the toy set once per (loss, seed), with the same settings for both losses, and
scores each model by the median SDR on the toy test tracks (museval's rule), beside the best scaled mixture, which
separates nothing. For the same seed the two runs are paired: the same initial weights, the same extracts and the
same augmentations; only the loss differs. It prints each run, then per loss the mean, standard deviation and range
over the seeds, the paired differences L1 - L2, and the CPU time.

    python bench/l1_vs_l2.py                                   # the chapter's runs: 1-s extracts, 2 epochs
    python bench/l1_vs_l2.py --epochs 15 --segment 3 --stride 1 --lr 1e-3 --seeds 0 1 2 3 4   # the preset, longer

Defaults are the chapter's: 1-s extracts, 60 random ones per minute of track, 2 epochs, Adam at 5e-3, seeds 0-2.
Any setting of the ``tiny-cpu`` preset not given keeps the preset's value.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))   # run from a checkout without installing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds (default 0 1 2)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--segment", type=float, default=1.0, help="seconds of output per extract (default 1)")
    parser.add_argument("--per-minute", type=float, default=60.0,
                        help="random extracts per minute of track (default 60); ignored with --stride")
    parser.add_argument("--stride", type=float, help="every extract with this stride in seconds, instead")
    parser.add_argument("--lr", type=float, default=5e-3, help="Adam's learning rate (default 5e-3)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: steady CPU times)")
    args = parser.parse_args()
    if len(args.seeds) < 2:
        parser.error("give at least two seeds: the point is the spread between them")

    import numpy as np
    import torch

    from demucs_course.ablation import spread
    from demucs_course.data import load_tracks
    from demucs_course.evaluate import median_sdr
    from demucs_course.oracles import best_scaled_mixture
    from demucs_course.presets import preset
    from demucs_course.separate import separate_track
    from demucs_course.train import train

    torch.set_num_threads(args.threads)
    extracts = dict(stride=args.stride, per_minute=None) if args.stride else dict(stride=None,
                                                                                   per_minute=args.per_minute)
    settings = dict(segment=args.segment, epochs=args.epochs, lr=args.lr, save_every_steps=0, device="cpu",
                    **extracts)
    tests = load_tracks("toy", "test")
    floor = median_sdr(tests, lambda t: best_scaled_mixture(t.sources(), t.mixture()))["mean"]
    print(f"tiny-cpu preset with {settings}; best scaled mixture: {floor:.2f} dB")

    scores = {"l1": {}, "l2": {}}
    with tempfile.TemporaryDirectory(prefix="l1_vs_l2_") as folder:
        for seed in args.seeds:
            for loss in scores:
                start = time.process_time()
                run = train(preset("tiny-cpu", **settings, seed=seed, loss=loss,
                                   checkpoint_dir=f"{folder}/{loss}-{seed}"), resume=False, progress=False)
                sdr = median_sdr(tests, lambda t: separate_track(run.model, t.mixture()))
                scores[loss][seed] = sdr["mean"]
                print(f"{loss.upper()} seed {seed}: {len(run.history['step_loss'])} steps, "
                      f"{time.process_time() - start:.1f} CPU-s, SDR " + "  ".join(
                          f"{name} {value:.2f}" for name, value in sdr.items())
                      + ("" if sdr["mean"] > floor else "   <- below the best scaled mixture: separates nothing"))

    print("\nmean SDR over the seeds (dB):")
    for loss, values in scores.items():
        s = spread(list(values.values()))
        print(f"  {loss.upper()}: {s['mean']:.2f} ± {s['std']:.2f} (min {s['min']:.2f}, max {s['max']:.2f}, "
              f"n = {s['n']:.0f})")
    paired = np.array([scores["l1"][seed] - scores["l2"][seed] for seed in args.seeds])
    s = spread(paired)
    print(f"  L1 - L2, paired by seed: {s['mean']:+.2f} ± {s['std']:.2f} (min {s['min']:+.2f}, max {s['max']:+.2f})")
    print(f"CPU time of the whole script: {time.process_time():.0f} s")


if __name__ == "__main__":
    main()
