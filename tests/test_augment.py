"""Chapter 2: each augmentation's invariant, its eval-mode behaviour and its errors."""

import pytest
import torch

from demucs_course.augment import (FlipChannels, FlipSign, Remix, Repitch, Shift, default_augment, mix_sources, repitch,
                                   resample_fft, time_stretch)


def batch(b=8, s=4, c=2, t=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, s, c, t, generator=g)


def test_flip_sign_keeps_magnitudes_and_flips_whole_sources():
    torch.manual_seed(0)
    x = batch()
    y = FlipSign().train()(x)
    assert torch.equal(y.abs(), x.abs())
    # each (item, source) is either x or -x as a whole: never a per-sample or per-channel mix
    same = (y == x).flatten(2).all(-1)
    flipped = (y == -x).flatten(2).all(-1)
    assert torch.all(same ^ flipped)
    assert same.any() and flipped.any()  # 32 independent draws: both outcomes appear


def test_flip_channels_swaps_whole_sources_or_nothing():
    torch.manual_seed(1)
    x = batch()
    y = FlipChannels().train()(x)
    same = (y == x).flatten(2).all(-1)
    swapped = (y == x.flip(2)).flatten(2).all(-1)
    assert torch.all(same | swapped)
    assert (same & ~swapped).any() and (swapped & ~same).any()


def test_flip_channels_leaves_mono_alone():
    x = batch(c=1)
    assert torch.equal(FlipChannels().train()(x), x)


def test_shift_crops_a_random_window_per_source():
    torch.manual_seed(2)
    shift = 10
    x = torch.arange(64.0).expand(8, 4, 2, 64).clone()
    x[:, :, 1] += 1000  # make the channels differ
    y = Shift(shift).train()(x)
    assert y.shape == (8, 4, 2, 64 - shift)
    offsets = y[:, :, 0, 0]
    assert offsets.min() >= 0 and offsets.max() < shift
    # a contiguous window, the same offset on both channels
    expected = offsets[..., None] + torch.arange(64 - shift)
    assert torch.equal(y[:, :, 0], expected)
    assert torch.equal(y[:, :, 1], expected + 1000)
    assert len(offsets.unique()) > 1


def test_shift_eval_only_crops_and_is_deterministic():
    x = batch()
    shift = Shift(16).eval()
    assert torch.equal(shift(x), x[..., :48])
    assert torch.equal(shift(x), shift(x))


def test_shift_errors():
    with pytest.raises(ValueError, match="longer than 16"):
        Shift(16).train()(batch(t=16))
    with pytest.raises(ValueError, match="shift >= 0"):
        Shift(-1)
    assert torch.equal(Shift(0).train()(batch()), batch())


