"""Chapter 1: Listening to the problem -- loading audio, players, waveform and spectrogram figures.

Every waveform in the course has one shape and one rate: a ``(channels, time)`` float tensor at 44.1 kHz, stereo
(``channels == 2``) wherever the model is concerned, with samples in [-1, 1]. This module is the border where audio
files become such tensors and back:

- :func:`load_audio` reads WAV, FLAC, OGG and MP3 with ``soundfile`` (other formats, such as M4A, through the
  ``ffmpeg`` program when it is installed), duplicates mono to stereo and resamples to 44.1 kHz with soxr;
- :func:`save_audio` writes 16-bit WAV or FLAC;
- :func:`check_waveform` is the validator the rest of the package uses for a stereo waveform;
- :func:`player` and :func:`stem_players` let you *listen* in a notebook, without normalising the loudness away;
- :func:`plot_waveforms` and :func:`plot_spectrograms` draw one row per stream.

Anything that cannot be used raises :class:`AudioError` (a ``ValueError``) with a message that names the file and
says what to do, never a traceback from deep inside a decoder.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import html
import io
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from . import SAMPLE_RATE, InputError


class AudioError(InputError):
    """Audio that cannot be used (a bad file or a badly shaped waveform), with a message that says what to do."""


class AudioFileNotFoundError(AudioError, FileNotFoundError):
    """The audio file does not exist (both an :class:`AudioError` and a ``FileNotFoundError``)."""


# --------------------------------------------------------------------------------------------------------------
# Checking waveforms
# --------------------------------------------------------------------------------------------------------------


def _to_numpy(x) -> np.ndarray:
    """A numpy view of a tensor or array-like (tensors are detached and moved to the CPU)."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def check_waveform(x, *, name: str = "audio") -> torch.Tensor:
    """Check that ``x`` is a stereo waveform and return it as a float32 tensor of shape ``(2, time)``.

    The package's one validator for waveforms that enter a model or a separation: rank 2, exactly 2 channels first,
    a floating dtype, at least one sample, only finite values. ``x`` may be a tensor or a numpy array; ``name``
    appears in the error messages. Raises :class:`AudioError` saying what is wrong and how to fix it.
    """
    if not isinstance(x, torch.Tensor):
        x = torch.from_numpy(np.asarray(x))
    shape = tuple(x.shape)
    if x.dim() != 2:
        hint = " (a mono signal: duplicate it with x.expand(2, -1))" if x.dim() == 1 else ""
        raise AudioError(f"{name} must have shape (2, time), got shape {shape}{hint}")
    if x.shape[0] != 2:
        if x.shape[1] == 2:
            hint = "; it looks like (time, channels), the layout musdb and soundfile use: pass x.T"
        elif x.shape[0] == 1:
            hint = "; it is mono: duplicate it with x.expand(2, -1)"
        else:
            hint = "; mix it down to stereo first"
        raise AudioError(f"{name} must have 2 channels, shape (2, time), got shape {shape}{hint}")
    if x.shape[1] == 0:
        raise AudioError(f"{name} is empty (0 samples)")
    if not x.is_floating_point():
        raise AudioError(f"{name} has dtype {x.dtype}; audio must be floating point in [-1, 1] "
                         "(16-bit integers: divide by 32768)")
    if not bool(torch.isfinite(x).all()):
        raise AudioError(f"{name} contains NaN or infinite samples; check what produced it")
    return x.float()


def _as_channels_time(x, name: str, max_channels: int = 2) -> np.ndarray:
    """``x`` as a float numpy array of shape (channels, time) for files, players and figures; (time,) is mono."""
    a = _to_numpy(x)
    if a.ndim == 1:
        a = a[None]
    if a.ndim != 2:
        raise AudioError(f"{name} must have shape (channels, time) or (time,), got shape {a.shape}")
    if a.shape[0] > max_channels:
        hint = " (it looks like (time, channels): pass x.T)" if a.shape[1] <= max_channels else ""
        raise AudioError(f"{name} must have at most {max_channels} channels, shape (channels, time), got shape "
                         f"{a.shape}{hint}")
    if a.shape[1] == 0:
        raise AudioError(f"{name} is empty (0 samples)")
    if not np.issubdtype(a.dtype, np.floating):
        raise AudioError(f"{name} has dtype {a.dtype}; audio must be floating point in [-1, 1]")
    if not np.isfinite(a).all():
        raise AudioError(f"{name} contains NaN or infinite samples")
    return a


