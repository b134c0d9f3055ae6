"""Chapter 9: evaluating a subset -- aggregation, museval's files, resuming, backends, folders of estimates."""

import json
import math
import warnings

import numpy as np
import pytest
import soundfile as sf
import torch

from demucs_course import SOURCES
from demucs_course.data import DatasetError, get_musdb_tracks, read_track
from demucs_course.evaluate import (
    COLUMNS,
    METRICS,
    EvaluationError,
    aggregate,
    as_estimator,
    evaluate,
    format_table,
    load_scores,
    median_sdr,
    model_estimator,
    read_estimates,
    score_track,
    write_estimates,
)
from demucs_course.metrics import median_over_tracks, sdr_v4
from demucs_course.model import Demucs
from demucs_course.oracles import best_scaled_mixture
from demucs_course.separate import separate_track


@pytest.fixture(scope="module")
def test_tracks(toy_root):
    """The toy set's 2 test tracks, listed once (musdb runs ffprobe on every track it lists)."""
    return get_musdb_tracks(toy_root, "test")


def _frames(values_by_source):
    """{source: windows} -> {source: {metric: windows}}, the same windows for every metric (metric k adds k)."""
    return {source: {metric: np.asarray(v, dtype=float) + k for k, metric in enumerate(METRICS)}
            for source, v in values_by_source.items()}


def test_aggregate_median_over_windows_then_tracks_nan_ignored_all_is_the_mean():
    nan = math.nan
    scores = {
        "a": _frames({"drums": [1, 2, 30, nan], "bass": [0, 0, 0, 0], "other": [5, nan, nan, nan], "vocals": [-1, 1]}),
        "b": _frames({"drums": [4, 4, 4], "bass": [1, 2, 3, 100], "other": [6, 7], "vocals": [2, 2]}),
        "c": _frames({"drums": [nan, 8], "bass": [3, 3], "other": [nan, nan], "vocals": [9, 10, 11]}),
    }
    table = aggregate(scores)
    # per track: drums 2, 4, 8 -> 4; bass 0, 2.5, 3 -> 2.5; other 5, 6.5, (all NaN: left out) -> 5.75;
    # vocals 0, 2, 10 -> 2. All = mean of the four.
    expected = {"drums": 4.0, "bass": 2.5, "other": 5.75, "vocals": 2.0}
    for k, metric in enumerate(METRICS):
        for source, value in expected.items():
            assert table[metric][source] == pytest.approx(value + k)
        assert table[metric]["All"] == pytest.approx(np.mean(list(expected.values())) + k)
        assert list(table[metric]) == list(COLUMNS)


def test_aggregate_a_median_not_a_mean_and_errors():
    scores = {f"t{i}": _frames({s: [v, v, 100 * v] for s in SOURCES}) for i, v in enumerate([1.0, 2.0, 10.0])}
    assert aggregate(scores)["SDR"]["drums"] == pytest.approx(2.0)  # medians 1, 2, 10 -> 2 (a mean would be 4.33)
    with pytest.raises(EvaluationError, match="no scores"):
        aggregate({})
    with pytest.raises(EvaluationError, match="bass"):
        aggregate({"x": _frames({"drums": [1], "other": [1], "vocals": [1]})})


def test_format_table_rows_and_columns():
    table = {metric: {column: i + 0.125 * j for j, column in enumerate(COLUMNS)} for i, metric in enumerate(METRICS)}
    lines = format_table(table, "title").splitlines()
    assert lines[0] == "title"
    assert lines[1].split() == ["All", "vocals", "drums", "bass", "other"]
    assert [line.split()[0] for line in lines[2:]] == ["SDR", "SAR", "SIR", "ISR"]
    assert lines[3].split()[1:] == ["1.00", "1.12", "1.25", "1.38", "1.50"]