def test_remix_permutes_each_source_within_groups():
    torch.manual_seed(3)
    b, s = 8, 4
    # every (item, source) is a constant signal equal to 10 * item + source: easy to trace
    x = (10 * torch.arange(b)[:, None] + torch.arange(s)[None, :]).float()[..., None, None].expand(b, s, 2, 16).clone()
    y = Remix(group_size=4).train()(x)
    assert y.shape == x.shape
    origin = y[:, :, 0, 0]
    item = torch.div(origin, 10, rounding_mode="floor")
    assert torch.equal(origin - 10 * item, torch.arange(s).float().expand(b, s))  # a source stays that source
    for group in range(b // 4):
        rows = item[4 * group: 4 * group + 4]
        for source in range(s):
            # a permutation of the group's own items
            assert sorted(rows[:, source].tolist()) == list(range(4 * group, 4 * group + 4))
    assert not torch.equal(y, x)


def test_remix_rejects_a_batch_not_divisible_by_the_group():
    with pytest.raises(ValueError, match="multiple of 4.*batch size of 4"):
        Remix(4).train()(batch(b=6))


def test_eval_mode_is_the_identity_except_shift():
    x = batch()
    for module in (FlipSign(), FlipChannels(), Remix(4)):
        assert torch.equal(module.eval()(x), x)


def test_augmentations_need_a_batch_axis():
    for module in (FlipSign(), FlipChannels(), Shift(4), Remix(4)):
        with pytest.raises(ValueError, match=r"unsqueeze\(0\)"):
            module(torch.zeros(4, 2, 32))


def test_default_pipeline_and_mixture_is_sum_of_augmented_sources():
    torch.manual_seed(4)
    augment = default_augment(shift=8, group_size=4)
    assert [type(m).__name__ for m in augment] == ["FlipSign", "FlipChannels", "Shift", "Remix"]
    sources = augment.train()(batch())
    assert sources.shape == (8, 4, 2, 56)
    mix = mix_sources(sources)
    assert mix.shape == (8, 2, 56)
    assert torch.allclose(mix, sources[:, 0] + sources[:, 1] + sources[:, 2] + sources[:, 3])


def test_augmentations_are_reproducible_with_the_seed():
    augment = default_augment(shift=8).train()
    torch.manual_seed(5)
    a = augment(batch())
    torch.manual_seed(5)
    b = augment(batch())
    assert torch.equal(a, b)


# --- Repitch: pitch and tempo -------------------------------------------------------------------------------------

SR = 44100


def _sine(freq: float, seconds: float = 1.5, channels: int = 2) -> torch.Tensor:
    t = torch.arange(int(SR * seconds), dtype=torch.float64) / SR
    return torch.sin(2 * torch.pi * freq * t).float().expand(channels, -1).clone()


def _peak_hz(x: torch.Tensor) -> float:
    """The frequency of the strongest FFT bin of a (windowed) signal, refined by parabolic interpolation."""
    spec = torch.fft.rfft(x.double() * torch.hann_window(x.shape[-1], dtype=torch.float64)).abs()
    k = int(spec.argmax())
    a, b, c = spec[k - 1].log(), spec[k].log(), spec[k + 1].log()
    return (k + 0.5 * float((a - c) / (a - 2 * b + c))) * SR / x.shape[-1]


@pytest.mark.parametrize("rate", [0.88, 0.95, 1.0 + 1e-3, 1.12, 1.5])
def test_time_stretch_keeps_the_pitch_and_the_loudness_of_a_tone(rate):
    x = _sine(440.0)
    y = time_stretch(x, rate)
    assert y.shape == (2, round(x.shape[-1] / rate))
    steady = y[0, 4096:-4096]                        # past the frames that overlap the edges
    assert abs(_peak_hz(steady) - 440.0) < 0.5
    rms = steady.unfold(0, 2048, 2048).pow(2).mean(-1).sqrt()
    assert torch.allclose(rms, torch.full_like(rms, 2 ** -0.5), atol=0.02), rms   # no phase cancellation


def test_resample_fft_moves_a_tone_by_the_length_ratio():
    x = _sine(1000.0)
    y = resample_fft(x, round(x.shape[-1] / 1.1))     # played 1.1 times faster: 1100 Hz
    assert abs(_peak_hz(y[0]) - 1100.0) < 1.0
    assert abs(float(y[0].abs().max()) - 1) < 0.02


@pytest.mark.parametrize("semitones,tempo", [(2, 0), (-2, 0), (0, 12), (0, -12), (1, 5), (-2, 12)])
def test_repitch_gives_the_pitch_and_the_length_asked_for(semitones, tempo):
    x = _sine(440.0, seconds=2.0)
    y = repitch(x, semitones, tempo)
    assert y.shape[-1] == round(x.shape[-1] / (1 + tempo / 100))
    assert abs(_peak_hz(y[0, 4096:-4096]) - 440.0 * 2 ** (semitones / 12)) < 1.0
    assert abs(float(y[0, 4096:-4096].abs().max()) - 1) < 0.03


def test_repitch_module_cuts_every_example_to_one_length_and_changes_some():
    torch.manual_seed(0)
    module = Repitch(proba=0.5)
    length = module.input_length(30_000)
    assert module.output_length(length) >= 30_000 and module.output_length(length - 1) < 30_000
    wav = torch.randn(8, 4, 2, length)
    out = module.train()(wav)
    assert out.shape == (8, 4, 2, module.output_length(length))
    unchanged = [bool(torch.equal(out[i], wav[i, ..., :out.shape[-1]])) for i in range(8)]
    assert 0 < sum(unchanged) < 8                    # some examples were changed, some not
    assert torch.equal(module.eval()(wav), wav[..., :out.shape[-1]])
    assert torch.equal(Repitch(proba=0.0).train()(wav), wav[..., :out.shape[-1]])


def test_repitch_changes_every_source_of_an_example_alike():
    torch.manual_seed(3)
    tone = _sine(440.0, seconds=1.0)
    wav = torch.stack([tone, 0.5 * tone, -tone, 0.25 * tone])[None].expand(4, -1, -1, -1).contiguous()
    out = Repitch(proba=1.0).train()(wav)
    for i in range(4):                                # the same stretch on each source: the ratios stay (to float32
        torch.testing.assert_close(out[i, 1], 0.5 * out[i, 0], atol=1e-3, rtol=0)   # rounding of the phases)
        torch.testing.assert_close(out[i, 2], -out[i, 0], atol=1e-3, rtol=0)
    assert not torch.equal(out[0, 0], out[1, 0])      # and examples differ


def test_repitch_rejects_bad_settings_and_input():
    with pytest.raises(ValueError, match="proba"):
        Repitch(proba=1.5)
    with pytest.raises(ValueError, match="max_tempo"):
        Repitch(max_tempo=100)
    with pytest.raises(ValueError, match="batch"):
        Repitch()(torch.zeros(4, 2, 1000))
    with pytest.raises(ValueError, match="rate"):
        time_stretch(torch.zeros(2, 1000), 0.0)


def test_default_augment_puts_repitch_first_when_asked():
    assert isinstance(default_augment(100, 4, repitch=0.2)[0], Repitch)
    assert not any(isinstance(m, Repitch) for m in default_augment(100, 4))
