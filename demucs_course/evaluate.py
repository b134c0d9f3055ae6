"""Chapter 9: Evaluation -- scoring a separation on a whole test set, as the paper and SiSEC 2018 do.

The procedure (Stöter et al., 2018; the Demucs paper's tables):

1. an *estimator* separates every track of a musdb subset (usually ``"test"``) into the four sources;
2. BSS-eval v4 scores the four estimates of a track *jointly* on windows of 1 s with a hop of 1 s: one SDR, SIR,
   SAR and ISR per source and window (:mod:`demucs_course.metrics` explains them). Two backends give the same
   numbers: ``"museval"`` (``museval.evaluate``, the reference, slow) and ``"fast"``
   (:func:`~demucs_course.metrics.bss_eval_v4`, the default);
3. each track's windows are stored in museval's JSON format (``museval.TrackStore``, as ``museval.eval_mus_track``
   writes them: ``<output_dir>/<subset>/<track name>.json``, values rounded to 1e-5 dB, +inf stored as NaN), so an
   evaluation that stops -- a Colab runtime disconnects after two hours -- resumes where it stopped: a track whose
   JSON file is there is not separated or scored again;
4. the scores are aggregated as in the paper: for each track and source the median over its windows, ignoring NaN
   windows (``nanmedian``; a window where some reference or estimate is silent is NaN), then the median over the
   tracks (a track where a source is NaN in every window is left out, as museval's ``EvalStore`` does); "All" is
   the mean of the four sources' medians.

An estimator is one of:

- a model (a ``torch.nn.Module``, e.g. :func:`~demucs_course.loading.load_pretrained`), run through
  :func:`~demucs_course.separate.separate_track`, with or without the shift trick (``shifts``);
- the name of a reference that peeks at the true sources (:mod:`demucs_course.oracles`): ``"IRM2"`` (the ideal
  ratio mask, the paper's oracle), ``"IBM"`` (the ideal binary mask), ``"mixture"`` (the mixture as every
  estimate) or ``"best_scaled_mixture"`` (the mixture times the best gain per source);
- a folder of estimates in musdb's layout, ``<folder>/<subset>/<track name>/<source>.wav`` (44.1 kHz stereo, the
  track's length), such as ``evaluate(..., save_estimates=folder)`` writes, or any other separator's output;
- any function ``estimate(name, mixture, sources) -> (4, 2, T)`` (``mixture`` ``(2, T)``, ``sources``
  ``(4, 2, T)``, float32 numpy arrays; a real separator must not look at ``sources``).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import typing
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from . import SAMPLE_RATE, SOURCES, InputError
from .audio import AudioError, check_stereo_wav
from .data import cache_track, get_musdb_tracks, read_track
from .metrics import WINDOW, bss_eval_v4, median_over_tracks, sdr_v4

#: The metrics, in the order of the rows of the tables (the seed re-implementation's report).
METRICS = ("SDR", "SAR", "SIR", "ISR")
#: The columns of the tables: the mean over sources, then each source (the report's order).
COLUMNS = ("All", "vocals", "drums", "bass", "other")
#: The two ways to compute BSS-eval v4; they agree to rounding (SDR to ~1e-12 dB).
BACKENDS = ("fast", "museval")
#: The named reference estimators (they read the true sources).
REFERENCES = ("IRM2", "IBM", "mixture", "best_scaled_mixture")
#: Written into the output folder: what was evaluated, so that a resumed run cannot mix two estimators.
MANIFEST = "evaluation.json"


class EvaluationError(InputError):
    """An evaluation that cannot run as asked, with a message that says what to do."""


class Estimator(typing.NamedTuple):
    """A separator to evaluate: ``estimate(name, mixture, sources)`` returns the four sources ``(4, 2, T)``;
    ``label`` says what it is (it is recorded beside the scores and shown in tables)."""

    label: str
    estimate: Callable


# --------------------------------------------------------------------------------------------------------------
# Scoring one track
# --------------------------------------------------------------------------------------------------------------


def score_track(references, estimates, *, backend: str = "fast") -> dict[str, np.ndarray]:
    """BSS-eval v4 of one track, the four sources jointly, on 1-s windows with a 1-s hop.

    ``references`` and ``estimates`` are arrays (numpy or torch) shaped ``(sources, channels, time)``, the course's
    layout (museval's is ``(sources, time, channels)``; the transposition happens here). Returns
    ``{"SDR": ..., "SAR": ..., "SIR": ..., "ISR": ...}``, each a float64 array ``(sources, windows)`` in dB (NaN for
    windows with a silent reference or estimate). ``backend`` is ``"fast"`` (:func:`~demucs_course.metrics.bss_eval_v4`)
    or ``"museval"`` (``museval.evaluate``); both give the same numbers.
    """
    if backend not in BACKENDS:
        raise EvaluationError(f"backend must be one of {', '.join(map(repr, BACKENDS))}, got {backend!r}")
    refs = _as_float64(references, "references")
    ests = _as_float64(estimates, "estimates")
    if refs.ndim != 3:
        raise EvaluationError(f"references must be shaped (sources, channels, time), got {refs.shape}")
    if ests.shape != refs.shape:
        raise EvaluationError(
            f"estimates shaped {ests.shape} do not match the references {refs.shape} (sources, channels, time): "
            "give one estimate per source, with the reference's channels and length"
        )
    refs, ests = refs.transpose(0, 2, 1), ests.transpose(0, 2, 1)  # museval's (sources, samples, channels)
    if backend == "museval":
        import museval

        sdr, isr, sir, sar = museval.evaluate(refs, ests, win=WINDOW, hop=WINDOW)
    else:
        sdr, isr, sir, sar = bss_eval_v4(refs, ests, win=WINDOW, hop=WINDOW)
    return {"SDR": np.asarray(sdr), "SAR": np.asarray(sar), "SIR": np.asarray(sir), "ISR": np.asarray(isr)}


def _as_float64(x, what: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def track_store(track_name: str, scores: dict[str, np.ndarray], names=SOURCES):
    """The framewise scores of one track as a ``museval.TrackStore`` (its ``.json`` is museval's file format).

    ``scores`` is what :func:`score_track` returns, its rows in the order of ``names``.
    """
    import museval

    store = museval.TrackStore(track_name, win=WINDOW / SAMPLE_RATE, hop=WINDOW / SAMPLE_RATE)
    for i, name in enumerate(names):
        store.add_target(name, {metric: scores[metric][i].tolist() for metric in METRICS})
    return store


def frames_from_json(data: dict) -> dict[str, dict[str, np.ndarray]]:
    """museval's JSON of one track (a parsed dict) as ``{source: {metric: windows}}`` (float arrays, NaN kept)."""
    out = {}
    for target in data["targets"]:
        frames = target["frames"]
        out[target["name"]] = {
            metric: np.array([math.nan if f["metrics"][metric] is None else float(f["metrics"][metric])
                              for f in frames], dtype=np.float64)
            for metric in METRICS
        }
    return out


# --------------------------------------------------------------------------------------------------------------
# Aggregating: median over windows, median over tracks, All = mean of the sources
# --------------------------------------------------------------------------------------------------------------


def aggregate(scores: dict[str, dict[str, dict[str, np.ndarray]]]) -> dict[str, dict[str, float]]:
    """The paper's table from framewise scores ``{track: {source: {metric: windows}}}``.

    For each source and metric: the median over a track's windows, NaN windows ignored (``nanmedian``), then the
    median over tracks (tracks where every window is NaN left out, as museval's ``EvalStore``): the one
    aggregation of the course, :func:`~demucs_course.metrics.median_over_tracks`. Returns
    ``{metric: {"All": ..., "vocals": ..., "drums": ..., "bass": ..., "other": ...}}`` with "All" the mean of the four
    sources; NaN where no track has a value.
    """
    if not scores:
        raise EvaluationError("no scores to aggregate: evaluate at least one track")
    table = {}
    for metric in METRICS:
        row = {}
        for source in SOURCES:
            missing = [track for track, by_source in scores.items() if source not in by_source]
            if missing:
                raise EvaluationError(f"no {source} scores for track(s) {', '.join(missing)}: every track needs "
                                      f"all four sources ({', '.join(SOURCES)})")
            windows = [np.asarray(by_source[source][metric], dtype=np.float64)[None] for by_source in scores.values()]
            row[source] = float(median_over_tracks(windows)[0])  # nanmedian over windows, then median over tracks
        row["All"] = float(np.mean([row[source] for source in SOURCES]))
        table[metric] = {column: row[column] for column in COLUMNS}
    return table


def median_sdr(tracks, estimate) -> dict[str, float]:
    """The paper's score of ``estimate`` on ``tracks``, in memory: for each source, the median over tracks of the
    median over 1-s windows of the SDR (BSS-eval v4, :func:`~demucs_course.metrics.sdr_v4`), in dB, and ``"mean"``,
    the mean over the four sources. ``tracks`` are tracks with ``sources()`` (e.g.
    :func:`~demucs_course.data.load_tracks`'s); ``estimate(track)`` returns the separated sources ``(4, 2, T)`` of a
    track (e.g. ``lambda t: separate_track(model, t.mixture())``).

    The aggregation is :func:`aggregate`'s (:func:`~demucs_course.metrics.median_over_tracks`): a track whose
    windows are all NaN for a source is left out of that source's median, as museval does.
    """
    per_track = []
    for track in tracks:
        references = track.sources().numpy().transpose(0, 2, 1)            # (sources, samples, channels)
        estimates = np.asarray(estimate(track), dtype=np.float64).transpose(0, 2, 1)
        per_track.append(sdr_v4(references, estimates))
    if not per_track:
        raise EvaluationError("median_sdr got no tracks: load them with load_tracks(source, 'test')")
    medians = median_over_tracks(per_track)
    scores = {name: float(value) for name, value in zip(SOURCES, medians)}
    scores["mean"] = float(np.mean(medians))
    return scores


def format_table(table: dict[str, dict[str, float]], title: str | None = None, digits: int = 2) -> str:
    """A table from :func:`aggregate` as text: rows SDR, SAR, SIR, ISR; columns All, vocals, drums, bass, other."""
    width = max(8, digits + 5)
    lines = [title] if title else []
    lines.append(" " * 5 + "".join(f"{column:>{width}}" for column in COLUMNS))
    for metric in METRICS:
        lines.append(f"{metric:<5}" + "".join(f"{table[metric][column]:>{width}.{digits}f}" for column in COLUMNS))
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------------------
# Estimators
# --------------------------------------------------------------------------------------------------------------


def reference_estimator(name: str) -> Estimator:
    """One of the named references (:data:`REFERENCES`), which separate by looking at the true sources:
    ``"IRM2"`` (:func:`~demucs_course.oracles.irm`, alpha 2), ``"IBM"`` (:func:`~demucs_course.oracles.ibm`),
    ``"mixture"`` (the mixture as every source's estimate), ``"best_scaled_mixture"``
    (:func:`~demucs_course.oracles.best_scaled_mixture`)."""
    from . import oracles

    functions = {
        "IRM2": lambda mixture, sources: oracles.irm(sources, mixture, alpha=2),
        "IBM": lambda mixture, sources: oracles.ibm(sources, mixture),
        "mixture": lambda mixture, sources: np.broadcast_to(mixture, sources.shape),
        "best_scaled_mixture": lambda mixture, sources: oracles.best_scaled_mixture(sources, mixture),
    }
    if name not in functions:
        raise EvaluationError(f"unknown reference estimator {name!r}: choose one of {', '.join(REFERENCES)}")
    function = functions[name]
    return Estimator(name, lambda track_name, mixture, sources: function(mixture, sources))


def model_estimator(model: torch.nn.Module, *, shifts: int = 0, device=None, seed: int = 0) -> Estimator:
    """A trained model, run on each whole track by :func:`~demucs_course.separate.separate_track`.

    ``shifts`` is the shift trick's S (0: off; the paper uses 10). The random shifts of each track are drawn from a
    generator seeded with ``seed``, so a resumed evaluation gives the same scores as an uninterrupted one. The
    label names the weights by a hash, so a folder of scores cannot be resumed with another model.
    """
    from .separate import separate_track

    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    label = f"{type(model).__name__} {digest.hexdigest()[:10]}, shifts={shifts}"

    def estimate(track_name, mixture, sources):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return separate_track(model, mixture, shifts=shifts, device=device)

    return Estimator(label, estimate)


def folder_estimator(folder, subset: str = "test") -> Estimator:
    """Estimates read from files in musdb's layout: ``<folder>/<subset>/<track name>/<source>.wav``.

    Every file must be 44.1 kHz stereo and exactly as long as the track (no silent padding or cutting, unlike
    ``museval.evaluate``); anything else is an :class:`EvaluationError` (a ``FileNotFoundError`` for missing files).
    """
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"No folder of estimates at {folder}: expected {folder}/{subset}/<track name>/"
                                f"<source>.wav (sources {', '.join(SOURCES)}), or a reference estimator's name: "
                                f"{', '.join(REFERENCES)}")

    def estimate(track_name, mixture, sources):
        return read_estimates(folder / subset / track_name, length=mixture.shape[-1])

    return Estimator(f"estimates in {folder}", estimate)


def read_estimates(track_folder, length: int | None = None) -> np.ndarray:
    """The four ``<source>.wav`` files of one track's folder as a float32 array ``(4, 2, T)``, sources in
    :data:`~demucs_course.SOURCES` order; with ``length``, each file must have exactly that many samples."""
    import soundfile as sf

    track_folder = Path(track_folder)
    paths = [track_folder / f"{source}.wav" for source in SOURCES]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"Missing estimate file(s) {', '.join(missing)} in {track_folder}: each track's "
                                f"folder needs {', '.join(p.name for p in paths)}")
    out = []
    for path in paths:
        try:
            info = check_stereo_wav(path)
        except AudioError as error:
            raise EvaluationError(f"{error}: estimates must be whole {SAMPLE_RATE} Hz stereo WAV files, as the "
                                  "MUSDB18 references are. Write them again") from None
        if length is not None and info.frames != length:
            raise EvaluationError(f"{path} has {info.frames} samples but the track has {length}: estimates must be "
                                  "exactly as long as the track's mixture (pad or cut them where you made them)")
        out.append(sf.read(path, dtype="float32", always_2d=True)[0].T)
    return np.stack(out)