def test_scores_match_museval_json_and_its_evalstore(toy_root, tmp_path):
    import museval

    scores = evaluate("best_scaled_mixture", toy_root, output_dir=tmp_path, progress=False)
    files = sorted((tmp_path / "test").glob("*.json"))
    assert [f.stem for f in files] == sorted(scores)
    store = museval.EvalStore(frames_agg="median", tracks_agg="median")
    for path in files:
        data = json.loads(path.read_text())
        assert {t["name"] for t in data["targets"]} == set(SOURCES)
        assert data["targets"][0]["frames"][1]["time"] == 1.0
        store.add_track(museval.aggregate.json2df(data, path.stem))
    reference = store.agg_frames_tracks_scores()
    table = aggregate(scores)
    for metric in METRICS:
        for source in SOURCES:
            assert table[metric][source] == pytest.approx(float(reference[(source, metric)]), abs=1e-9)
    assert load_scores(tmp_path).keys() == scores.keys()


def test_resume_skips_scored_tracks(test_tracks, tmp_path):
    calls = []

    def estimate(name, mixture, sources):
        calls.append(name)
        return best_scaled_mixture(sources, mixture)

    first = evaluate(estimate, test_tracks, output_dir=tmp_path, progress=False)
    assert sorted(calls) == sorted(first) and len(calls) == 2
    again = evaluate(estimate, test_tracks, output_dir=tmp_path, progress=False)
    assert len(calls) == 2  # nothing separated again
    (tmp_path / "test" / f"{calls[0]}.json").unlink()
    (tmp_path / "test" / f"{calls[1]}.json").write_text('{"targets": [')  # an interrupted write
    with pytest.warns(UserWarning, match="not a complete"):
        third = evaluate(estimate, test_tracks, output_dir=tmp_path, progress=False)
    assert len(calls) == 4
    for scores in (again, third):
        for track in first:
            for source in SOURCES:
                for metric in METRICS:
                    np.testing.assert_array_equal(scores[track][source][metric], first[track][source][metric])
    with pytest.raises(EvaluationError, match="holds the scores of"):
        evaluate("IRM2", test_tracks, output_dir=tmp_path, progress=False)


def test_fast_and_museval_backends_agree(test_tracks):
    name = test_tracks[0].name
    fast = evaluate("IBM", test_tracks, tracks=[name], progress=False)[name]
    reference = evaluate("IBM", test_tracks, tracks=[name], backend="museval", progress=False)[name]
    for source in SOURCES:
        for metric in METRICS:
            # both stored as museval stores them: rounded to 1e-5 dB
            np.testing.assert_allclose(fast[source][metric], reference[source][metric], atol=2e-5 if metric == "SDR"
                                       else 1e-4, err_msg=f"{source} {metric}")


def test_score_track_takes_the_course_layout(test_tracks):
    mixture, sources = read_track(test_tracks[0])
    estimates = best_scaled_mixture(sources, mixture)
    scores = score_track(torch.from_numpy(sources), estimates)
    assert set(scores) == set(METRICS) and scores["SDR"].shape == (4, 4)  # 4 sources, 4 windows of 1 s
    sdr = 10 * np.log10((sources[0, :, :44100].astype(float) ** 2).sum()
                        / ((estimates[0, :, :44100].astype(float) - sources[0, :, :44100]) ** 2).sum())
    assert scores["SDR"][0, 0] == pytest.approx(sdr, abs=1e-9)
    with pytest.raises(EvaluationError, match="do not match"):
        score_track(sources, estimates[:, :, :-1])
    with pytest.raises(EvaluationError, match="backend"):
        score_track(sources, estimates, backend="bsseval")


