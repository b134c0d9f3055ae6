"""Audio I/O, players and figures (Chapter 1)."""

import base64
import io
import re
import shutil
import subprocess

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import soundfile as sf  # noqa: E402
import torch  # noqa: E402

from demucs_course.audio import (  # noqa: E402
    AudioError,
    check_waveform,
    declared_wav_frames,
    load_audio,
    player,
    plot_spectrograms,
    plot_waveforms,
    resample,
    save_audio,
    stem_players,
)

RATE = 44100
needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="the ffmpeg program is not installed")


def tone(freq=440.0, seconds=0.5, rate=RATE, amplitude=0.5, channels=2):
    t = np.arange(int(seconds * rate)) / rate
    wav = amplitude * np.sin(2 * np.pi * freq * t)
    return np.stack([wav * (1 - 0.3 * c) for c in range(channels)]).astype(np.float32)  # (channels, time)


def write(path, wav, rate=RATE, subtype=None):
    sf.write(path, wav.T, rate, subtype=subtype)
    return path


def rms(x):
    return float(np.sqrt(np.mean(np.asarray(x, dtype=np.float64) ** 2)))


def correlation(a, b):
    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    return float(a @ b / np.sqrt((a @ a) * (b @ b)))


# --------------------------------------------------------------------------------------------------------------
# load_audio
# --------------------------------------------------------------------------------------------------------------


def test_stereo_wav_loads_as_float32_2_by_time(tmp_path):
    wav = tone()
    out = load_audio(write(tmp_path / "a.wav", wav))
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32 and out.shape == wav.shape
    assert np.allclose(out.numpy(), wav, atol=1 / 32767)  # 16-bit quantisation only


def test_flac_and_ogg_load(tmp_path):
    wav = tone()
    assert np.allclose(load_audio(write(tmp_path / "a.flac", wav)).numpy(), wav, atol=1 / 32767)
    ogg = load_audio(write(tmp_path / "a.ogg", wav))  # lossy: same length, same tone
    assert ogg.shape == wav.shape and correlation(ogg.numpy(), wav) > 0.99


def test_mono_is_duplicated(tmp_path):
    wav = tone(channels=1)
    out = load_audio(write(tmp_path / "mono.wav", wav))
    assert out.shape == (2, wav.shape[1])
    assert torch.equal(out[0], out[1]) and np.allclose(out[0].numpy(), wav[0], atol=1 / 32767)


def test_other_rates_are_resampled(tmp_path):
    out = load_audio(write(tmp_path / "low.wav", tone(440, seconds=0.5, rate=22050), rate=22050))
    assert out.shape == (2, RATE // 2)
    expected = tone(440, seconds=0.5, rate=RATE)
    middle = slice(2000, -2000)
    assert correlation(out[:, middle].numpy(), expected[:, middle]) > 0.999
    # and to another target rate
    assert load_audio(tmp_path / "low.wav", sample_rate=16000).shape == (2, 8000)


@pytest.mark.parametrize("rate", [8000, 22050, 48000])
def test_resample_matches_librosa_soxr_hq(rate):
    import librosa

    x = np.random.default_rng(rate).standard_normal((2, 4321)).astype(np.float32)
    expected = librosa.resample(x, orig_sr=rate, target_sr=RATE, res_type="soxr_hq", axis=-1)
    out = resample(x, rate, RATE)
    assert out.shape == expected.shape == (2, int(np.ceil(4321 * RATE / rate)))
    assert np.allclose(out, expected, atol=1e-6)


@needs_ffmpeg
def test_mp3_decodes(tmp_path):
    src = write(tmp_path / "src.wav", tone(440, seconds=1.0))
    mp3 = tmp_path / "a.mp3"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(src), "-b:a", "192k", str(mp3)], check=True)
    out = load_audio(mp3)
    assert out.shape[0] == 2 and abs(out.shape[1] - RATE) < 2 * 1152  # within two MP3 frames of padding
    assert rms(out[0, 5000:-5000]) == pytest.approx(0.5 / np.sqrt(2), rel=0.05)  # the 0.5 sine's level


