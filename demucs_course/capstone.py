"""Capstone, "Separate your own song": from an audio file to stems you can play, download, look at and re-mix.

The capstone notebook (``chapters/capstone/separate_your_song.ipynb``) puts the course's pieces in a user's hands:

- :func:`load_song` reads a song from a path or from the bytes of an upload (:func:`read_upload` takes them out of
  an ipywidgets ``FileUpload``) and refuses, with one clear sentence, what cannot be separated: a damaged file, more
  than two channels, silence, a clip shorter than :data:`MIN_SECONDS`;
- :func:`separate_song` runs the shipped model on it (:func:`~demucs_course.separate.separate_track`, Chapter 8);
- :func:`stem_table` is a player and a download link per stem, embedded in the page, so that it plays and downloads
  in Jupyter, in Colab and in the published book; :func:`save_stems` writes 16-bit WAV files and
  :func:`download_links` offers them (Colab's ``files.download`` buttons there, ``FileLink`` elsewhere);
- :func:`remix` sums the stems with a gain per stem: the re-mix;
- :class:`SeparationPanel` is all of it behind widgets: an upload, a path, the number of shifts, a button, and one
  volume slider per stem. Without a live kernel (the book's HTML) widgets do nothing; the notebook therefore also
  shows the same results as static output.

The book separates :data:`EXAMPLE_SONG`, an excerpt of a song of the sampled set's *test* split (Chapter 1), which no
shipped model was trained on. :func:`write_example_song` writes it again from the set (``python -m
demucs_course.capstone``), and :data:`EXAMPLE_RECORD` records where it comes from.
"""

from __future__ import annotations

import hashlib
import html
import json
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import SAMPLE_RATE, SOURCES, InputError
from .audio import AudioError, _audio_data_uri, _as_channels_time, load_audio, save_audio
from .data import mono_stats

#: The bundled example song (shipped in the wheel), and the record of where it comes from, beside it.
EXAMPLE_DIR = Path(__file__).resolve().parent / "examples"
EXAMPLE_SONG = EXAMPLE_DIR / "sampled_test_excerpt.flac"
EXAMPLE_RECORD = EXAMPLE_DIR / "sampled_test_excerpt.json"
#: Which song of the sampled set's test split, and which part of it: a rock song whose four stems all play
#: throughout the excerpt (drums "Power" kit, acoustic bass, electric piano, "Voice Oohs"). Under 1.5 MB as FLAC.
EXAMPLE_TRACK = "The Midnight Bridges - Lonely Postcard"
EXAMPLE_OFFSET = 8.0
EXAMPLE_SECONDS = 12.0

#: The shortest song :func:`load_song` accepts, in seconds: below it there is hardly a beat or a note to separate.
MIN_SECONDS = 1.0


class SongError(AudioError):
    """A song that cannot be separated (no upload, too short, silent, ...), with a message that says what to do."""


@dataclass
class Song:
    """A song ready to separate: its name (the file's, without the ending) and its mixture, ``(2, T)`` at 44.1 kHz."""

    name: str
    mixture: torch.Tensor

    @property
    def seconds(self) -> float:
        return self.mixture.shape[-1] / SAMPLE_RATE


# --------------------------------------------------------------------------------------------------------------
# The example song
# --------------------------------------------------------------------------------------------------------------

def _pcm_sha256(wav) -> str:
    """SHA-256 of a waveform's 16-bit samples, (time, channels) interleaved, as a FLAC or WAV file stores them."""
    a = np.round(np.asarray(wav, dtype=np.float64).T * 32768).clip(-32768, 32767).astype("<i2")
    return hashlib.sha256(a.tobytes()).hexdigest()