def test_folder_of_estimates_round_trip(test_tracks, tmp_path):
    track = test_tracks[1].name
    direct = evaluate("IRM2", test_tracks, tracks=[track], save_estimates=tmp_path / "est", progress=False)
    assert sorted(p.name for p in (tmp_path / "est" / "test" / track).iterdir()) == sorted(f"{s}.wav" for s in SOURCES)
    from_files = evaluate(tmp_path / "est", test_tracks, tracks=track, progress=False)
    assert list(from_files) == [track]
    cached = evaluate("IRM2", test_tracks, tracks=[track], cache=True, progress=False)  # the lossless 16-bit cache
    for source in SOURCES:
        for metric in METRICS:
            np.testing.assert_array_equal(from_files[track][source][metric], direct[track][source][metric])
            np.testing.assert_array_equal(cached[track][source][metric], direct[track][source][metric])
    mixture, sources = read_track(test_tracks[1])
    estimator = as_estimator(str(tmp_path / "est"))
    assert estimator.label.startswith("estimates in")
    np.testing.assert_array_equal(estimator.estimate(track, mixture, sources), read_estimates(tmp_path / "est" / "test" / track))


def test_model_estimator_is_separate_track_with_seeded_shifts(test_tracks):
    torch.manual_seed(0)
    model = Demucs(channels=4, depth=2, lstm_layers=1).eval()
    mixture, sources = read_track(test_tracks[0])
    estimator = model_estimator(model, shifts=2, seed=3)
    assert "shifts=2" in estimator.label and estimator.label != model_estimator(model, shifts=0).label
    first = estimator.estimate("x", mixture, sources)
    torch.manual_seed(3)
    expected = separate_track(model, mixture, shifts=2)
    torch.testing.assert_close(first, expected, rtol=0, atol=0)
    torch.testing.assert_close(estimator.estimate("x", mixture, sources), first, rtol=0, atol=0)


def test_clear_errors(test_tracks, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetError, match="No MUSDB18 tracks"):
        evaluate("IRM2", empty, progress=False)
    with pytest.raises(EvaluationError, match="empty"):
        evaluate("IRM2", [], progress=False)
    with pytest.raises(FileNotFoundError, match="IRM2"):  # neither a reference's name nor a folder
        evaluate("IRM", test_tracks, progress=False)
    with pytest.raises(EvaluationError, match="backend"):
        evaluate("IRM2", test_tracks, backend="bss", progress=False)
    with pytest.raises(EvaluationError, match="no track"):
        evaluate("IRM2", test_tracks, tracks=["nope"], progress=False)
    with pytest.raises(EvaluationError, match="at the track's length"):
        evaluate(lambda name, mixture, sources: sources[:, :, :-5], test_tracks, progress=False)

    folder = tmp_path / "est"
    mixture, sources = read_track(test_tracks[0])
    track = test_tracks[0].name
    write_estimates(folder / "test" / track, sources)
    with pytest.raises(FileNotFoundError, match="No folder of estimates"):
        evaluate(tmp_path / "missing", test_tracks, progress=False)
    (folder / "test" / track / "bass.wav").unlink()
    with pytest.raises(FileNotFoundError, match="bass.wav"):
        evaluate(folder, test_tracks, tracks=[track], progress=False)
    wav, rate = sf.read(folder / "test" / track / "drums.wav")
    sf.write(folder / "test" / track / "bass.wav", wav[:-100], rate, subtype="FLOAT")
    with pytest.raises(EvaluationError, match="samples but the track has"):
        evaluate(folder, test_tracks, tracks=[track], progress=False)
    sf.write(folder / "test" / track / "bass.wav", wav[:, 0], rate, subtype="FLOAT")
    with pytest.raises(EvaluationError, match="stereo"):
        evaluate(folder, test_tracks, tracks=[track], progress=False)
    sf.write(folder / "test" / track / "bass.wav", wav, rate, subtype="FLOAT")
    whole = (folder / "test" / track / "bass.wav").read_bytes()
    (folder / "test" / track / "bass.wav").write_bytes(whole[:whole.index(b"data") + 8 + 8 * 64])   # 64 frames
    with pytest.raises(EvaluationError, match=f"bass.wav is cut short: its header declares {len(wav)} frames but "
                                              "the file holds 64"):
        evaluate(folder, test_tracks, tracks=[track], progress=False)
    with pytest.raises(FileNotFoundError, match="No score files"):
        load_scores(tmp_path / "nothing")