def write_estimates(track_folder, estimates) -> list[Path]:
    """Write four sources ``(4, 2, T)`` as ``<track_folder>/<source>.wav``, 32-bit float WAV (lossless, no
    clipping), the layout :func:`folder_estimator` reads."""
    import soundfile as sf

    track_folder = Path(track_folder)
    track_folder.mkdir(parents=True, exist_ok=True)
    estimates = _as_float64(estimates, "estimates").astype(np.float32)
    paths = []
    for source, wav in zip(SOURCES, estimates):
        path = track_folder / f"{source}.wav"
        sf.write(path, np.ascontiguousarray(wav.T), SAMPLE_RATE, subtype="FLOAT")
        paths.append(path)
    return paths


def as_estimator(what, *, shifts: int = 0, device=None, subset: str = "test") -> Estimator:
    """An :class:`Estimator` from a model, a reference's name, a folder of estimates, a function or an Estimator."""
    if isinstance(what, Estimator):
        return what
    if isinstance(what, torch.nn.Module):
        return model_estimator(what, shifts=shifts, device=device)
    if isinstance(what, str) and what in REFERENCES:
        return reference_estimator(what)
    if isinstance(what, (str, os.PathLike)):
        return folder_estimator(what, subset)
    if callable(what):
        return Estimator(getattr(what, "__qualname__", repr(what)), what)
    raise EvaluationError(f"cannot evaluate {what!r}: give a model, one of {', '.join(REFERENCES)}, a folder of "
                          "estimates, or a function estimate(name, mixture, sources) -> (4, 2, T)")


