"""Chapter 1: Listening to the problem -- a toy multitrack set in the MUSDB18-HQ layout.

Demucs learns from MUSDB18: 150 songs, each stored as a mixture and its four stems (drums, bass, other, vocals),
with ``mixture = drums + bass + other + vocals``. MUSDB18 cannot be downloaded everywhere the course runs (the test
machines, CI, a first look in a notebook), so this module *writes* a small stand-in with the same shape:

    root/
        train/<Artist - Title>/{mixture,drums,bass,other,vocals}.wav     stereo, 44.1 kHz, 16-bit PCM
        test/<Artist - Title>/...
        valid.txt       the names of the train tracks kept for validation, one a line
        toy.json        the manifest: generator version, arguments, track names per split, durations, content hash

That is the MUSDB18-HQ folder layout, so the course reads it with the real ``musdb.DB(root, is_wav=True)``, and the
same code reads the real dataset in Colab. (musdb's own ``split='valid'`` only knows the 14 real MUSDB validation
tracks; on the toy set the course reads ``valid.txt`` instead, see :func:`read_valid_list`.)

Each toy song is generated from a seed: a tempo, a key, a chord progression, and four instruments that follow them --

- **drums**: a kick (a sine whose pitch sweeps down), a snare (a noise burst plus a tone), hi-hats (short high-passed
  noise) and the odd crash and tom, on a tempo grid with a few patterns, fills and velocity variation;
- **bass**: plucked, saw-like low notes (fundamentals of about 40-160 Hz) on the chord roots;
- **other**: the chords, as a pad of detuned saws, an organ, or comping electric keys;
- **vocals**: a sung melody: a glottal-pulse-like harmonic source with vibrato, filtered through vowel formants that
  change every syllable, in phrases with short breaths between them.

Bass, other and vocals are all harmonic and share the same notes and frequency range, as in real music, so the
mixture cannot be split by a simple filter, but each source has its own timbre and rhythm that a network can learn.
Every stem is written as 16-bit integers first and the mixture is their exact integer sum, so the mixture read back
is exactly the sum of the stems read back.

The generator is three modules, all taught in Chapter 1: :mod:`demucs_course.toy_composition` draws the songs (the
score), :mod:`demucs_course.toy_instruments` plays them (the sound), and this one quantises them and writes the
folder. Its names are all importable from here.

**The same set on every machine.** A seed gives the same 16-bit samples whatever the machine, the thread count or
the BLAS library: nothing in the generator uses threads or a BLAS product, and every random draw comes from a
``numpy.random.Generator`` seeded from the arguments, in a fixed order. :func:`content_hash` digests the audio of a
set; the manifest records it (``"content_sha256"``), and :data:`TOY_HASHES` pins the hash of the default set of each
generator version, which :func:`make_toy_musdb` checks whenever it writes or first reuses a set.

Generating the default set (16 train tracks of 20 s, 4 test tracks of 8 s, about 300 MB) takes 6-7 s of one CPU
core (measured: 5.9-6.7 s of CPU time, hashing included; hashing alone 0.3 s). The first :func:`ensure_toy_musdb` does it once; later
calls find the folder and return at once::

    >>> root = ensure_toy_musdb()                                   # doctest: +SKIP
    >>> mus = musdb.DB(root, is_wav=True, subsets="train")          # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import scipy
import soundfile as sf

from demucs_course import SAMPLE_RATE, SOURCES
# The composition and the instruments, importable from here as before:
from demucs_course.toy_composition import (FLAT_NAMES, FORMANT_BANDWIDTHS, FIXED_FORMANTS, PROGRESSIONS, SCALES,
                                           SHARP_NAMES, VOWELS, Hit, Note, Song, _track_names, midi_to_hz, plan_song)
from demucs_course.toy_instruments import (_seconds, cymbal, envelope, formant_filter, harmonic_table, kick,
                                           oscillator, render_song, sing, snare, synthesize_track, to_int16, tom)

#: The generator's version. Any change to the generator that changes one sample it writes bumps it (and adds the new
#: default set's hash to :data:`TOY_HASHES`): the version names the cache folder and is stored in the manifest, so an
#: old cached set is never mistaken for a new one. Version 1 is the generator as first published; only its
#: implementation has changed since (no BLAS product), not one sample.
TOY_VERSION = 1

#: The default arguments of :func:`make_toy_musdb` (the set the course trains on).
TOY_DEFAULTS = dict(n_train=16, n_valid=2, n_test=4, train_seconds=20.0, test_seconds=8.0, seed=0)

#: :func:`content_hash` of the set :func:`make_toy_musdb` writes with :data:`TOY_DEFAULTS`, per :data:`TOY_VERSION`.
TOY_HASHES = {1: "7ecec9792efaedafdc83450e175e18a0f4e8cdc39028cad13209d9add6d7a874"}

#: The five files of every track folder, as in MUSDB18-HQ (and the order :func:`content_hash` reads them in).
TRACK_FILES = tuple(f"{name}.wav" for name in ("mixture",) + SOURCES)

MANIFEST = "toy.json"
VALID_LIST = "valid.txt"
_INCOMPLETE = ".toy-incomplete"  # present while a generation is under way; an interrupted one leaves it behind
_LOCK = ".toy.lock"  # serialises two processes generating into the same folder
#: Set this environment variable to 1 to use a toy set whose content hash is not the pinned one (a warning, no error).
IGNORE_HASH_ENV = "DEMUCS_COURSE_IGNORE_TOY_HASH"

SR = SAMPLE_RATE


# ---------------------------------------------------------------------------------------------------------------------
# 1. The content hash: one SHA-256 over the audio of a whole set.
# ---------------------------------------------------------------------------------------------------------------------


class ToyContentError(ValueError):
    """A toy set's audio is not what this version of the generator writes (its content hash differs)."""


