"""Which CPU recipe separates the sampled set? SDR gain over the best scaled mixture against training time.
(Chapter 7.)

Trains Demucs on the sampled-instrument set (:mod:`demucs_course.sampled`) from the ``sampled-cpu`` preset, with any
setting changed on the command line, and every ``--eval-every`` minutes scores the best model so far (by validation
loss) on the sampled test songs: the median SDR of each source (museval's rule: median over 1-s windows per track,
then over tracks), minus that of the best scaled mixture (``g_j x`` with the least-squares gain: no separation, the
floor to beat). The last table is what a recipe reaches in its budget.

    python bench/train_sampled.py                              # the preset, 60 minutes of wall clock
    python bench/train_sampled.py --minutes 20 --eval-every 5 --channels 16 --depth 5 --repitch 0.2 --seed 1

Run it with ``OMP_NUM_THREADS=1`` to run two recipes side by side on a 2-core machine. The budget is the wall clock;
``--cpu`` counts this process's CPU time instead (fairer on a machine shared with other work).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))   # run from a checkout without installing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=60.0, help="budget of the training (default 60)")
    parser.add_argument("--eval-every", type=float, default=15.0, help="score the test set every N minutes")
    parser.add_argument("--cpu", action="store_true", help="count the budget in this process's CPU time")
    parser.add_argument("--preset", default="sampled-cpu")
    parser.add_argument("--seed", type=int, default=0)
    for name, kind in (("channels", int), ("depth", int), ("lstm-layers", int)):
        parser.add_argument(f"--{name}", type=kind, help="a model setting (default: the preset's)")
    for name, kind in (("lr", float), ("segment", float), ("batch-size", int), ("repitch", float),
                       ("per-minute", float), ("loss", str)):
        parser.add_argument(f"--{name}", type=kind, help="a training setting (default: the preset's)")
    parser.add_argument("--checkpoint-dir", help="where to write checkpoints (default: a temporary folder); a folder "
                                                 "with a run in it is resumed")
    parser.add_argument("--json", help="also write the settings, the curve and the last scores to this file")
    args = parser.parse_args()

    import torch

    from demucs_course.data import load_tracks
    from demucs_course.model import count_parameters
    from demucs_course.pretrained.records import score_test
    from demucs_course.presets import preset
    from demucs_course.train import train

    model = {key: getattr(args, key) for key in ("channels", "depth", "lstm_layers") if getattr(args, key) is not None}
    settings = {key: getattr(args, key) for key in ("lr", "segment", "batch_size", "repitch", "per_minute", "loss")
                if getattr(args, key) is not None}
    folder = args.checkpoint_dir or tempfile.mkdtemp(prefix="train_sampled_")
    config = preset(args.preset, epochs=10_000, seed=args.seed, checkpoint_dir=folder,
                    **({"model": model} if model else {}), **settings)
    threads = torch.get_num_threads()
    clock = time.process_time if args.cpu else time.perf_counter
    print(f"{args.preset}: model {config.model}, lr {config.lr:g}, batch {config.batch_size} x {config.segment:g} s, "
          f"{config.per_minute} extracts per minute, repitch {config.repitch}, seed {args.seed}; budget "
          f"{args.minutes:g} min ({'CPU time' if args.cpu else 'wall clock'}), {threads} threads; {folder}", flush=True)
    tests = load_tracks("sampled", "test")

    spent, curve = 0.0, []                     # spent: training time only (scoring the test set is not counted)
    while spent < 60 * args.minutes:
        chunk = min(60 * args.eval_every, 60 * args.minutes - spent)
        start = clock()
        result = train(config, resume=True, progress=False, time_limit=chunk, clock=clock)
        spent += clock() - start
        rows = score_test(result.model, "sampled", tests)
        model_row, floor = rows["shipped model"], rows["best scaled mixture"]
        gains = {name: model_row[name] - floor[name] for name in model_row}
        history = result.history
        curve.append((spent / 60, len(history["step_loss"]), result.best["epoch"], result.best["valid"], gains))
        print(f"\nafter {spent / 60:.1f} min ({len(history['step_loss'])} steps, {len(history['epochs'])} epochs; "
              f"best epoch {result.best['epoch']}, validation {config.loss.upper()} {result.best['valid']:.4f}), "
              f"median SDR on the sampled test set, dB:", flush=True)
        names = list(model_row)
        print(f"{'':22s}" + "".join(f"{n:>8s}" for n in names))
        for label, scores in rows.items():
            label = "trained" if label == "shipped model" else label
            print(f"{label:22s}" + "".join(f"{scores[n]:8.2f}" for n in names))
        print(f"{'gain over best scaled':22s}" + "".join(f"{gains[n]:+8.2f}" for n in names), flush=True)

    if not curve:                              # --minutes 0: score the run already in --checkpoint-dir
        from demucs_course.loading import load_checkpoint, read_checkpoint

        model, history = load_checkpoint(folder), read_checkpoint(Path(folder) / "last.pt")["history"]
        rows = score_test(model, "sampled", tests)
    else:
        model = result.model
        print(f"\n{count_parameters(model):,} parameters. Gain over the best scaled mixture against training time:")
        print(f"{'minutes':>8s}{'steps':>7s}{'epoch':>6s}{'valid':>8s}" + "".join(f"{n:>8s}" for n in curve[0][4]))
        for minutes, steps, epoch, valid, gains in curve:
            print(f"{minutes:8.1f}{steps:7d}{epoch:6d}{valid:8.4f}" + "".join(f"{g:+8.2f}" for g in gains.values()))
    print(f"load average over the last 15 minutes: {os.getloadavg()[2]:.1f}")
    if args.json:
        best = min((e for e in history["epochs"] if e["valid"] is not None), key=lambda e: e["valid"])
        record = {"command": " ".join(sys.argv), "config": config.to_dict(), "parameters": count_parameters(model),
                  "budget_minutes": args.minutes, "clock": "cpu" if args.cpu else "wall", "threads": threads,
                  "steps": len(history["step_loss"]), "epochs": len(history["epochs"]), "best_epoch": best["epoch"],
                  "best_valid": best["valid"],
                  "curve": [dict(minutes=m, steps=n, best_epoch=e, valid=v, gain_db=g) for m, n, e, v, g in curve],
                  "test_sdr_db": rows}
        Path(args.json).write_text(json.dumps(record, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
