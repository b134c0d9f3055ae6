"""The toy multitrack set (Chapter 1): layout, musdb, exact mixtures, determinism, reuse, and how the stems sound."""

import hashlib
import json
import multiprocessing
import os
import re
import subprocess
import sys
from pathlib import Path

import musdb
import numpy as np
import pytest
import soundfile as sf

from demucs_course import SAMPLE_RATE, SOURCES, toy

TINY = dict(n_train=2, n_valid=1, n_test=1, train_seconds=2.0, test_seconds=1.5)  # for the tests that write sets


def _files(root: Path) -> dict:
    """Every file of a toy set: relative path -> bytes."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
            and p.name != ".toy.lock"}


def _stems(root: Path, subset: str, name: str) -> dict:
    """The five files of a track, read with soundfile as (T, 2) float64."""
    return {stem: sf.read(root / subset / name / f"{stem}.wav")[0] for stem in ("mixture",) + SOURCES}


def _band_fraction(x: np.ndarray, low: float, high: float) -> float:
    """The fraction of a (T, 2) signal's energy between ``low`` and ``high`` Hz."""
    power = np.abs(np.fft.rfft(x.mean(axis=1))) ** 2
    freqs = np.fft.rfftfreq(len(x), 1 / SAMPLE_RATE)
    return power[(freqs >= low) & (freqs < high)].sum() / power.sum()


def _median_frequency(x: np.ndarray) -> float:
    """The frequency below which lies half of a (T, 2) signal's energy."""
    power = np.abs(np.fft.rfft(x.mean(axis=1))) ** 2
    return np.fft.rfftfreq(len(x), 1 / SAMPLE_RATE)[np.searchsorted(np.cumsum(power), power.sum() / 2)]


def _pitch(x: np.ndarray, fmin: float, fmax: float, frame: int = 2048, hop: int = 256) -> np.ndarray:
    """The f0 of a mono signal per frame (Hz), by YIN (de Cheveigne & Kawahara 2002); NaN where there is none.

    (librosa.yin does the same, but its first call takes seconds to compile.)
    """
    n = (len(x) - 2 * frame) // hop + 1
    frames = x[np.arange(2 * frame)[None, :] + hop * np.arange(n)[:, None]]
    size = 4 * frame  # r[lag] = sum_{j < frame} x_j x_{j + lag}, by FFT
    r = np.fft.irfft(np.fft.rfft(frames, size) * np.conj(np.fft.rfft(frames[:, :frame], size)), size)[:, :frame]
    energy = np.concatenate([np.zeros((n, 1)), np.cumsum(frames**2, axis=1)], axis=1)
    lags = np.arange(frame)
    d = energy[:, [frame]] + energy[:, lags + frame] - energy[:, lags] - 2 * r  # sum_j (x_j - x_{j + lag})^2
    cmnd = d[:, 1:] * lags[1:] / np.maximum(np.cumsum(d[:, 1:], axis=1), 1e-12)  # cumulative mean normalised
    lo, hi = int(SAMPLE_RATE / fmax), int(SAMPLE_RATE / fmin)
    curve = cmnd[:, lo - 1:hi]  # lags lo..hi
    f0 = np.full(n, np.nan)
    loud = energy[:, frame] > 1e-4 * energy[:, frame].max()
    for i in np.flatnonzero(loud & (curve < 0.1).any(axis=1)):
        j = int(np.argmax(curve[i] < 0.2))
        while j + 1 < curve.shape[1] and curve[i, j + 1] < curve[i, j]:
            j += 1  # down to the dip's bottom
        a, b, c = curve[i, max(j - 1, 0)], curve[i, j], curve[i, min(j + 1, curve.shape[1] - 1)]
        shift = 0.5 * (a - c) / (a - 2 * b + c) if a - 2 * b + c > 0 else 0.0  # parabolic interpolation
        f0[i] = SAMPLE_RATE / (lo + j + shift)
    return f0


# --- the folder ------------------------------------------------------------------------------------------------------


