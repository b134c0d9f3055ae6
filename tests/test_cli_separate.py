"""``demucs-course separate`` (Chapter 8): a song file in, four stem WAVs out; bad input is a message and exit code 2.

The commands run in-process through ``demucs_course.cli.main``. They use a tiny randomly initialised Demucs saved
in the training checkpoint format (fast, and independent of the shipped model), except the test of the default,
which uses the shipped model.
"""

import shutil

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
    return {"missing": tmp_path / "nope.wav", "text": text, "silent": silent, "surround": tmp_path / "surround.wav"}


@pytest.mark.parametrize("which, words", [
    ("missing", "No such audio file"), ("text", "Cannot decode"), ("silent", "silent"), ("surround", "6 channels"),
])
def test_bad_songs_are_a_message_and_exit_code_2(capsys, tmp_path, checkpoint, bad_files, which, words):
    code, out, err = run(capsys, bad_files[which], "-o", tmp_path / "out", "--checkpoint", checkpoint)
    assert code == 2
    assert words in err and "Traceback" not in err and err.startswith("demucs-course separate: error:")
    assert not (tmp_path / "out").exists()


def test_bad_options_are_a_message_and_exit_code_2(capsys, tmp_path, checkpoint, song):
    code, _, err = run(capsys, song, "--shifts", "-1", "--checkpoint", checkpoint)
    assert code == 2 and "--shifts" in err
    code, _, err = run(capsys, song, "-o", tmp_path, "--checkpoint", tmp_path / "none.pt")
    assert code == 2 and "none.pt" in err
    with pytest.raises(SystemExit) as exit_info:  # argparse: a number was expected
        main(["separate", str(song), "--shifts", "many"])
    assert exit_info.value.code == 2
