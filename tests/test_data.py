"""Chapter 2: finding tracks through musdb, the lossless cache, normalisation and the extract dataset."""

import os
import shutil
import warnings

import numpy as np
import pytest
import soundfile as sf
import torch

from demucs_course import SAMPLE_RATE, SOURCES
from demucs_course.audio import AudioError
from demucs_course.data import (
    MONO_STD_FLOOR, DatasetError, ExtractDataset, cache_track, denormalize, get_musdb_tracks, load_tracks, mono_stats,
    normalize, read_split_list, read_track, track_files,
)


@pytest.fixture(scope="module")
def cached(toy_root, tmp_path_factory):
    return load_tracks(toy_root, "train", cache_dir=tmp_path_factory.mktemp("cache"))


def test_subsets_and_the_toy_validation_split(toy_root):
    train = get_musdb_tracks(toy_root, "train")
    test = get_musdb_tracks(toy_root, "test")
    valid_names = read_split_list(toy_root)
    assert len(train) == 4 and len(test) == 2 and len(valid_names) == 1
    valid = get_musdb_tracks(toy_root, "train", "valid")
    rest = get_musdb_tracks(toy_root, "train", "train")
    assert [t.name for t in valid] == valid_names
    assert sorted(t.name for t in valid + rest) == sorted(t.name for t in train)
    assert not set(t.name for t in train) & set(t.name for t in test)


def test_read_track_gives_the_mixture_as_the_sum_of_the_stems(toy_root):
    track = get_musdb_tracks(toy_root, "test")[0]
    mixture, sources = read_track(track)
    assert mixture.dtype == np.float32 and mixture.shape[0] == 2
    assert sources.shape == (len(SOURCES), 2, mixture.shape[1])
    assert mixture.shape[1] == round(4 * SAMPLE_RATE)
    np.testing.assert_allclose(sources.sum(0), mixture, atol=1e-6)


def test_missing_root_is_an_error_that_names_it(tmp_path):
    with pytest.raises(DatasetError, match=f"{tmp_path / 'nope'} does not exist"):
        get_musdb_tracks(tmp_path / "nope")


def test_empty_or_wrong_root_is_an_error_not_an_empty_list(tmp_path):
    with pytest.raises(DatasetError, match=f"No MUSDB18 tracks found under {tmp_path}"):
        get_musdb_tracks(tmp_path)
    (tmp_path / "train" / "Some - Song").mkdir(parents=True)  # a folder without mixture.wav
    with pytest.raises(DatasetError, match="expected .*mixture.wav"):
        get_musdb_tracks(tmp_path)


def test_a_subset_that_is_missing_is_an_error(toy_root, tmp_path):
    shutil.copytree(toy_root / "train", tmp_path / "train")
    with pytest.raises(DatasetError, match="No tracks in subset 'test'"):
        get_musdb_tracks(tmp_path, "test")


def test_a_track_without_a_stem_is_an_error(toy_root, tmp_path):
    shutil.copytree(toy_root / "test", tmp_path / "test")
    victim = sorted((tmp_path / "test").iterdir())[0]
    (victim / "bass.wav").unlink()
    with pytest.raises(DatasetError, match="no bass stem"):
        get_musdb_tracks(tmp_path, "test")


def test_bad_subset_and_split_arguments(toy_root):
    with pytest.raises(DatasetError, match="subset must be"):
        get_musdb_tracks(toy_root, "valid")
    with pytest.raises(DatasetError, match="needs subset='train'"):
        get_musdb_tracks(toy_root, "test", "valid")


def test_mono_stats_and_normalisation():
    rng = np.random.default_rng(0)
    mixture = rng.normal(0.1, 0.3, size=(2, 10000))
    stats = mono_stats(mixture)
    mono = mixture.mean(0)
    assert stats.mean == pytest.approx(mono.mean()) and stats.std == pytest.approx(mono.std(ddof=1))
    x = torch.from_numpy(mixture)
    z = normalize(x, stats)
    assert z.mean(0).mean() == pytest.approx(0, abs=1e-12) and z.mean(0).std() == pytest.approx(1)
    assert torch.allclose(denormalize(z, stats), x)