def write_example_song(path=EXAMPLE_SONG, *, root=None) -> Path:
    """Write the example song: ``EXAMPLE_SECONDS`` of ``EXAMPLE_TRACK`` from ``EXAMPLE_OFFSET``, as 16-bit FLAC.

    ``root``: a sampled set's folder; None reads the default set (``source="sampled"``, rendered on first use,
    about 5 CPU-minutes). The samples are copied exactly (the set is 16-bit too). A record is written beside the
    FLAC, with the same name ending in ``.json``: the song, the split, the offset and length, the set's version,
    arguments and content hash, and the SHA-256 of the excerpt's samples. Returns the FLAC's path.
    """
    import soundfile as sf

    from .data import get_musdb_tracks
    from .sampled import SAMPLED_VERSION, default_sampled_root, read_manifest

    root = default_sampled_root() if root is None else Path(root).expanduser()
    tracks = get_musdb_tracks("sampled" if root == default_sampled_root() else root, "test")
    track = next((t for t in tracks if t.name == EXAMPLE_TRACK), None)
    if track is None:
        raise SongError(f"the sampled set in {root} has no test song {EXAMPLE_TRACK!r}: the example comes from the "
                        f"default set (version {SAMPLED_VERSION}); pass root=None to use it")
    mixture, rate = sf.read(track.path, dtype="float32", always_2d=True)   # mixture.wav
    start = int(round(EXAMPLE_OFFSET * rate))
    excerpt = mixture[start: start + int(round(EXAMPLE_SECONDS * rate))].T
    path = save_audio(path, excerpt, rate, clip=False)
    manifest = read_manifest(root) or {}
    record = {
        "file": path.name,
        "what": "an excerpt of a song of the sampled set's test split, which no shipped model was trained on",
        "set": "sampled", "subset": "test", "track": EXAMPLE_TRACK,
        "offset_seconds": EXAMPLE_OFFSET, "seconds": EXAMPLE_SECONDS, "sample_rate": rate,
        "sampled_version": manifest.get("sampled_version"), "sampled_arguments": manifest.get("arguments"),
        "sampled_content_sha256": manifest.get("content_sha256"), "fluidsynth": manifest.get("fluidsynth"),
        "pcm_sha256": _pcm_sha256(excerpt),
        "written_by": "python -m demucs_course.capstone (demucs_course.capstone.write_example_song)",
    }
    path.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    return path


def example_song() -> Path:
    """The path of the bundled example song (:data:`EXAMPLE_SONG`)."""
    if not EXAMPLE_SONG.is_file():
        raise SongError(f"the example song {EXAMPLE_SONG} is missing from this installation of demucs_course; "
                        "write it again with `python -m demucs_course.capstone`, or give the path of your own song")
    return EXAMPLE_SONG


# --------------------------------------------------------------------------------------------------------------
# A song in
# --------------------------------------------------------------------------------------------------------------

def read_upload(value) -> tuple[str, bytes]:
    """The file name and bytes of the one file in an ipywidgets ``FileUpload``'s ``value``.

    ipywidgets 8 gives a tuple of dicts (``name``, ``content`` as a memoryview, ...); ipywidgets 7 (Colab's) a dict
    from name to ``{"metadata": ..., "content": bytes}``. Nothing uploaded is a :class:`SongError`.
    """
    if isinstance(value, Mapping):                                   # ipywidgets 7
        files = [(name, item["content"]) for name, item in value.items()]
    else:                                                            # ipywidgets 8
        files = [(item["name"], item["content"]) for item in value or ()]
    if not files:
        raise SongError("no file uploaded yet: click 'Upload' and choose an audio file (in Colab, a file over "
                        "about 1 MB may not arrive through the widget: drop it into the Files pane on the left and "
                        "give its path, e.g. /content/song.mp3)")
    name, content = files[-1]
    return str(name), bytes(content)


def load_song(source, *, name: str | None = None) -> Song:
    """A song from ``source``: the path of an audio file, or its bytes (an upload; pass the file's ``name``, whose
    ending says the format).

    Reads anything :func:`~demucs_course.audio.load_audio` reads (mono is duplicated to stereo, any rate is
    resampled to 44.1 kHz). Raises an :class:`~demucs_course.audio.AudioError` that says what is wrong and what to
    do: a missing or damaged file, more than two channels, NaN samples, silence, fewer than :data:`MIN_SECONDS`.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        if not name:
            raise SongError("load_song(bytes) needs the file's name, e.g. load_song(data, name='song.mp3'): its "
                            "ending says how to decode it")
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / f"upload{Path(name).suffix.lower()}"
            path.write_bytes(bytes(source))
            try:
                mixture = load_audio(path)
            except AudioError as error:
                raise SongError(str(error).replace(str(path), repr(name))) from None
    else:
        path = Path(source).expanduser()
        name = name or path.name
        mixture = load_audio(path)
    check_song(mixture, name)
    return Song(Path(name).stem, mixture)


def check_song(mixture: torch.Tensor, name: str = "the song") -> None:
    """A :class:`SongError` for a mixture ``(2, T)`` that is shorter than :data:`MIN_SECONDS` or silent."""
    seconds = mixture.shape[-1] / SAMPLE_RATE
    if seconds < MIN_SECONDS:
        raise SongError(f"{name} is {seconds:.3f} s long: too short to separate. Give at least {MIN_SECONDS:g} s "
                        "of music")
    mono_stats(mixture, name=name)        # the separation's own check: silence, NaN (an AudioError saying which)


# --------------------------------------------------------------------------------------------------------------
# Stems out
# --------------------------------------------------------------------------------------------------------------

def separate_song(model, song: Song, *, shifts: int = 1, progress: bool = False) -> dict[str, torch.Tensor]:
    """The stems of ``song``, name -> ``(2, T)``, separated by ``model`` with the shift trick's ``shifts``."""
    from .separate import separate_track

    if model.sources != len(SOURCES):
        raise InputError(f"the model outputs {model.sources} sources; the capstone expects the {len(SOURCES)} of "
                         f"MUSDB18 ({', '.join(SOURCES)})")
    if not isinstance(shifts, int) or shifts < 0:
        raise InputError(f"shifts must be a whole number, 0 or more (the paper uses 10), got {shifts!r}")
    return dict(zip(SOURCES, separate_track(model, song.mixture, shifts=shifts, progress=progress)))