# --------------------------------------------------------------------------------------------------------------
# Evaluating a subset
# --------------------------------------------------------------------------------------------------------------


def evaluate(what, source="toy", subset: str = "test", *, output_dir=None, backend: str = "fast",
             shifts: int = 0, device=None, tracks=None, save_estimates=None, cache: bool = False,
             progress: bool = True) -> dict[str, dict[str, dict[str, np.ndarray]]]:
    """Separate and score every track of a musdb subset; returns ``{track: {source: {metric: windows}}}``.

    Args:
        what: the estimator: a model, a reference's name (:data:`REFERENCES`), a folder of estimates, or a function
            ``estimate(name, mixture, sources)`` (see the module docstring and :func:`as_estimator`).
        source, subset: the tracks, as :func:`~demucs_course.data.get_musdb_tracks` takes them (``"toy"``,
            ``"preview"`` or a MUSDB18 / MUSDB18-HQ root; ``"test"`` or ``"train"``). ``source`` may also be the
            list that function returns, to list a subset once for several evaluations; ``subset`` then only names
            the folder of the scores (and of the estimates).
        output_dir: where each track's scores go, as museval writes them (``<output_dir>/<subset>/<track>.json``).
            Tracks already there are skipped (resume). The folder records the estimator's label
            (``evaluation.json``) and refuses another one. None: nothing is written, nothing resumed.
        backend: ``"fast"`` (default) or ``"museval"``; the numbers are the same.
        shifts, device: for a model, the shift trick's S and where the model runs.
        tracks: names of tracks to keep (default: all of the subset).
        save_estimates: a folder to write each separated track to, in musdb's estimates layout, to listen to or
            to evaluate again (skipped tracks are not separated, so not written).
        cache: read the tracks through the course's lossless 16-bit cache (:func:`~demucs_course.data.cache_track`):
            the first evaluation decodes each track once, later ones read it in milliseconds (musdb starts an
            ``ffmpeg`` process per stream). It costs disk: about 11 GB for MUSDB18's test set.
        progress: a progress bar over tracks.

    The scores returned are those stored in museval's JSON (rounded to 1e-5 dB, +inf as NaN), so a resumed and an
    uninterrupted evaluation return the same numbers. Aggregate them with :func:`aggregate`.
    """
    if backend not in BACKENDS:
        raise EvaluationError(f"backend must be one of {', '.join(map(repr, BACKENDS))}, got {backend!r}")
    estimator = as_estimator(what, shifts=shifts, device=device, subset=subset)
    if isinstance(source, (list, tuple)):  # musdb tracks already listed (listing runs ffprobe on every track)
        musdb_tracks = list(source)
        if not musdb_tracks:
            raise EvaluationError("the list of tracks is empty: list them with get_musdb_tracks(source, subset)")
    else:
        musdb_tracks = get_musdb_tracks(source, subset)
    if tracks is not None:
        wanted = [tracks] if isinstance(tracks, str) else list(tracks)
        names = {t.name for t in musdb_tracks}
        unknown = [name for name in wanted if name not in names]
        if unknown:
            raise EvaluationError(f"no track(s) {', '.join(map(repr, unknown))} among the tracks to evaluate; "
                                  f"its tracks are: {', '.join(sorted(names))}")
        musdb_tracks = [t for t in musdb_tracks if t.name in set(wanted)]

    folder = None
    if output_dir is not None:
        folder = Path(output_dir).expanduser()
        _claim(folder, estimator.label)
    from tqdm.auto import tqdm

    scores = {}
    for track in tqdm(musdb_tracks, desc=f"evaluating {estimator.label}", unit="track", disable=not progress):
        path = None if folder is None else folder / subset / f"{track.name}.json"
        stored = _read_scores(path)
        if stored is None:
            if cache:
                cached = cache_track(track)
                mixture, references = cached.mixture().numpy(), cached.sources().numpy()
            else:
                mixture, references = read_track(track)
            estimates = _check_estimates(estimator.estimate(track.name, mixture, references), references,
                                         track.name, estimator.label)
            if save_estimates is not None:
                write_estimates(Path(save_estimates).expanduser() / subset / track.name, estimates)
            store = track_store(track.name, score_track(references, estimates, backend=backend))
            data = json.loads(store.json)
            if path is not None:
                store.validate()
                _write_atomic(path, store.json)
            stored = frames_from_json(data)
        scores[track.name] = stored
    return scores


