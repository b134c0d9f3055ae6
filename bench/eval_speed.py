"""Speed and agreement of demucs_course.metrics against museval (Chapter 9: Evaluation).

Builds one pair of (references, estimates) of N seconds (default 30), 4 sources, stereo, 44.1 kHz, and times:

- museval.evaluate(references, estimates, 44100, 44100)   (BSS-eval v4, what the paper's tables use)
- metrics.sdr_v4(references, estimates)                   (SDR only)
- metrics.bss_eval_v4(references, estimates)              (SDR, ISR, SIR, SAR)

It prints wall-clock and CPU seconds, the speed ratios to museval, and the largest absolute difference per metric
(the NaN patterns are checked to be identical). The machine may be shared: CPU time is the steadier figure, and
each of our timings is the best of --repeat runs (museval runs once: it is the slow one).

    python bench/eval_speed.py            # 30 s
    python bench/eval_speed.py 10 --repeat 5
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import museval
from scipy.signal import lfilter

from demucs_course import SAMPLE_RATE
from demucs_course.metrics import bss_eval_v4, sdr_v4


def signals(seconds: float, n_sources: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Coloured-noise references and imperfect estimates of them, float32, (n_sources, n_samples, 2).

    Each reference channel is white noise through its own random 1-pole low-pass (a different colour per source
    and channel). Each estimate is its reference plus 10-20 % leakage of the others, delayed by a few samples and
    smoothed by a 2-tap filter, plus white noise: SDR, ISR, SIR and SAR all come out finite and different.
    """
    rng = np.random.default_rng(seed)
    n = int(seconds * SAMPLE_RATE)
    references = np.empty((n_sources, n, 2))
    for j in range(n_sources):
        for c in range(2):
            pole = rng.uniform(0.3, 0.95)
            references[j, :, c] = lfilter([1 - pole], [1, -pole], rng.standard_normal(n))
    leakage = rng.uniform(0.1, 0.2, size=(n_sources, n_sources))
    np.fill_diagonal(leakage, 1.0)
    estimates = np.einsum("jk,ktc->jtc", leakage, references)
    estimates = lfilter([0.8, 0.2], [1.0], np.roll(estimates, 3, axis=1), axis=1)
    estimates += 0.05 * rng.standard_normal(estimates.shape)
    return references.astype(np.float32), estimates.astype(np.float32)


def timed(function, repeat: int):
    """(result, best wall seconds, best CPU seconds) over `repeat` calls."""
    wall, cpu = [], []
    for _ in range(repeat):
        w, c = time.perf_counter(), time.process_time()
        result = function()
        wall.append(time.perf_counter() - w)
        cpu.append(time.process_time() - c)
    return result, min(wall), min(cpu)


def max_difference(ours: np.ndarray, theirs: np.ndarray) -> float:
    """Largest |ours - theirs| over the windows where both are numbers; NaN patterns must be identical."""
    if not np.array_equal(np.isnan(ours), np.isnan(theirs)):
        raise AssertionError("the NaN windows differ from museval's")
    both = ~np.isnan(ours)
    return float(np.max(np.abs(ours[both] - theirs[both]), initial=0.0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("seconds", nargs="?", type=float, default=30.0, help="signal length (default 30)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of our functions, best kept (default 3)")
    args = parser.parse_args()

    references, estimates = signals(args.seconds)
    print(f"{args.seconds:g} s, {references.shape[0]} sources, stereo, win = hop = {SAMPLE_RATE} samples")

    theirs, museval_wall, museval_cpu = timed(lambda: museval.evaluate(references, estimates), 1)
    sdr, sdr_wall, sdr_cpu = timed(lambda: sdr_v4(references, estimates), args.repeat)
    ours, full_wall, full_cpu = timed(lambda: bss_eval_v4(references, estimates), args.repeat)

    print(f"{'':24s}{'wall s':>9s}{'CPU s':>9s}{'x museval (wall)':>18s}{'x museval (CPU)':>17s}")
    for name, wall, cpu in [
        ("museval.evaluate", museval_wall, museval_cpu),
        ("sdr_v4", sdr_wall, sdr_cpu),
        ("bss_eval_v4", full_wall, full_cpu),
    ]:
        print(f"{name:24s}{wall:9.3f}{cpu:9.3f}{museval_wall / wall:18.1f}{museval_cpu / cpu:17.1f}")

    print("largest |ours - museval| in dB:")
    print(f"  sdr_v4       SDR {max_difference(sdr, theirs[0]):.2e}")
    for name, a, b in zip(("SDR", "ISR", "SIR", "SAR"), ours, theirs):
        print(f"  bss_eval_v4  {name} {max_difference(a, b):.2e}")
    print("median over windows (museval):", ", ".join(f"{n} {np.nanmedian(m):.2f}" for n, m in zip(
        ("SDR", "ISR", "SIR", "SAR"), theirs)))


if __name__ == "__main__":
    main()
