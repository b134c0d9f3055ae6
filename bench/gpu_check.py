"""The GPU path, measured (Chapter 7): training speed, memory, AMP, resuming, separation and torch.compile on CUDA.

On a CUDA GPU, in under 10 minutes (each timed run is capped at ``--seconds``):

1. the ``colab-t4`` and ``paper`` presets train for up to ``--steps`` steps on synthetic batches (random sources of
   the presets' extract length; the speed does not depend on the data), in float32 and with AMP: steps and examples
   per second, and ``torch.cuda.max_memory_allocated``. The paper preset runs one GPU's share of its global batch of
   64 (``--paper-batch``, default 8: the share of each of 8 GPUs);
2. the agreement of the losses with AMP and in float32: the same initial weights, batches and augmentations, the
   relative difference at the first step and the largest one over the first 20;
3. save and resume on the GPU: a small run (the tiny model, a toy set written here) stopped after a step
   checkpoint (mid-epoch) and resumed, against the same run in one go: the largest difference of the step losses
   and of the weights (0: exact; with deterministic kernels asked for, as far as CUDA has them);
4. separating 60 s of audio with 10 shifts with the colab-t4 model: the real-time factor (seconds per second);
5. ``torch.compile`` against eager on the colab-t4 step with AMP: the speed-up, and the compile time.

Without a GPU it says so and exits (status 0) without measuring anything. ``--dry-run`` runs every check on the CPU
with a tiny model and a few steps, in about a minute: it tests this script, it measures nothing worth quoting.

    python bench/gpu_check.py --json gpu_check.json     # on a GPU
    python bench/gpu_check.py --dry-run                 # anywhere
    python bench/paper_estimate.py --examples-per-second X   # X: the paper line's examples/s with AMP
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
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")        # lets cuBLAS be deterministic (check 3)

import torch  # noqa: E402

#: The dry run's stand-in for both presets: a tiny model on short extracts.
DRY_MODEL = dict(channels=4, depth=3, lstm_layers=1)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_speed(config, device, *, amp: bool, steps: int, seconds: float, compile: bool = False, seed: int = 0,
                warmup: int = 3) -> dict:
    """Up to ``steps`` training steps of ``config`` on synthetic batches (after ``warmup`` untimed ones)."""
    from demucs_course.augment import default_augment
    from demucs_course.model import Demucs
    from demucs_course.presets import LOSSES, extract_samples, seconds_to_samples
    from demucs_course.train import train_step

    torch.manual_seed(seed)
    model = Demucs(**config.model).to(device)
    net = torch.compile(model) if compile else model
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    scaler = torch.amp.GradScaler(device.type, enabled=amp)
    augment = default_augment(seconds_to_samples(config.shift), config.group_size).to(device).train()
    shape = (config.batch_size, 4, 2, extract_samples(config, model))
    generator = torch.Generator(device).manual_seed(seed)
    batches = [0.5 * torch.randn(shape, generator=generator, device=device) for _ in range(2)]
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    losses, started = [], time.perf_counter()
    try:
        for step in range(warmup + steps):
            if step == warmup:
                sync(device)
                warm_seconds, started = time.perf_counter() - started, time.perf_counter()
            losses.append(train_step(net, batches[step % 2], augment, optimizer, scaler, LOSSES[config.loss], device,
                                     amp))
            if step >= warmup and time.perf_counter() - started > seconds:
                break
    except torch.cuda.OutOfMemoryError as error:
        return {"error": f"out of memory: {str(error).splitlines()[0]}"}
    finally:
        del model, net, optimizer, batches
    sync(device)
    elapsed, timed = time.perf_counter() - started, len(losses) - warmup
    result = {"batch": config.batch_size, "steps": timed, "steps_per_second": timed / elapsed,
              "examples_per_second": timed * config.batch_size / elapsed, "warmup_seconds": warm_seconds,
              "losses": losses}
    if device.type == "cuda":
        result["max_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
        torch.cuda.empty_cache()
    return result


def agreement(fp32: dict, amp: dict, first: int = 20) -> dict:
    """Relative differences of the AMP losses from the float32 ones: at the first step, and the largest over
    ``first`` steps (the runs drift apart as their weights do)."""
    if "losses" not in fp32 or "losses" not in amp:
        return {}
    pairs = list(zip(fp32["losses"], amp["losses"]))[:first]
    relative = [abs(a - f) / abs(f) for f, a in pairs]
    return {"first_step": relative[0], f"max_over_{len(pairs)}_steps": max(relative)}


def resume_check(device, folder: Path, *, amp: bool) -> dict:
    """A small run stopped after step 3 (mid-epoch) and resumed, against the same run in one go."""
    from demucs_course.loading import read_checkpoint
    from demucs_course.presets import TrainConfig
    from demucs_course.toy import make_toy_musdb
    from demucs_course.train import train

    root = make_toy_musdb(folder / "toy", n_train=3, n_valid=1, n_test=1, train_seconds=6, test_seconds=4)
    settings = dict(model=dict(channels=8, depth=4, lstm_layers=1), data=str(root), segment=1.0, shift=0.2,
                    stride=0.5, batch_size=4, epochs=2, save_every_steps=1, device=str(device), amp=amp, seed=0)

    class Stop(Exception):
        pass

    def stop(record):
        if record["global_step"] == 3:
            raise Stop

    deterministic = torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
    try:
        straight = train(TrainConfig(**settings, checkpoint_dir=str(folder / "straight")), progress=False)
        cut = TrainConfig(**settings, checkpoint_dir=str(folder / "cut"))
        try:
            train(cut, progress=False, callback=stop)
        except Stop:
            pass
        saved = read_checkpoint(folder / "cut" / "last.pt")
        resumed = train(cut, progress=False)
    finally:
        torch.use_deterministic_algorithms(deterministic[0])
        torch.backends.cudnn.benchmark = deterministic[1]
    a, b = straight.history["step_loss"], resumed.history["step_loss"]
    weights = max(float((x - y).abs().max()) for x, y in
                  zip(straight.model.state_dict().values(), resumed.model.state_dict().values()))
    return {"steps": len(a), "resumed_after_step": len(saved["history"]["step_loss"]),
            "scaler_saved": bool(saved["scaler"]), "max_step_loss_difference": max(abs(x - y) for x, y in zip(a, b)),
            "max_weight_difference": weights, "exact": a == b and weights == 0.0}


def separation_speed(model_kwargs: dict, device, *, seconds: float, shifts: int) -> dict:
    """Separate ``seconds`` of stereo noise (the speed does not depend on the audio) with ``shifts`` shifts."""
    from demucs_course import SAMPLE_RATE
    from demucs_course.model import Demucs
    from demucs_course.separate import separate_track

    torch.manual_seed(0)
    model = Demucs(**model_kwargs).to(device).eval()
    mixture = 0.1 * torch.randn(2, int(seconds * SAMPLE_RATE))
    separate_track(model, mixture[:, :SAMPLE_RATE * 2], device=device)       # warm-up: kernels, allocator
    sync(device)
    started = time.perf_counter()
    separate_track(model, mixture, shifts=shifts, device=device)
    sync(device)
    elapsed = time.perf_counter() - started
    return {"audio_seconds": seconds, "shifts": shifts, "seconds": elapsed, "real_time_factor": elapsed / seconds}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="every check on the CPU with a tiny model")
    parser.add_argument("--steps", type=int, help="training steps per timed run (default 300; dry run 4)")
    parser.add_argument("--seconds", type=float, default=30.0, help="longest timed run, in seconds (default 30)")
    parser.add_argument("--paper-batch", type=int, default=8, help="the paper preset's batch on one GPU (default 8)")
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile (the dry run skips it too)")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    if not args.dry_run and not torch.cuda.is_available():
        print("gpu_check: no CUDA GPU here (torch.cuda.is_available() is False): nothing measured. Run it on a "
              "machine with one (Colab: Runtime > Change runtime type > GPU), or --dry-run to try the checks on "
              "the CPU with a tiny model.")
        return 0
    from demucs_course.presets import preset

    device = torch.device("cpu" if args.dry_run else "cuda")
    steps = args.steps or (4 if args.dry_run else 300)
    name = "CPU (dry run: a tiny model, nothing worth quoting)" if args.dry_run else torch.cuda.get_device_name()
    report = {"device": name, "torch": torch.__version__, "dry_run": args.dry_run, "train": {},
              "tf32": {"cudnn": torch.backends.cudnn.allow_tf32, "matmul": torch.backends.cuda.matmul.allow_tf32}}
    print(f"gpu_check on {name}, torch {torch.__version__}")
    started = time.perf_counter()

    configs = {"colab-t4": preset("colab-t4"), "paper": preset("paper", batch_size=args.paper_batch)}
    if args.dry_run:
        configs = {name: preset(name, model=DRY_MODEL, segment=0.5, shift=0.1, batch_size=4) for name in configs}
    for label, config in configs.items():
        runs = {}
        for amp in (False, True):
            runs["amp" if amp else "fp32"] = run = train_speed(config, device, amp=amp, steps=steps,
                                                               seconds=args.seconds)
            memory = f", {run['max_memory_gib']:.1f} GiB max allocated" if "max_memory_gib" in run else ""
            print(f"  {label:8s} {'AMP ' if amp else 'fp32'} batch {config.batch_size}: " + (
                run["error"] if "error" in run else f"{run['steps_per_second']:.2f} steps/s, "
                f"{run['examples_per_second']:.1f} examples/s over {run['steps']} steps{memory}"))
        runs["agreement"] = agreement(runs["fp32"], runs["amp"])
        if runs["agreement"]:
            print(f"  {label:8s} AMP against fp32: loss differs by {runs['agreement']['first_step']:.2e} (relative) "
                  f"at the first step, at most {max(runs['agreement'].values()):.2e} over the first steps")
        report["train"][label] = runs

    with tempfile.TemporaryDirectory(prefix="gpu_check_") as folder:
        os.environ["DEMUCS_COURSE_CACHE"] = str(Path(folder) / "cache")
        report["resume"] = resume = resume_check(device, Path(folder), amp=device.type == "cuda")
    print(f"  resume after step {resume['resumed_after_step']} of {resume['steps']}: "
          + ("exact" if resume["exact"] else f"step losses differ by up to {resume['max_step_loss_difference']:.2e}, "
             f"weights by up to {resume['max_weight_difference']:.2e}")
          + (" (AMP scaler saved)" if resume["scaler_saved"] else ""))

    separation = (dict(model_kwargs=DRY_MODEL, seconds=4.0, shifts=2) if args.dry_run
                  else dict(model_kwargs=configs["colab-t4"].model, seconds=60.0, shifts=10))
    report["separate"] = sep = separation_speed(device=device, **separation)
    print(f"  separate {sep['audio_seconds']:g} s with {sep['shifts']} shifts: {sep['seconds']:.1f} s, "
          f"real-time factor {sep['real_time_factor']:.3f}")

    if not (args.no_compile or args.dry_run):
        config = configs["colab-t4"]
        try:
            compiled = train_speed(config, device, amp=True, steps=steps, seconds=args.seconds, compile=True)
            eager = report["train"]["colab-t4"]["amp"]
            compiled["speed_up"] = compiled["steps_per_second"] / eager["steps_per_second"]
            print(f"  torch.compile, colab-t4 AMP: {compiled['steps_per_second']:.2f} steps/s, "
                  f"x{compiled['speed_up']:.2f} against eager, {compiled['warmup_seconds']:.0f} s to compile and "
                  "warm up")
        except Exception as error:                  # a backend that cannot compile this model: say why
            compiled = {"error": f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"}
            print(f"  torch.compile failed: {compiled['error']}")
        report["compile"] = compiled

    report["seconds"] = time.perf_counter() - started
    print(f"done in {report['seconds']:.0f} s")
    if args.json:
        for runs in report["train"].values():     # the loss lists are long; keep the first 20
            for run in runs.values():
                if "losses" in run:
                    run["losses"] = run["losses"][:20]
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
