"""Chapter 1: the "sampled" multitrack set -- songs played by real sampled instruments, in the MUSDB18-HQ layout.

The toy set (:mod:`demucs_course.toy`) is synthesised by the course's own simple instruments. This second set sounds
like music: the course composes each song as General MIDI (:mod:`demucs_course.sampled_composition`) and renders
every stem alone with FluidSynth and the FluidR3 GM soundfont's sampled drum kits, basses, pianos, guitars, strings
and voices (:mod:`demucs_course.sampled_render`) -- the way Slakh2100 (Manilow et al. 2019) built a training set.
This module writes the folder, with the toy set's layout and rules::

    root/
        train/<Artist - Title>/{mixture,drums,bass,other,vocals}.wav     stereo, 44.1 kHz, 16-bit PCM
        test/<Artist - Title>/...
        valid.txt       the train tracks kept for validation, one a line (read by data.get_musdb_tracks)
        sampled.json    the manifest: version, arguments, tracks, songs, FluidSynth and soundfont, content hash

It is read with the real ``musdb.DB(root, is_wav=True)``; the mixture read back is exactly the sum of the stems read
back (16-bit integers, see :func:`demucs_course.toy_instruments.to_int16`). The content hash is the toy set's rule
(:func:`demucs_course.toy.content_hash`): one SHA-256 over every stem's PCM.

**Needs** the ``fluidsynth`` program and the FluidR3 GM soundfont (Debian: ``fluidsynth fluid-soundfont-gm``, which
``bash course.sh`` installs). The same seed, FluidSynth version and soundfont give byte-identical files.

**Cost.** Rendering takes about 3 s of CPU time per minute of song (four stems; measured with
``bench/render_sampled.py`` on the course's 2-core machine, shared: 2.2-3.9 CPU-s per song-minute for single songs
of 30 s, a mean of 2.7 and 2.9 in two runs of 6 songs). FluidSynth is nearly all of it, and about 0.2 CPU-s of each
stem's render is spent loading the 148 MB soundfont. Writing a whole set, WAV files and hash included, took 3.2 and
3.9 CPU-s per song-minute in two runs (16 songs of 30 s with ``demucs-course data sampled``: 26 and 31 CPU-s, 30 and
37 s wall). The disk is the other cost: 51 MB per song-minute (five 16-bit stereo files). The default set, 128 train
songs (12 of them for validation) and 24 test songs of 30 s, is 76 song-minutes: written with ``demucs-course data
sampled`` in 276 s of wall clock on the 2-core machine, 202 CPU-s (FluidSynth included), 4.0 GB. Reading it into the
training cache (:func:`demucs_course.data.load_tracks`) adds the same 4.0 GB again, as 16-bit arrays; ``musdb`` runs
``ffprobe`` on every file when it lists a subset, about 0.06 CPU-s a file. :data:`SAMPLED_HASHES` pins its content.

    >>> root = make_sampled_musdb("~/sampled", n_train=4, n_test=2)      # doctest: +SKIP
    >>> mus = musdb.DB(root, is_wav=True, subsets="train")                # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import soundfile as sf

from demucs_course import SAMPLE_RATE, InputError
from demucs_course.sampled_render import find_tools, fluidsynth_version, synthesize_track
from demucs_course.toy import IGNORE_HASH_ENV, TRACK_FILES, VALID_LIST, _LOCK, _arguments, _locked, content_hash
from demucs_course.toy_composition import _track_names

#: The generator's version: any change that changes one sample it writes bumps it (the composer, the renderer's
#: settings, the quantisation), and the manifest records it.
SAMPLED_VERSION = 1
#: The default arguments of :func:`make_sampled_musdb` (a proposal sized by render time; see the module docstring).
SAMPLED_DEFAULTS = dict(n_train=128, n_valid=12, n_test=24, train_seconds=30.0, test_seconds=30.0, seed=0)
#: The content hash of the default set, and the renderer it was pinned with: FluidSynth's version and the
#: soundfont's size. Another FluidSynth (e.g. Ubuntu's in Colab) renders slightly different samples, a different set.
SAMPLED_HASHES = {1: dict(content_sha256="e5cba291957b2db551b842adec16a9bd097020efb0f855b916c107c8a158a308",
                          fluidsynth="FluidSynth runtime version 2.3.1", soundfont_bytes=148_398_306)}
MANIFEST = "sampled.json"
_INCOMPLETE = ".sampled-incomplete"


class SampledSetError(InputError):
    """A folder that cannot hold, or does not hold, the sampled set asked for; the message says what to do."""


class SampledContentError(SampledSetError):
    """The default set's audio is not what the course's records were made on, with the same renderer."""


def _check_pinned(root: Path, manifest: dict, fresh: bool) -> None:
    """Compare the default set's recorded hash with :data:`SAMPLED_HASHES`.

    Another FluidSynth or soundfont renders another set: a warning (the course's numbers will differ a little). The
    same renderer and another hash is an error that says what to do.
    """
    pinned = SAMPLED_HASHES.get(manifest.get("sampled_version"))
    if (pinned is None or pinned["content_sha256"] is None or manifest.get("arguments") != _arguments(**SAMPLED_DEFAULTS)
            or manifest.get("content_sha256") == pinned["content_sha256"]):
        return
    renderer = (manifest.get("fluidsynth"), manifest.get("soundfont", {}).get("bytes"))
    if renderer != (pinned["fluidsynth"], pinned["soundfont_bytes"]):
        warnings.warn(f"the sampled set in {root} was rendered by FluidSynth {renderer[0]} with a soundfont of "
                      f"{renderer[1]} bytes; the course's records were made with FluidSynth {pinned['fluidsynth']} and "
                      f"the FluidR3 GM soundfont of {pinned['soundfont_bytes']} bytes. Its audio differs a little, so "
                      "scores measured on it will differ a little from the book's.", stacklevel=3)
        return
    message = (f"the sampled set in {root} has the content hash {manifest.get('content_sha256')}, but FluidSynth "
               f"{renderer[0]} with this soundfont writes {pinned['content_sha256']}. ")
    message += ("Please report it with your numpy and FluidSynth versions" if fresh else
                "It was written by an older copy of the generator or edited since. Write it again: "
                f"`demucs-course data sampled {root} --overwrite`, or delete the folder")
    if os.environ.get(IGNORE_HASH_ENV, "") not in ("", "0"):
        warnings.warn(message + f" (used anyway: {IGNORE_HASH_ENV} is set)", stacklevel=3)
        return
    raise SampledContentError(message + f"; to go on with this set anyway, set {IGNORE_HASH_ENV}=1.")


def default_sampled_root() -> Path:
    """Where :func:`ensure_sampled_musdb` keeps the default set: ``$DEMUCS_COURSE_CACHE/sampled-musdb-v{VERSION}``."""
    cache = os.environ.get("DEMUCS_COURSE_CACHE") or Path.home() / ".cache" / "demucs_course"
    return Path(cache).expanduser() / f"sampled-musdb-v{SAMPLED_VERSION}"


def ensure_sampled_musdb(root=None, progress=None) -> Path:
    """The default sampled set, rendered on first use (about 5 CPU-minutes) and reused afterwards; its folder.

    This is what ``source="sampled"`` reads (:func:`demucs_course.data.get_musdb_tracks`). Safe to call from two
    processes at once: one renders, the other waits and reuses.
    """
    if progress is None:
        def progress(done, total, name):
            if done == 1 or done % 16 == 0 or done == total:
                print(f"rendering the sampled set: {done}/{total} songs", flush=True)
    return make_sampled_musdb(default_sampled_root() if root is None else root, **SAMPLED_DEFAULTS,
                              progress=progress)


def read_manifest(root) -> dict | None:
    """The manifest ``root/sampled.json`` of a sampled set, or None if there is none."""
    path = Path(root) / MANIFEST
    return json.loads(path.read_text()) if path.is_file() else None


def _plan(arguments: dict) -> dict:
    """Names and splits of the set these arguments give (no audio): the manifest's first keys."""
    rng = np.random.default_rng([arguments["seed"], 0, SAMPLED_VERSION])
    n_train = arguments["n_train"]
    names = _track_names(rng, n_train + arguments["n_test"])
    train, test = sorted(names[:n_train]), sorted(names[n_train:])
    valid = sorted(rng.choice(train, size=arguments["n_valid"], replace=False).tolist())
    durations = {name: arguments["train_seconds"] for name in train}
    durations.update({name: arguments["test_seconds"] for name in test})
    return {"sampled_version": SAMPLED_VERSION, "arguments": arguments, "sample_rate": SAMPLE_RATE,
            "tracks": {"train": train, "valid": valid, "test": test}, "durations": durations}


def _complete(root: Path, manifest: dict) -> bool:
    """Whether the manifest is finished and every file it promises is there, with the promised length."""
    if (root / _INCOMPLETE).exists() or "content_sha256" not in manifest or not (root / VALID_LIST).is_file():
        return False
    for subset in ("train", "test"):
        for name in manifest["tracks"][subset]:
            frames = int(round(manifest["durations"][name] * SAMPLE_RATE))
            for file in TRACK_FILES:
                path = root / subset / name / file
                if not path.is_file() or sf.info(str(path)).frames != frames:
                    return False
    return True


def make_sampled_musdb(root, *, n_train: int = 128, n_valid: int = 12, n_test: int = 24, train_seconds: float = 30.0,
                       test_seconds: float = 30.0, seed: int = 0, overwrite: bool = False, soundfont=None,
                       fluidsynth: str = "fluidsynth", threads: int = 1, progress=None) -> Path:
    """Write the sampled multitrack set into the folder ``root`` (MUSDB18-HQ layout) and return it.

    Args:
        root: the folder; created if needed. It must be empty, or hold a sampled set.
        n_train, n_test: how many songs in ``train/`` and ``test/``; ``n_valid`` of the train songs form the
            validation split (``valid.txt``).
        train_seconds, test_seconds: the length of each train and test song (1 to 3600 s).
        seed: the same seed (with the same FluidSynth and soundfont) writes byte-identical audio.
        overwrite: replace another (or an unfinished) sampled set in ``root``.
        soundfont, fluidsynth: the GM soundfont (default: Debian's FluidR3_GM.sf2) and the synthesiser program.
        threads: FluidSynth's synthesis threads per render (the samples do not depend on it).
        progress: called as ``progress(done, total, name)`` after each song, e.g. to print.

    If ``root`` already holds the complete set these arguments describe, nothing is rendered. The manifest is
    written last, with the :func:`~demucs_course.toy.content_hash` of the files read back.

    Raises:
        SampledToolError: fluidsynth or the soundfont is missing (the message says how to install them).
        SampledSetError: ``root`` is a file, holds other files, or holds another sampled set without ``overwrite``.
        ValueError: bad arguments.
    """
    arguments = _arguments(n_train, n_valid, n_test, train_seconds, test_seconds, seed)
    program, soundfont = find_tools(soundfont, fluidsynth)
    root = Path(root).expanduser()
    if root.exists() and not root.is_dir():
        raise SampledSetError(f"{root} is a file; give make_sampled_musdb a folder for the sampled set")
    expected = _plan(arguments)
    _refuse_foreign(root)   # before the lock file is created in it
    root.mkdir(parents=True, exist_ok=True)
    with _locked(root):
        found = read_manifest(root)
        entries = set(os.listdir(root)) - {_LOCK}
        same = found is not None and all(found.get(k) == expected[k] for k in ("sampled_version", "arguments"))
        if same and _complete(root, found) and not overwrite:
            _check_pinned(root, found, fresh=False)
            return root
        _refuse_foreign(root)
        if entries and not overwrite:
            what = "an unfinished sampled set" if same or found is None else (
                f"a different sampled set (version {found.get('sampled_version')}, arguments {found.get('arguments')})")
            raise SampledSetError(f"{root} already holds {what}; pass overwrite=True (--overwrite) to replace it, or "
                                  "choose another folder")
        for name in ("train", "test"):
            shutil.rmtree(root / name, ignore_errors=True)
        for name in (MANIFEST, VALID_LIST):
            (root / name).unlink(missing_ok=True)
        _write(root, expected, program, soundfont, threads, progress)
    return root


def _refuse_foreign(root: Path) -> None:
    """A SampledSetError if ``root`` holds files but no sampled set (finished or not): it is not ours to replace."""
    entries = set(os.listdir(root)) - {_LOCK} if root.is_dir() else set()
    if entries and not (root / MANIFEST).is_file() and _INCOMPLETE not in entries:
        raise SampledSetError(f"{root} is not empty and holds no sampled set (no {MANIFEST}): choose an empty or "
                              "new folder; make_sampled_musdb never deletes files it did not write")


def _write(root: Path, manifest: dict, program: str, soundfont: Path, threads: int, progress) -> None:
    """Render and write every song; the manifest goes last, so an interrupted run is seen as unfinished."""
    (root / _INCOMPLETE).write_text("a sampled set is being written here; if no process is, it was interrupted\n")
    seed, songs = manifest["arguments"]["seed"], {}
    total = len(manifest["tracks"]["train"]) + len(manifest["tracks"]["test"])
    for code, subset in enumerate(("train", "test"), start=1):
        for index, name in enumerate(manifest["tracks"][subset]):
            audio, song = synthesize_track([seed, code, index, SAMPLED_VERSION], manifest["durations"][name],
                                           program, soundfont, threads)
            folder = root / subset / name
            folder.mkdir(parents=True)
            for file in TRACK_FILES:
                sf.write(str(folder / file), audio[file[:-4]], SAMPLE_RATE, subtype="PCM_16", format="WAV")
            songs[name] = song.describe()
            if progress is not None:
                progress(len(songs), total, name)
    (root / VALID_LIST).write_text("".join(f"{name}\n" for name in manifest["tracks"]["valid"]))
    manifest = {**manifest, "fluidsynth": fluidsynth_version(program),
                "soundfont": {"name": soundfont.name, "bytes": soundfont.stat().st_size}, "songs": songs,
                "content_sha256": content_hash(root)}   # read back from the files: what is on disk is hashed
    temporary = root / (MANIFEST + ".tmp")
    temporary.write_text(json.dumps(manifest, indent=2) + "\n")
    os.replace(temporary, root / MANIFEST)
    (root / _INCOMPLETE).unlink()
    _check_pinned(root, manifest, fresh=True)