def _check_estimates(estimates, references: np.ndarray, track_name: str, label: str) -> np.ndarray:
    estimates = _as_float64(estimates, "estimates")
    if estimates.shape != references.shape:
        raise EvaluationError(f"{label} gave estimates shaped {estimates.shape} for track {track_name!r}, whose "
                              f"sources are {references.shape} (sources, channels, time): an estimator must return "
                              "the four sources at the track's length")
    if not np.isfinite(estimates).all():
        raise EvaluationError(f"{label} gave NaN or infinite samples for track {track_name!r}")
    return estimates


def _claim(folder: Path, label: str) -> None:
    """Record the estimator in ``folder/evaluation.json``, or check that it is the one recorded there."""
    manifest = folder / MANIFEST
    if manifest.is_file():
        recorded = json.loads(manifest.read_text()).get("estimator")
        if recorded != label:
            raise EvaluationError(f"{folder} holds the scores of {recorded!r}, not of {label!r}: give another "
                                  "output folder (or delete that one to start again)")
        return
    folder.mkdir(parents=True, exist_ok=True)
    _write_atomic(manifest, json.dumps({"estimator": label, "win": WINDOW / SAMPLE_RATE,
                                        "hop": WINDOW / SAMPLE_RATE}, indent=2))


def _read_scores(path: Path | None):
    """The scores of a track already evaluated, or None (no file, or a damaged one: the track is scored again)."""
    if path is None or not path.is_file():
        return None
    try:
        scores = frames_from_json(json.loads(path.read_text()))
    except (ValueError, KeyError, TypeError):
        warnings.warn(f"{path} is not a complete museval score file; scoring its track again", stacklevel=3)
        return None
    return scores if set(SOURCES) <= set(scores) else None


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def load_scores(output_dir, subset: str = "test") -> dict[str, dict[str, dict[str, np.ndarray]]]:
    """Every track's scores stored in ``<output_dir>/<subset>/*.json`` (museval's files, ours or museval's own)."""
    folder = Path(output_dir).expanduser() / subset
    paths = sorted(folder.glob("*.json")) if folder.is_dir() else []
    if not paths:
        raise FileNotFoundError(f"No score files in {folder}: evaluate first (evaluate(..., output_dir=...))")
    return {path.stem: frames_from_json(json.loads(path.read_text())) for path in paths}