def content_hash(root) -> str:
    """The SHA-256 (hex) of the audio of the toy set in ``root``: what makes two sets the same set.

    It digests, in this order: the subsets ``train`` then ``test``; in each, the track folders sorted by name
    (Python's ``sorted``, by code point); in each track, the files in :data:`TRACK_FILES` order (mixture, drums,
    bass, other, vocals); of each file, its 16-bit PCM frames as little-endian int16, interleaved (left, right,
    left, ...). File headers, names and the manifest are not part of it, so two writers of the same samples agree.
    """
    root = Path(root)
    digest = hashlib.sha256()
    for subset in ("train", "test"):
        folder = root / subset
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder} does not exist: {root} holds no toy set to hash")
        for name in sorted(p.name for p in folder.iterdir() if p.is_dir()):
            for file in TRACK_FILES:
                frames, _ = sf.read(str(folder / name / file), dtype="int16", always_2d=True)
                digest.update(np.ascontiguousarray(frames, dtype="<i2").tobytes())
    return digest.hexdigest()


def _pinned_hash(manifest: dict) -> str | None:
    """The hash :data:`TOY_HASHES` pins for the set this manifest describes (None: not the default set)."""
    if manifest.get("toy_version") != TOY_VERSION or manifest.get("arguments") != _arguments(**TOY_DEFAULTS):
        return None
    return TOY_HASHES.get(TOY_VERSION)


def _check_hash(root: Path, found: str, pinned: str | None, fresh: bool) -> None:
    """Raise a ToyContentError saying what to do if ``found`` is not the ``pinned`` hash."""
    if pinned is None or found == pinned:
        return
    if fresh:
        message = (f"this machine generated toy set version {TOY_VERSION} in {root} with the content hash {found}, "
                   f"but the course's records were made on the set with hash {pinned}: numpy {np.__version__} or "
                   f"scipy {scipy.__version__} compute its audio differently here, so the numbers the course prints "
                   f"will not match its records. Please report it with these versions; to go on with this set "
                   f"anyway, set the environment variable {IGNORE_HASH_ENV}=1.")
    else:
        message = (f"the toy set in {root} is not toy set version {TOY_VERSION}: its content hash is {found}, the "
                   f"generator writes {pinned}. It was written by an older copy of the generator (under the same "
                   f"version number) or edited since. Write it again: make_toy_musdb(root, overwrite=True), or "
                   f"`demucs-course toy-data {root} --overwrite`, or delete the folder {root}.")
    if os.environ.get(IGNORE_HASH_ENV, "") not in ("", "0"):
        warnings.warn(message + f" (used anyway: {IGNORE_HASH_ENV} is set)", stacklevel=3)
        return
    raise ToyContentError(message)


# ---------------------------------------------------------------------------------------------------------------------
# 2. The folder: MUSDB18-HQ layout, manifest written last, reuse when it matches.
# ---------------------------------------------------------------------------------------------------------------------


