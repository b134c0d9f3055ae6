"""Oracle estimates (Chapter 1, Chapter 9): the STFT pair, IRM, IBM and the best scaled mixture."""

import numpy as np
import pytest
import torch

from demucs_course import oracles
from demucs_course.oracles import (best_scaled_mixture, ibm, ideal_binary_mask, ideal_phase_sensitive_mask,
                                   ideal_ratio_mask, irm, psf)

RATE = 44100


def sdr(reference, estimate) -> float:
    """10 log10(|s|^2 / |s - s_hat|^2) over the middle half, away from the edges."""
    s, e = np.asarray(reference, dtype=np.float64), np.asarray(estimate, dtype=np.float64)
    n = s.shape[-1]
    s, e = s[..., n // 4: 3 * n // 4], e[..., n // 4: 3 * n // 4]
    return 10 * np.log10(np.sum(s ** 2) / np.sum((s - e) ** 2))


def sine(freq, amplitude, length=RATE, phase=0.0):
    t = torch.arange(length, dtype=torch.float32) / RATE
    return amplitude * torch.sin(2 * torch.pi * freq * t + phase)


def noise_stems(length=20001, sources=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {f"s{j}": 0.2 * torch.randn(2, length, generator=g) for j in range(sources)}


@pytest.fixture
def disjoint():
    """A low and a high sine: spectra that do not overlap, so masks can separate them almost perfectly."""
    low = torch.stack([sine(110, 0.5), sine(110, 0.4, phase=0.3)])
    high = torch.stack([sine(6000, 0.3), sine(6000, 0.2, phase=1.0)])
    return {"low": low, "high": high}


@pytest.mark.parametrize("length", [3, 1001, 4096, 44101])
def test_stft_round_trip_is_the_identity(length):
    x = torch.randn(2, length, generator=torch.Generator().manual_seed(length))
    spec = oracles.stft(x)
    assert spec.shape == (2, oracles.N_FFT // 2 + 1, 1 + length // oracles.HOP_LENGTH)
    assert torch.allclose(oracles.istft(spec, length), x, atol=1e-5)


def test_stft_rejects_sizes_that_cannot_invert():
    with pytest.raises(ValueError, match="hop_length"):
        oracles.stft(torch.zeros(2, 100), n_fft=1024, hop_length=1024)
    with pytest.raises(ValueError, match="n_fft"):
        oracles.stft(torch.zeros(2, 100), n_fft=1)


def test_single_source_irm_gives_back_the_mixture():
    x = noise_stems(sources=1)["s0"]
    out = irm({"only": x})
    assert torch.allclose(out["only"], x, atol=1e-5)


@pytest.mark.parametrize("alpha", [1, 2])
def test_irm_masks_sum_to_one_and_estimates_sum_to_the_mixture(alpha):
    stems = noise_stems(sources=4)
    masks = ideal_ratio_mask(stems, alpha=alpha)
    assert masks.min() >= 0 and masks.max() <= 1
    assert torch.allclose(masks.sum(0), torch.ones(()), atol=1e-5)
    estimates = irm(stems, alpha=alpha)
    mixture = sum(stems.values())
    assert torch.allclose(sum(estimates.values()), mixture, atol=1e-5)
    # and the estimates are not simply the mixture split evenly
    assert not torch.allclose(estimates["s0"], mixture / 4, atol=1e-2)


def test_alpha_sets_the_share_of_proportional_sources():
    # s2 = 0.5 s1 has the same spectrum shape, so M_1 = 1 / (1 + 0.5^alpha) in every bin.
    s1 = noise_stems(sources=1, seed=3)["s0"]
    stems = torch.stack([s1, 0.5 * s1])
    mixture = 1.5 * s1
    irm1 = irm(stems, alpha=1)  # masks 2/3 and 1/3: exact recovery
    assert torch.allclose(irm1[0], s1, atol=1e-5) and torch.allclose(irm1[1], 0.5 * s1, atol=1e-5)
    irm2 = irm(stems, alpha=2)  # masks 1/1.25 and 0.25/1.25
    assert torch.allclose(irm2[0], mixture / 1.25, atol=1e-5)
    assert torch.allclose(irm2[1], mixture * 0.25 / 1.25, atol=1e-5)
    ibm1 = ibm(stems)  # |S1|/|X| = 2/3 > 0.5 takes every bin, |S2|/|X| = 1/3 none
    assert torch.allclose(ibm1[0], mixture, atol=1e-5) and torch.allclose(ibm1[1], torch.zeros(()), atol=1e-6)


def test_ibm_masks_are_binary_and_split_disjoint_sources(disjoint):
    masks = ideal_binary_mask(disjoint)
    assert set(masks.unique().tolist()) == {0.0, 1.0}
    # away from the clip's abrupt edges, every bin that carries the mixture's energy (above -60 dB) goes to exactly
    # one source; in the noise floor between the sines leakage of both may cancel and both may exceed half the mix
    masks = masks[..., 2:-2]
    magnitude = oracles.stft(sum(disjoint.values())).abs()[..., 2:-2]
    loud = magnitude > 1e-3 * magnitude.max()
    assert loud.sum() > 100
    assert torch.equal(masks.sum(0)[loud], torch.ones(int(loud.sum())))
    assert masks[0][loud].sum() > 0 and masks[1][loud].sum() > 0


def test_ibm_ratio_is_against_the_mixture_so_cancelling_sources_share_bins():
    # sigsep's IBM compares each source with the mixture: with s2 = -0.8 s1, |X| = 0.2 |S1| and both sources
    # exceed theta * |X|, so both take every bin (a ratio against the sum of the sources would not).
    s1 = noise_stems(sources=1, seed=4)["s0"]
    masks = ideal_binary_mask(torch.stack([s1, -0.8 * s1]))
    assert masks.mean() > 0.99


@pytest.mark.parametrize("oracle", [irm, ibm, psf])
def test_masks_recover_sources_with_disjoint_spectra(oracle, disjoint):
    estimates = oracle(disjoint)
    for name, reference in disjoint.items():
        assert sdr(reference, estimates[name]) > 30, name
    # the best scaled mixture, with no separating power, stays poor on the same input
    scaled = best_scaled_mixture(disjoint)
    assert max(sdr(r, scaled[n]) for n, r in disjoint.items()) < 10


@pytest.mark.parametrize("oracle", [irm, ibm, psf, best_scaled_mixture])
def test_shapes_lengths_and_containers_are_preserved(oracle):
    stems = noise_stems(length=12345, sources=3)
    out = oracle(stems)
    assert list(out) == list(stems) and all(v.shape == (2, 12345) for v in out.values())
    stacked = np.stack([v.numpy() for v in stems.values()])
    out = oracle(stacked)
    assert isinstance(out, np.ndarray) and out.shape == stacked.shape
    mono = {name: v[0] for name, v in stems.items()}
    out = oracle(mono)
    assert all(v.shape == (12345,) for v in out.values())


@pytest.mark.parametrize("oracle", [irm, ibm, psf, best_scaled_mixture])
def test_silence_gives_finite_output(oracle):
    stems = noise_stems(sources=2)
    stems["silent"] = torch.zeros(2, 20001)
    out = oracle(stems)
    assert all(torch.isfinite(v).all() for v in out.values())
    assert out["silent"].abs().max() < 1e-4
    everything_silent = oracle({"a": torch.zeros(2, 5000), "b": torch.zeros(2, 5000)})
    assert all(torch.equal(v, torch.zeros(2, 5000)) for v in everything_silent.values())


def test_phase_sensitive_masks_are_the_projection_and_sum_to_one_untruncated():
    stems = noise_stems(sources=3, seed=5)
    raw = ideal_phase_sensitive_mask(stems, truncate=False)
    # Re(S_j conj(X)) / |X|^2 summed over j is Re(X conj(X)) / |X|^2 = 1 wherever the mixture is not silent
    assert torch.allclose(raw.sum(0), torch.ones(()), atol=1e-4)
    assert raw.min() < 0 and raw.max() > 1          # noise sources are often out of phase with their mixture
    masks = ideal_phase_sensitive_mask(stems)
    assert masks.min() >= 0 and masks.max() <= 1
    assert torch.equal(masks, raw.clamp(0, 1))
    # proportional sources (s2 = 0.5 s1) are in phase with the mixture: masks 2/3 and 1/3, exact recovery
    s1 = noise_stems(sources=1, seed=3)["s0"]
    out = psf(torch.stack([s1, 0.5 * s1]))
    assert torch.allclose(out[0], s1, atol=1e-5) and torch.allclose(out[1], 0.5 * s1, atol=1e-5)


def test_the_phase_sensitive_mask_is_the_best_mask_in_0_1_in_every_bin():
    # |M X - S_j|^2 is a parabola in M, smallest at the projection; clipped to [0, 1] it stays the smallest there,
    # so no ratio or binary mask does better in any bin (the IRM is not an upper bound for every mask)
    stems = noise_stems(sources=4, seed=6)
    sources = torch.stack(list(stems.values()))
    X = oracles.stft(sources.sum(0))
    S = torch.stack([oracles.stft(s) for s in sources])
    best = (ideal_phase_sensitive_mask(stems) * X - S).abs() ** 2
    others = [ideal_ratio_mask(stems, alpha=2), ideal_ratio_mask(stems, alpha=1), ideal_binary_mask(stems),
              torch.rand(S.shape, generator=torch.Generator().manual_seed(0))]
    for masks in others:
        error = (masks * X - S).abs() ** 2
        assert bool((best <= error + 1e-6 * S.abs().max() ** 2).all())
        assert best.sum() < error.sum()
    # and after the inverse STFT its estimates are closer to the sources than the IRM's
    for name, reference in stems.items():
        assert sdr(reference, psf(stems)[name]) > sdr(reference, irm(stems)[name]), name


def test_an_explicit_mixture_is_the_one_masked():
    stems = noise_stems(sources=2)
    mixture = 0.5 * sum(stems.values())
    estimates = irm(stems, mixture)
    assert torch.allclose(sum(estimates.values()), mixture, atol=1e-5)


def test_best_scaled_mixture_gain_is_the_least_squares_optimum():
    stems = noise_stems(sources=3, seed=7)
    mixture = sum(stems.values())
    estimates = best_scaled_mixture(stems)
    for name, s in stems.items():
        gain = float((estimates[name] * mixture).sum() / (mixture * mixture).sum())
        assert torch.allclose(estimates[name], gain * mixture, atol=1e-6)
        error = float(((s - gain * mixture) ** 2).sum())
        for perturbed in (gain * 0.98, gain * 1.02, gain + 0.01, gain - 0.01):
            assert float(((s - perturbed * mixture) ** 2).sum()) > error


def test_bad_inputs_get_clear_errors():
    x = torch.zeros(2, 1000)
    with pytest.raises(ValueError, match=r"\(time, channels\).*audio\.T"):
        irm({"a": torch.zeros(1000, 2), "b": torch.zeros(1000, 2)})
    with pytest.raises(ValueError, match="same shape"):
        irm({"a": x, "b": torch.zeros(2, 999)})
    with pytest.raises(ValueError, match="NaN"):
        irm({"a": x, "b": torch.full((2, 1000), float("nan"))})
    with pytest.raises(ValueError, match="shape of one stem"):
        irm({"a": x, "b": x}, torch.zeros(2, 10))
    with pytest.raises(ValueError, match="sources, channels, time"):
        irm(torch.zeros(2, 1000))
    with pytest.raises(ValueError, match="empty"):
        irm({})
    with pytest.raises(ValueError, match="alpha"):
        irm({"a": x}, alpha=0)
    with pytest.raises(ValueError, match="floating point"):
        irm({"a": np.zeros((2, 1000), dtype=np.int16)})
    with pytest.raises(ValueError, match="shape of one stem"):
        psf({"a": x, "b": x}, torch.zeros(2, 10))
    with pytest.raises(ValueError, match=r"\(time, channels\).*audio\.T"):
        psf({"a": torch.zeros(1000, 2), "b": torch.zeros(1000, 2)})