def test_command_line(toy_root, tmp_path, capsys):
    from demucs_course.cli import main

    assert main(["evaluate", "mixture", "--data", str(toy_root), "-o", str(tmp_path / "scores"), "--no-progress",
                 "--tracks", get_musdb_tracks(toy_root, "test")[0].name]) == 0
    out = capsys.readouterr().out
    assert [line.split()[0] for line in out.splitlines()[2:6]] == ["SDR", "SAR", "SIR", "ISR"]
    assert len(list((tmp_path / "scores" / "test").glob("*.json"))) == 1
    assert main(["evaluate", "IRM", "--data", str(toy_root), "--no-progress"]) == 2
    assert "No folder of estimates" in capsys.readouterr().err
    assert main(["evaluate", "IBM", "--shifts", "2", "--data", str(toy_root)]) == 2
    assert "WHAT=model" in capsys.readouterr().err


class _Track:
    """A track as median_sdr reads it: ``sources()`` gives the true sources (4, 2, T)."""

    def __init__(self, sources):
        self._sources = sources

    def sources(self):
        return torch.from_numpy(self._sources)


def test_median_sdr_and_aggregate_are_one_aggregation_even_for_a_track_nan_everywhere():
    """A silent estimate makes every window of its track NaN (museval's rule). That track has no score: both
    functions leave it out, as museval's EvalStore does (once, median_sdr returned NaN and aggregate did not)."""
    rng = np.random.default_rng(0)
    tracks, estimates, framewise = [], {}, {}
    for i in range(3):
        references = (0.1 * rng.normal(size=(4, 2, 3 * 44100 + 1000))).astype(np.float32)  # 3 windows, and a rest
        estimate = references + (0.05 * (i + 1) * rng.normal(size=references.shape)).astype(np.float32)
        if i == 1:
            estimate[2, :, :3 * 44100] = 0         # silent in every window (not in the dropped rest): all NaN
        track = _Track(references)
        tracks.append(track)
        estimates[id(track)] = estimate
        sdr = sdr_v4(references.transpose(0, 2, 1), estimate.astype(np.float64).transpose(0, 2, 1))
        framewise[f"track {i}"] = {source: {metric: sdr[j] for metric in METRICS} for j, source in enumerate(SOURCES)}
    assert np.isnan(framewise["track 1"]["drums"]["SDR"]).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")                        # no "All-NaN slice" warning either
        scores = median_sdr(tracks, lambda track: estimates[id(track)])
        table = aggregate(framewise)
    for source in SOURCES:
        expected = np.median([np.nanmedian(framewise[f"track {i}"][source]["SDR"]) for i in (0, 2)])
        assert scores[source] == pytest.approx(expected) and table["SDR"][source] == pytest.approx(expected)
    assert scores["mean"] == pytest.approx(table["SDR"]["All"])


def test_median_over_tracks_is_nanmedian_then_median_without_empty_tracks():
    nan = math.nan
    per_track = [np.array([[1.0, 2.0, nan], [nan, nan, nan]]),
                 np.array([[3.0, nan], [5.0, 7.0]]),
                 np.array([[10.0, 20.0, 30.0, 40.0], [nan, 1.0, 2.0, 3.0]])]
    got = median_over_tracks(per_track)
    assert got[0] == pytest.approx(np.median([1.5, 3.0, 25.0]))
    assert got[1] == pytest.approx(np.median([6.0, 2.0]))       # the first track has no score for source 1
    assert np.isnan(median_over_tracks([np.full((1, 3), nan)])).all()
    with pytest.raises(ValueError, match="no tracks"):
        median_over_tracks([])
