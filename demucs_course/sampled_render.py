"""Chapter 1: playing the sampled set's songs -- each stem rendered by FluidSynth with the FluidR3 GM soundfont.

:mod:`demucs_course.sampled_composition` writes a song as four General MIDI files; this module turns each into a
stereo 44.1 kHz stem with the ``fluidsynth`` program (Debian's ``fluidsynth`` package) and the FluidR3 GM soundfont
(``fluid-soundfont-gm``, real sampled instruments, drum kits and voices), then quantises the four stems with the toy
set's rule (:func:`demucs_course.toy_instruments.to_int16`): one scale for the whole song, each stem rounded to
16 bits, the mixture their exact integer sum.

**Deterministic.** FluidSynth renders a MIDI file "as fast as possible" (``-F``) with no clock and no audio device.
Its reverb and chorus are switched off (the chorus modulates, and both are effects the network would have to learn
to split), and it writes 32-bit floats, so no dither is added: the course rounds to 16 bits itself. Two renders of a
file are byte-identical, and so are renders with 1 or 2 synthesis threads (measured, and checked by the tests). The
samples depend on the FluidSynth version and the soundfont, which the manifest records.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from demucs_course import SAMPLE_RATE, SOURCES, InputError
from demucs_course.sampled_composition import SampledSong, compose_song, song_midi
from demucs_course.toy_instruments import to_int16

#: Where Debian's ``fluid-soundfont-gm`` puts the FluidR3 GM soundfont.
DEFAULT_SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
_INSTALL = ("`bash course.sh test` (or `bash course.sh book`) installs it, or run "
            "`sudo apt-get install fluidsynth fluid-soundfont-gm`")
#: The synthesiser's settings: no reverb, no chorus, a fixed gain, one synthesis thread unless told otherwise.
FLUIDSYNTH_OPTIONS = ("-q", "-n", "-i", "-R", "0", "-C", "0", "-g", "1.0", "-r", str(SAMPLE_RATE),
                      "-T", "raw", "-O", "float", "-E", "little")


class SampledToolError(InputError):
    """The synthesiser or the soundfont the sampled set needs is missing or unusable."""


def find_tools(soundfont=None, fluidsynth: str = "fluidsynth") -> tuple[str, Path]:
    """The ``fluidsynth`` program's path and the soundfont's; a SampledToolError saying how to install either."""
    program = shutil.which(fluidsynth)
    if program is None:
        raise SampledToolError(f"the program {fluidsynth!r} is not installed, and the sampled set is rendered with "
                               f"it: {_INSTALL}")
    soundfont = Path(soundfont if soundfont is not None else DEFAULT_SOUNDFONT).expanduser()
    if not soundfont.is_file():
        raise SampledToolError(f"the soundfont {soundfont} does not exist: {_INSTALL}, or pass the path of a GM "
                               "soundfont (.sf2)")
    return program, soundfont


def fluidsynth_version(program: str) -> str:
    """The version line of the ``fluidsynth`` program, e.g. ``"FluidSynth runtime version 2.3.1"``."""
    result = subprocess.run([program, "--version"], capture_output=True, text=True, check=False)
    return result.stdout.splitlines()[0].strip() if result.stdout else "unknown"


def render_midi(midi, frames: int, program: str, soundfont: Path, threads: int = 1) -> np.ndarray:
    """Render a ``mido.MidiFile`` to ``(2, frames)`` float32 with FluidSynth (cut, or padded with silence)."""
    with tempfile.TemporaryDirectory(prefix="sampled-") as folder:
        source, output = Path(folder) / "stem.mid", Path(folder) / "stem.raw"
        midi.save(str(source))
        command = [program, *FLUIDSYNTH_OPTIONS, "-o", f"synth.cpu-cores={int(threads)}", "-F", str(output),
                   str(soundfont), str(source)]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0 or not output.is_file():
            message = " ".join((result.stderr or result.stdout).split())[-400:]
            raise SampledToolError(f"fluidsynth could not render with the soundfont {soundfont} (exit status "
                                   f"{result.returncode}): {message or 'no message'}")
        audio = np.frombuffer(output.read_bytes(), dtype="<f4").reshape(-1, 2).T
    stem = np.zeros((2, frames), dtype=np.float32)
    stem[:, :min(frames, audio.shape[1])] = audio[:, :frames]
    return stem


def render_song(song: SampledSong, frames: int, program: str, soundfont: Path, threads: int = 1) -> dict:
    """The four stems of ``song``, each rendered alone: ``{source: (2, frames) float32}``."""
    return {role: render_midi(song_midi(song, role), frames, program, soundfont, threads) for role in SOURCES}


def synthesize_track(seed, seconds: float, program: str, soundfont: Path,
                     threads: int = 1) -> tuple[dict[str, np.ndarray], SampledSong]:
    """One sampled track: ``({"mixture", "drums", "bass", "other", "vocals"} -> (T, 2) int16, its song)``.

    ``seed`` is anything ``np.random.default_rng`` takes; the same seed (and FluidSynth and soundfont) gives the same
    samples. A song whose stem is silent cannot happen with the composer's scores; it is checked all the same.
    """
    frames = int(round(seconds * SAMPLE_RATE))
    song = compose_song(np.random.default_rng(seed), float(seconds))
    stems = render_song(song, frames, program, soundfont, threads)
    for role, stem in stems.items():
        if not np.abs(stem).max() > 0:
            raise SampledToolError(f"the {role} stem ({song.programs[role]}) rendered silent with {soundfont}: "
                                   "is it a General MIDI soundfont?")
    return to_int16({role: stem.astype(np.float64) for role, stem in stems.items()}), song