def default_toy_root() -> Path:
    """Where :func:`ensure_toy_musdb` keeps the default toy set: ``$DEMUCS_COURSE_CACHE/toy-musdb-v{TOY_VERSION}``.

    ``$DEMUCS_COURSE_CACHE`` defaults to ``~/.cache/demucs_course``. The version in the name means a new generator
    never reuses the audio of an old one.
    """
    cache = os.environ.get("DEMUCS_COURSE_CACHE") or Path.home() / ".cache" / "demucs_course"
    return Path(cache).expanduser() / f"toy-musdb-v{TOY_VERSION}"


def _arguments(n_train, n_valid, n_test, train_seconds, test_seconds, seed) -> dict:
    """Check the arguments of :func:`make_toy_musdb` and return them as stored in the manifest."""
    counts = dict(n_train=n_train, n_valid=n_valid, n_test=n_test, seed=seed)
    for name, value in counts.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    if n_train < 1:
        raise ValueError("n_train must be at least 1: a data set needs training tracks")
    if n_valid >= n_train:
        raise ValueError(f"n_valid ({n_valid}) must be smaller than n_train ({n_train}): the validation tracks are "
                         "taken from the train tracks, and some must be left to train on")
    lengths = dict(train_seconds=train_seconds, test_seconds=test_seconds)
    for name, value in lengths.items():
        if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not 1.0 <= value <= 3600:
            raise ValueError(f"{name} must be a number of seconds between 1 and 3600, got {value!r}")
    return {**{name: int(value) for name, value in counts.items()},
            **{name: float(value) for name, value in lengths.items()}}


def _plan_manifest(arguments: dict) -> dict:
    """The manifest of the set these arguments produce (names and splits only: no audio is synthesised)."""
    rng = np.random.default_rng([arguments["seed"], 0])
    n_train, n_test = arguments["n_train"], arguments["n_test"]
    names = _track_names(rng, n_train + n_test)
    train, test = sorted(names[:n_train]), sorted(names[n_train:])
    valid = sorted(rng.choice(train, size=arguments["n_valid"], replace=False).tolist())
    durations = {name: float(arguments["train_seconds"]) for name in train}
    durations.update({name: float(arguments["test_seconds"]) for name in test})
    return {
        "toy_version": TOY_VERSION,
        "arguments": arguments,
        "sample_rate": SR,
        "tracks": {"train": train, "valid": valid, "test": test},
        "durations": durations,
    }


def read_manifest(root) -> dict | None:
    """The manifest ``root/toy.json`` of a toy set, or None if there is none."""
    path = Path(root) / MANIFEST
    return json.loads(path.read_text()) if path.is_file() else None


def read_valid_list(root) -> list[str]:
    """The names of the validation tracks of the toy set in ``root`` (``root/valid.txt``, one name a line)."""
    path = Path(root) / VALID_LIST
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: {root} holds no toy set. "
                                "Write one with make_toy_musdb(root) or ensure_toy_musdb().")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def _is_complete(root: Path, manifest: dict) -> bool:
    """Whether every file the manifest promises is there, with the promised length."""
    if _INCOMPLETE in os.listdir(root) or not (root / VALID_LIST).is_file():
        return False
    for subset in ("train", "test"):
        for name in manifest["tracks"][subset]:
            frames = _seconds(manifest["durations"][name])
            for file in TRACK_FILES:
                path = root / subset / name / file
                if not path.is_file() or sf.info(str(path)).frames != frames:
                    return False
    return True


def _same_set(found: dict | None, expected: dict) -> bool:
    return found is not None and all(found.get(key) == expected[key] for key in ("toy_version", "arguments"))


def _state(root: Path, expected: dict) -> str:
    """"ready" (the expected set, complete), "empty", "toy" (another or an unfinished toy set) or "foreign"."""
    if not root.exists():
        return "empty"
    if not root.is_dir():
        raise NotADirectoryError(f"{root} is a file; give make_toy_musdb a folder")
    entries = set(os.listdir(root)) - {_LOCK}
    if not entries:
        return "empty"
    found = read_manifest(root)
    if _same_set(found, expected) and _is_complete(root, found):
        return "ready"
    return "toy" if found is not None or _INCOMPLETE in entries else "foreign"


