"""Demucs v1 (Chapters 3-6): shapes, lengths, parameter counts and the init trick, against the reference's numbers.

Runtime checks use models with a few channels; the full-size counts are taken on the meta device (no memory).
"""

import math

import numpy as np
import pytest
import torch
from torch import nn

from demucs_course.model import (BLSTM, TINY, Demucs, center_trim, count_parameters, parameter_breakdown,
                                 rescale_module, tiny_demucs)


def meta_demucs(**kwargs) -> Demucs:
    with torch.device("meta"):
        return Demucs(**kwargs)


def small(**kwargs) -> Demucs:
    """Fast to run: 4 channels, depth 3, one BiLSTM layer, unless overridden."""
    return Demucs(**{"channels": 4, "depth": 3, "lstm_layers": 1, **kwargs})


def accepts(model: Demucs, length: int) -> bool:
    try:
        model.lengths(length)
        return True
    except ValueError:
        return False


# --- lengths ---------------------------------------------------------------------------------------------------


def test_pinned_lengths_at_the_defaults():
    model = meta_demucs()
    assert model.valid_length(441000) == 451924
    assert model.valid_length(44100) == 58708
    encoded, decoded = model.lengths(451924)
    assert encoded == [112980, 28244, 7060, 1764, 440, 109]
    assert decoded == [432, 1724, 6892, 27564, 110252, 441004]
    assert meta_demucs(context=1).valid_length(441000) == 443732


def test_valid_length_of_one_sample_at_the_defaults():
    model = meta_demucs()
    # The reference formula gives 17748 (bottleneck of 3 frames, the decoder's context). 13652 (a bottleneck of
    # 2 frames) is too short for a context-3 convolution, and is refused.
    assert model.valid_length(1) == 17748
    assert model.lengths(17748)[0][-1] == 3
    assert model.lengths(17748)[1][-1] == 6828   # 3 -> 1 -> 8 -> 6 -> 28 ... -> 6828
    assert not accepts(model, 13652)
    with pytest.raises(ValueError, match="too short"):
        model.lengths(13652)


def test_depth_6_forward_gives_the_pinned_output_length():
    model = Demucs(channels=4, lstm_layers=1)      # lengths do not depend on the channel count
    # oneDNN stalls for seconds on its first transposed convolution over 110250 frames (the last layer's input
    # here); PyTorch's own kernel does not.
    torch.backends.mkldnn.enabled = False
    try:
        with torch.no_grad():
            out = model(torch.randn(1, 2, 451924))
    finally:
        torch.backends.mkldnn.enabled = True
    assert out.shape == (1, 4, 2, 441004)


@pytest.mark.parametrize("kwargs", [dict(), dict(context=1), dict(depth=2, context=5), dict(rewrite=False)])
def test_valid_length_is_the_smallest_accepted_input_long_enough(kwargs):
    model = meta_demucs(channels=4, depth=kwargs.pop("depth", 3), lstm_layers=0, **kwargs)
    for length in range(1, 1200, 7):
        n = model.valid_length(length)
        assert n >= length and accepts(model, n)
        assert model.lengths(n)[1][-1] >= length
        shorter = [m for m in range(1, n) if accepts(model, m) and model.lengths(m)[1][-1] >= length]
        assert shorter == []
        assert not accepts(model, n + 1) and not accepts(model, n - 1)


@pytest.mark.parametrize("length", [1, 2, 7, 8, 9, 63, 64, 65, 255, 256, 257, 1001, 4410, 12345])
def test_lengths_match_running_the_model(length):
    torch.manual_seed(0)
    model = small().eval()
    n = model.valid_length(length)
    seen = []
    hooks = [layer.register_forward_hook(lambda mod, inp, out: seen.append(out.size(-1)))
             for layer in [*model.encoder, *model.decoder]]
    with torch.no_grad():
        out = model(torch.randn(2, 2, n))
    for hook in hooks:
        hook.remove()
    encoded, decoded = model.lengths(n)
    assert seen == encoded + decoded
    assert out.shape == (2, 4, 2, decoded[-1])
    assert decoded[-1] >= length
    assert center_trim(out, length).size(-1) == length


# --- parameters ------------------------------------------------------------------------------------------------


def test_parameter_counts_equal_the_reference():
    parts = parameter_breakdown(meta_demucs(channels=64))
    assert parts["total"] == 265_679_496
    assert round(parts["encoder"] / 1e6, 1) == 33.5
    assert round(parts["decoder"] / 1e6, 1) == 55.9
    assert round(parts["lstm"] / 1e6, 1) == 176.2
    assert count_parameters(meta_demucs(channels=100)) == 648_548_208


