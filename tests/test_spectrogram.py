"""Tests of demucs_course.spectrogram (Chapter 10): the STFT, Open-Unmix and the multichannel Wiener filter.

The reference is the ``openunmix`` package, version 1.3.0, from PyPI. It declares a dependency on torchaudio, which
the course does not install (its versions pin one exact torch). Its model, Wiener filter and STFT never call
torchaudio, though ``openunmix.transforms`` and ``openunmix.utils`` import it at the top (only its audio I/O and
resampling use it). So ``course.sh`` installs it with ``pip install --no-deps -r requirements-nodeps.txt``, and the
``umx`` fixture below imports it with an empty ``torchaudio`` module in ``sys.modules`` (removed again right after,
when torchaudio itself is absent).
"""

import importlib.util
import itertools
import sys
import types

import numpy as np
import pytest
import torch

from demucs_course import InputError
from demucs_course.spectrogram import (OpenUnmix, SpectrogramError, bandwidth_to_max_bin,
                                       expectation_maximization, istft, magnitude, separate, stft, wiener)


@pytest.fixture(scope="module")
def umx():
    """The reference package's modules: ``umx.model``, ``umx.filtering``, ``umx.transforms``, ``umx.utils``."""
    stub = None
    if importlib.util.find_spec("torchaudio") is None:
        stub = sys.modules.setdefault("torchaudio", types.ModuleType("torchaudio"))
    try:
        from openunmix import filtering, model, transforms, utils
    except ModuleNotFoundError as error:
        if error.name != "openunmix":
            raise
        pytest.fail("the reference package openunmix 1.3.0 is missing: run `bash course.sh test` once, or "
                    ".venv/bin/pip install --no-deps -r requirements-nodeps.txt", pytrace=False)
    finally:
        if stub is not None and sys.modules.get("torchaudio") is stub:
            del sys.modules["torchaudio"]
    return types.SimpleNamespace(model=model, filtering=filtering, transforms=transforms, utils=utils)


def _close(actual, expected, rtol=1e-5):
    """Equal up to ``rtol`` of the largest value (the issue's "1e-5 relative"); returns the max abs difference."""
    diff = float((actual - expected).detach().abs().max())
    assert actual.shape == expected.shape
    assert diff <= rtol * float(expected.detach().abs().max()) + 1e-12, diff
    return diff


# --------------------------------------------------------------------------------------------------------------
# The STFT
# --------------------------------------------------------------------------------------------------------------