def _check_rate(sample_rate) -> int:
    """``sample_rate`` as an int, or an :class:`AudioError` if it is not a positive whole number of Hz."""
    if isinstance(sample_rate, (int, float, np.integer, np.floating)) and not isinstance(sample_rate, bool):
        if sample_rate > 0 and int(sample_rate) == sample_rate:
            return int(sample_rate)
    raise AudioError(f"sample_rate must be a positive whole number of Hz, got {sample_rate!r}")


# --------------------------------------------------------------------------------------------------------------
# Reading and writing files
# --------------------------------------------------------------------------------------------------------------

# File endings soundfile decodes itself. A file with one of these endings that soundfile cannot read is damaged;
# any other ending (.m4a, .aac, .opus, .wma, .mp4 ...) gets a second try through the ffmpeg program.
_SOUNDFILE_ENDINGS = {fmt.lower() for fmt in sf.available_formats()} | {"aif", "oga"}


def _read_with_ffmpeg(path: Path) -> tuple[np.ndarray, int]:
    """Decode ``path`` with the ffmpeg program into 32-bit float WAV; returns (samples (time, channels), rate)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "decoded.wav"
        cmd = ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-vn", "-c:a", "pcm_f32le", str(out)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0 or not out.exists():
            reason = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "no audio stream"
            raise AudioError(f"Cannot decode {path}: ffmpeg says: {reason}. Is it an audio file? "
                             "Convert it to WAV yourself (ffmpeg -i in out.wav) or try another file")
        data, rate = sf.read(out, dtype="float32", always_2d=True)
    return data, rate


#: A WAV ``data`` chunk size at or above this is taken for a streaming writer's placeholder, not a length.
_PLACEHOLDER_SIZE = 0x7FFFF000


def declared_wav_frames(path) -> int | None:
    """The number of frames a RIFF WAV file's header declares (its ``data`` chunk's size over the frame size).

    libsndfile trusts the file over its header: a WAV cut short (a download that stopped, a copy to a full disk)
    reads "successfully" with only the frames that are there, and ``soundfile.info`` reports those. The header still
    says how many there should be. None when ``path`` is not a RIFF WAV, or its header gives no usable size: 0, or
    2 GiB - 4 KiB and more (programs that stream WAV write 0, 0x7FFFF000 or 0xFFFFFFFF when they cannot know the
    length in advance; a real data chunk that large, over 3 hours of CD audio, is not checked).
    """
    with open(path, "rb") as file:
        head = file.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        block_align = None
        while True:
            chunk = file.read(8)
            if len(chunk) < 8:
                return None
            kind, size = chunk[:4], int.from_bytes(chunk[4:], "little")
            if kind == b"fmt ":
                fmt = file.read(size)
                if len(fmt) < 14:
                    return None
                block_align = int.from_bytes(fmt[12:14], "little")
                file.seek(size % 2, 1)
            elif kind == b"data":
                if not block_align or size == 0 or size >= _PLACEHOLDER_SIZE:
                    return None
                return size // block_align
            else:
                file.seek(size + size % 2, 1)      # chunks are padded to an even size


@contextlib.contextmanager
def _decoder_notes():
    """Catch what the C decoders write straight to the process's stderr while a file is read (libmpg123 prints
    "Note: Illegal Audio-MPEG-Header ..." lines for a damaged MP3): a list that holds the text afterwards, so that a
    bad file is one clear error, not an error under lines of decoder noise. POSIX only; elsewhere the list stays
    empty and the notes go where they went."""
    notes: list[str] = []
    try:
        saved = os.dup(2) if os.name == "posix" else None
    except OSError:                                    # no stderr at all (a daemon)
        saved = None
    if saved is None:
        yield notes
        return
    import ctypes

    libc = ctypes.CDLL(None)
    with tempfile.TemporaryFile() as caught:
        sys.stderr.flush()
        os.dup2(caught.fileno(), 2)
        try:
            yield notes
        finally:
            libc.fflush(None)                         # C's buffered stderr, before fd 2 is given back
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            notes.append(caught.read().decode(errors="replace"))


def check_stereo_wav(path):
    """The ``soundfile.info`` of a file that must be a whole 44.1 kHz stereo WAV (a MUSDB18-HQ stream, a folder of
    estimates): an :class:`AudioError` naming the file if it cannot be opened, has another rate or channel count,
    or holds fewer frames than its header declares. The message says what is wrong; the caller says what to do."""
    try:
        info = sf.info(path)
    except (sf.LibsndfileError, RuntimeError) as error:
        raise AudioError(f"{path} cannot be read as a WAV file ({error})") from None
    if info.samplerate != SAMPLE_RATE or info.channels != 2:
        raise AudioError(f"{path} is {info.samplerate} Hz with {info.channels} channel(s), not {SAMPLE_RATE} Hz "
                         "stereo")
    declared = declared_wav_frames(path)
    if declared is not None and info.frames < declared:
        raise AudioError(f"{path} is cut short: its header declares {declared} frames but the file holds "
                         f"{info.frames}")
    return info


def _read(path: Path) -> tuple[np.ndarray, int]:
    """Samples (time, channels) and the sample rate of any file soundfile, or failing that ffmpeg, decodes.

    A WAV file that holds fewer frames than its header declares is an :class:`AudioError` naming both numbers.
    """
    try:
        with _decoder_notes() as notes:
            data, rate = sf.read(path, dtype="float32", always_2d=True)
        declared = declared_wav_frames(path)
        if declared is not None and data.shape[0] < declared:
            raise AudioError(f"{path} is cut short: its header declares {declared} frames "
                             f"({declared / rate:.3f} s) but the file holds {data.shape[0]} "
                             f"({data.shape[0] / rate:.3f} s). The download or copy stopped early: get the file "
                             "again")
        return data, rate
    except (sf.SoundFileError, RuntimeError, TypeError) as error:
        ending = path.suffix.lower().lstrip(".")
        if ending not in _SOUNDFILE_ENDINGS:
            if shutil.which("ffmpeg") is not None:
                return _read_with_ffmpeg(path)
            raise AudioError(f"Cannot decode {path}: soundfile reads WAV, FLAC, OGG and MP3, not .{ending} files. "
                             "Install ffmpeg (which load_audio then uses), or convert the file: "
                             "ffmpeg -i in.m4a out.wav") from None
        note = notes[-1].strip().splitlines()[0].removeprefix("Note: ") if notes and notes[-1].strip() else None
        said = f"the decoder says: {note}" if note else f"soundfile: {error}"
        raise AudioError(f"Cannot decode {path}: it is not a readable .{ending} file, perhaps damaged or "
                         f"misnamed ({said}). Re-export or re-download it") from None


def load_audio(path, *, sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """Read an audio file as a float32 tensor of shape ``(2, time)`` at ``sample_rate`` (default 44.1 kHz).

    Reads any file ``soundfile`` reads (WAV, FLAC, OGG, MP3, AIFF ...); other formats (M4A, AAC, Opus ...) are
    decoded through the ``ffmpeg`` program if it is installed. Mono files are duplicated to both channels; files at
    another rate are resampled with soxr's high-quality filter (:func:`resample`), so a file of ``T`` samples at
    rate ``r`` comes back with ``ceil(T * sample_rate / r)`` samples.

    Raises :class:`AudioError` (``AudioFileNotFoundError``, also a ``FileNotFoundError``, for a missing file) for a
    file that is missing, a folder, undecodable, empty, has more than 2 channels, or holds NaN/infinite samples.
    """
    sample_rate = _check_rate(sample_rate)
    path = Path(path).expanduser()
    if not path.exists():
        raise AudioFileNotFoundError(f"No such audio file: {path} (check the path; relative paths start in "
                                     f"{Path.cwd()})")
    if path.is_dir():
        raise AudioError(f"{path} is a folder, not an audio file; pass the path of a file inside it")

    data, rate = _read(path)
    frames, channels = data.shape
    if frames == 0:
        raise AudioError(f"{path} is empty (0 samples); export the audio again")
    if channels > 2:
        raise AudioError(f"{path} has {channels} channels; the course works on stereo. Mix it down to stereo "
                         f"first, e.g. ffmpeg -i {path.name} -ac 2 out.wav")
    if not np.isfinite(data).all():
        raise AudioError(f"{path} contains NaN or infinite samples; the file is damaged or was written from a "
                         "broken computation. Re-export it")

    wav = data.T  # (channels, time)
    if channels == 1:
        wav = np.repeat(wav, 2, axis=0)
    if rate != sample_rate:
        wav = resample(wav, rate, sample_rate)
    return torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32))


def resample(wav: np.ndarray, rate: int, sample_rate: int) -> np.ndarray:
    """Resample ``wav`` (channels, time) from ``rate`` to ``sample_rate`` Hz with soxr's high-quality filter.

    The same computation as ``librosa.resample(wav, orig_sr=rate, target_sr=sample_rate, res_type="soxr_hq")``
    (without importing librosa): the output has ``ceil(time * sample_rate / rate)`` samples.
    """
    import soxr

    rate, sample_rate = _check_rate(rate), _check_rate(sample_rate)
    length = int(np.ceil(wav.shape[-1] * sample_rate / rate))
    out = soxr.resample(np.ascontiguousarray(wav.T), rate, sample_rate, quality="HQ").T  # soxr wants (time, ch)
    if out.shape[-1] < length:
        out = np.pad(out, ((0, 0), (0, length - out.shape[-1])))
    return out[:, :length]


_WRITE_FORMATS = {".wav": "WAV", ".flac": "FLAC"}


def save_audio(path, wav, sample_rate: int = SAMPLE_RATE, *, clip: bool = True) -> Path:
    """Write ``wav`` (shape ``(channels, time)``, or ``(time,)`` for mono) as 16-bit PCM WAV or FLAC.

    The format follows the ending of ``path`` (``.wav`` or ``.flac``); missing folders are created. 16-bit PCM
    holds [-1, 1]: with ``clip=True`` samples beyond it are clipped with a warning that says how many, with
    ``clip=False`` they raise :class:`AudioError`. Returns the path written.
    """
    sample_rate = _check_rate(sample_rate)
    path = Path(path).expanduser()
    fmt = _WRITE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise AudioError(f"save_audio writes .wav or .flac files, not {path.suffix or 'files without an ending'!r} "
                         f"({path}); convert afterwards with ffmpeg if you need another format")
    a = _as_channels_time(wav, f"the waveform to save as {path}", max_channels=8)
    beyond = int(np.count_nonzero(np.abs(a) > 1))
    if beyond:
        peak = float(np.abs(a).max())
        message = (f"{beyond} samples of the waveform for {path} lie beyond [-1, 1] (peak {peak:.3f}), which "
                   f"16-bit audio cannot hold")
        if not clip:
            raise AudioError(f"{message}; scale it down (e.g. wav / {peak:.3f}) or pass clip=True")
        warnings.warn(f"{message}: they were clipped. Scale the waveform down to avoid it", stacklevel=2)
        a = np.clip(a, -1.0, 1.0)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.ascontiguousarray(a.T, dtype=np.float32), sample_rate, format=fmt, subtype="PCM_16")
    return path


# --------------------------------------------------------------------------------------------------------------
# Listening
# --------------------------------------------------------------------------------------------------------------


def _head(a: np.ndarray, sample_rate: int, seconds) -> np.ndarray:
    """The first ``seconds`` of ``a`` (all of it when ``seconds`` is None)."""
    if seconds is None:
        return a
    if seconds <= 0:
        raise AudioError(f"seconds must be positive, got {seconds}")
    return a[..., : max(1, int(round(seconds * sample_rate)))]


def _audio_data_uri(a: np.ndarray, sample_rate: int) -> str:
    """A ``data:`` URI holding ``a`` (channels, time) in [-1, 1], to embed in a page.

    MP3 at high variable bit rate (soundfile writes it with libsndfile >= 1.1): about an eighth of the size of a WAV,
    which keeps chapters with a dozen players light; every browser plays it. Falls back to 16-bit WAV where the
    installed libsndfile cannot write MP3.
    """
    data = np.ascontiguousarray(a.T, dtype=np.float32)
    buffer = io.BytesIO()
    try:
        sf.write(buffer, data, sample_rate, format="MP3", subtype="MPEG_LAYER_III",
                 bitrate_mode="VARIABLE", compression_level=0.2)
        mime = "audio/mpeg"
    except (sf.LibsndfileError, ValueError, TypeError):
        buffer = io.BytesIO()
        sf.write(buffer, data, sample_rate, format="WAV", subtype="PCM_16")
        mime = "audio/wav"
    return f"data:{mime};base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


@functools.cache
def _labelled_audio():
    """``IPython.display.Audio`` with an optional bold label above the player (IPython is imported on first use,
    so that scripts which only load audio do not pay for it)."""
    from IPython.display import Audio

    class LabelledAudio(Audio):
        def __init__(self, *args, label: str | None = None, **kwargs):
            self.label = label
            super().__init__(*args, **kwargs)

        def _repr_html_(self):
            player_html = super()._repr_html_()
            return player_html if self.label is None else f"<div><b>{html.escape(self.label)}</b></div>{player_html}"

    return LabelledAudio


def player(wav, sample_rate: int = SAMPLE_RATE, *, label: str | None = None, seconds: float | None = None):
    """An ``IPython.display.Audio`` player for ``wav`` (shape ``(channels, time)`` or ``(time,)``).

    The loudness is played as it is (``normalize=False``), so a quiet stem sounds quiet; only a waveform that would
    clip (peak above 1) is scaled down to peak 1. ``label`` is shown above the player; ``seconds`` keeps only the
    beginning (short clips keep notebooks and book pages small).
    """
    sample_rate = _check_rate(sample_rate)
    a = _head(_as_channels_time(wav, label or "audio"), sample_rate, seconds)
    peak = float(np.abs(a).max())
    if peak > 1:
        a = a / peak
    return _labelled_audio()(a, rate=sample_rate, normalize=False, label=label)


def stem_players(stems: Mapping, sample_rate: int = SAMPLE_RATE, *, seconds: float | None = None):
    """A table of labelled audio players, one per stem plus the mixture, as an ``IPython.display.HTML``.

    ``stems`` maps names to waveforms of one shape, ``(channels, time)`` or ``(time,)``. If it has no ``"mixture"``
    entry the sum of the stems is added as the last row. All players share one scale, so the stems keep their
    loudness relative to each other and to the mixture: nothing is normalised, and if any of them would clip all are
    divided by the same peak. Each clip is embedded as a base64 MP3 (WAV if libsndfile cannot write MP3), so the table plays in
    Jupyter, Colab and the built book; pass ``seconds`` to keep only the beginning.
    """
    from IPython.display import HTML

    sample_rate = _check_rate(sample_rate)
    if not isinstance(stems, Mapping) or not stems:
        raise AudioError("stem_players expects a non-empty dict of name -> waveform, e.g. {'drums': x, 'bass': y}")
    streams = {str(name): _head(_as_channels_time(x, str(name)), sample_rate, seconds) for name, x in stems.items()}
    shapes = {a.shape for a in streams.values()}
    if len(shapes) != 1:
        raise AudioError(f"stem_players expects stems of one shape, got {sorted(shapes)}")
    if "mixture" not in streams:
        streams["mixture"] = sum(streams.values())
    peak = max(float(np.abs(a).max()) for a in streams.values())
    scale = 1 / peak if peak > 1 else 1.0

    rows = []
    for name, a in streams.items():
        uri = _audio_data_uri(a * scale, sample_rate)
        rows.append(f'<tr><td style="text-align:left;padding-right:1em"><b>{html.escape(name)}</b></td>'
                    f'<td><audio controls preload="none" src="{uri}"></audio></td></tr>')
    note = f"<caption>all players scaled by {scale:.3f} to avoid clipping</caption>" if scale != 1.0 else ""
    return HTML(f'<table class="stem-players">{note}{"".join(rows)}</table>')


# --------------------------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------------------------


def _mono_streams(stems, sample_rate: int, seconds) -> dict[str, np.ndarray]:
    """``stems`` (a dict, or one waveform) as a dict of mono float arrays, channels averaged."""
    if not isinstance(stems, Mapping):
        stems = {"audio": stems}
    if not stems:
        raise AudioError("expected a non-empty dict of name -> waveform")
    return {str(name): _head(_as_channels_time(x, str(name)), sample_rate, seconds).mean(axis=0)
            for name, x in stems.items()}


def plot_waveforms(stems, sample_rate: int = SAMPLE_RATE, *, seconds: float | None = None):
    """One row per stream, on a shared time axis (seconds) and a shared amplitude axis; returns the Figure.

    ``stems`` maps names to waveforms ``(channels, time)`` or ``(time,)`` (numpy or torch); channels are averaged
    to mono. Long signals are drawn as their min/max envelope, which looks the same and draws fast.
    """
    import matplotlib.pyplot as plt

    sample_rate = _check_rate(sample_rate)
    streams = _mono_streams(stems, sample_rate, seconds)
    fig, axes = plt.subplots(len(streams), 1, sharex=True, sharey=True, squeeze=False,
                             figsize=(10, 1.6 * len(streams) + 0.6))
    for ax, (name, y) in zip(axes[:, 0], streams.items()):
        bins = 1500  # about one per pixel of a notebook-wide figure
        if len(y) > 2 * bins:  # min/max envelope over equal bins of samples
            edges = np.linspace(0, len(y), bins + 1).astype(int)
            low = np.minimum.reduceat(y, edges[:-1])
            high = np.maximum.reduceat(y, edges[:-1])
            ax.fill_between(edges[:-1] / sample_rate, low, high, linewidth=0.3)
        else:
            ax.plot(np.arange(len(y)) / sample_rate, y, linewidth=0.5)
        ax.set_ylabel(name)
        ax.margins(x=0)
    axes[-1, 0].set_xlabel("time (s)")
    fig.tight_layout()
    return fig


def plot_spectrograms(stems, sample_rate: int = SAMPLE_RATE, *, n_fft: int = 4096, hop_length: int = 1024,
                      fmax: float | None = None, seconds: float | None = None):
    """One log-frequency, log-magnitude (dB) spectrogram per stream, with one shared colour bar; returns the Figure.

    ``stems`` maps names to waveforms ``(channels, time)`` or ``(time,)`` (numpy or torch); channels are averaged
    to mono. The STFT is Hann, ``n_fft`` 4096 and hop 1024 by default (Open-Unmix's). All rows share one dB scale,
    0 dB at the loudest bin of any stream, so colours compare across rows. ``fmax`` limits the frequency axis.
    The figure has one axis per stream plus the colour bar.
    """
    import librosa
    import librosa.display
    import matplotlib.pyplot as plt

    sample_rate = _check_rate(sample_rate)
    streams = _mono_streams(stems, sample_rate, seconds)
    magnitudes = {name: np.abs(librosa.stft(y.astype(np.float32), n_fft=n_fft, hop_length=hop_length))
                  for name, y in streams.items()}
    ref = max(float(m.max()) for m in magnitudes.values()) or 1.0
    fig, axes = plt.subplots(len(streams), 1, sharex=True, squeeze=False,
                             figsize=(10, 2.2 * len(streams) + 0.6), layout="constrained")
    image = None
    for ax, (name, mag) in zip(axes[:, 0], magnitudes.items()):
        db = librosa.amplitude_to_db(mag, ref=ref, top_db=None)
        image = librosa.display.specshow(db, sr=sample_rate, hop_length=hop_length, n_fft=n_fft, x_axis="time",
                                         y_axis="log", ax=ax, vmin=-100, vmax=0, cmap="magma")
        ax.set_title(name)
        if fmax is not None:
            ax.set_ylim(top=fmax)
        if ax is not axes[-1, 0]:
            ax.set_xlabel("")
    fig.colorbar(image, ax=axes[:, 0].tolist(), format="%+2.0f dB")
    return fig