def test_layout_is_musdb18_hq(toy_root):
    manifest = json.loads((toy_root / "toy.json").read_text())
    assert manifest["toy_version"] == toy.TOY_VERSION
    assert manifest["arguments"] == dict(n_train=4, n_valid=1, n_test=2, seed=0, train_seconds=6.0, test_seconds=4.0)
    assert sorted(p.name for p in toy_root.iterdir() if not p.name.startswith(".")) == [
        "test", "toy.json", "train", "valid.txt"]
    for subset, count, seconds in (("train", 4, 6.0), ("test", 2, 4.0)):
        names = sorted(p.name for p in (toy_root / subset).iterdir())
        assert names == manifest["tracks"][subset] and len(names) == count
        for name in names:
            assert re.fullmatch(r"[A-Za-z ]+ - [A-Za-z ]+", name), name
            assert manifest["durations"][name] == seconds
            assert sorted(p.name for p in (toy_root / subset / name).iterdir()) == sorted(toy.TRACK_FILES)
            for file in toy.TRACK_FILES:
                info = sf.info(str(toy_root / subset / name / file))
                assert (info.samplerate, info.channels, info.subtype, info.format) == (44100, 2, "PCM_16", "WAV")
                assert info.frames == round(seconds * 44100)
    assert not set(manifest["tracks"]["train"]) & set(manifest["tracks"]["test"])  # names are unique


def test_musdb_reads_the_splits(toy_root):
    manifest = toy.read_manifest(toy_root)
    for subset in ("train", "test"):
        mus = musdb.DB(str(toy_root), is_wav=True, subsets=subset)
        assert [track.name for track in mus] == manifest["tracks"][subset]
        for track in mus:
            assert track.rate == 44100
            assert track.artist and track.title and track.name == f"{track.artist} - {track.title}"
            assert sorted(track.sources) == sorted(SOURCES)


def test_mixture_read_through_musdb_is_exactly_the_sum_of_the_stems(toy_root):
    # one train and one test track through musdb (it calls ffmpeg once a file: slow) ...
    for subset in ("train", "test"):
        track = musdb.DB(str(toy_root), is_wav=True, subsets=subset)[0]
        mixture = track.audio
        stems = [track.sources[name].audio for name in SOURCES]
        assert mixture.shape == (round(track.duration * 44100), 2)
        np.testing.assert_array_equal(mixture, np.sum(stems, axis=0))
        assert np.abs(mixture).max() < 1.0
    # ... and every track through soundfile, as the 16-bit integers on disk
    manifest = toy.read_manifest(toy_root)
    for subset in ("train", "test"):
        for name in manifest["tracks"][subset]:
            ints = {file: sf.read(toy_root / subset / name / file, dtype="int16")[0].astype(np.int32)
                    for file in toy.TRACK_FILES}
            mixture = ints.pop("mixture.wav")
            np.testing.assert_array_equal(mixture, sum(ints.values()))
            assert all(np.abs(stem).max() > 1000 for stem in ints.values())  # every stem is really there


def test_valid_list(toy_root):
    valid = toy.read_valid_list(toy_root)
    manifest = toy.read_manifest(toy_root)
    assert valid == manifest["tracks"]["valid"] and len(valid) == 1
    assert set(valid) <= set(manifest["tracks"]["train"])
    assert (toy_root / "valid.txt").read_text() == "".join(f"{name}\n" for name in valid)
    with pytest.raises(FileNotFoundError, match="holds no toy set"):
        toy.read_valid_list(toy_root / "train")


# --- determinism, reuse, overwrite -----------------------------------------------------------------------------------


def test_same_seed_same_bytes_other_seed_other_songs(tmp_path):
    first = _files(toy.make_toy_musdb(tmp_path / "a", **TINY, seed=3))
    again = _files(toy.make_toy_musdb(tmp_path / "b", **TINY, seed=3))
    other = _files(toy.make_toy_musdb(tmp_path / "c", **TINY, seed=4))
    assert first == again
    assert len(first) == 5 * 3 + 2
    assert set(first) != set(other)  # other track names
    wavs = lambda files: {content for path, content in files.items() if path.endswith(".wav")}  # noqa: E731
    assert not wavs(first) & wavs(other)  # and no identical audio file


