"""Chapter 2: The data pipeline -- tracks, normalisation and the extract dataset.

Where the tracks come from (always read through the real ``musdb.DB``, so the code that runs on the toy set in
CI is the code that reads MUSDB18 in Colab):

- ``"toy"``: the course's toy multitrack set (:mod:`demucs_course.toy`), generated on first use into a cache folder;
- ``"sampled"``: songs played by sampled instruments (:mod:`demucs_course.sampled`), rendered on first use likewise;
- ``"preview"``: the 7-second MUSDB18 previews that ``musdb.DB(download=True)`` fetches (for Colab);
- a folder: your own MUSDB18 (``train/<track>.stem.mp4``) or MUSDB18-HQ (``train/<track>/mixture.wav``) root.

Reading a stem through musdb starts an ``ffmpeg`` process, far too slow to do for every training example. So each
track is read once and cached as a 16-bit array on disk (:func:`cache_track`): musdb itself decodes every format to
16-bit PCM, so the cache is lossless, and a memory-mapped read of an 11-s extract then takes microseconds.

Normalisation (the paper's, done outside the model in v1): every stream of a track is normalised with the mean and
standard deviation of the whole track's *mono mixture*, ``x' = (x - mean(m)) / std(m)`` with ``m = mean over
channels of the mixture``; a model's output is de-normalised with the same two numbers. The std has a floor,
a quarter of the std of the mixture's samples, for the rare file whose channels cancel (:func:`mono_stats`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch

from . import SAMPLE_RATE, SOURCES, InputError


class DatasetError(InputError):
    """A dataset root or split that cannot be used, with a message that says what to do."""


# --------------------------------------------------------------------------------------------------------------
# Finding tracks: one loader, three sources, always musdb.DB
# --------------------------------------------------------------------------------------------------------------

def _layout(root: Path) -> str | None:
    """'hq' for MUSDB18-HQ folders of WAVs, 'stems' for MUSDB18 .stem.mp4 files, None when neither is there."""
    for subset in ("train", "test"):
        folder = root / subset
        if not folder.is_dir():
            continue
        if any((d / "mixture.wav").is_file() for d in folder.iterdir() if d.is_dir()):
            return "hq"
        if any(folder.glob("*.stem.mp4")):
            return "stems"
    return None


def read_split_list(root: Path) -> list[str] | None:
    """The validation track names in ``root/valid.txt`` (the toy set writes one), or None if there is no such file."""
    from .toy import VALID_LIST, read_valid_list

    return read_valid_list(root) if (Path(root) / VALID_LIST).is_file() else None


def get_musdb_tracks(source="toy", subset: str = "train", split: str | None = None) -> list:
    """List the tracks of a subset as ``musdb`` track objects.

    Args:
        source: ``"toy"``, ``"sampled"``, ``"preview"``, or the path of a MUSDB18 / MUSDB18-HQ root.
        subset: ``"train"`` or ``"test"``.
        split: with ``subset="train"``: ``"train"`` (without the validation tracks), ``"valid"`` (only them) or None
            (all). The validation tracks are the 14 musdb names for real MUSDB (musdb's own ``split``), and the names
            in ``root/valid.txt`` for a root that has one (the toy set).

    Raises:
        DatasetError: the root does not exist, holds no tracks, or the subset / split is unknown. Never returns
            an empty list.
    """
    import musdb

    if subset not in ("train", "test"):
        raise DatasetError(f"subset must be 'train' or 'test', got {subset!r}")
    if split not in (None, "train", "valid"):
        raise DatasetError(f"split must be None, 'train' or 'valid', got {split!r}")
    if split is not None and subset != "train":
        raise DatasetError(f"split={split!r} needs subset='train' (the validation tracks are part of MUSDB's train set)")

    own_split = None
    if isinstance(source, str) and source == "preview":
        db = musdb.DB(download=True, subsets=subset, split=split)
        root = Path(db.root)
    else:
        if isinstance(source, str) and source == "toy":
            from .toy import ensure_toy_musdb

            root = ensure_toy_musdb()
        elif isinstance(source, str) and source == "sampled":
            from .sampled import ensure_sampled_musdb

            root = ensure_sampled_musdb()
        else:
            root = Path(source).expanduser()
        if not root.is_dir():
            raise DatasetError(
                f"The dataset root {root} does not exist. Give the folder that holds train/ and test/ "
                "(MUSDB18-HQ: train/<track>/mixture.wav; MUSDB18: train/<track>.stem.mp4), "
                "or use source='toy' or 'sampled' (generated here) or source='preview' (7-second MUSDB18 previews)."
            )
        layout = _layout(root)
        if layout is None:
            raise DatasetError(
                f"No MUSDB18 tracks found under {root}: expected {root}/train/<Artist - Title>/mixture.wav "
                f"(MUSDB18-HQ) or {root}/train/<Artist - Title>.stem.mp4 (MUSDB18). Check the path: it must be "
                "the folder that contains train/ and test/."
            )
        own_split = read_split_list(root)
        db = musdb.DB(str(root), is_wav=(layout == "hq"), subsets=subset, split=None if own_split else split)
    tracks = list(db.tracks)
    if split is not None and own_split:
        keep = set(own_split)
        tracks = [t for t in tracks if (t.name in keep) == (split == "valid")]
    if not tracks:
        where = f"split={split!r} of " if split else ""
        raise DatasetError(
            f"No tracks in {where}subset {subset!r} under {root}. "
            + ("The folder exists but that subset is empty: check it holds the full dataset." if split is None else
               "The validation list names tracks that are not there: check valid.txt or use split=None.")
        )
    for track in tracks:
        missing = [name for name in SOURCES if name not in track.sources]
        if missing:
            raise DatasetError(f"Track {track.name!r} under {root} has no {', '.join(missing)} stem: it is incomplete.")
    return tracks


# --------------------------------------------------------------------------------------------------------------
# Normalisation
# --------------------------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class TrackStats:
    """Mean and standard deviation of a track's mono mixture (the z-score the paper normalises with)."""

    mean: float
    std: float


#: The least std the normalisation divides by, as a fraction of the std of the mixture's samples (both channels).
MONO_STD_FLOOR = 0.25


def mono_stats(mixture, *, name: str = "track") -> TrackStats:
    """Mean and std of the mono mix ``m`` of ``mixture`` shaped (channels, time), the numbers the paper normalises
    with; clear errors (:class:`~demucs_course.audio.AudioError`) for too short, silent or NaN audio.

    The std has a floor: ``std = max(std(m), MONO_STD_FLOOR * std(x))``, ``std(x)`` over the samples of both
    channels. For music the mono mix's std is 0.7 to 1 times that (0.97 to 0.98 on the toy set), so the floor of
    0.25 changes nothing there. It matters when the channels cancel: a stereo file whose right channel is the left
    one inverted (R = -L: a polarity error, or a mid/side file read as left/right) has a mono mix that is silent
    but for rounding, std 3e-7 for a 16-bit file, and dividing by that would scale the input about 10^6 times, far
    beyond anything the model saw in training: the stems would be garbage. With the floor such a file is
    normalised to the level of its channels, which the model can separate. (Refusing it would be the other honest
    choice; but each of its channels is ordinary music, and the separation is exact up to the model's error.)
    """
    from .audio import AudioError

    mix = torch.as_tensor(mixture, dtype=torch.float64)
    if mix.dim() != 2 or mix.shape[-1] == 0:
        raise AudioError(f"{name}: expected a mixture shaped (channels, time) with time > 0, got {tuple(mix.shape)}")
    if mix.shape[-1] < 2:
        raise AudioError(f"{name} is {mix.shape[-1]} sample long ({mix.shape[-1] / SAMPLE_RATE * 1000:.3f} ms): "
                         "too short to normalise (its mean and std need at least 2 samples). Give a longer "
                         "recording")
    if not torch.isfinite(mix).all():
        raise AudioError(f"{name}: the mixture holds NaN or infinite samples; the file is damaged, re-decode it")
    mono = mix.mean(dim=0)
    level = float(mix.std())
    if not level > 1e-8:
        raise AudioError(f"{name}: the mixture is silent (std of its samples is {level:.2e}); it cannot be "
                         "normalised, and there is nothing to separate")
    std = max(float(mono.std()), MONO_STD_FLOOR * level)
    return TrackStats(float(mono.mean()), std)


def normalize(wav: torch.Tensor, stats: TrackStats) -> torch.Tensor:
    """z-score with the track's mono-mix statistics: ``(x - mean) / std``."""
    return (wav - stats.mean) / stats.std


def denormalize(wav: torch.Tensor, stats: TrackStats) -> torch.Tensor:
    """Undo :func:`normalize`: ``x * std + mean``."""
    return wav * stats.std + stats.mean


# --------------------------------------------------------------------------------------------------------------
# Reading tracks, once, into a lossless 16-bit cache
# --------------------------------------------------------------------------------------------------------------

def read_track(track) -> tuple[np.ndarray, np.ndarray]:
    """Read a musdb track: ``(mixture, sources)`` as float32 arrays shaped (2, T) and (4, 2, T), sources in
    :data:`SOURCES` order. Tracks whose streams differ in length are cut to the shortest (MUSDB18's decoded
    streams can differ by a few samples). A track that cannot be used is a :class:`DatasetError` naming the file:
    a WAV file that cannot be opened, is not 44.1 kHz stereo, or holds fewer frames than its header declares (see
    :func:`check_wav_files`), a stream that cannot be decoded, or NaN or infinite samples."""
    check_wav_files(track)
    if track.rate != SAMPLE_RATE:
        raise DatasetError(f"Track {track.name!r} is at {track.rate} Hz; the course expects {SAMPLE_RATE} Hz")
    try:
        mixture = track.audio.T
        sources = [track.sources[name].audio.T for name in SOURCES]
    except Warning as error:          # stempeg (MUSDB18's .stem.mp4 files) raises its ffprobe failures as Warning
        raise DatasetError(f"Track {track.name!r} under {Path(track.path).parent} cannot be decoded "
                           f"({str(error).strip().splitlines()[0]}); the file is damaged: copy or download it "
                           "again") from None
    length = min([mixture.shape[-1]] + [s.shape[-1] for s in sources])
    mixture = np.ascontiguousarray(mixture[:, :length], dtype=np.float32)
    sources = np.stack([s[:, :length] for s in sources]).astype(np.float32)
    if mixture.shape[0] != 2:
        raise DatasetError(f"Track {track.name!r} has {mixture.shape[0]} channels; MUSDB18 tracks are stereo")
    for name, stream in (("mixture", mixture), *zip(SOURCES, sources)):
        if not np.isfinite(stream).all():
            raise DatasetError(f"Track {track.name!r}: its {name} holds NaN or infinite samples; the file is damaged "
                               "or was written from a broken computation. Write or download it again")
    return mixture, sources


def check_wav_files(track) -> None:
    """Check the WAV files of a track (MUSDB18-HQ's five; nothing for MUSDB18's .stem.mp4) before musdb reads them:
    each must open, be 44.1 kHz stereo, and hold the frames its header declares (a WAV cut short would otherwise
    shorten every stream of the track, without a word), and a floating point WAV must hold no NaN or infinite
    sample (musdb's 16-bit decoding would hide them). Raises a :class:`DatasetError` naming the file."""
    import soundfile as sf

    from .audio import AudioError, check_stereo_wav

    for path in track_files(track):
        if path.suffix.lower() != ".wav":
            continue
        try:
            info = check_stereo_wav(path)
        except AudioError as error:
            raise DatasetError(f"Track {track.name!r}: {error}. Copy or download the track again") from None
        if info.subtype in ("FLOAT", "DOUBLE") and not np.isfinite(sf.read(path, dtype="float32")[0]).all():
            # musdb decodes through ffmpeg to 16-bit, which would turn NaN into a silent 0 without a word
            raise DatasetError(f"Track {track.name!r}: {path} holds NaN or infinite samples; the file is damaged or "
                               "was written from a broken computation. Write or download it again")


def default_cache_dir() -> Path:
    """``$DEMUCS_COURSE_CACHE`` or ``~/.cache/demucs_course``: where the toy set and track caches live."""
    return Path(os.environ.get("DEMUCS_COURSE_CACHE", Path.home() / ".cache" / "demucs_course"))


@dataclasses.dataclass
class CachedTrack:
    """A track held as a memory-mapped int16 array (5 streams: mixture then the 4 sources, 2 channels, T)."""

    name: str
    path: Path
    stats: TrackStats
    length: int

    @property
    def streams(self) -> np.ndarray:
        return np.load(self.path, mmap_mode="r")

    def extract(self, offset: int, length: int) -> torch.Tensor:
        """Samples ``[offset, offset + length)`` of the 4 sources as float32 (4, 2, <= length): shorter past the end."""
        chunk = torch.from_numpy(np.array(self.streams[1:, :, offset: offset + length]))  # a writable copy
        return chunk.float().mul_(1 / 32768)  # one copy, then in place: examples are 16 MB at the paper's size

    def mixture(self) -> torch.Tensor:
        """The whole mixture, float32 (2, T), as musdb read it."""
        return torch.from_numpy(np.asarray(self.streams[0], dtype=np.float32) / 32768.0)

    def sources(self) -> torch.Tensor:
        """All four sources, float32 (4, 2, T)."""
        return torch.from_numpy(np.asarray(self.streams[1:], dtype=np.float32) / 32768.0)


def _to_int16(x: np.ndarray, name: str) -> np.ndarray:
    scaled = np.round(x * 32768.0)
    if np.abs(scaled - x * 32768.0).max(initial=0.0) > 1e-3 or scaled.min(initial=0) < -32768 or scaled.max(initial=0) > 32767:
        raise DatasetError(f"Track {name!r} is not 16-bit audio as musdb decodes it; cannot cache it losslessly")
    return scaled.astype(np.int16)


def track_files(track) -> list[Path]:
    """Every file a musdb track is read from: its mixture's path and each source's (one file for MUSDB18's
    .stem.mp4, five for MUSDB18-HQ's WAVs), resolved, sorted, each once."""
    paths = {Path(track.path)} | {Path(source.path) for source in track.sources.values()
                                  if getattr(source, "path", None)}
    return sorted({path.resolve() for path in paths})


def track_cache_key(track) -> str:
    """The key of a track's cache entry: a hash of the path, size and modification time of each of its files."""
    parts = []
    for path in track_files(track):
        try:
            stat = path.stat()
        except FileNotFoundError:
            raise DatasetError(f"Track {track.name!r} is missing its file {path}: the dataset changed while in "
                               "use, or is incomplete") from None
        parts.append(f"{path}|{stat.st_size}|{stat.st_mtime_ns}")
    return hashlib.sha1("\n".join(parts).encode()).hexdigest()[:16]


def cache_track(track, cache_dir: Path | None = None) -> CachedTrack:
    """Read a musdb track once into ``cache_dir`` (an int16 .npy plus its mono-mix statistics) and memory-map it.

    The cache key covers every file the track is read from -- the mixture and each stem (MUSDB18-HQ: five WAVs;
    MUSDB18: one .stem.mp4) -- by path, size and modification time (ns), so a track with any file changed, an
    edited stem included, is read again.
    """
    key = track_cache_key(track)
    folder = Path(cache_dir or default_cache_dir() / "tracks")
    folder.mkdir(parents=True, exist_ok=True)
    array_path = folder / f"{key}.npy"
    meta_path = folder / f"{key}.json"
    if array_path.is_file() and meta_path.is_file():
        meta = json.loads(meta_path.read_text())
    else:
        mixture, sources = read_track(track)
        stats = mono_stats(mixture, name=track.name)
        streams = _to_int16(np.concatenate([mixture[None], sources]), track.name)
        tmp = folder / f"{key}.{os.getpid()}.tmp.npy"
        np.save(tmp, streams)
        os.replace(tmp, array_path)
        meta = {"name": track.name, "mean": stats.mean, "std": stats.std, "length": int(streams.shape[-1])}
        tmp_meta = folder / f"{key}.{os.getpid()}.tmp.json"
        tmp_meta.write_text(json.dumps(meta))
        os.replace(tmp_meta, meta_path)
    return CachedTrack(meta["name"], array_path, TrackStats(meta["mean"], meta["std"]), meta["length"])


def load_tracks(source="toy", subset: str = "train", split: str | None = None, *, cache_dir=None,
                progress: bool = False) -> list[CachedTrack]:
    """:func:`get_musdb_tracks` then :func:`cache_track` on each: the tracks of a subset, ready to extract from."""
    tracks = get_musdb_tracks(source, subset, split)
    if progress:
        from tqdm.auto import tqdm

        tracks = tqdm(tracks, desc=f"reading {subset} tracks", unit="track")
    return [cache_track(t, cache_dir) for t in tracks]


# --------------------------------------------------------------------------------------------------------------
# The training dataset: fixed-length extracts
# --------------------------------------------------------------------------------------------------------------

class ExtractDataset(torch.utils.data.Dataset):
    """Fixed-length extracts of the four sources, normalised by their track's mono-mix statistics.

    Two ways to pick the extracts:

    - ``stride=...`` (the paper): every extract of ``segment`` samples starting at 0, stride, 2 * stride, ...
      (the paper: 11-s extracts -- ``valid_length(10 s)`` plus a 1-s ``Shift`` -- with a 1-s stride). A track
      shorter than ``segment`` gives one zero-padded extract.
    - ``per_minute=...`` (the seed re-implementation, to save time): about ``per_minute`` extracts per minute of
      track (at least one per track), at random offsets drawn again every epoch; call :meth:`set_epoch`.

    Each item is a float32 tensor shaped (4, 2, segment): the sources in :data:`SOURCES` order. The mixture is not
    returned: training rebuilds it as the sum of the augmented sources.
    """

    def __init__(self, tracks: list[CachedTrack], segment: int, *, stride: int | None = None,
                 per_minute: float | None = None, seed: int = 0, normalize: bool = True):
        if not tracks:
            raise DatasetError("ExtractDataset got no tracks: load them with load_tracks(...) first")
        if segment < 1:
            raise ValueError(f"segment must be at least 1 sample, got {segment}")
        if (stride is None) == (per_minute is None):
            raise ValueError("give exactly one of stride= (every extract, the paper) or per_minute= (random extracts)")
        if stride is not None and stride < 1:
            raise ValueError(f"stride must be at least 1 sample, got {stride}")
        if per_minute is not None and not per_minute > 0:
            raise ValueError(f"per_minute must be positive, got {per_minute}")
        self.tracks = list(tracks)
        self.segment = int(segment)
        self.stride = stride
        self.per_minute = per_minute
        self.seed = seed
        self.normalize = normalize
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        """Choose the extracts of an epoch (random mode draws new offsets; stride mode always has the same ones)."""
        self.epoch = epoch
        index = []
        rng = np.random.default_rng([self.seed, epoch])
        for t, track in enumerate(self.tracks):
            room = max(0, track.length - self.segment)
            if self.stride is not None:
                offsets = range(0, room + 1, self.stride)
            else:
                count = max(1, round(track.length / SAMPLE_RATE / 60 * self.per_minute))
                offsets = rng.integers(0, room + 1, size=count)
            index.extend((t, int(o)) for o in offsets)
        self.index = index

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> torch.Tensor:
        t, offset = self.index[i]
        track = self.tracks[t]
        sources = track.extract(offset, self.segment)
        if self.normalize:  # normalize(), in place on the fresh extract
            sources.sub_(track.stats.mean).div_(track.stats.std)
        if sources.shape[-1] < self.segment:  # a track shorter than the segment: silence fills the rest
            sources = torch.nn.functional.pad(sources, (0, self.segment - sources.shape[-1]))
        return sources