def test_lstm_count_follows_the_lstm_formula():
    # Per direction and layer: 4 gates, each W_i (in x h), W_h (h x h) and two biases of h.
    h = 2048
    lstm = sum(2 * (4 * h * (n_in + h) + 8 * h) for n_in in (h, 2 * h))
    linear = 2 * h * h + h
    assert parameter_breakdown(meta_demucs(channels=64))["lstm"] == lstm + linear
    assert parameter_breakdown(meta_demucs(channels=64, lstm_layers=0))["lstm"] == 0


def test_state_dict_names_are_the_reference_ones():
    names = set(small().state_dict())
    for name in ("encoder.0.0.weight", "encoder.0.2.weight", "decoder.0.0.weight", "decoder.0.2.weight",
                 "decoder.2.2.bias", "lstm.lstm.weight_ih_l0", "lstm.lstm.weight_hh_l0_reverse",
                 "lstm.linear.weight"):
        assert name in names
    model = small()
    assert model.decoder[-1][2].out_channels == 8          # outermost: sources * audio_channels
    assert not isinstance(model.decoder[-1][-1], nn.ReLU)  # ... and linear
    assert all(isinstance(layer[-1], nn.ReLU) for layer in model.decoder[:-1])


# --- the init trick --------------------------------------------------------------------------------------------


def convs(model):
    return [m for m in model.modules() if isinstance(m, (nn.Conv1d, nn.ConvTranspose1d))]


def test_rescale_sets_every_conv_std_to_the_geometric_mean():
    torch.manual_seed(3)
    raw = small(channels=8, rescale=0)
    torch.manual_seed(3)
    model = small(channels=8, rescale=0.1)
    assert len(convs(model)) == 12
    for before, after in zip(convs(raw), convs(model)):
        std0 = before.weight.std().item()
        assert after.weight.std().item() == pytest.approx(math.sqrt(std0 * 0.1), abs=1e-5)
        scale = math.sqrt(std0 / 0.1)
        torch.testing.assert_close(after.bias, before.bias / scale)
    for name in ("lstm.lstm.weight_ih_l0", "lstm.lstm.bias_hh_l0", "lstm.linear.weight"):
        torch.testing.assert_close(model.state_dict()[name], raw.state_dict()[name], rtol=0, atol=0)


def test_rescale_zero_leaves_the_default_init():
    torch.manual_seed(5)
    model = small(rescale=0)
    torch.manual_seed(5)
    first = nn.Conv1d(2, 4, 8, 4)
    torch.testing.assert_close(model.encoder[0][0].weight, first.weight, rtol=0, atol=0)
    torch.testing.assert_close(model.encoder[0][0].bias, first.bias, rtol=0, atol=0)


def test_rescale_module_can_be_applied_later():
    torch.manual_seed(1)
    raw = small(rescale=0)
    torch.manual_seed(1)
    model = small(rescale=0.1)
    rescale_module(raw, reference=0.1)
    for a, b in zip(raw.state_dict().values(), model.state_dict().values()):
        torch.testing.assert_close(a, b)


def test_reference_init_example_at_channels_64():
    # The reference builds encoder layer i then decoder layer i; depth 2 already tells that order from
    # "all encoder layers, then all decoder layers", and its first draws are those of the full model.
    torch.manual_seed(0)
    raw = Demucs(channels=64, depth=2, lstm_layers=0, rescale=0)
    torch.manual_seed(0)
    model = Demucs(channels=64, depth=2, lstm_layers=0)
    assert raw.encoder[0][0].weight.std().item() == pytest.approx(0.14601, abs=5e-6)
    assert model.encoder[0][0].weight.std().item() == pytest.approx(0.12083, abs=5e-6)
    assert raw.decoder[-1][-1].weight.std().item() == pytest.approx(0.07162, abs=5e-6)
    assert model.decoder[-1][-1].weight.std().item() == pytest.approx(0.08463, abs=5e-6)


# --- running ---------------------------------------------------------------------------------------------------


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    model = small()
    mix = torch.randn(2, 2, model.valid_length(500))
    model(mix).pow(2).mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_same_seed_same_output():
    mix = torch.randn(1, 2, 2000)
    outs = []
    for seed in (0, 0, 1):
        torch.manual_seed(seed)
        model = small()
        with torch.no_grad():
            outs.append(model(mix[..., :model.valid_length(900)]))
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=0)
    assert not torch.allclose(outs[0], outs[2])


