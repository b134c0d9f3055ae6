"""``demucs-course separate`` (Chapter 8): a song file in, four stem WAVs out; bad input is a message and exit code 2.

The commands run in-process through ``demucs_course.cli.main``. They use a tiny randomly initialised Demucs saved
in the training checkpoint format (fast, and independent of the shipped model), except the test of the default,
which uses the shipped model.
"""

import shutil
import subprocess
import sys
import warnings

import numpy as np
import pytest
import soundfile as sf
import torch

from demucs_course import SAMPLE_RATE, SOURCES
from demucs_course.audio import load_audio, save_audio
from demucs_course.checkpoints import save_atomic
from demucs_course.cli import main
from demucs_course.loading import CHECKPOINT_FORMAT, load_checkpoint
from demucs_course.model import Demucs
from demucs_course.presets import preset


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A tiny Demucs with random weights (seed 0), saved as the course saves a model."""
    config = preset("tiny-cpu").to_dict()
    torch.manual_seed(0)
    model = Demucs(**config["model"])
    state = {"format": CHECKPOINT_FORMAT, "kind": "model", "model": model.state_dict(), "config": config,
             "history": {}, "metadata": {}}
    return save_atomic(state, tmp_path_factory.mktemp("checkpoint") / "tiny.pt")


@pytest.fixture(scope="module")
def song(tmp_path_factory):
    """3 s of a stereo song-like signal (a chord and clicks) as a 16-bit WAV file named ``my song.wav``."""
    t = np.arange(3 * SAMPLE_RATE) / SAMPLE_RATE
    chord = sum(np.sin(2 * np.pi * f * t) for f in (220.0, 277.2, 329.6)) / 6
    clicks = (np.arange(t.size) % 11025 < 200) * 0.3
    wav = np.stack([chord + clicks, 0.8 * chord + clicks])
    return save_audio(tmp_path_factory.mktemp("songs") / "my song.wav", wav)


def run(capsys, *argv):
    code = main(["separate", *map(str, argv)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def read_stems(folder):
    stems = {}
    for name in SOURCES:
        data, rate = sf.read(folder / f"{name}.wav", dtype="float32", always_2d=True)
        info = sf.info(folder / f"{name}.wav")
        assert rate == SAMPLE_RATE and info.subtype == "PCM_16" and data.shape[1] == 2
        stems[name] = data.T
    return stems


def test_separate_writes_four_stems_named_after_the_song(capsys, tmp_path, checkpoint, song):
    code, out, err = run(capsys, song, "-o", tmp_path / "out", "--checkpoint", checkpoint, "--no-progress",
                         "--device", "cpu")
    assert code == 0, err
    folder = tmp_path / "out" / "my song"
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"{name}.wav" for name in SOURCES)
    stems = read_stems(folder)
    assert all(s.shape == (2, 3 * SAMPLE_RATE) for s in stems.values())
    # The files hold what separate_track gives (to 16-bit rounding), and the command says where they went.
    from demucs_course.separate import separate_track

    expected = separate_track(load_checkpoint(checkpoint), load_audio(song)).clamp(-1, 1)
    for name, source in zip(SOURCES, expected):
        assert np.abs(stems[name] - source.numpy()).max() < 2 / 32768
        assert str(folder / f"{name}.wav") in out
    assert "separated 3.0 s of audio" in out


def test_flac_and_mp3_songs_and_shifts(capsys, tmp_path, checkpoint, song):
    mixture = load_audio(song)
    flac = save_audio(tmp_path / "song.flac", mixture)
    code, _, err = run(capsys, flac, "-o", tmp_path, "--checkpoint", checkpoint, "--shifts", "2", "--no-progress")
    assert code == 0, err
    assert read_stems(tmp_path / "song")["drums"].shape == (2, mixture.shape[-1])

    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is not installed: no MP3 to test with")
    import subprocess

    mp3 = tmp_path / "track.mp3"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(song), str(mp3)], check=True)
    code, _, err = run(capsys, mp3, "-o", tmp_path, "--checkpoint", checkpoint, "--no-progress")
    assert code == 0, err
    assert read_stems(tmp_path / "track")["vocals"].shape == (2, load_audio(mp3).shape[-1])


def test_progress_bar_on_stderr(capsys, tmp_path, checkpoint, song):
    code, _, err = run(capsys, song, "-o", tmp_path, "--checkpoint", checkpoint)
    assert code == 0 and "separating" in err


def test_default_is_the_shipped_model(capsys, tmp_path, song):
    code, _, err = run(capsys, song, "-o", tmp_path, "--no-progress", "--device", "cpu")
    assert code == 0, err
    assert len(read_stems(tmp_path / "my song")) == 4


@pytest.fixture
def bad_files(tmp_path):
    text = tmp_path / "notes.wav"
    text.write_text("not audio")
    silent = save_audio(tmp_path / "silent.wav", np.zeros((2, 4410)))
    sf.write(tmp_path / "surround.wav", np.full((4410, 6), 0.1, dtype=np.float32), SAMPLE_RATE)
    sf.write(tmp_path / "five.wav", np.full((4410, 5), 0.1, dtype=np.float32), SAMPLE_RATE)
    nan = np.full((4410, 2), 0.1, dtype=np.float32)
    nan[100, 1] = np.nan
    sf.write(tmp_path / "nan.wav", nan, SAMPLE_RATE, subtype="FLOAT")
    sf.write(tmp_path / "one.wav", np.array([[0.1, 0.2]], dtype=np.float32), SAMPLE_RATE)
    whole = save_audio(tmp_path / "cut.wav", np.full((2, 4410), 0.1)).read_bytes()
    (tmp_path / "cut.wav").write_bytes(whole[:whole.index(b"data") + 8 + 4 * 64])     # header says 4410 frames
    (tmp_path / "corrupt.flac").write_bytes(b"fLaC" + np.random.default_rng(0).bytes(3000))
    return {"missing": tmp_path / "nope.wav", "text": text, "silent": silent, "surround": tmp_path / "surround.wav",
            "five": tmp_path / "five.wav", "nan": tmp_path / "nan.wav", "one": tmp_path / "one.wav",
            "cut": tmp_path / "cut.wav", "corrupt": tmp_path / "corrupt.flac"}


@pytest.mark.parametrize("which, words", [
    ("missing", "No such audio file"), ("text", "Cannot decode"), ("silent", "silent"), ("surround", "6 channels"),
    ("five", "5 channels"), ("nan", "NaN"), ("one", "1 sample long"), ("corrupt", "Cannot decode"),
    ("cut", "cut.wav is cut short: its header declares 4410 frames (0.100 s) but the file holds 64 (0.001 s)"),
])
def test_bad_songs_are_a_message_and_exit_code_2(capsys, tmp_path, checkpoint, bad_files, which, words):
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # a one-sample file once leaked torch's std() warning
        code, out, err = run(capsys, bad_files[which], "-o", tmp_path / "out", "--checkpoint", checkpoint)
    assert code == 2
    assert words in err and "Traceback" not in err and err.startswith("demucs-course separate: error:")
    assert err.count("\n") == 1, err                 # one line
    assert not (tmp_path / "out").exists()


def test_a_song_whose_channels_cancel_separates_into_stems_that_add_up_to_it(capsys, tmp_path, song):
    """R = -L in a 16-bit file (the mono mix's std about 1e-7): once, the input was scaled ~10^6 times into garbage."""
    left = load_audio(song)[0].numpy()
    path = tmp_path / "opposite.wav"
    sf.write(path, np.stack([left, -left], axis=1) * 0.7, SAMPLE_RATE, subtype="PCM_16")
    mixture = load_audio(path).numpy()
    assert 0 < mixture.mean(0).std() < 1e-5
    code, out, err = run(capsys, path, "-o", tmp_path / "out")              # the shipped model
    assert code == 0, err
    total = sum(read_stems(tmp_path / "out" / "opposite").values())
    assert np.isfinite(total).all()
    error = np.linalg.norm(total - mixture) / np.linalg.norm(mixture)
    assert error < 0.5, f"the stems add up to the song only within {error:.0%}"


def test_an_unexpected_error_keeps_its_traceback_and_exit_code_1(tmp_path, song, checkpoint):
    """Only bad input is one line and exit 2; torch failing inside (here CUDA out of memory) is not bad input."""
    script = (
        "import sys, torch, demucs_course.separate as s\n"
        "def out_of_memory(*args, **kwargs):\n"
        "    raise torch.cuda.OutOfMemoryError('CUDA out of memory. Tried to allocate 2.00 GiB')\n"
        "s.separate_track = out_of_memory\n"
        "from demucs_course.cli import main\n"
        f"sys.exit(main(['separate', {str(song)!r}, '-o', {str(tmp_path)!r}, '--checkpoint', {str(checkpoint)!r}]))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr
    assert "Traceback (most recent call last)" in done.stderr and "OutOfMemoryError: CUDA out of memory" in done.stderr


def test_a_runtime_error_inside_the_course_is_not_swallowed(monkeypatch, tmp_path, song, checkpoint):
    import demucs_course.separate

    def broken(*args, **kwargs):
        raise RuntimeError("Given groups=1, weight of size [8, 2, 8], expected input[1, 3, 100] to have 2 channels")

    monkeypatch.setattr(demucs_course.separate, "separate_track", broken)
    with pytest.raises(RuntimeError, match="Given groups=1"):
        main(["separate", str(song), "-o", str(tmp_path), "--checkpoint", str(checkpoint)])


def test_bad_options_are_a_message_and_exit_code_2(capsys, tmp_path, checkpoint, song):
    code, _, err = run(capsys, song, "--shifts", "-1", "--checkpoint", checkpoint)
    assert code == 2 and "--shifts" in err
    code, _, err = run(capsys, song, "-o", tmp_path, "--checkpoint", tmp_path / "none.pt")
    assert code == 2 and "none.pt" in err
    with pytest.raises(SystemExit) as exit_info:  # argparse: a number was expected
        main(["separate", str(song), "--shifts", "many"])
    assert exit_info.value.code == 2


def test_a_damaged_mp3_is_one_line_without_the_decoders_notes(capfd, tmp_path, checkpoint):
    """libmpg123 writes "Note: Illegal Audio-MPEG-Header ..." lines straight to the stderr file descriptor."""
    path = tmp_path / "damaged.mp3"
    path.write_bytes(np.random.default_rng(0).integers(0, 255, 5000, dtype=np.uint8).tobytes())
    code = main(["separate", str(path), "-o", str(tmp_path / "out"), "--checkpoint", str(checkpoint)])
    err = capfd.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith("demucs-course separate: error: Cannot decode") and "damaged.mp3" in err
