"""demucs_course.metrics against museval itself (Chapter 9: Evaluation).

museval is slow (it solves a (sources x channels x filters_len)² linear system four times per call), so the signals
are short and, except in the test of the default call, the distortion filters shorter than museval's 512 taps
(museval.metrics.bss_eval takes the same ``filters_len``: it is museval.evaluate with that one setting changed).
"""

import museval
import numpy as np
import pytest
import torch
from scipy.signal import butter, lfilter, sosfilt

from demucs_course.metrics import _solve_normal_equations, bss_eval_v4, sdr_v4

SR = 44100
SDR_TOL = 1e-6  # dB: SDR does not depend on the filters, only rounding separates us
TOL = 1e-4  # dB, ISR / SIR / SAR on well-conditioned signals (measured differences are about 1e-9)


def museval_v4(references, estimates, win=SR, hop=SR, filters_len=512):
    """museval's (sdr, isr, sir, sar): museval.evaluate with another filters_len (same call underneath)."""
    return museval.metrics.bss_eval(references, estimates, window=win, hop=hop, filters_len=filters_len)[:4]


def assert_agree(ours, theirs, tol=TOL):
    """Same shapes, same NaN windows, SDR to SDR_TOL and the other metrics to tol."""
    for name, a, b, t in zip(("SDR", "ISR", "SIR", "SAR"), ours, theirs, (SDR_TOL, tol, tol, tol)):
        assert a.shape == b.shape, name
        assert a.dtype == np.float64, name
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b), err_msg=f"{name}: NaN windows differ")
        np.testing.assert_allclose(a, b, rtol=0, atol=t, equal_nan=True, err_msg=name)


def noisy_pair(n_sources, seconds, n_channels=2, seed=0):
    """White-noise references; estimates = reference + leakage of the next source + noise."""
    rng = np.random.default_rng(seed)
    references = rng.standard_normal((n_sources, int(seconds * SR), n_channels))
    estimates = references + 0.2 * np.roll(references, 1, axis=0) + 0.3 * rng.standard_normal(references.shape)
    return references, estimates


