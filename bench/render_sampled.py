"""Render speed of the sampled multitrack set (Chapter 1: the data), to size the set by CPU time.

Renders N songs of S seconds (default 6 songs of 30 s) with demucs_course.sampled_render.synthesize_track, the code
make_sampled_musdb runs per song, and prints per song and in total: wall seconds, the CPU seconds of this process
(composing, quantising) and of its FluidSynth children (rendering), and the CPU seconds per minute of song. It also
checks what the set's determinism rests on: each song is rendered a second time, with 2 synthesis threads, and the
two must be identical sample for sample. The machine may be shared: CPU time is the steadier figure.

    python bench/render_sampled.py               # 6 songs of 30 s
    python bench/render_sampled.py --songs 3 --seconds 60
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from demucs_course.sampled import SAMPLED_DEFAULTS
from demucs_course.sampled_render import find_tools, fluidsynth_version, synthesize_track


def cpu_seconds() -> tuple[float, float]:
    """(this process, its finished children) user + system CPU seconds."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--songs", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=1234)
    args = parser.parse_args()
    program, soundfont = find_tools()
    print(f"{fluidsynth_version(program)}, soundfont {soundfont}")
    totals = np.zeros(3)
    for index in range(args.songs):
        wall, (own, child) = time.perf_counter(), cpu_seconds()
        audio, song = synthesize_track([args.seed, index], args.seconds, program, soundfont)
        wall, own, child = time.perf_counter() - wall, cpu_seconds()[0] - own, cpu_seconds()[1] - child
        again, _ = synthesize_track([args.seed, index], args.seconds, program, soundfont, threads=2)
        same = all(np.array_equal(audio[name], again[name]) for name in audio)
        assert same, f"song {index}: a render with 2 threads differs from one with 1 thread"
        totals += (wall, own, child)
        print(f"song {index} ({song.style}, {song.tempo:.0f} BPM): wall {wall:5.2f} s, CPU {own:4.2f} s + "
              f"FluidSynth {child:5.2f} s = {60 * (own + child) / args.seconds:5.2f} CPU-s per song-minute; "
              f"1 and 2 threads identical: {same}")
    minutes = args.songs * args.seconds / 60
    cpu = (totals[1] + totals[2]) / minutes
    print(f"total: {minutes:.1f} song-minutes, wall {totals[0] / minutes:.2f} s and CPU {cpu:.2f} s per song-minute")
    d = SAMPLED_DEFAULTS
    default = (d["n_train"] * d["train_seconds"] + d["n_test"] * d["test_seconds"]) / 60
    print(f"the default set ({d['n_train']} x {d['train_seconds']:g} s + {d['n_test']} x {d['test_seconds']:g} s = "
          f"{default:.0f} song-minutes) would take about {default * cpu / 60:.1f} CPU-minutes to render (writing "
          "the files and hashing them come on top)")


if __name__ == "__main__":
    main()