def remix(stems: Mapping, gains: Mapping | None = None) -> torch.Tensor:
    """The sum of the stems, each times its gain: ``sum_j g_j s_j``; a stem not in ``gains`` keeps gain 1.

    A gain of 0 mutes a stem (``{"vocals": 0}``: karaoke), 2 doubles it (about +6 dB). Gains must be finite and
    0 or more; a name that is not a stem is an :class:`~demucs_course.InputError`.
    """
    gains = dict(gains or {})
    unknown = sorted(set(gains) - set(stems))
    if unknown:
        raise InputError(f"no stem named {', '.join(map(repr, unknown))}; the stems are {', '.join(stems)}")
    for name, gain in gains.items():
        if not (isinstance(gain, (int, float)) and np.isfinite(gain) and gain >= 0):
            raise InputError(f"the gain of {name} must be a finite number, 0 or more, got {gain!r}")
    return sum(float(gains.get(name, 1.0)) * torch.as_tensor(stem) for name, stem in stems.items())


def _one_scale(streams: Mapping) -> tuple[dict[str, np.ndarray], float]:
    """The streams as float arrays (channels, time), and the one factor that keeps the loudest within [-1, 1]."""
    arrays = {str(name): _as_channels_time(x, str(name)) for name, x in streams.items()}
    peak = max(float(np.abs(a).max()) for a in arrays.values())
    return arrays, (1 / peak if peak > 1 else 1.0)


def _file_name(text: str) -> str:
    """``text`` as a safe file name: letters, digits, spaces, ``-_.()`` kept, anything else ``_``."""
    return "".join(c if c.isalnum() or c in " -_.()" else "_" for c in text).strip() or "song"


def stem_table(streams: Mapping, *, song: str = "song", download: bool = True, sample_rate: int = SAMPLE_RATE):
    """A table with a player and a download link per stream (``IPython.display.HTML``), the audio embedded.

    ``streams`` maps names to waveforms ``(channels, time)``. All share one scale, so the stems keep their loudness
    relative to each other; if any would clip, all are divided by the same peak (the caption says so). Each row's
    audio is one MP3 ``data:`` URI (16-bit WAV where libsndfile cannot write MP3), used by both the player and the
    link, which downloads it as ``"<song> - <name>.mp3"``: no kernel is needed, so it works in the book too.
    ``download=False`` leaves the links out (half the size: each clip is then embedded once).
    """
    from IPython.display import HTML

    if not isinstance(streams, Mapping) or not streams:
        raise InputError("stem_table expects a non-empty dict of name -> waveform")
    arrays, scale = _one_scale(streams)
    rows = []
    for name, a in arrays.items():
        uri = _audio_data_uri(a * scale, sample_rate)
        ending = "mp3" if uri.startswith("data:audio/mpeg") else "wav"
        file_name = html.escape(_file_name(f"{song} - {name}.{ending}"))
        link = f'<td><a download="{file_name}" href="{uri}">download</a></td>' if download else ""
        rows.append(f'<tr><td style="text-align:left;padding-right:1em"><b>{html.escape(name)}</b></td>'
                    f'<td><audio controls preload="none" src="{uri}"></audio></td>{link}</tr>')
    note = f"<caption>all players scaled by {scale:.3f} to avoid clipping</caption>" if scale != 1.0 else ""
    return HTML(f'<table class="stem-players">{note}{"".join(rows)}</table>')


def save_stems(streams: Mapping, folder) -> dict[str, Path]:
    """Write each stream as ``folder/<name>.wav`` (16-bit), all with one scale as in :func:`stem_table`, so that
    none clips; returns name -> path."""
    arrays, scale = _one_scale(streams)
    folder = Path(folder).expanduser()
    return {name: save_audio(folder / f"{_file_name(name)}.wav", a * scale) for name, a in arrays.items()}


