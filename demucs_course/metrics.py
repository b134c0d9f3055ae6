"""Chapter 9: Evaluation. The BSS-eval v4 metrics (SDR, ISR, SIR, SAR), vectorised, equal to museval.

The paper scores its separations the way the SiSEC 2018 campaign does, with museval's BSS-eval version 4 in its
"images" form: the four sources of a track are evaluated jointly, every metric is computed on windows of 1 s
(``win = hop = 44100`` samples), a track's score for a source is the median over its windows (``nanmedian``: silent
windows are NaN), and a method's score is the median over tracks. museval does this with Python loops over windows
and four dense solves of the same 4096 x 4096 linear system per track (four stereo sources); this module computes
the same numbers with all windows at once and one structured solve.

BSS-eval writes an estimated source image as the true image plus three errors (Vincent et al., 2006):

    ŝ_j = s_j + e_spat + e_interf + e_artif

- ``P_j ŝ_j``, the least-squares projection of the estimate on the span of *filtered* versions of the reference
  s_j (every channel of s_j through an ``L``-tap FIR filter per output channel, ``L = filters_len = 512``), is what
  can be explained as s_j itself, only filtered: ``e_spat = P_j ŝ_j - s_j`` is the spatial (filtering) distortion.
- ``P_all ŝ_j``, the projection on the span of filtered versions of *all* references, adds what is explained by the
  other sources: ``e_interf = P_all ŝ_j - P_j ŝ_j`` is the interference.
- what no filtered reference explains is ``e_artif = ŝ_j - P_all ŝ_j``, the artifacts (noise, musical noise).

The four ratios, in dB (sums run over samples AND channels of a window)::

    SDR = 10 log10 ||s_j||² / ||e_spat + e_interf + e_artif||²     (= ||s_j||² / ||ŝ_j - s_j||²)
    ISR = 10 log10 ||s_j||² / ||e_spat||²
    SIR = 10 log10 ||s_j + e_spat||² / ||e_interf||²
    SAR = 10 log10 ||s_j + e_spat + e_interf||² / ||e_artif||²

Version 4's change over v3: the filters of ``P_j`` and ``P_all`` are fitted once on the whole track (time-invariant),
then each window's errors are computed by passing that window of the references through those filters. Two things
follow. The SDR does not depend on the filters at all (the three errors add up to ``ŝ_j - s_j``), so
:func:`sdr_v4` needs no linear algebra and is very fast. ISR, SIR and SAR need the filters: :func:`bss_eval_v4`
fits them from the same normal equations ``G C = D`` as museval (Gram matrix and right-hand sides built from FFT
cross-correlations), solved once for all estimates with Levinson's recursion, since G is block Toeplitz, and checked
(dense solve as museval when the check fails); then it filters every window in batches of FFTs.

museval's rules, reproduced here (see ``museval/metrics.py``: ``bss_eval``, ``Framing``, ``_safe_db``):

- windows start at ``0, hop, 2 hop, ...`` and there are ``(n_samples - win) // hop + 1`` of them: a final partial
  window is dropped. When ``win >= n_samples`` there is one window, the whole signal.
- a window where any reference or any estimate is silent (its sum over channels is 0 at every sample) is NaN for
  every metric and every source. A source silent over the whole signal is an error.
- a ratio whose denominator is exactly 0 is +inf. Everything is computed in float64.

Where museval would pad or cut estimates of another length (``museval.evaluate``), these functions refuse: make the
lengths equal yourself, knowingly. Computed values agree with museval to rounding: SDR to ~1e-12 dB; ISR, SIR, SAR
to ~1e-6 dB or better while G is reasonably conditioned. When the references make G nearly singular (two identical
sources; a source with nothing at all, not even a noise floor, above some frequency) museval's own ISR, SIR and SAR
are set by rounding errors (a SIR of 280 dB for two identical sources, or of -80 dB for pure sines) and the two
implementations can disagree there. SDR never depends on G.
"""

from __future__ import annotations

import numpy as np
import scipy.fft
from numpy.lib.stride_tricks import sliding_window_view