@needs_ffmpeg
def test_formats_soundfile_cannot_read_go_through_ffmpeg(tmp_path):
    src = write(tmp_path / "src.wav", tone(440, seconds=0.5, rate=48000), rate=48000)
    m4a = tmp_path / "a.m4a"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(src), "-c:a", "aac", str(m4a)], check=True)
    out = load_audio(m4a)  # AAC at 48 kHz, resampled to 44.1 kHz
    assert out.shape[0] == 2 and abs(out.shape[1] - RATE // 2) < 3000
    assert rms(out[0, 5000:-5000]) == pytest.approx(0.5 / np.sqrt(2), rel=0.05)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: write(p / "five.wav", tone(channels=5)), r"5 channels.*ffmpeg -i five\.wav -ac 2"),
        (lambda p: write(p / "nan.wav", np.full((2, 100), np.nan, np.float32), subtype="FLOAT"), "NaN"),
        (lambda p: write(p / "inf.wav", np.full((2, 100), np.inf, np.float32), subtype="FLOAT"), "infinite"),
        (lambda p: write(p / "empty.wav", np.zeros((2, 0), np.float32)), r"empty.wav is empty \(0 samples\)"),
        (lambda p: (p / "corrupt.wav").write_bytes(np.random.default_rng(0).bytes(5000)) and p / "corrupt.wav",
         r"Cannot decode .*corrupt\.wav.*damaged"),
        (lambda p: p, "is a folder"),
    ],
    ids=["5-channels", "nan", "inf", "empty", "corrupt", "folder"],
)
def test_bad_files_raise_audio_error_with_advice(tmp_path, make, message):
    with pytest.raises(AudioError, match=message):
        load_audio(make(tmp_path))


def cut_short(path, frames_kept):
    """Keep the header of a 16-bit stereo WAV and only ``frames_kept`` frames of its data (a download that stopped)."""
    data = path.read_bytes()
    path.write_bytes(data[:data.index(b"data") + 8 + 4 * frames_kept])
    return path


def test_a_wav_cut_short_is_an_error_naming_the_file_and_both_frame_counts(tmp_path):
    """Its header says 4410 frames, the file holds 64; libsndfile reads the 64 without a word (as sf.info does)."""
    path = cut_short(write(tmp_path / "cut.wav", tone(seconds=0.1), subtype="PCM_16"), 64)
    assert sf.info(path).frames == 64 and declared_wav_frames(path) == 4410
    with pytest.raises(AudioError, match=r"cut\.wav is cut short: its header declares 4410 frames .* holds 64 "):
        load_audio(path)


def test_declared_frames_of_whole_and_other_files(tmp_path):
    whole = write(tmp_path / "whole.wav", tone(seconds=0.1), subtype="PCM_16")
    assert declared_wav_frames(whole) == 4410 and load_audio(whole).shape == (2, 4410)
    odd = write(tmp_path / "odd.wav", tone(seconds=0.1, channels=1), subtype="PCM_24")   # 3-byte frames: odd sizes
    assert declared_wav_frames(odd) == 4410
    assert declared_wav_frames(write(tmp_path / "x.flac", tone(seconds=0.1))) is None
    # A streaming writer that could not know the length puts a placeholder in the header: no claim, no error.
    for placeholder in (0xFFFFFFFF, 0x7FFFF000):
        data = bytearray(whole.read_bytes())
        at = data.index(b"data") + 4
        data[at:at + 4] = placeholder.to_bytes(4, "little")
        streamed = tmp_path / "streamed.wav"
        streamed.write_bytes(bytes(data))
        assert declared_wav_frames(streamed) is None and load_audio(streamed).shape == (2, 4410)


def test_missing_file_is_both_audio_error_and_file_not_found(tmp_path):
    with pytest.raises(AudioError, match="No such audio file: .*missing.wav"):
        load_audio(tmp_path / "missing.wav")
    with pytest.raises(FileNotFoundError):
        load_audio(tmp_path / "missing.wav")