def test_a_second_call_reuses_the_set(tmp_path):
    root = toy.make_toy_musdb(tmp_path / "toy", **TINY)
    mtimes = {p: p.stat().st_mtime_ns for p in root.rglob("*")}
    assert toy.make_toy_musdb(root, **TINY) == root
    assert toy.ensure_toy_musdb(root, **TINY) == root
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*")} == mtimes


def test_another_set_in_the_folder_needs_overwrite(tmp_path):
    root = toy.make_toy_musdb(tmp_path / "toy", **TINY, seed=0)
    old_names = toy.read_manifest(root)["tracks"]["train"]
    with pytest.raises(ValueError, match=re.escape(str(root)) + ".*different toy set.*overwrite=True"):
        toy.make_toy_musdb(root, **TINY, seed=1)
    assert toy.read_manifest(root)["arguments"]["seed"] == 0  # untouched
    toy.make_toy_musdb(root, **TINY, seed=1, overwrite=True)
    manifest = toy.read_manifest(root)
    assert manifest["arguments"]["seed"] == 1
    assert sorted(p.name for p in (root / "train").iterdir()) == manifest["tracks"]["train"] != old_names
    assert _files(root) == _files(toy.make_toy_musdb(tmp_path / "fresh", **TINY, seed=1))


def test_an_interrupted_generation_is_detected(tmp_path, monkeypatch):
    root = tmp_path / "toy"
    written = []

    def write_then_fail(*args, **kwargs):
        if len(written) == 7:
            raise KeyboardInterrupt("simulated interruption")
        written.append(args[0])
        sf.write(*args, **kwargs)

    monkeypatch.setattr(toy.sf, "write", write_then_fail)
    with pytest.raises(KeyboardInterrupt):
        toy.make_toy_musdb(root, **TINY)
    monkeypatch.undo()
    assert not (root / "toy.json").exists()
    with pytest.raises(ValueError, match=re.escape(str(root)) + ".*unfinished toy set.*overwrite=True"):
        toy.make_toy_musdb(root, **TINY)
    toy.make_toy_musdb(root, **TINY, overwrite=True)
    assert _files(root) == _files(toy.make_toy_musdb(tmp_path / "fresh", **TINY))


def test_a_missing_file_makes_the_set_unfinished(tmp_path):
    root = toy.make_toy_musdb(tmp_path / "toy", **TINY)
    name = toy.read_manifest(root)["tracks"]["test"][0]
    (root / "test" / name / "vocals.wav").unlink()
    with pytest.raises(ValueError, match="unfinished"):
        toy.make_toy_musdb(root, **TINY)
    toy.make_toy_musdb(root, **TINY, overwrite=True)
    assert (root / "test" / name / "vocals.wav").is_file()


def test_a_folder_holding_other_files_is_never_cleared(tmp_path):
    root = tmp_path / "mine"
    (root / "train").mkdir(parents=True)
    (root / "train" / "precious.txt").write_text("keep me")
    for overwrite in (False, True):
        with pytest.raises(ValueError, match=re.escape(str(root)) + ".*holds no toy set"):
            toy.make_toy_musdb(root, **TINY, overwrite=overwrite)
    assert (root / "train" / "precious.txt").read_text() == "keep me"
    assert os.listdir(root) == ["train"]  # not even a lock file was left there


@pytest.mark.parametrize("bad, message", [
    (dict(n_valid=2), "n_valid .* smaller than n_train"),
    (dict(n_train=0, n_valid=0), "n_train must be at least 1"),
    (dict(n_test=-1), "n_test must be a non-negative integer"),
    (dict(seed=1.5), "seed must be a non-negative integer"),
    (dict(train_seconds=0.5), "train_seconds must be a number of seconds between 1 and 3600"),
])
def test_bad_arguments_are_refused(tmp_path, bad, message):
    with pytest.raises(ValueError, match=message):
        toy.make_toy_musdb(tmp_path / "toy", **{**TINY, **bad})
    assert not (tmp_path / "toy").exists()