@pytest.mark.parametrize("kwargs, n_convs", [(dict(glu=False), 12), (dict(rewrite=False), 6),
                                             (dict(lstm_layers=0), 12), (dict(context=1), 12)])
def test_ablations_build_and_run(kwargs, n_convs):
    torch.manual_seed(0)
    model = small(**kwargs)
    assert len(convs(model)) == n_convs
    n = model.valid_length(3000)
    out = model(torch.randn(2, 2, n))
    assert out.shape == (2, 4, 2, model.lengths(n)[1][-1])
    assert out.size(-1) >= 3000
    glus = [m for m in model.modules() if isinstance(m, nn.GLU)]
    assert (len(glus) == 0) == (kwargs.get("glu") is False or kwargs.get("rewrite") is False)
    if kwargs.get("glu") is False:
        assert model.encoder[1][2].out_channels == model.encoder[1][0].out_channels   # 1x1 keeps ch channels
    if kwargs.get("lstm_layers") == 0:
        assert model.lstm is None
    if "context" in kwargs:
        assert model.decoder[0][0].kernel_size == (1,)


def test_tiny_configuration_is_small_and_runs():
    model = tiny_demucs()
    assert count_parameters(model) < 300_000
    assert tiny_demucs(glu=False).encoder[0][3].__class__ is nn.ReLU
    assert len(model.encoder) == TINY["depth"]
    out = model(torch.randn(1, 2, model.valid_length(4410)))
    assert out.shape[:3] == (1, 4, 2)


def test_blstm_keeps_batch_channel_time():
    blstm = BLSTM(6, layers=2)
    assert blstm(torch.randn(3, 6, 11)).shape == (3, 6, 11)


# --- center_trim -----------------------------------------------------------------------------------------------


def test_center_trim_even_and_odd():
    x = torch.arange(10.0)
    assert center_trim(x, 6).tolist() == [2, 3, 4, 5, 6, 7]
    assert center_trim(x, 7).tolist() == [1, 2, 3, 4, 5, 6, 7]          # odd: the extra sample from the right
    assert center_trim(x, torch.zeros(2, 5)).tolist() == [2, 3, 4, 5, 6]
    assert center_trim(x, 10).tolist() == x.tolist()
    with pytest.raises(ValueError, match="cannot lengthen"):
        center_trim(x, 11)


# --- bad input -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mix, message", [
    (torch.zeros(1, 1, 44), "2 audio channels"),
    (torch.zeros(2, 44), r"mix\[None\]"),
    (torch.zeros(1, 1, 2, 44), "shaped"),
    (torch.zeros(0, 2, 44), "empty"),
    (torch.zeros(1, 2, 0), "empty"),
    (torch.zeros(1, 2, 44, dtype=torch.int16), "floating point"),
    (np.zeros((1, 2, 44), dtype=np.float32), "torch.Tensor"),
])
def test_bad_input_shape_is_explained(mix, message):
    model = Demucs(channels=4, depth=1, lstm_layers=0)
    with pytest.raises(ValueError, match=message):
        model(mix)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_input_is_refused(bad):
    model = small()
    mix = torch.zeros(1, 2, model.valid_length(300))
    mix[0, 1, 17] = bad
    with pytest.raises(ValueError, match="NaN or infinite"):
        model(mix)


def test_invalid_length_says_how_to_pad():
    model = small()
    n = model.valid_length(1000)
    with pytest.raises(ValueError, match=rf"valid_length\(1001\) = {model.valid_length(1001)}"):
        model(torch.zeros(1, 2, 1001))
    with pytest.raises(ValueError, match="not a valid length"):
        model(torch.zeros(1, 2, n + 1))
    with pytest.raises(ValueError, match="too short"):
        model(torch.zeros(1, 2, 212))   # exact (212 -> 52 -> 12 -> 2 frames), but 2 frames < context 3


@pytest.mark.parametrize("kwargs", [dict(channels=0), dict(depth=2.5), dict(lstm_layers=-1), dict(rescale=-0.1)])
def test_bad_settings_are_refused(kwargs):
    with pytest.raises(ValueError, match="Demucs"):
        Demucs(**kwargs)


def test_valid_length_refuses_non_positive_lengths():
    with pytest.raises(ValueError, match="positive integer"):
        meta_demucs().valid_length(0)