#: Window and hop of the SiSEC 2018 evaluation (and of the paper's tables): 1 s at 44.1 kHz.
WINDOW = 44100
#: Taps of BSS-eval's distortion filters (museval's ``filters_len``).
FILTERS_LEN = 512

# Memory for one batch of spectra: windows (or FFT blocks) are processed in batches of about this size. Under 32 MB,
# the allocator reuses the memory from batch to batch instead of asking the system for fresh pages each time.
_BATCH_BYTES = 16 * 2**20


def median_over_tracks(per_track) -> np.ndarray:
    """The paper's (and museval's) aggregation: per track the median over windows, then the median over tracks.

    ``per_track`` holds one array per track, shaped ``(sources, windows)`` (tracks may have different numbers of
    windows), or one array ``(tracks, sources, windows)``. Returns a float64 array ``(sources,)``:

    1. for each track and source, the median over its windows, ignoring NaN windows (``nanmedian``: a window where
       a reference or an estimate is silent is NaN);
    2. for each source, the median over the tracks, leaving out a track whose windows are NaN *every* one: it has
       no score for that source. This is what museval's ``EvalStore`` does (pandas' median skips NaN at both steps),
       so the numbers match museval's tables. A source that no track scores is NaN.

    :func:`demucs_course.evaluate.aggregate` (museval's JSON files) and :func:`demucs_course.evaluate.median_sdr`
    (a model on a list of tracks) both use it.
    """
    tracks = [np.asarray(windows, dtype=np.float64) for windows in per_track]
    if not tracks:
        raise ValueError("no tracks to aggregate: score at least one track")
    n_sources = tracks[0].shape[0] if tracks[0].ndim else 0
    for windows in tracks:
        if windows.ndim != 2 or windows.shape[0] != n_sources:
            raise ValueError(f"each track's scores must be shaped (sources, windows) with the same sources, got "
                             f"{[w.shape for w in tracks]}")
    medians = np.array([[_nanmedian(windows[j]) for windows in tracks] for j in range(n_sources)])  # (sources, tracks)
    return np.array([_nanmedian(row) for row in medians], dtype=np.float64).reshape(n_sources)


def _nanmedian(values: np.ndarray) -> float:
    """The median of the values that are not NaN; NaN when there are none (and no warning)."""
    values = values[~np.isnan(values)]
    return float(np.median(values)) if values.size else float("nan")


def sdr_v4(references, estimates, win: int = WINDOW, hop: int = WINDOW) -> np.ndarray:
    """Framewise SDR of BSS-eval v4 (images), equal to ``museval.evaluate(references, estimates, win, hop)[0]``.

    ``references`` and ``estimates`` are arrays (numpy or torch) shaped ``(n_sources, n_samples, n_channels)``, as
    museval takes them (samples before channels). Returns a float64 array ``(n_sources, n_windows)``: one SDR in dB
    per source and window, NaN for windows where some reference or estimate is silent, +inf where an estimate is
    exactly its reference. ``win`` and ``hop`` are in samples; see the module docstring for the windowing rules.
    """
    refs, ests, silent = _prepare(references, estimates, win, hop)
    sdr = _sdr(refs, ests, win, hop)
    sdr[:, silent] = np.nan
    return sdr