def test_undecodable_other_format_names_the_file(tmp_path):
    bad = tmp_path / "song.m4a"
    bad.write_bytes(b"not audio at all" * 100)
    with pytest.raises(AudioError, match=r"Cannot decode .*song\.m4a"):
        load_audio(bad)


def test_bad_sample_rate_is_rejected(tmp_path):
    path = write(tmp_path / "a.wav", tone())
    for bad in (0, -44100, 44100.5, "44100", None, True):
        with pytest.raises(AudioError, match="sample_rate must be a positive whole number"):
            load_audio(path, sample_rate=bad)


# --------------------------------------------------------------------------------------------------------------
# save_audio
# --------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("ending", [".wav", ".flac"])
def test_save_round_trip_creates_folders(tmp_path, ending):
    wav = torch.from_numpy(tone())
    wav[0, :3] = torch.tensor([1.0, -1.0, 0.0])
    path = save_audio(tmp_path / "deep" / "er" / f"out{ending}", wav)
    info = sf.info(path)
    assert info.subtype == "PCM_16" and info.format == ending[1:].upper() and info.samplerate == RATE
    assert np.allclose(load_audio(path).numpy(), wav.numpy(), atol=1 / 32767)


def test_save_clips_with_a_warning_or_raises(tmp_path):
    wav = tone(amplitude=1.5)
    with pytest.warns(UserWarning, match=r"beyond \[-1, 1\].*peak 1.500.*clipped"):
        path = save_audio(tmp_path / "loud.wav", wav)
    back = load_audio(path)
    assert float(back.abs().max()) <= 1 and float(back.abs().max()) > 0.999
    with pytest.raises(AudioError, match=r"scale it down.*clip=True"):
        save_audio(tmp_path / "loud2.wav", wav, clip=False)
    assert not (tmp_path / "loud2.wav").exists()


def test_save_rejects_bad_input(tmp_path):
    with pytest.raises(AudioError, match=r"\.wav or \.flac"):
        save_audio(tmp_path / "a.mp3", tone())
    with pytest.raises(AudioError, match=r"\(time, channels\): pass x\.T"):
        save_audio(tmp_path / "a.wav", tone().T)
    with pytest.raises(AudioError, match="NaN"):
        save_audio(tmp_path / "a.wav", np.full((2, 10), np.nan, np.float32))
    with pytest.raises(AudioError, match="empty"):
        save_audio(tmp_path / "a.wav", np.zeros((2, 0), np.float32))


def test_save_mono_from_one_dimension(tmp_path):
    path = save_audio(tmp_path / "m.wav", tone(channels=1)[0])
    assert sf.info(path).channels == 1


# --------------------------------------------------------------------------------------------------------------
# check_waveform
# --------------------------------------------------------------------------------------------------------------


def test_check_waveform_accepts_stereo_and_returns_float32():
    out = check_waveform(tone().astype(np.float64))
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32 and out.shape == (2, 22050)


@pytest.mark.parametrize(
    "x, message",
    [
        (np.zeros(100, np.float32), r"shape \(2, time\).*mono"),
        (np.zeros((1, 100), np.float32), "2 channels.*mono"),
        (np.zeros((3, 100), np.float32), "2 channels.*mix it down"),
        (np.zeros((100, 2), np.float32), r"\(time, channels\).*x\.T"),
        (np.zeros((2, 0), np.float32), "empty"),
        (np.zeros((2, 10), np.int16), "floating point"),
        (np.full((2, 10), np.nan, np.float32), "NaN"),
        (np.zeros((1, 2, 10), np.float32), r"shape \(2, time\)"),
    ],
    ids=["rank1", "mono", "3ch", "time-first", "empty", "int", "nan", "rank3"],
)
def test_check_waveform_rejects(x, message):
    with pytest.raises(AudioError, match=message):
        check_waveform(x, name="mix")
    with pytest.raises(AudioError, match="^mix "):
        check_waveform(torch.from_numpy(x), name="mix")


