"""Chapter 2: each augmentation's invariant, its eval-mode behaviour and its errors."""

import pytest
import torch

from demucs_course.augment import FlipChannels, FlipSign, Remix, Shift, default_augment, mix_sources


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