def in_colab() -> bool:
    """Whether this runs in Google Colab (its ``google.colab`` module is loaded)."""
    return "google.colab" in sys.modules


def download_links(paths: Mapping):
    """A way to download each file of ``paths`` (name -> path): in Colab a button per file that calls
    ``google.colab.files.download``; elsewhere an ``IPython.display.FileLink`` per file (Jupyter serves it)."""
    if in_colab():
        import ipywidgets as widgets
        from google.colab import files

        buttons = []
        for name, path in paths.items():
            button = widgets.Button(description=f"{name}.wav", icon="download")
            button.on_click(lambda _, path=path: files.download(str(path)))
            buttons.append(button)
        return widgets.HBox(buttons)
    from IPython.display import HTML, FileLink

    return HTML("<br>".join(FileLink(str(path), result_html_prefix=f"{html.escape(name)}: ")._repr_html_()
                            for name, path in paths.items()))


def error_box(error: Exception):
    """An error's message as a red box (``IPython.display.HTML``): what the notebook shows instead of a traceback."""
    from IPython.display import HTML

    return HTML('<div style="color:#a00;border-left:4px solid #a00;padding:0.3em 0.8em">'
                f"<b>{html.escape(type(error).__name__)}</b>: {html.escape(str(error))}</div>")


def describe_model(info: Mapping) -> str:
    """A few lines on a shipped model from its record (:func:`~demucs_course.loading.pretrained_info`): its file
    and size, the data and preset it was trained with, and its mean test SDR when the record has it."""
    config = info.get("config") or {}
    model = ", ".join(f"{k}={v}" for k, v in (config.get("model") or {}).items())
    parameters = info.get("parameters")
    lines = [f"model:      {info.get('file', 'the shipped model')}, Demucs({model})"
             + (f", {parameters:,} parameters" if isinstance(parameters, int) else ""),
             f"trained on: the {config.get('data', '?')} set, preset {info.get('preset', '?')}"]
    scores = info.get("test_sdr_db") or {}
    own = next((row for name, row in scores.items() if "model" in name), None)
    baseline = scores.get("best scaled mixture")
    if own and baseline and "mean" in own and "mean" in baseline:
        lines.append(f"test songs: mean SDR {own['mean']:.2f} dB, against {baseline['mean']:.2f} dB for the best "
                     "scaled mixture (no separation)")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------------------
# The widget panel
# --------------------------------------------------------------------------------------------------------------