# --------------------------------------------------------------------------------------------------------------
# Players
# --------------------------------------------------------------------------------------------------------------


def decode_data_uris(html_text):
    return [sf.read(io.BytesIO(base64.b64decode(b)), always_2d=True)
            for b in re.findall(r'src="data:audio/(?:x-)?(?:wav|mpeg);base64,([^"]+)"', html_text)]


def test_player_keeps_loudness_and_only_scales_down_to_avoid_clipping():
    from IPython.display import Audio

    quiet = player(tone(amplitude=0.1), label="quiet <stem>")
    assert isinstance(quiet, Audio)
    html_text = quiet._repr_html_()
    assert "<b>quiet &lt;stem&gt;</b>" in html_text
    (data, rate), = decode_data_uris(html_text)
    assert rate == RATE and data.shape == (22050, 2)
    assert abs(np.abs(data).max() - 0.1) < 1e-3  # not normalised to full scale
    (loud, _), = decode_data_uris(player(torch.from_numpy(tone(amplitude=3.0)), seconds=0.1)._repr_html_())
    assert loud.shape == (4410, 2) and abs(np.abs(loud).max() - 1) < 1e-3


def test_stem_players_lists_every_stem_and_the_mixture_on_one_scale():
    stems = {"drums": tone(100, amplitude=0.6), "bass": tone(50, amplitude=0.6), "vocals": tone(800, amplitude=0.1)}
    out = stem_players(stems, seconds=0.2)
    text = out.data
    for name in [*stems, "mixture"]:
        assert f"<b>{name}</b>" in text
    assert 'src="data:audio/mpeg;base64,' in text  # MP3 keeps pages with many players small
    clips = decode_data_uris(text)
    # MP3 adds a few ms of encoder delay and padding, and rounds peaks by a few percent
    assert len(clips) == 4 and all(data.shape[1] == 2 and 8820 <= len(data) < 8820 + 3000 for data, _ in clips)
    peaks = [np.abs(data).max() for data, _ in clips]
    mixture_peak = np.abs(sum(stems.values())[:, :8820]).max()
    assert mixture_peak > 1 and abs(peaks[3] - 1) < 0.05  # the mixture would clip: everything scaled by 1/peak
    assert abs(peaks[0] / peaks[2] - 6) < 0.3  # drums stay six times louder than vocals


def test_stem_players_uses_a_given_mixture_and_checks_shapes():
    stems = {"a": tone(), "mixture": tone(amplitude=0.2)}
    assert len(decode_data_uris(stem_players(stems).data)) == 2
    with pytest.raises(AudioError, match="one shape"):
        stem_players({"a": tone(), "b": tone(seconds=0.1)})
    with pytest.raises(AudioError, match="dict"):
        stem_players(tone())


# --------------------------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------------------------


def test_plot_waveforms_has_one_row_per_stream():
    stems = {"drums": torch.from_numpy(tone(seconds=1.0)), "bass": tone(seconds=1.0)[0], "other": tone(seconds=1.0)}
    fig = plot_waveforms(stems, seconds=0.5)
    try:
        assert len(fig.axes) == 3
        assert [ax.get_ylabel() for ax in fig.axes] == ["drums", "bass", "other"]
        assert fig.axes[-1].get_xlim()[1] == pytest.approx(0.5, abs=0.01)
    finally:
        plt.close(fig)


def test_plot_spectrograms_has_one_row_per_stream_and_a_colour_bar():
    stems = {"low": tone(100, seconds=1.0), "high": torch.from_numpy(tone(3000, seconds=1.0))}
    fig = plot_spectrograms(stems, fmax=8000)
    try:
        assert len(fig.axes) == 3
        assert [ax.get_title() for ax in fig.axes[:2]] == ["low", "high"]
        assert fig.axes[0].get_yscale() == "symlog" and fig.axes[0].get_ylim()[1] == 8000
    finally:
        plt.close(fig)
