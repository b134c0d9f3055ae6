"""How far does the ``tiny-cpu`` preset get on the toy set in a few minutes of CPU? (Chapter 7.)

Trains the ``tiny-cpu`` preset from scratch for a budget of time (it stops at the end of the last epoch that
fits), then prints the training speed, the final validation loss, and the median SDR of each source on the toy test
set (museval's rule: median over 1-s windows per track, then over tracks) beside three references:

- the mixture itself as every source's estimate;
- the best scaled mixture, ``g_j x`` with the least-squares gain: no separation at all, the floor to beat;
- the IRM oracle (ideal ratio mask, powers), a ceiling for spectrogram masking.

    python bench/train_toy.py                  # 5 minutes of wall clock, seed 0
    python bench/train_toy.py --cpu            # 5 minutes of 2 threads' CPU time: on a machine shared with others
    python bench/train_toy.py --minutes 2 --seed 1 --loss l2

The budget is the wall clock by default. When other work shares the cores, the wall clock measures the others as
much as this script; ``--cpu`` counts only this process's CPU time (over its threads), which is what "5 minutes of
2 CPU cores" means. (Busy-waiting threads of an oversubscribed CPU still count, so it errs on the slow side.)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))   # run from a checkout without installing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=5.0, help="budget of the training (default 5)")
    parser.add_argument("--cpu", action="store_true",
                        help="count the budget in this process's CPU time over its threads (5 minutes on 2 threads "
                             "= 600 CPU-seconds) instead of the wall clock: fairer on a machine shared with others")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--loss", choices=["l1", "l2"], default="l1", help="the training loss (default l1)")
    parser.add_argument("--lr", type=float, help="Adam's learning rate (default: the preset's)")
    parser.add_argument("--checkpoint-dir", help="where to write checkpoints (default: a temporary folder)")
    args = parser.parse_args()

    import torch

    from demucs_course.model import count_parameters
    from demucs_course.pretrained.records import score_test
    from demucs_course.presets import preset
    from demucs_course.train import train

    folder = args.checkpoint_dir or tempfile.mkdtemp(prefix="train_toy_")
    config = preset("tiny-cpu", epochs=10_000, seed=args.seed, loss=args.loss, checkpoint_dir=folder,
                    **({"lr": args.lr} if args.lr else {}))
    print(f"tiny-cpu preset, loss {config.loss}, lr {config.lr:g}, seed {args.seed}, budget {args.minutes:g} min "
          f"({'CPU time' if args.cpu else 'wall clock'}), {torch.get_num_threads()} threads, "
          f"load average {os.getloadavg()[0]:.1f}; checkpoints in {folder}")
    threads = torch.get_num_threads()
    start, cpu_start = time.perf_counter(), time.process_time()
    if args.cpu:
        result = train(config, resume=False, progress=False, time_limit=60 * args.minutes * threads,
                       clock=time.process_time)
    else:
        result = train(config, resume=False, progress=False, time_limit=60 * args.minutes)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start

    history = result.history
    steps = len(history["step_loss"])
    step_seconds = sum(e["train_seconds"] for e in history["epochs"])
    best = result.best
    print(f"\nmodel: {count_parameters(result.model):,} parameters")
    print(f"trained {len(history['epochs'])} epochs, {steps} steps in {wall:.0f} s wall, {cpu:.0f} CPU-s "
          f"({cpu / threads / 60:.1f} min of {threads} threads) "
          f"({steps / step_seconds:.2f} steps/s in the training loop, batch {config.batch_size} x "
          f"{config.segment:g} s)")
    print(f"final validation {config.loss.upper()} {history['epochs'][-1]['valid']:.4f}; best {best['valid']:.4f} at epoch "
          f"{best['epoch']}")

    # the same scores as the shipped model's record (whole tracks, no shift trick)
    rows = {("tiny-cpu, trained" if label == "shipped model" else label): row
            for label, row in score_test(result.model, "toy").items()}
    names = list(rows["mixture"])
    print(f"\nmedian SDR on the toy test set ({config.data}, test split), dB")
    print(f"{'':22s}" + "".join(f"{n:>8s}" for n in names))
    for label, scores in rows.items():
        print(f"{label:22s}" + "".join(f"{scores[n]:8.2f}" for n in names))
    gain = rows["tiny-cpu, trained"]["mean"] - rows["best scaled mixture"]["mean"]
    print(f"\ntrained minus best scaled mixture: {gain:+.2f} dB (target: at least +3 dB)")
    print(f"load average over the last 5 minutes: {os.getloadavg()[1]:.1f} (this process counts for about "
          f"{threads}; more means other work shared the cores and slowed the wall-clock figures)")


if __name__ == "__main__":
    main()