@contextlib.contextmanager
def _locked(root: Path):
    """Hold an exclusive lock on ``root/.toy.lock`` (where the OS offers ``fcntl``: Linux, macOS, Colab)."""
    try:
        import fcntl
    except ImportError:  # Windows: no lock; do not generate the same folder from two processes at once there
        yield
        return
    with open(root / _LOCK, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX)
        except OSError:  # a file system without locks (some network mounts): go on without
            yield
            return
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def make_toy_musdb(root, *, n_train: int = 16, n_valid: int = 2, n_test: int = 4, train_seconds: float = 20.0,
                   test_seconds: float = 8.0, seed: int = 0, overwrite: bool = False, verify: bool = False,
                   progress: bool = False) -> Path:
    """Write a toy multitrack set in the MUSDB18-HQ layout into the folder ``root`` and return it.

    Writes ``root/{train,test}/<Artist - Title>/{mixture,drums,bass,other,vocals}.wav`` (stereo, 44.1 kHz, 16-bit
    PCM; the mixture is exactly the sum of the stems), ``root/valid.txt`` (the ``n_valid`` train tracks kept for
    validation) and, last, the manifest ``root/toy.json``, which records the set's :func:`content_hash`.

    Args:
        root: the folder; created if needed. It must be empty, or hold a toy set.
        n_train, n_test: how many tracks in ``train/`` and ``test/``.
        n_valid: how many of the train tracks form the validation split (listed in ``valid.txt``).
        train_seconds, test_seconds: the length of each train and test track.
        seed: the same seed writes byte-identical files; another seed, other songs with other names.
        overwrite: replace a toy set with other arguments (or an unfinished one) that is already in ``root``.
        verify: hash the audio of a set found in ``root`` again (about 0.5 s for the default set) instead of
            trusting the hash its manifest records.
        progress: a progress bar over the tracks while they are written.

    If ``root`` already holds the complete set these arguments describe, nothing is written (this takes
    milliseconds). Two processes generating the same folder at once wait for each other (a lock file).

    The default set's hash is checked against :data:`TOY_HASHES` after writing it, and when a set is reused: the
    recorded hash (or, for a set written before hashes were recorded, or with ``verify``, the audio's hash).

    Raises:
        ValueError: bad arguments; or ``root`` holds a different or unfinished toy set and ``overwrite`` is False;
            or ``root`` holds other files (this function never deletes anything but a toy set).
        ToyContentError (a ValueError): the set's audio is not what this generator writes; the message says what
            to do (usually: write it again with ``overwrite=True``).
    """
    arguments = _arguments(n_train, n_valid, n_test, train_seconds, test_seconds, seed)
    root = Path(root).expanduser()
    expected = _plan_manifest(arguments)
    # Without the lock (fast, and nothing created): reuse the set that is there, or refuse a folder that is not ours.
    if _state(root, expected) in ("ready", "foreign") and not _may_write(root, expected, overwrite):
        found = read_manifest(root)
        if "content_sha256" in found and not verify:
            _check_hash(root, found["content_sha256"], _pinned_hash(found), fresh=False)
            return root
    root.mkdir(parents=True, exist_ok=True)
    with _locked(root):  # decide again: another process may have written the set while we waited
        if _may_write(root, expected, overwrite):
            _clear(root)
            _write(root, expected, progress)
        else:
            _reuse(root, verify)
    return root


def _may_write(root: Path, expected: dict, overwrite: bool) -> bool:
    """False if ``root`` already holds the expected set (and no ``overwrite``), True if (re)writing it is allowed.

    Raises a ValueError that explains why when ``root`` may not be written.
    """
    state = _state(root, expected)
    if state == "ready" and not overwrite:
        return False
    if state == "foreign":
        raise ValueError(f"{root} is not empty and holds no toy set (no {MANIFEST}): choose an empty or new "
                         "folder for the toy set; make_toy_musdb never deletes files it did not write")
    if state in ("toy", "ready") and not overwrite:
        found = read_manifest(root)
        what = (f"a different toy set (version {found.get('toy_version')}, arguments {found.get('arguments')})"
                if found is not None and not _same_set(found, expected) else "an unfinished toy set")
        raise ValueError(f"{root} already holds {what}; pass overwrite=True to replace it with version "
                         f"{TOY_VERSION}, arguments {expected['arguments']}, or choose another folder")
    return True