def test_default_root_and_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DEMUCS_COURSE_CACHE", str(tmp_path / "cache"))
    assert toy.default_toy_root() == tmp_path / "cache" / f"toy-musdb-v{toy.TOY_VERSION}"
    monkeypatch.delenv("DEMUCS_COURSE_CACHE")
    assert toy.default_toy_root() == Path.home() / ".cache" / "demucs_course" / f"toy-musdb-v{toy.TOY_VERSION}"
    monkeypatch.setenv("DEMUCS_COURSE_CACHE", str(tmp_path / "cache"))
    root = toy.ensure_toy_musdb(**TINY)  # not the default arguments: a sibling folder named after them
    assert root.parent == tmp_path / "cache" and root.name.startswith(f"toy-musdb-v{toy.TOY_VERSION}-")
    assert toy.read_manifest(root)["arguments"] == {**TINY, "seed": 0}
    mtimes = {p: p.stat().st_mtime_ns for p in root.rglob("*")}
    assert toy.ensure_toy_musdb(**{**TINY, "train_seconds": 2}) == root  # the same arguments, spelled otherwise
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*")} == mtimes
    assert toy.ensure_toy_musdb(**{**TINY, "seed": 5}) != root
    with pytest.raises(TypeError, match="unknown arguments"):
        toy.ensure_toy_musdb(n_tracks=3)


def _generate(root):
    toy.make_toy_musdb(root, **TINY)