class SeparationPanel:
    """Widgets to separate a song and re-mix it: display ``panel.widget`` in a notebook.

    The song is the uploaded file if there is one, else the file at the path in the text box (``default``, e.g.
    the example song). *Separate* loads it, separates it with ``shifts`` (a slider), and shows a player and a
    download link per stem, the WAV files written to ``folder/<song>/``, and the spectrograms. *Re-mix* plays the
    sum of the stems with the volume sliders' gains. Bad input shows its message in red, not a traceback.

    The methods :meth:`separate` and :meth:`mix` are what the buttons call; the results stay in ``song``,
    ``stems``, ``remixed`` and ``error`` (the last message shown, or None).
    """

    def __init__(self, model, *, default=None, shifts: int = 2, max_shifts: int = 10, folder="stems"):
        import ipywidgets as widgets

        self.model, self.folder = model, Path(folder)
        self.song: Song | None = None
        self.stems: dict[str, torch.Tensor] | None = None
        self.remixed: torch.Tensor | None = None
        self.error: str | None = None
        self.upload = widgets.FileUpload(accept="audio/*,.wav,.flac,.mp3,.ogg,.m4a,.aac,.opus", multiple=False,
                                         description="Upload")
        self.path = widgets.Text(value="" if default is None else str(default), description="or a path",
                                 layout=widgets.Layout(width="70%"))
        self.shifts = widgets.IntSlider(value=shifts, min=0, max=max_shifts, description="shifts")
        self.separate_button = widgets.Button(description="Separate", button_style="primary", icon="play")
        self.gains = {name: widgets.FloatSlider(value=1.0, min=0.0, max=2.0, step=0.05, description=name,
                                                readout_format=".2f") for name in SOURCES}
        self.mix_button = widgets.Button(description="Re-mix", icon="sliders", disabled=True)
        self.results, self.remix_output = widgets.Output(), widgets.Output()
        self.separate_button.on_click(lambda _: self.separate())
        self.mix_button.on_click(lambda _: self.mix())
        self.widget = widgets.VBox([
            widgets.HTML("<b>1. Your song</b>"), widgets.HBox([self.upload, self.path]),
            widgets.HTML("<b>2. Separate</b> (each shift is one more pass of the model)"),
            widgets.HBox([self.shifts, self.separate_button]), self.results,
            widgets.HTML("<b>3. Re-mix</b> (gain of each stem: 0 mutes, 1 keeps, 2 doubles)"),
            widgets.VBox(list(self.gains.values())), self.mix_button, self.remix_output])

    def _show(self, output, *objects) -> None:
        from IPython.display import display

        with output:
            display(*objects)

    def _fail(self, output, error: Exception) -> None:
        self.error = str(error)
        self._show(output, error_box(error))

    def load(self) -> Song:
        """The song the widgets name: the upload if there is one, else the path."""
        if self.upload.value:
            name, content = read_upload(self.upload.value)
            return load_song(content, name=name)
        if not self.path.value.strip():
            raise SongError("no song: upload a file, or type the path of one")
        return load_song(self.path.value.strip())

    def separate(self) -> dict[str, torch.Tensor] | None:
        """Load the song, separate it, and show the stems (players, downloads, spectrograms); None on bad input."""
        import matplotlib.pyplot as plt

        from .audio import plot_spectrograms

        self.results.clear_output()
        self.remix_output.clear_output()
        self.error, self.stems, self.remixed = None, None, None
        self.mix_button.disabled = True
        try:
            self.song = self.load()
            self._show(self.results, f"separating {self.song.name} ({self.song.seconds:.1f} s) with "
                                     f"shifts={self.shifts.value} ...")
            with self.results:
                self.stems = separate_song(self.model, self.song, shifts=self.shifts.value, progress=True)
        except InputError as error:
            self._fail(self.results, error)
            return None
        streams = {"mixture": self.song.mixture, **self.stems}
        paths = save_stems(self.stems, self.folder / _file_name(self.song.name))
        figure = plot_spectrograms(streams, fmax=16000)
        # the players, then the WAV files to download (not embedded twice: a whole song's clips are large)
        self._show(self.results, stem_table(streams, song=self.song.name, download=False), download_links(paths),
                   figure)
        plt.close(figure)
        self.mix_button.disabled = False
        return self.stems

    def mix(self) -> torch.Tensor | None:
        """Re-mix the stems with the sliders' gains, and show a player and a download link for it."""
        self.remix_output.clear_output()
        if self.stems is None:
            self._fail(self.remix_output, SongError("separate a song first"))
            return None
        gains = {name: slider.value for name, slider in self.gains.items()}
        self.remixed = remix(self.stems, gains)
        label = "re-mix " + ", ".join(f"{name} x{gain:g}" for name, gain in gains.items())
        self._show(self.remix_output, stem_table({label: self.remixed}, song=self.song.name))   # a link: one clip
        return self.remixed


def write_bad_examples(folder) -> dict[str, Path]:
    """Four files the separation must refuse, written into ``folder``: a damaged file, silence, a clip too short,
    and a 5-channel file. What the notebook and the tests feed to :func:`load_song`; returns label -> path."""
    import soundfile as sf

    folder = Path(folder).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    noise = lambda seconds, channels: 0.1 * rng.standard_normal((int(seconds * SAMPLE_RATE), channels))  # noqa: E731
    damaged = folder / "damaged.mp3"
    damaged.write_bytes(b"ID3\x03\x00\x00\x00" + rng.bytes(4000))            # an MP3 header, then noise bytes
    paths = {"a damaged file": damaged, "silence": folder / "silence.wav", "a clip too short": folder / "short.wav",
             "5 channels": folder / "surround.wav"}
    sf.write(paths["silence"], np.zeros((3 * SAMPLE_RATE, 2)), SAMPLE_RATE, subtype="PCM_16")
    sf.write(paths["a clip too short"], noise(0.2, 2), SAMPLE_RATE, subtype="PCM_16")
    sf.write(paths["5 channels"], noise(2, 5), SAMPLE_RATE, subtype="PCM_16")
    return paths


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(prog="python -m demucs_course.capstone",
                                     description="Write the capstone's example song again: "
                                                 f"{EXAMPLE_SECONDS:g} s of {EXAMPLE_TRACK!r} from {EXAMPLE_OFFSET:g} s, "
                                                 "a test song of the sampled set, as FLAC, with its record beside it.")
    parser.add_argument("--root", help="the sampled set's folder (default: the default set, rendered if missing)")
    parser.add_argument("--out", default=str(EXAMPLE_SONG), help=f"the FLAC to write (default {EXAMPLE_SONG})")
    options = parser.parse_args()
    written = write_example_song(options.out, root=options.root)
    print(f"wrote {written} ({written.stat().st_size / 1e6:.2f} MB) and {written.with_suffix('.json').name}")