def _clear(root: Path) -> None:
    """Remove the toy set's own entries from ``root`` (and nothing else)."""
    for name in ("train", "test"):
        shutil.rmtree(root / name, ignore_errors=True)
    for name in (MANIFEST, VALID_LIST, _INCOMPLETE):
        (root / name).unlink(missing_ok=True)


def _write(root: Path, manifest: dict, progress: bool = False) -> None:
    """Synthesise and write every track; the manifest goes last, so an interrupted run is seen as unfinished."""
    from tqdm.auto import tqdm

    (root / _INCOMPLETE).write_text("a toy set is being written here; if no process is, it was interrupted\n")
    seed = manifest["arguments"]["seed"]
    songs = {}
    tracks = [(code, subset, index, name) for code, subset in enumerate(("train", "test"), start=1)
              for index, name in enumerate(manifest["tracks"][subset])]
    for code, subset, index, name in tqdm(tracks, desc="writing the toy set", unit="track", disable=not progress):
        audio, song = synthesize_track([seed, code, index], manifest["durations"][name])
        folder = root / subset / name
        folder.mkdir(parents=True)
        for file in TRACK_FILES:
            sf.write(str(folder / file), audio[file[:-4]], SR, subtype="PCM_16", format="WAV")
        songs[name] = song.describe()
    (root / VALID_LIST).write_text("".join(f"{name}\n" for name in manifest["tracks"]["valid"]))
    digest = content_hash(root)  # read back from the files: what is on disk is what is hashed
    _write_manifest(root, {**manifest, "content_sha256": digest, "songs": songs})
    (root / _INCOMPLETE).unlink()
    _check_hash(root, digest, _pinned_hash(manifest), fresh=True)


def _write_manifest(root: Path, manifest: dict) -> None:
    """Write ``root/toy.json`` atomically (a reader sees the old manifest or the new one, never half of one)."""
    temporary = root / (MANIFEST + ".tmp")
    temporary.write_text(json.dumps(manifest, indent=2) + "\n")
    os.replace(temporary, root / MANIFEST)


def _reuse(root: Path, verify: bool) -> None:
    """Check the complete set in ``root`` before it is reused; record its hash if its manifest has none yet."""
    manifest = read_manifest(root)
    recorded = manifest.get("content_sha256")
    if recorded is not None and not verify:
        _check_hash(root, recorded, _pinned_hash(manifest), fresh=False)
        return
    found = content_hash(root)
    if recorded is not None and found != recorded:
        raise ToyContentError(f"the audio of the toy set in {root} has changed since it was written: its content "
                              f"hash is {found}, its manifest records {recorded}. Write it again: "
                              f"make_toy_musdb(root, overwrite=True), or delete the folder {root}.")
    _check_hash(root, found, _pinned_hash(manifest), fresh=False)
    if recorded is None:  # a set written before hashes were recorded: record it now that it is checked
        _write_manifest(root, {**manifest, "content_sha256": found})


def ensure_toy_musdb(root=None, **kwargs) -> Path:
    """The toy set, generated on first use and reused afterwards; returns its folder.

    With no ``root``, the folder is :func:`default_toy_root` for the default arguments, and a sibling named after
    the arguments (``toy-musdb-v1-<digest of the arguments>``) for others, so that sets of different sizes do not
    replace each other.
    ``kwargs`` are those of :func:`make_toy_musdb`. Safe to call from two processes at once (a notebook and pytest):
    one generates, the other waits and reuses.
    """
    if root is None:
        root = default_toy_root()
        unknown = set(kwargs) - set(TOY_DEFAULTS) - {"overwrite", "verify"}
        if unknown:
            raise TypeError(f"ensure_toy_musdb() got unknown arguments {sorted(unknown)}; "
                            f"it takes those of make_toy_musdb: {sorted(TOY_DEFAULTS)}, overwrite and verify")
        given = {k: v for k, v in kwargs.items() if k not in ("overwrite", "verify")}
        arguments = _arguments(**{**TOY_DEFAULTS, **given})
        if arguments != _arguments(**TOY_DEFAULTS):
            digest = hashlib.sha1(json.dumps(arguments, sort_keys=True).encode()).hexdigest()[:8]
            root = root.with_name(f"{root.name}-{digest}")
    return make_toy_musdb(root, **kwargs)