def test_two_processes_generating_the_same_folder(tmp_path):
    root = tmp_path / "toy"
    context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
    processes = [context.Process(target=_generate, args=(root,)) for _ in range(2)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
    assert [process.exitcode for process in processes] == [0, 0]
    assert not (root / ".toy-incomplete").exists()
    assert _files(root) == _files(toy.make_toy_musdb(tmp_path / "fresh", **TINY))


# --- the content hash: the same set on every machine ----------------------------------------------------------------


_GENERATE_AND_HASH = """
import sys
from demucs_course.toy import content_hash, make_toy_musdb, read_manifest
root = make_toy_musdb(sys.argv[1])
assert "torch" not in sys.modules, "the toy generator must not need torch (nor its threads)"
print(read_manifest(root)["content_sha256"], content_hash(root))
"""


def test_the_default_set_is_the_same_with_1_and_2_threads(tmp_path):
    """Two fresh generations of the default set, with 1 and with 2 threads for every library, hash to the pinned
    hash. Both run at once, in their own processes (about 7 s of CPU time each)."""
    processes = []
    for threads in (1, 2):
        env = {**os.environ, **{name: str(threads) for name in (
            "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS",
            "VECLIB_MAXIMUM_THREADS")}}
        env.pop(toy.IGNORE_HASH_ENV, None)
        processes.append(subprocess.Popen([sys.executable, "-c", _GENERATE_AND_HASH, str(tmp_path / f"t{threads}")],
                                          env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    for process in processes:
        out, err = process.communicate(timeout=600)
        assert process.returncode == 0, err
        recorded, hashed = out.split()
        assert recorded == hashed == toy.TOY_HASHES[toy.TOY_VERSION]
    assert _files(tmp_path / "t1") == _files(tmp_path / "t2")


def test_content_hash_reads_the_pcm_in_the_documented_order(tmp_path):
    root = toy.make_toy_musdb(tmp_path / "toy", **TINY)
    digest = hashlib.sha256()
    for subset in ("train", "test"):
        for name in sorted(os.listdir(root / subset)):
            for file in ("mixture.wav", "drums.wav", "bass.wav", "other.wav", "vocals.wav"):
                frames, _ = sf.read(root / subset / name / file, dtype="int16")
                digest.update(frames.astype("<i2").tobytes())
    assert toy.content_hash(root) == digest.hexdigest() == toy.read_manifest(root)["content_sha256"]
    # one sample one step off changes it
    path = root / "test" / sorted(os.listdir(root / "test"))[0] / "bass.wav"
    frames, rate = sf.read(path, dtype="int16")
    frames[1000, 1] += 1
    sf.write(path, frames, rate, subtype="PCM_16")
    assert toy.content_hash(root) != digest.hexdigest()
    with pytest.raises(FileNotFoundError, match="holds no toy set"):
        toy.content_hash(tmp_path)


def test_make_toy_musdb_checks_the_pinned_hash(tmp_path, monkeypatch):
    """The hash is pinned for the default arguments; here the TINY arguments stand in for them."""
    monkeypatch.setattr(toy, "TOY_DEFAULTS", {**TINY, "seed": 0})
    monkeypatch.delenv(toy.IGNORE_HASH_ENV, raising=False)
    root = tmp_path / "toy"
    # a fresh generation that does not give the pinned hash: an error that says what differs and what to do
    monkeypatch.setattr(toy, "TOY_HASHES", {toy.TOY_VERSION: "0" * 64})
    with pytest.raises(toy.ToyContentError, match="this machine generated .* numpy .* report it .*"
                                                  + toy.IGNORE_HASH_ENV):
        toy.make_toy_musdb(root, **TINY)
    good = toy.content_hash(root)
    monkeypatch.setenv(toy.IGNORE_HASH_ENV, "1")
    with pytest.warns(UserWarning, match="used anyway"):
        assert toy.make_toy_musdb(root, **TINY) == root
    monkeypatch.delenv(toy.IGNORE_HASH_ENV)
    # the right hash pinned: the set is reused as it is
    monkeypatch.setattr(toy, "TOY_HASHES", {toy.TOY_VERSION: good})
    assert toy.make_toy_musdb(root, **TINY) == root
    # a set cached by an older generator under the same version (no hash in its manifest, other audio) is refused
    manifest = toy.read_manifest(root)
    del manifest["content_sha256"]
    (root / "toy.json").write_text(json.dumps(manifest))
    path = root / "train" / manifest["tracks"]["train"][0] / "drums.wav"
    original = path.read_bytes()
    frames, rate = sf.read(path, dtype="int16")
    sf.write(path, frames // 2, rate, subtype="PCM_16")
    with pytest.raises(toy.ToyContentError, match=re.escape(str(root)) + ".*older copy.*overwrite=True"):
        toy.make_toy_musdb(root, **TINY)
    # the same set with its own audio back: checked once, then its hash is recorded in the manifest
    path.write_bytes(original)
    assert "content_sha256" not in toy.read_manifest(root)
    toy.make_toy_musdb(root, **TINY)
    assert toy.read_manifest(root)["content_sha256"] == good
    # audio edited after the hash was recorded: found with verify=True
    sf.write(path, frames // 2, rate, subtype="PCM_16")
    assert toy.make_toy_musdb(root, **TINY) == root  # the recorded hash is trusted: no file is read
    with pytest.raises(toy.ToyContentError, match="changed since it was written"):
        toy.make_toy_musdb(root, **TINY, verify=True)
    toy.make_toy_musdb(root, **TINY, overwrite=True)
    assert toy.content_hash(root) == good


def test_the_split_modules_are_importable_from_toy():
    from demucs_course import toy_composition, toy_instruments

    for name in ("Note", "Hit", "Song", "plan_song", "midi_to_hz", "VOWELS"):
        assert getattr(toy, name) is getattr(toy_composition, name)
    for name in ("render_song", "sing", "harmonic_table", "oscillator", "envelope", "kick", "snare", "cymbal"):
        assert getattr(toy, name) is getattr(toy_instruments, name)
    for module in (toy, toy_composition, toy_instruments):
        assert module.__doc__.startswith("Chapter 1: ")
        assert len(Path(module.__file__).read_text().splitlines()) <= 450, module.__name__


def test_harmonic_table_is_a_fixed_order_sum():
    amplitudes = np.arange(1, 41) ** -1.1
    x = np.arange(2048) / 2048
    expected = np.zeros(2048)
    for k, a in enumerate(amplitudes, start=1):
        expected += a * np.sin(2 * np.pi * (k * x))
    table = toy.harmonic_table(amplitudes)
    np.testing.assert_array_equal(table[:-1], expected / np.abs(expected).max())
    assert table[-1] == table[0]


# --- how it sounds ---------------------------------------------------------------------------------------------------


def test_every_second_of_every_stem_has_sound(toy_root):
    """museval scores 1-s windows and turns a window where a reference is silent into NaN: none may be."""
    manifest = toy.read_manifest(toy_root)
    for subset in ("train", "test"):
        for name in manifest["tracks"][subset]:
            for stem, audio in _stems(toy_root, subset, name).items():
                seconds = len(audio) // SAMPLE_RATE
                windows = audio[:seconds * SAMPLE_RATE].reshape(seconds, SAMPLE_RATE, 2)
                rms_db = 10 * np.log10(np.mean(windows**2, axis=(1, 2)))
                assert rms_db.min() > -60, (name, stem, rms_db)
                assert not np.array_equal(audio[:, 0], audio[:, 1]), (name, stem)  # stereo, left != right


def test_stems_sound_like_their_names(toy_root):
    manifest = toy.read_manifest(toy_root)
    for name in manifest["tracks"]["train"] + manifest["tracks"]["test"]:
        subset = "train" if name in manifest["tracks"]["train"] else "test"
        audio = _stems(toy_root, subset, name)
        # bass: nearly all its energy below 300 Hz
        assert _band_fraction(audio["bass"], 0, 300) > 0.8, name
        # drums: broadband, a kick below 150 Hz and cymbals above 5 kHz, more highs than any other stem
        highs = {stem: _band_fraction(audio[stem], 5000, 22050) for stem in SOURCES}
        assert highs["drums"] > 0.01 and highs["drums"] == max(highs.values()), (name, highs)
        assert _band_fraction(audio["drums"], 0, 150) > 0.2, name
        # other and vocals: harmonic tones in the same range, well above the bass
        medians = {stem: _median_frequency(audio[stem]) for stem in SOURCES}
        assert min(medians["other"], medians["vocals"]) > 2 * medians["bass"], (name, medians)
        # vocals: a pitch most of the time, in a singing range (80-1000 Hz, about E2 to B5)
        f0 = _pitch(audio["vocals"].mean(axis=1), fmin=50, fmax=1500, hop=1024)
        voiced = f0[~np.isnan(f0)]
        assert len(voiced) > 0.6 * len(f0) and np.mean((voiced > 80) & (voiced < 1000)) > 0.95, (name, f0)
        assert 100 < np.median(voiced) < 700, (name, f0)


def _sung(vowel: str, pitch: float = 57, vibrato_cents: float = 40.0, vibrato_rate: float = 5.5) -> np.ndarray:
    sound = dict(register="low", tilt=0.9, vibrato_rate=vibrato_rate, vibrato_cents=vibrato_cents, breath=0.02)
    source = toy.harmonic_table(np.arange(1, 60) ** -0.9)
    note = toy.Note(start=0.0, length=1.5, pitch=pitch, vowel=vowel)
    start, voice = toy.sing(note, None, source, sound, np.random.default_rng(0))
    assert start == 0
    return voice


def test_the_voice_has_vibrato():
    voice = _sung("a", pitch=57, vibrato_cents=40.0, vibrato_rate=5.5)
    f0 = _pitch(voice, fmin=100, fmax=400)
    t = np.arange(len(f0)) * 256 / SAMPLE_RATE
    cents = 1200 * np.log2(f0[(t > 0.5) & (t < 1.4)] / toy.midi_to_hz(57))
    assert abs(np.median(cents)) < 15  # in tune (A3, 220 Hz)
    assert 50 < cents.max() - cents.min() < 110  # +-40 cents of vibrato
    spectrum = np.abs(np.fft.rfft((cents - cents.mean()) * np.hanning(len(cents)), n=4096))
    rate = np.fft.rfftfreq(4096, 256 / SAMPLE_RATE)[spectrum.argmax()]
    assert 5.0 < rate < 6.0


def test_the_voice_has_vowel_formants():
    def f2_over_f1(x):  # the energy near /i/'s F2 (2.3 kHz) over that near /a/'s F1 (730 Hz)
        x = x[:, None]
        return _band_fraction(x, 1800, 3000) / _band_fraction(x, 500, 1200)

    # the same note, sung on /i/ and on /a/: /i/ is far brighter around 2-3 kHz
    assert 10 * np.log10(f2_over_f1(_sung("i")) / f2_over_f1(_sung("a"))) > 15
    assert 10 * np.log10(f2_over_f1(_sung("i", pitch=64)) / f2_over_f1(_sung("u", pitch=64))) > 15