def music_like_pair(seconds=3, seed=1):
    """Four float32 stereo stems that sound like drums, bass, chords and a voice, and imperfect estimates.

    References: decaying noise bursts, low-passed noise, a sine chord, a vibrato sine with a tremolo, each panned
    with a small inter-channel delay, over a faint noise floor (-80 dB, as any recording has). Estimates: the
    reference plus 0-10 % of each other source, delayed by 3 samples, through a 2-tap filter, plus noise.
    """
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    drums = np.zeros(n)
    for onset in range(0, n, SR // 4):
        hit = min(4000, n - onset)
        drums[onset : onset + hit] = rng.standard_normal(hit) * np.exp(-np.arange(hit) / 600)
    bass = 5 * sosfilt(butter(2, 200, fs=SR, output="sos"), rng.standard_normal(n))
    chords = sum(np.sin(2 * np.pi * f * t + rng.uniform(0, 6)) / k for k, f in enumerate([330, 440, 660, 880], 1))
    voice = np.sin(2 * np.pi * (220 * t + 3 * np.sin(2 * np.pi * 5 * t))) * (0.5 + 0.5 * np.sin(2 * np.pi * 0.7 * t))

    def stereo(x, pan, delay):
        return np.stack([x * (1 - pan), np.roll(x, delay) * pan], axis=-1)

    references = 0.3 * np.stack([stereo(drums, 0.5, 7), stereo(bass, 0.4, 3), stereo(chords, 0.7, 11),
                                 stereo(voice, 0.5, 5)])
    references += 1e-4 * rng.standard_normal(references.shape)
    leakage = 0.1 * rng.uniform(size=(4, 4))
    np.fill_diagonal(leakage, 1.0)
    estimates = np.einsum("jk,ktc->jtc", leakage, references)
    estimates = lfilter([0.9, 0.1], [1.0], np.roll(estimates, 3, axis=1), axis=1)
    estimates += 0.01 * rng.standard_normal(estimates.shape)
    return references.astype(np.float32), estimates.astype(np.float32)


def test_default_call_equals_museval_evaluate():
    references, estimates = noisy_pair(n_sources=2, seconds=3)
    theirs = museval.evaluate(references, estimates, win=SR, hop=SR)
    ours = bss_eval_v4(references, estimates)
    assert ours[0].shape == (2, 3)
    assert_agree(ours, theirs)
    np.testing.assert_allclose(sdr_v4(references, estimates), theirs[0], rtol=0, atol=SDR_TOL)


def test_four_stereo_sources_of_noise():
    references, estimates = noisy_pair(n_sources=4, seconds=3, seed=1)
    assert_agree(bss_eval_v4(references, estimates, filters_len=64), museval_v4(references, estimates, filters_len=64))


def test_music_like_signals_with_leakage_delay_and_filtering():
    references, estimates = music_like_pair()
    ours = bss_eval_v4(references, estimates, filters_len=128)
    assert_agree(ours, museval_v4(references, estimates, filters_len=128))
    sdr, isr, sir, sar = ours
    # Non-trivial: every metric finite, and the leakage visible as a finite SIR well below the SAR of the voice.
    assert all(np.isfinite(m).all() for m in ours)
    assert (sir < 40).all() and (sir > 0).all()
    assert not np.allclose(isr, sir) and not np.allclose(sir, sar)


def test_silent_windows_are_nan_for_every_source_like_museval():
    references, estimates = noisy_pair(n_sources=2, seconds=4, seed=2)
    references[0, SR : 2 * SR] = 0  # window 1: a silent reference
    estimates[1, 2 * SR : 3 * SR] = 0  # window 2: a silent estimate
    references[1, 3 * SR :, 1] = -references[1, 3 * SR :, 0]  # window 3: channels that cancel count as silent
    theirs = museval_v4(references, estimates, filters_len=32)
    ours = bss_eval_v4(references, estimates, filters_len=32)
    assert_agree(ours, theirs)
    for metric in ours:
        np.testing.assert_array_equal(np.isnan(metric).all(axis=0), [False, True, True, True])
    np.testing.assert_array_equal(np.isnan(sdr_v4(references, estimates)), np.isnan(theirs[0]))


@pytest.mark.parametrize("hop", [SR, SR // 2])
def test_length_not_a_multiple_of_the_window(hop):
    references, estimates = noisy_pair(n_sources=2, seconds=3.6, seed=3)
    ours = bss_eval_v4(references, estimates, win=SR, hop=hop, filters_len=32)
    # museval drops the last partial window: 3 windows of 1 s, or 6 with a hop of 0.5 s.
    assert ours[0].shape == (2, (references.shape[1] - SR) // hop + 1)
    assert_agree(ours, museval_v4(references, estimates, win=SR, hop=hop, filters_len=32))


def test_mono():
    references, estimates = noisy_pair(n_sources=3, seconds=3, n_channels=1, seed=4)
    assert_agree(bss_eval_v4(references, estimates, filters_len=64), museval_v4(references, estimates, filters_len=64))


def test_signal_shorter_than_a_window_is_one_window():
    references, estimates = noisy_pair(n_sources=2, seconds=0.5, seed=5)
    ours = bss_eval_v4(references, estimates, filters_len=32)
    assert ours[0].shape == (2, 1)
    assert_agree(ours, museval_v4(references, estimates, filters_len=32))


def test_stem_with_identical_channels():
    # A mono stem in stereo makes G exactly singular: Levinson fails and the dense least-squares solve takes over.
    references, estimates = noisy_pair(n_sources=3, seconds=2, seed=6)
    references[1, :, 1] = references[1, :, 0]
    assert_agree(bss_eval_v4(references, estimates, filters_len=64), museval_v4(references, estimates, filters_len=64))


def test_levinson_solves_block_toeplitz_systems_like_a_dense_solve():
    rng = np.random.default_rng(7)
    batch, taps, size, rhs = 2, 16, 3, 4
    signals = rng.standard_normal((batch, 400, size))
    # M(k) = sum_t x[t] x[t + k]^T: a positive definite block-Toeplitz G, as the normal equations have.
    lag_blocks = np.stack([[s[: 400 - k].T @ s[k:] for k in range(taps)] for s in signals])
    cross_blocks = rng.standard_normal((batch, taps, size, rhs))
    solution = _solve_normal_equations(lag_blocks, cross_blocks)
    for b in range(batch):
        gram = np.block([[lag_blocks[b, i - j] if i >= j else lag_blocks[b, j - i].T for j in range(taps)]
                         for i in range(taps)])  # block rows (a, p), columns (b, q)
        dense = np.linalg.solve(gram, cross_blocks[b].reshape(taps * size, rhs)).reshape(taps, size, rhs)
        np.testing.assert_allclose(solution[b], dense, rtol=0, atol=1e-10 * np.abs(dense).max())


def test_torch_tensors_and_float32_give_the_numpy_float64_answer():
    references, estimates = noisy_pair(n_sources=2, seconds=2, seed=8)
    references, estimates = references.astype(np.float32), estimates.astype(np.float32)
    expected = bss_eval_v4(references.astype(np.float64), estimates.astype(np.float64), filters_len=32)
    ours = bss_eval_v4(torch.from_numpy(references), torch.from_numpy(estimates), filters_len=32)
    for a, b in zip(ours, expected):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(sdr_v4(torch.from_numpy(references), torch.from_numpy(estimates)), expected[0])


def test_a_perfect_estimate_has_infinite_sdr():
    references, _ = noisy_pair(n_sources=2, seconds=2, seed=9)
    estimates = references.copy()
    estimates[1] += 0.1
    sdr = sdr_v4(references, estimates)
    assert np.isposinf(sdr[0]).all() and np.isfinite(sdr[1]).all()


def bad_inputs():
    references, estimates = noisy_pair(n_sources=2, seconds=1.5, seed=10)
    nan_estimate = estimates.copy()
    nan_estimate[1, 100, 0] = np.nan
    inf_reference = references.copy()
    inf_reference[0, 5, 1] = np.inf
    silent = references.copy()
    silent[1] = 0
    return [
        (references[0], estimates[0], {}, "3 dimensions"),
        (references, estimates[:1], {}, "same number of sources"),
        (references, estimates[..., :1], {}, "same number of sources and of channels"),
        (references, estimates[:, :-10], {}, "make them the same length"),
        (references, nan_estimate, {}, r"estimates of source\(s\) \[1\] contain NaN or inf"),
        (inf_reference, estimates, {}, r"references of source\(s\) \[0\] contain NaN or inf"),
        (references.transpose(0, 2, 1), estimates.transpose(0, 2, 1), {}, "more channels"),
        (silent, estimates, {}, r"references of source\(s\) \[1\] are silent"),
        (references, estimates, {"win": 0}, "win must be a positive integer"),
        (references, estimates, {"hop": 0.5 * SR}, "hop must be a positive integer"),
        (references.astype(complex), estimates, {}, "real numbers"),
        (references[:, :0], estimates[:, :0], {}, "empty"),
    ]


@pytest.mark.parametrize("references, estimates, kwargs, message", bad_inputs())
def test_bad_input_gets_a_clear_error(references, estimates, kwargs, message):
    for function in (sdr_v4, bss_eval_v4):
        with pytest.raises(ValueError, match=message):
            function(references, estimates, **kwargs)


def test_bad_filters_len():
    references, estimates = noisy_pair(n_sources=2, seconds=1.5, seed=11)
    with pytest.raises(ValueError, match="filters_len must be a positive integer"):
        bss_eval_v4(references, estimates, filters_len=0)
