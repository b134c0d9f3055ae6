"""How fast is a Demucs v1 forward pass, and how much memory does it take? (Chapters 3-6.)

Prints, for the paper's model at channels 64 and for the course's tiny configuration, the forward time per second
of stereo audio (inference: ``torch.no_grad``, batch 1, after a warm-up run) and the peak memory:

- on CPU, the process's peak resident memory (each configuration runs in its own process, so the peaks do not mix),
  and the resident memory before the model was built;
- on CUDA, ``torch.cuda.max_memory_allocated`` in fp32 and under ``torch.autocast(dtype=torch.float16)``.

    python bench/model_speed.py                        # CPU, 10 s of audio, 3 repeats
    python bench/model_speed.py --device cuda --seconds 30
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))   # run from a checkout without installing

CONFIGS = {"channels 64": dict(channels=64), "tiny": None}   # None: demucs_course.model.TINY


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024    # Linux reports KiB


def measure(name: str, device: str, seconds: float, repeats: int, autocast: bool) -> dict:
    import torch

    from demucs_course import SAMPLE_RATE
    from demucs_course.model import TINY, Demucs, count_parameters

    rss_before = peak_rss_mib()
    torch.manual_seed(0)
    model = Demucs(**(CONFIGS[name] or TINY)).to(device).eval()
    length = model.valid_length(int(seconds * SAMPLE_RATE))
    mix = torch.randn(1, model.audio_channels, length, device=device)

    def run():
        with torch.no_grad(), torch.autocast(device_type=device, dtype=torch.float16, enabled=autocast):
            model(mix)
        if device == "cuda":
            torch.cuda.synchronize()

    run()                                          # warm-up: kernels, allocator, oneDNN's first-call stalls
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    result = dict(parameters=count_parameters(model), length=length, median_s=statistics.median(times),
                  rss_before_mib=rss_before)
    if device == "cuda":
        result["peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
    else:
        result["peak_mib"] = peak_rss_mib()
    return result


def _child(queue, *args):
    queue.put(measure(*args))


def measure_in_own_process(*args) -> dict:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(queue, *args))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the input, in seconds of audio")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs after the warm-up (median reported)")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.repeats < 1:
        parser.error("--seconds must be > 0 and --repeats >= 1")

    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available here (use --device cpu)")
    print(f"torch {torch.__version__}, device {args.device}"
          + (f" ({torch.cuda.get_device_name()})" if args.device == "cuda" else f", {torch.get_num_threads()} threads")
          + f", input {args.seconds:g} s of stereo audio, batch 1, median of {args.repeats}")
    precisions = [False, True] if args.device == "cuda" else [False]
    for name in CONFIGS:
        for autocast in precisions:
            r = measure_in_own_process(name, args.device, args.seconds, args.repeats, autocast)
            memory = (f"peak GPU memory {r['peak_mib']:.0f} MiB" if args.device == "cuda" else
                      f"peak RSS {r['peak_mib']:.0f} MiB (before the model: {r['rss_before_mib']:.0f} MiB)")
            print(f"{name:12s} {'fp16 autocast' if autocast else 'fp32':13s} {r['parameters']:>12,d} parameters  "
                  f"input {r['length']} samples  forward {r['median_s']:.3f} s = "
                  f"{r['median_s'] / args.seconds:.4f} s per audio second  {memory}")


if __name__ == "__main__":
    main()