def test_mono_stats_rejects_silence_and_nan():
    with pytest.raises(ValueError, match="silent"):
        mono_stats(np.zeros((2, 100)), name="quiet song")
    bad = np.ones((2, 100))
    bad[0, 5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        mono_stats(bad)
    with pytest.raises(ValueError, match="channels, time"):
        mono_stats(np.zeros(100))


def test_mono_stats_of_one_sample_is_a_clear_error_without_a_torch_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(AudioError, match="1 sample long"):
            mono_stats(np.array([[0.1], [0.2]]))


def test_mono_stats_floors_the_std_of_channels_that_cancel():
    """R = -L: the mono mix is rounding noise; its std must not scale the input 10^6 times."""
    rng = np.random.default_rng(0)
    left = rng.normal(0, 0.2, 44100)
    opposite = np.stack([left, -left + rng.normal(0, 3e-7, left.size)])
    stats = mono_stats(opposite)
    assert stats.std == pytest.approx(MONO_STD_FLOOR * opposite.std(ddof=1), rel=1e-6)
    assert float(normalize(torch.from_numpy(opposite), stats).abs().max()) < 50      # not ~10^6
    music = np.stack([left, 0.8 * left + rng.normal(0, 0.05, left.size)])            # channels that agree
    assert mono_stats(music).std == pytest.approx(music.mean(0).std(ddof=1))         # the floor changes nothing


def test_cache_is_lossless_and_read_once(toy_root, tmp_path):
    track = get_musdb_tracks(toy_root, "test")[0]
    first = cache_track(track, tmp_path)
    mixture, sources = read_track(track)
    assert torch.equal(first.mixture(), torch.from_numpy(mixture))
    assert torch.equal(first.sources(), torch.from_numpy(sources))
    assert first.stats == mono_stats(mixture)
    mtime = os.stat(first.path).st_mtime_ns
    again = cache_track(track, tmp_path)
    assert again.path == first.path and os.stat(again.path).st_mtime_ns == mtime


def halve_and_cache_again(toy_root, tmp_path, filename):
    """Cache a test track of a copy of ``toy_root``, halve its file ``filename``, cache it again: both, and the
    halved samples (int16, (time, channels))."""
    root = tmp_path / "root"
    shutil.copytree(toy_root, root)
    track = get_musdb_tracks(root, "test")[0]
    first = cache_track(track, tmp_path / "cache")
    path = root / "test" / track.name / filename
    audio, rate = sf.read(path, dtype="int16")
    sf.write(path, audio // 2, rate, subtype="PCM_16")
    return first, cache_track(get_musdb_tracks(root, "test")[0], tmp_path / "cache"), audio // 2


def test_a_changed_file_is_read_again(toy_root, tmp_path):
    first, second, _ = halve_and_cache_again(toy_root, tmp_path, "mixture.wav")
    assert second.path != first.path
    assert second.stats.std == pytest.approx(first.stats.std / 2, rel=1e-3)


def test_stride_extracts_are_normalised_slices(cached):
    segment, stride = 3 * SAMPLE_RATE, SAMPLE_RATE
    dataset = ExtractDataset(cached, segment, stride=stride)
    expected = sum((t.length - segment) // stride + 1 for t in cached)
    assert len(dataset) == expected
    track_index, offset = dataset.index[5]
    track = cached[track_index]
    item = dataset[5]
    assert item.shape == (len(SOURCES), 2, segment) and item.dtype == torch.float32
    raw = track.sources()[..., offset: offset + segment]
    assert torch.allclose(item, (raw - track.stats.mean) / track.stats.std, atol=1e-6)
    # the stride mode is the same every epoch
    dataset.set_epoch(3)
    assert dataset.index[5] == (track_index, offset)


def test_a_track_shorter_than_the_segment_gives_one_padded_extract(cached):
    segment = cached[0].length + 1000
    dataset = ExtractDataset(cached[:1], segment, stride=SAMPLE_RATE, normalize=False)
    assert len(dataset) == 1
    item = dataset[0]
    assert item.shape[-1] == segment
    assert torch.equal(item[..., -1000:], torch.zeros(4, 2, 1000))
    assert torch.equal(item[..., :-1000], cached[0].sources())


def test_random_extracts_per_minute(cached):
    segment = 2 * SAMPLE_RATE
    dataset = ExtractDataset(cached, segment, per_minute=30, seed=1)
    per_track = [max(1, round(t.length / SAMPLE_RATE / 60 * 30)) for t in cached]
    assert len(dataset) == sum(per_track)
    first = list(dataset.index)
    dataset.set_epoch(1)
    assert dataset.index != first
    dataset.set_epoch(0)
    assert dataset.index == first  # the same seed and epoch give the same extracts
    assert all(0 <= o <= cached[t].length - segment for t, o in dataset.index)


def test_extract_dataset_arguments():
    with pytest.raises(DatasetError, match="no tracks"):
        ExtractDataset([], 100, stride=10)


def test_extract_dataset_needs_one_mode(cached):
    with pytest.raises(ValueError, match="exactly one of stride"):
        ExtractDataset(cached, 100)
    with pytest.raises(ValueError, match="exactly one of stride"):
        ExtractDataset(cached, 100, stride=10, per_minute=1)


def test_dataloader_with_workers(cached):
    dataset = ExtractDataset(cached, SAMPLE_RATE, stride=SAMPLE_RATE)
    loader = torch.utils.data.DataLoader(dataset, batch_size=4, shuffle=True, num_workers=2, drop_last=True)
    batches = list(loader)
    assert len(batches) == len(dataset) // 4
    assert batches[0].shape == (4, 4, 2, SAMPLE_RATE)


def test_an_edited_stem_is_read_again(toy_root, tmp_path):
    """The cache key covers every file of the track, not only mixture.wav (MUSDB18-HQ layout)."""
    track = get_musdb_tracks(toy_root, "test")[0]
    assert {p.name for p in track_files(track)} == {"mixture.wav", *(f"{name}.wav" for name in SOURCES)}
    first, second, halved = halve_and_cache_again(toy_root, tmp_path, "vocals.wav")
    assert second.path != first.path
    vocals = SOURCES.index("vocals")
    assert torch.equal(second.sources()[vocals], torch.from_numpy(halved.T.astype(np.float32) / 32768))
    assert torch.equal(second.sources()[:vocals], first.sources()[:vocals])


def cut_short(path):
    data = path.read_bytes()
    path.write_bytes(data[:data.index(b"data") + 8 + 4 * 100])      # the header, and 100 stereo 16-bit frames


def with_nan(path):
    audio, rate = sf.read(path, dtype="float32")
    audio[10, 0] = np.nan
    sf.write(path, audio, rate, subtype="FLOAT")


@pytest.mark.parametrize("damage, words", [
    (cut_short, r"bass\.wav is cut short: its header declares \d+ frames but the file holds 100"),
    (lambda path: path.write_bytes(b"RIFF" + bytes(400)), r"bass\.wav cannot be read as a WAV file"),
    (lambda path: sf.write(path, np.full((1000, 5), 0.1), SAMPLE_RATE), r"bass\.wav is 44100 Hz with 5 channel"),
    (with_nan, r"bass\.wav holds NaN"),
], ids=["cut-short", "corrupt", "5-channels", "nan"])
def test_a_damaged_stem_is_a_dataset_error_naming_it(toy_root, tmp_path, damage, words):
    """Before: a stem cut short silently shortened the track, a NaN became 0 (musdb decodes to 16 bits), five
    channels were cropped, a corrupt file was a traceback from deep inside stempeg."""
    root = tmp_path / "root"
    shutil.copytree(toy_root, root)
    name = get_musdb_tracks(root, "test")[0].name
    damage(root / "test" / name / "bass.wav")
    with pytest.raises(DatasetError, match=words):
        read_track(get_musdb_tracks(root, "test")[0])