def bss_eval_v4(
    references, estimates, win: int = WINDOW, hop: int = WINDOW, filters_len: int = FILTERS_LEN
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """All four BSS-eval v4 (images) metrics, equal to museval's: ``(sdr, isr, sir, sar)``.

    Same inputs and conventions as :func:`sdr_v4`; each output is a float64 array ``(n_sources, n_windows)`` in dB,
    in the order of ``museval.evaluate(references, estimates, win, hop)``. The distortion filters have
    ``filters_len`` taps and are fitted once on the whole signals (v4's time-invariant filters, museval's default).
    """
    refs, ests, silent = _prepare(references, estimates, win, hop)
    if not (isinstance(filters_len, (int, np.integer)) and filters_len > 0):
        raise ValueError(f"filters_len must be a positive integer (taps), got {filters_len!r}")
    n_sources, n_samples, n_channels = refs.shape
    length, n_win = _framing(n_samples, win, hop)

    # The filters of P_all and of P_j, fitted on the whole track: filters[a, (k, d), (j, c)] is tap a of the filter
    # from channel d of reference k to channel c of the projection of estimate j (P_all first, then P_j).
    filters_all, filters_own = _distortion_filters(refs, ests, filters_len)
    n_refs = n_sources * n_channels

    # Each window of the references goes through those filters. Linear convolution of `length` samples with
    # `filters_len` taps has length + filters_len - 1 samples (museval zero-pads s_j and ŝ_j to that length):
    # in the frequency domain, with an FFT at least that long, it is a product, frequency by frequency, of the
    # window's spectra (windows x reference channels) with the filters' (reference channels x estimate channels).
    n_fft = scipy.fft.next_fast_len(length + filters_len - 1, real=True)
    filters_f = scipy.fft.rfft(np.concatenate([filters_all, filters_own], axis=2), n=n_fft, axis=0)
    weights = _parseval_weights(n_fft)

    def energy(x_f):
        # ||x||² over samples and channels, per source j and window w, from the spectrum (Parseval).
        power = (x_f.real**2 + x_f.imag**2).reshape(len(weights), -1, n_sources, n_channels)
        return np.einsum("fwjc,f->jw", power, weights)

    isr = np.empty((n_sources, n_win))
    sir = np.empty((n_sources, n_win))
    sar = np.empty((n_sources, n_win))
    ref_frames = _frames(refs, length, hop, n_win)  # (sample, window, source, channel), a view
    est_frames = _frames(ests, length, hop, n_win)
    batch = max(1, _BATCH_BYTES // (4 * n_refs * (n_fft // 2 + 1) * 16))
    for first in range(0, n_win, batch):  # batches of windows, only to bound memory
        w = slice(first, first + batch)
        s_f = scipy.fft.rfft(ref_frames[:, w], n=n_fft, axis=0).reshape(len(weights), -1, n_refs)  # s_j
        s_hat_f = scipy.fft.rfft(est_frames[:, w], n=n_fft, axis=0).reshape(len(weights), -1, n_refs)  # ŝ_j
        projections = s_f @ filters_f  # (freq, window, 2 (j, c))
        p_all_f = projections[:, :, :n_refs]  # P_all ŝ_j = sum over k, d of C_all[j, k, d] * s_k[d]
        p_own_f = projections[:, :, n_refs:]  # P_j ŝ_j   = sum over d of C_j[j, d] * s_j[d]

        e_spat = p_own_f - s_f  # e_spat   = P_j ŝ_j - s_j
        e_interf = p_all_f - p_own_f  # e_interf = P_all ŝ_j - P_j ŝ_j
        e_artif = s_hat_f - p_all_f  # e_artif  = ŝ_j - P_all ŝ_j
        isr[:, w] = _safe_db(energy(s_f), energy(e_spat))  # ISR = ||s_j||² / ||e_spat||²
        sir[:, w] = _safe_db(energy(p_own_f), energy(e_interf))  # SIR = ||s_j + e_spat||² / ||e_interf||²
        sar[:, w] = _safe_db(energy(p_all_f), energy(e_artif))  # SAR = ||s_j + e_spat + e_interf||² / ||e_artif||²

    sdr = _sdr(refs, ests, win, hop)
    for metric in (sdr, isr, sir, sar):
        metric[:, silent] = np.nan
    return sdr, isr, sir, sar


def _sdr(refs: np.ndarray, ests: np.ndarray, win: int, hop: int) -> np.ndarray:
    """SDR = 10 log10 ||s_j||² / ||ŝ_j - s_j||² per source and window (no NaN rule applied)."""
    n_sources, n_samples, n_channels = refs.shape
    length, n_win = _framing(n_samples, win, hop)

    def energy(x):
        # ||x||² over each window's samples and channels: in a (source, sample, channel) array a window is one
        # contiguous run of length * n_channels numbers, starting every hop * n_channels.
        flat = x.reshape(n_sources, -1)
        frames = sliding_window_view(flat, length * n_channels, axis=1)[:, :: hop * n_channels][:, :n_win]
        return np.einsum("jwn,jwn->jw", frames, frames)

    # e_spat + e_interf + e_artif = ŝ_j - s_j: the SDR needs neither projection nor filter.
    return _safe_db(energy(refs), energy(ests - refs))


# ----------------------------------------------------------------------------------------------------------------
# The distortion filters, fitted on the whole track.


def _distortion_filters(refs: np.ndarray, ests: np.ndarray, filters_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares FIR filters from the references to each estimate, as museval's ``_compute_projection_filters``.

    The span of "filtered references" is the span of delayed references: x_p[t - a] for every reference channel p
    (source k, channel d) and delay a = 0 .. L-1. The projection of an estimate channel ŝ_c on it has coefficients
    C solving the normal equations

        G C = D,   G[(p, a), (q, b)] = <x_p[. - a], x_q[. - b]> = r_pq[a - b]   (the Gram matrix)
                   D[(p, a), c]      = <x_p[. - a], ŝ_c>         = r_p,ŝc[a]

    with r_xy[k] = sum_t x[t] y[t + k] the cross-correlation. Returns the filters of P_all and those of P_j (only
    s_j's own channels), both shaped ``(tap a, reference channel (k, d), estimate channel (j, c))``.
    """
    n_sources, n_samples, n_channels = refs.shape
    taps = filters_len
    # Reference channels p = (k, d) and estimate channels (j, c), samples first (views, no copy).
    x, x_hat = refs.transpose(1, 0, 2), ests.transpose(1, 0, 2)
    r = _cross_correlations(x, x, taps - 1)[:, :, taps - 1 :]  # r_pq[k], k = 0 .. L-1 (r_qp[k] = r_pq[-k])
    cross = _cross_correlations(x, x_hat, taps - 1)[:, :, taps - 1 :]  # r_p,ŝ(j,c)[a], a = 0 .. L-1

    # In blocks: G's block (a, b) is the P x P matrix M(a - b), M(k)[p, q] = r_pq[k] (and M(-k) = M(k)^T); D's
    # block a is the P x (J I) matrix r_p,ŝ(j,c)[a]. Solved for all estimates at once (they share G).
    lag_blocks = r.transpose(2, 0, 1)  # (k, p, q)
    cross_blocks = cross.transpose(2, 0, 1)  # (a, p, (j, c))
    filters_all = _solve_normal_equations(lag_blocks[None], cross_blocks[None])[0]  # (a, (k, d), (j, c))

    # P_j: only s_j's own channels, i.e. the (j, j) parts of G and D, one small system per source. Its filters
    # are placed in the same (a, (k, d), (j, c)) layout, zero from every other source k != j.
    lags = lag_blocks.reshape(taps, n_sources, n_channels, n_sources, n_channels)
    crosses = cross_blocks.reshape(taps, n_sources, n_channels, n_sources, n_channels)
    own = np.arange(n_sources)
    solution = _solve_normal_equations(lags[:, own, :, own], crosses[:, own, :, own])  # (j, a, d, c)
    filters_own = np.zeros((taps, n_sources, n_channels, n_sources, n_channels))
    for j in range(n_sources):
        filters_own[:, j, :, j, :] = solution[j]
    return filters_all, filters_own.reshape(filters_all.shape)


def _solve_normal_equations(lag_blocks: np.ndarray, cross_blocks: np.ndarray) -> np.ndarray:
    """Solve (G + eps I) C = D for block-Toeplitz G, as museval's ``np.linalg.solve(G + eps * I, D)``.

    ``lag_blocks`` ``(batch, L, P, P)`` holds M(0) .. M(L-1), G's block (a, b) being M(a - b) (M(-k) = M(k)^T);
    ``cross_blocks`` ``(batch, L, P, m)`` holds D's blocks. Returns C as ``(batch, L, P, m)``.

    museval factorises the dense (P L) x (P L) matrix G: 4096 x 4096 for four stereo sources, about 46 GFLOP per
    solve, and it solves four times. Because G is block Toeplitz, Levinson's recursion (:func:`_levinson`) solves it
    in O(L² P³) operations. Levinson is less robust than museval's LU factorisation when G is ill-conditioned, so
    its answer is refined once (solve again for the residual D - G C) and then checked: the residual must be as
    small as a backward-stable solver leaves it (|D - G C| <= 1e-13 |G| |C|). When it is not (G nearly singular,
    where the solution depends on rounding), or when Levinson fails (a singular M(0), e.g. a source whose two
    channels are identical), the dense G is built and solved as museval does (:func:`_dense_solve`).
    """
    lag_blocks = lag_blocks.copy()
    lag_blocks[:, 0] += np.finfo(float).eps * np.eye(lag_blocks.shape[-1])  # G + eps I, eps = 2.2e-16
    all_lags = np.concatenate([np.swapaxes(lag_blocks[:, :0:-1], 2, 3), lag_blocks], axis=1)  # M(-(L-1)) .. M(L-1)
    try:
        with np.errstate(all="ignore"):  # overflow on a near-singular G is caught by the check below
            solution = _levinson(lag_blocks, cross_blocks)
            solution += _levinson(lag_blocks, cross_blocks - _block_toeplitz_product(all_lags, solution))
            residual = np.abs(cross_blocks - _block_toeplitz_product(all_lags, solution)).max(axis=(1, 2, 3))
            scale = np.abs(all_lags).max(axis=(1, 2, 3)) * np.abs(solution).max(axis=(1, 2, 3))
        if np.isfinite(solution).all() and (residual <= 1e-13 * scale).all():
            return solution
    except np.linalg.LinAlgError:
        pass
    batch, taps, size, _ = lag_blocks.shape
    # The dense G, museval's layout: rows (p, a), columns (q, b), G[(p, a), (q, b)] = M(a - b)[p, q].
    gram = sliding_window_view(all_lags[:, ::-1], taps, axis=1)[:, ::-1]  # (batch, a, p, q, b): M(a - b)
    gram = gram.transpose(0, 2, 1, 3, 4).reshape(batch, size * taps, size * taps)
    cross = cross_blocks.transpose(0, 2, 1, 3).reshape(batch, size * taps, -1)
    solution = np.stack([_dense_solve(g, d) for g, d in zip(gram, cross)])
    return solution.reshape(batch, size, taps, -1).transpose(0, 2, 1, 3)


def _block_toeplitz_product(all_lags: np.ndarray, x: np.ndarray) -> np.ndarray:
    """G X for block-Toeplitz G: (G X)[a] = sum_b M(a - b) X[b], a convolution over the block index, by FFT.

    ``all_lags`` ``(batch, 2L - 1, P, P)`` holds M(-(L-1)) .. M(L-1); ``x`` ``(batch, L, P, m)``.
    """
    taps = x.shape[1]
    n_fft = scipy.fft.next_fast_len(3 * taps - 2, real=True)  # linear, not circular, convolution
    product = scipy.fft.rfft(all_lags, n=n_fft, axis=1) @ scipy.fft.rfft(x, n=n_fft, axis=1)
    # Output index i holds sum_b M(i - b - (L-1)) X[b]: block row a is i = a + L - 1.
    return scipy.fft.irfft(product, n=n_fft, axis=1)[:, taps - 1 : 2 * taps - 1]


def _dense_solve(gram: np.ndarray, cross: np.ndarray) -> np.ndarray:
    """museval's ``np.linalg.solve(G + eps I, D)`` (``gram`` is G + eps I), or a least-squares answer if G is singular.

    G is singular when the references are linearly dependent, e.g. a source whose two channels are identical (a
    mono stem). Then LU goes through with pivots of rounding size and C picks up components of 1e15 or more along
    the null space, which may not cancel in the windows; on an exactly singular G museval falls back to
    ``np.linalg.lstsq(G, D)``, an SVD that takes about a minute for a 4096 x 4096 G. Every least-squares solution
    gives the same projections of the whole track, and the smallest one is the safe one in the windows: this
    solves G + lambda I with ``lambda = n eps max(diag G)``, the level below which lstsq's default ``rcond = n eps``
    drops singular values, and keeps it when LU fails or gives a C a million times larger.
    """
    n = gram.shape[0]
    least_squares = np.linalg.solve(gram + n * np.finfo(float).eps * np.diag(gram).max() * np.eye(n), cross)
    try:
        solution = np.linalg.solve(gram, cross)
    except np.linalg.LinAlgError:
        return least_squares
    if not np.abs(solution).max() <= 1e6 * np.abs(least_squares).max():  # also catches inf and NaN
        return least_squares
    return solution


def _levinson(lag_blocks: np.ndarray, cross_blocks: np.ndarray) -> np.ndarray:
    """Block Levinson recursion for sum_b T[a, b] X[b] = D[a], T[a, b] = M(a - b), M(-k) = M(k)^T.

    Grows the solution one block row at a time. With T_n the leading n x n blocks, it keeps the first and last
    block columns of T_n's inverse, f and g (T_n f = [I, 0, .., 0], T_n g = [0, .., 0, I]), and x (T_n x = D[:n]).
    Appending a zero block to f, or prepending one to g, breaks only one block row of T_(n+1):

        T_(n+1) [f; 0] = [I; 0; e_f],   e_f = sum_i M(n - i) f[i]
        T_(n+1) [0; g] = [e_g; 0; I],   e_g = sum_i M(i + 1)^T g[i]

    and two P x P combinations of the two repair both; then x gets the new row D[n] through the new g.
    ``lag_blocks`` ``(batch, L, P, P)``, ``cross_blocks`` ``(batch, L, P, m)``; returns X ``(batch, L, P, m)``.
    """
    batch, taps, size, _ = lag_blocks.shape
    eye = np.eye(size)
    # Blocks side by side, so that each sum over i is one matrix product:
    # down = [M(L-1) .. M(1)], its last n blocks are [M(n) .. M(1)];  up = [M(1)^T .. M(L-1)^T].
    down = lag_blocks[:, :0:-1].transpose(0, 2, 1, 3).reshape(batch, size, -1)
    up = np.swapaxes(lag_blocks[:, 1:], 2, 3).transpose(0, 2, 1, 3).reshape(batch, size, -1)
    f = np.zeros((batch, taps * size, size))  # block i is rows i * P .. (i + 1) * P
    g = np.zeros((batch, taps * size, size))
    x = np.zeros((batch, taps * size, cross_blocks.shape[-1]))
    f[:, :size] = g[:, :size] = np.linalg.inv(lag_blocks[:, 0])
    x[:, :size] = f[:, :size] @ cross_blocks[:, 0]
    for n in range(1, taps):
        rows, last = n * size, (taps - 1) * size
        e_f = down[:, :, last - rows :] @ f[:, :rows]
        e_g = up[:, :, :rows] @ g[:, :rows]
        # [f; 0] a + [0; g] b solves T_(n+1) f' = [I; 0]; [f; 0] c + [0; g] d solves T_(n+1) g' = [0; I].
        a = np.linalg.inv(eye - e_g @ e_f)
        d = np.linalg.inv(eye - e_f @ e_g)
        b, c = -e_f @ a, -e_g @ d
        f_old, g_old = f[:, :rows].copy(), g[:, :rows].copy()
        f[:, :rows] = f_old @ a
        f[:, size : rows + size] += g_old @ b
        g[:, :rows] = f_old @ c
        g[:, size : rows + size] += g_old @ d
        # T_(n+1) [x; 0] = [D[:n]; e_x]: the new g corrects the last block row to D[n].
        e_x = down[:, :, last - rows :] @ x[:, :rows]
        x[:, : rows + size] += g[:, : rows + size] @ (cross_blocks[:, n] - e_x)
    return x.reshape(batch, taps, size, -1)


def _cross_correlations(x: np.ndarray, y: np.ndarray, max_lag: int) -> np.ndarray:
    """r[p, q, max_lag + k] = sum_t x[t, p] y[t + k, q] for k = -max_lag .. max_lag (signals are 0 outside).

    ``x`` and ``y`` are shaped ``(n_samples, ...)``: samples first, the other axes flattened into p and q.
    museval computes these with one FFT as long as the whole track. Short lags only need short FFTs: cut x into
    blocks of ``block`` samples; block b of x meets y only between ``b * block - max_lag`` and
    ``(b + 1) * block + max_lag``, a frame of ``n_fft = block + 2 max_lag`` samples, where the circular
    correlation of the two equals the linear one for the lags we need. The cross-spectra of all blocks add up.
    """
    n_samples = x.shape[0]
    n_fft = max(scipy.fft.next_fast_len(16 * (max_lag + 1)), 4096)
    block = n_fft - 2 * max_lag
    n_x, n_y = x[:1].size, y[:1].size
    batch = max(1, _BATCH_BYTES // ((n_x + n_y) * n_fft * 8))  # blocks at a time, only to bound memory
    spectrum = np.zeros((n_x, n_y, n_fft // 2 + 1), dtype=complex)
    for start in range(0, n_samples, batch * block):
        n_blocks = min(batch, -(-(n_samples - start) // block))
        x_blocks = _segment(x, start, start + n_blocks * block).reshape(n_blocks, block, n_x)
        y_segment = _segment(y, start - max_lag, start + n_blocks * block + max_lag)
        y_frames = sliding_window_view(y_segment, n_fft, axis=0)[::block]  # (block, q, n_fft), a view
        x_f = scipy.fft.rfft(x_blocks, n=n_fft, axis=1)  # (block, freq, p)
        y_f = scipy.fft.rfft(y_frames, axis=2)  # (block, q, freq)
        spectrum += np.einsum("bfp,bqf->pqf", x_f.conj(), y_f, optimize=True)
    # Inverse FFT: index i holds sum_t x[t] y_frame[t + i] = r[i - max_lag], y's frame starting max_lag early.
    return scipy.fft.irfft(spectrum, n=n_fft, axis=2)[:, :, : 2 * max_lag + 1]


def _segment(x: np.ndarray, start: int, stop: int) -> np.ndarray:
    """x[start:stop] flattened to (stop - start, n_signals), with zeros where the range leaves the signal."""
    out = np.zeros((stop - start, x[:1].size))
    inside = slice(max(start, 0), min(stop, x.shape[0]))
    out[inside.start - start : inside.stop - start] = x[inside].reshape(inside.stop - inside.start, -1)
    return out


# ----------------------------------------------------------------------------------------------------------------
# Windows, dB, and input checks.


def _framing(n_samples: int, win: int, hop: int) -> tuple[int, int]:
    """(window length, number of windows) by museval's ``Framing``: no partial window; one if win >= n_samples."""
    if win >= n_samples:
        return n_samples, 1
    return win, (n_samples - win) // hop + 1


def _frames(x: np.ndarray, length: int, hop: int, n_win: int) -> np.ndarray:
    """View of x (source, sample, channel) as windows (sample in window, window, source, channel), without copying."""
    view = sliding_window_view(x, length, axis=1)[:, : (n_win - 1) * hop + 1 : hop]  # (source, window, channel, sample)
    return view.transpose(3, 1, 0, 2)


def _parseval_weights(n_fft: int) -> np.ndarray:
    """w[f] such that sum_t x[t]² = sum_f w[f] |X[f]|² for X = rfft(x, n_fft) (Parseval, one-sided spectrum)."""
    weights = np.full(n_fft // 2 + 1, 2.0 / n_fft)
    weights[0] = 1.0 / n_fft
    if n_fft % 2 == 0:
        weights[-1] = 1.0 / n_fft  # the Nyquist bin appears once
    return weights


def _safe_db(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """10 log10(num / den), and +inf where den == 0 (museval's ``_safe_db``, elementwise)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = 10 * np.log10(num / den)
    return np.where(den == 0, np.inf, ratio)


def _silent(x: np.ndarray) -> np.ndarray:
    """Per source and sample: True where the sum over channels is 0 (museval's ``_any_source_silent`` test)."""
    total = x[:, :, 0]
    for channel in range(1, x.shape[2]):  # channel by channel, in museval's order (and faster than sum(axis=2))
        total = total + x[:, :, channel]
    return total == 0


def _prepare(references, estimates, win, hop) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Check the inputs; return them as float64 arrays and the windows museval sets to NaN."""
    refs = _as_numpy(references, "references")
    ests = _as_numpy(estimates, "estimates")
    for name, value in (("win", win), ("hop", hop)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
            raise ValueError(f"{name} must be a positive integer number of samples, got {value!r}")
    if refs.shape[0] != ests.shape[0] or refs.shape[2] != ests.shape[2]:
        raise ValueError(
            f"references {refs.shape} and estimates {ests.shape} must have the same number of sources and of "
            "channels, in the same order (n_sources, n_samples, n_channels)"
        )
    if refs.shape[1] != ests.shape[1]:
        raise ValueError(
            f"references have {refs.shape[1]} samples but estimates have {ests.shape[1]}: make them the same "
            "length first (museval.evaluate would silently zero-pad or cut the estimates to the references' length)"
        )
    for name, x in (("references", refs), ("estimates", ests)):
        # NaN and inf survive a sum (a sum can also overflow: then the exact test below clears the source).
        bad = ~np.isfinite(x.sum(axis=(1, 2)))
        if bad.any():
            bad = ~np.isfinite(x).all(axis=(1, 2))
        if bad.any():
            raise ValueError(f"{name} of source(s) {np.flatnonzero(bad).tolist()} contain NaN or inf values")
    # museval's silence test is done in the inputs' own dtype, before any conversion.
    ref_silent, est_silent = _silent(refs), _silent(ests)
    for name, silent in (("references", ref_silent), ("estimates", est_silent)):
        whole = silent.all(axis=1)
        if whole.any():
            raise ValueError(
                f"{name} of source(s) {np.flatnonzero(whole).tolist()} are silent (all zeros, or channels that "
                "cancel out): BSS-eval cannot score a silent source (museval refuses it too); leave it out"
            )
    length, n_win = _framing(refs.shape[1], win, hop)
    # A window is NaN for everyone if any reference or estimate is silent over the whole window.
    silent = np.zeros(n_win, dtype=bool)
    for per_sample in (ref_silent, est_silent):
        sounding = sliding_window_view(~per_sample, length, axis=1)[:, : (n_win - 1) * hop + 1 : hop].any(axis=2)
        silent |= ~sounding.all(axis=0)
    return np.ascontiguousarray(refs, dtype=np.float64), np.ascontiguousarray(ests, dtype=np.float64), silent


def _as_numpy(x, name: str) -> np.ndarray:
    """A numpy view of a numpy array, torch tensor or nested list, checked to be (sources, samples, channels)."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # a torch tensor
        x = x.detach().cpu().numpy()
    x = np.asarray(x)
    if x.ndim != 3:
        raise ValueError(
            f"{name} must have 3 dimensions (n_sources, n_samples, n_channels), got shape {x.shape}; "
            "for mono audio use one channel: x[..., None]"
        )
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise ValueError(f"{name} must hold real numbers, got dtype {x.dtype}")
    if 0 in x.shape:
        raise ValueError(f"{name} is empty (shape {x.shape})")
    if x.shape[2] > x.shape[1]:
        raise ValueError(
            f"{name} has shape {x.shape}: more channels ({x.shape[2]}) than samples ({x.shape[1]}). The layout is "
            "(n_sources, n_samples, n_channels), samples before channels as museval takes it; a torch "
            "(sources, channels, time) tensor needs .transpose(1, 2)"
        )
    return x