def test_stft_shape_and_round_trip():
    audio = torch.randn(2, 2, 10000, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    spec = stft(audio)
    assert spec.shape == (2, 2, 2049, 1 + 10000 // 1024) and spec.is_complex()
    assert torch.allclose(istft(spec, audio.shape[-1]), audio, atol=1e-10)
    small = stft(audio, n_fft=256, n_hop=64, center=False)
    assert small.shape == (2, 2, 129, 1 + (10000 - 256) // 64)
    assert torch.equal(magnitude(spec), spec.abs())


def test_stft_is_open_unmix_transform(umx):
    """Equal to openunmix's TorchSTFT (centred for separation, not centred for training) and its inverse."""
    audio = torch.randn(1, 2, 5000, generator=torch.Generator().manual_seed(1))
    for center in (True, False):
        encoder, decoder = umx.transforms.make_filterbanks(n_fft=512, n_hop=128, center=center)
        ours = stft(audio, n_fft=512, n_hop=128, center=center)
        assert torch.allclose(torch.view_as_real(ours), encoder(audio), atol=1e-5)
    back = istft(ours := stft(audio, n_fft=512, n_hop=128), 4000, n_fft=512, n_hop=128)
    encoder, decoder = umx.transforms.make_filterbanks(n_fft=512, n_hop=128, center=True)
    assert torch.allclose(back, decoder(torch.view_as_real(ours), length=4000), atol=1e-6)


def test_max_bin_of_16_khz(umx):
    assert bandwidth_to_max_bin(44100, 4096, 16000) == 1487
    for rate, n_fft, bandwidth in [(44100, 4096, 16000), (44100, 2048, 11000), (16000, 512, 8000), (44100, 64, 0)]:
        assert bandwidth_to_max_bin(rate, n_fft, bandwidth) == umx.utils.bandwidth_to_max_bin(rate, n_fft, bandwidth)


# --------------------------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------------------------


def test_parameter_count_of_umxhq_setting(umx):
    """8,893,348 parameters at nb_bins 2049, stereo, hidden 512, 3 layers, max_bin 1487, as the reference."""
    args = dict(nb_bins=2049, nb_channels=2, hidden_size=512, nb_layers=3, max_bin=1487)
    ours = sum(p.numel() for p in OpenUnmix(**args).parameters())
    assert ours == 8_893_348
    assert ours == sum(p.numel() for p in umx.model.OpenUnmix(**args).parameters())


def test_same_seed_same_initial_weights(umx):
    args = dict(nb_bins=65, nb_channels=2, hidden_size=16, nb_layers=2, max_bin=40,
                input_mean=np.linspace(0, 1, 65), input_scale=np.linspace(0.5, 2, 65))
    torch.manual_seed(3)
    ref = umx.model.OpenUnmix(**args).state_dict()
    torch.manual_seed(3)
    ours = OpenUnmix(**args).state_dict()
    assert list(ours) == list(ref)
    assert all(torch.equal(ours[k], ref[k]) for k in ref)


def _perturbed_reference(umx, seed, **args):
    """A reference model whose every parameter and batch-norm statistic moved away from its initial value."""
    torch.manual_seed(seed)
    ref = umx.model.OpenUnmix(nb_bins=65, nb_channels=2, hidden_size=16, input_mean=np.random.rand(65),
                              input_scale=np.random.rand(65) + 0.5, **args)
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(0.2 * torch.randn_like(p))
        for bn in (ref.bn1, ref.bn2, ref.bn3):
            bn.running_mean.normal_()
            bn.running_var.uniform_(0.5, 2)
    return ref


@pytest.mark.parametrize("max_bin,unidirectional,nb_layers", [(None, False, 3), (40, False, 3), (40, True, 2),
                                                              (None, True, 1)])
def test_state_dict_from_openunmix_gives_same_output(umx, max_bin, unidirectional, nb_layers):
    args = dict(max_bin=max_bin, unidirectional=unidirectional, nb_layers=nb_layers)
    ref = _perturbed_reference(umx, seed=nb_layers, **args)
    ours = OpenUnmix(nb_bins=65, nb_channels=2, hidden_size=16, **args)
    ours.load_state_dict(ref.state_dict())
    x = torch.rand(3, 2, 65, 9, generator=torch.Generator().manual_seed(4), requires_grad=True)
    ref.eval(), ours.eval()
    _close(ours(x), ref(x))
    # training mode too: batch statistics, and the LSTM's dropout draws the same numbers from the same seed
    ref.train(), ours.train()
    torch.manual_seed(5)
    expected = ref(x)
    torch.manual_seed(5)
    actual = ours(x)
    _close(actual, expected)
    _close(torch.autograd.grad(actual.sum(), x)[0], torch.autograd.grad(expected.sum(), x)[0])


def test_output_is_a_nonnegative_mask_of_the_mixture():
    model = OpenUnmix(nb_bins=33, nb_channels=2, hidden_size=8, nb_layers=1, max_bin=20).eval()
    x = torch.rand(2, 2, 33, 6)
    x[..., 3] = 0                                     # a silent frame stays silent
    y = model(x)
    assert y.shape == x.shape
    assert (y >= 0).all() and (y[..., 3] == 0).all() and (y[..., :3] > 0).any()


# --------------------------------------------------------------------------------------------------------------
# The Wiener filter
# --------------------------------------------------------------------------------------------------------------


def _spectrograms(channels=2, sources=3, dtype=torch.float64, seed=0, frames=6, bins=5):
    g = torch.Generator().manual_seed(seed)
    targets = 3 * torch.rand(frames, bins, channels, sources, generator=g, dtype=dtype)
    mix = 30 * torch.randn(frames, bins, 2, 2, generator=g, dtype=dtype)
    return targets, mix


@pytest.mark.parametrize("iterations,softmask,residual", itertools.product([0, 1, 2], [False, True], [False, True]))
def test_wiener_equals_openunmix(umx, iterations, softmask, residual):
    targets, mix = _spectrograms()
    expected = umx.filtering.wiener(targets.clone(), mix.clone(), iterations, softmask=softmask, residual=residual)
    _close(wiener(targets, mix, iterations, softmask=softmask, residual=residual), expected)


@pytest.mark.parametrize("channels,dtype", [(1, torch.float64), (2, torch.float32)])
def test_wiener_equals_openunmix_mono_targets_and_float32(umx, channels, dtype):
    targets, mix = _spectrograms(channels=channels, dtype=dtype, seed=2)
    expected = umx.filtering.wiener(targets.clone(), mix.clone(), 2, residual=True)
    actual = wiener(targets, mix, 2, residual=True)
    assert actual.dtype == dtype
    _close(actual, expected)


def test_expectation_maximization_equals_openunmix_in_frame_batches(umx):
    g = torch.Generator().manual_seed(3)
    y = torch.randn(7, 4, 2, 2, 3, generator=g, dtype=torch.float64)
    x = torch.randn(7, 4, 2, 2, generator=g, dtype=torch.float64)
    y_ref, v_ref, R_ref = umx.filtering.expectation_maximization(y.clone(), x.clone(), 2, batch_size=3)
    y_ours, v_ours, R_ours = expectation_maximization(y, x, 2, batch_size=3)
    _close(y_ours, y_ref), _close(v_ours, v_ref), _close(R_ours, torch.stack(R_ref, dim=-1))
    _close(expectation_maximization(y, x, 2, batch_size=None)[0], y_ours)   # batches change nothing


def test_wiener_estimates_add_up_to_the_mixture_and_leave_it_untouched():
    targets, mix = _spectrograms(seed=4)
    mix[0, 0] = 0                                     # openunmix 1.3.0 would write 1 into this bin's real part
    kept = mix.clone()
    for iterations in (0, 1):
        y = wiener(targets, mix, iterations, residual=True)
        _close(y.sum(dim=-1), mix, rtol=1e-4)        # exactly at 0 iterations; up to the diagonal load after
    assert torch.equal(mix, kept)


# --------------------------------------------------------------------------------------------------------------
# Separation, end to end
# --------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("niter,softmask,residual,win", [(0, False, False, None), (1, False, True, 5),
                                                         (2, True, False, 300)])
def test_separate_equals_openunmix_separator(umx, niter, softmask, residual, win):
    torch.manual_seed(6)
    models = {name: umx.model.OpenUnmix(nb_bins=129, nb_channels=2, hidden_size=16, nb_layers=1).eval()
              for name in ("vocals", "other")}
    with torch.no_grad():
        for m in models.values():
            m.output_mean.uniform_(0, 1)
    audio = torch.randn(2, 2, 3000, generator=torch.Generator().manual_seed(7))
    reference = umx.model.Separator(models, niter=niter, softmask=softmask, residual=residual, n_fft=256, n_hop=64,
                                    wiener_win_len=win)
    with torch.no_grad():
        expected = reference(audio.clone())
        actual = separate(audio, models, niter=niter, softmask=softmask, residual=residual, wiener_win_len=win,
                          n_fft=256, n_hop=64)
    assert actual.shape == (2, 2 + residual, 2, 3000)
    _close(actual, expected)


# --------------------------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------------------------


def _raises(call, match):
    with pytest.raises(SpectrogramError, match=match) as info:
        call()
    assert isinstance(info.value, InputError)


def test_bad_input_is_refused_with_a_clear_error():
    model = OpenUnmix(nb_bins=33, nb_channels=2, hidden_size=8, nb_layers=1)
    _raises(lambda: model(torch.rand(1, 1, 33, 4)), "built for 2 channel")
    _raises(lambda: model(torch.rand(1, 2, 32, 4)), "built for 33 bins")
    _raises(lambda: model(torch.rand(1, 2, 33, 1)), "more than one frame")
    _raises(lambda: model(torch.full((1, 2, 33, 4), float("nan"))), "NaN")
    _raises(lambda: OpenUnmix(nb_bins=33, input_scale=np.zeros(33)), "positive")
    _raises(lambda: stft(torch.randn(2, 2000)), "at least 2049")
    _raises(lambda: stft(torch.randn(2, 3000), center=False), "at least 4096")
    _raises(lambda: stft(torch.tensor([[0.0, float("nan")] * 3000])), "NaN")
    _raises(lambda: istft(torch.randn(2, 2049, 5)), "complex")
    targets, mix = _spectrograms()
    _raises(lambda: wiener(targets[:, :4], mix), "does not fit")
    _raises(lambda: wiener(-targets, mix), ">= 0")
    _raises(lambda: wiener(targets, torch.view_as_complex(mix.contiguous())), "view_as_real")
    _raises(lambda: wiener(targets, mix, iterations=-1), "iterations")
    _raises(lambda: separate(torch.randn(1, 2, 5000), {"vocals": model.eval()}, n_fft=64, n_hop=16), "two targets")
