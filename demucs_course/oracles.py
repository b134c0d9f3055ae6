"""Chapter 1: Listening to the problem -- oracle estimates (also Chapter 9: Evaluation).

An *oracle* separates a mixture while peeking at the true stems. No real system may do that, so an oracle answers
a different question: how well could a whole *family* of methods do, at best?

Most separators before Demucs work on a spectrogram: they compute the STFT ``X(f, t)`` of the mixture, predict a
mask ``M_j(f, t)`` per source ``j`` and invert ``M_j X`` back to a waveform, keeping the mixture's phase. The paper
presents the IRM oracle as an upper bound on what methods that mask spectrograms can reach. Strictly it is not:
the IRM is the best mask only under a model (Gaussian sources with the true powers), and other masks of the same
STFT can score higher. Each bin's error ``|M X - S_j|^2`` is smallest, among real masks in [0, 1], for the
*phase-sensitive* mask below; a complex mask ``S_j / X`` would even recover every source exactly. So the IRM is a
practical ceiling for *ratio* masks, the kind most networks of 2019 predicted, not a bound on
every mask. Demucs predicts waveforms, not masks, so no mask oracle bounds it either.

The IRM and IBM follow the SiSEC 2018 definitions of sigsep's ``sigsep-mus-oracle``; all work channel by channel:

- ideal ratio mask, ``irm``:  ``M_j = |S_j|^alpha / (eps + sum_k |S_k|^alpha)``; ``alpha=1`` (magnitudes) is
  "IRM1", ``alpha=2`` (powers) is "IRM2", the "IRM oracle" of the Demucs paper's table (8.22 dB SDR on MUSDB18).
  The masks of all sources sum to 1, so the estimates sum to the mixture.
- ideal binary mask, ``ibm``:  ``M_j = 1 if |S_j|^alpha / (eps + |X|^alpha) > theta else 0``; ``alpha=1``,
  ``theta=0.5`` is "IBM1". A bin goes to every source whose share of the *mixture's* magnitude exceeds ``theta``,
  not to "the loudest source": a bin where no source reaches half of ``|X|`` goes to none, and where sources partly
  cancel several take the same bin (two equal sources 90 degrees out of phase each make up
  ``1 / sqrt(2) = 0.71`` of ``|X|``).
- truncated phase-sensitive mask, ``psf``:  ``M_j = clip(Re(S_j conj(X)) / (eps + |X|^2), 0, 1)``, that is
  ``|S_j| / |X| cos(angle(S_j) - angle(X))`` clipped to [0, 1] (Erdogan et al. 2015, "phase-sensitive
  filter"). It is the real mask in [0, 1] that minimises ``|M X - S_j|^2`` in every bin, so in the STFT domain it
  is never worse than the IRM, IBM or any other such mask.
- :func:`best_scaled_mixture`: each source estimated as the mixture times its best gain. It has no separating power
  at all, so it is the floor a model must beat to have separated anything.

The STFT here is Open-Unmix's: Hann window, ``n_fft = 4096``, hop 1024, centred. sigsep's oracle scripts use a
2048-sample window with hop 1024 (``scipy.signal.stft(nperseg=2048)``); pass ``n_fft=2048`` to match them exactly.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

#: STFT size and hop of the oracles (Open-Unmix's).
N_FFT = 4096
HOP_LENGTH = 1024

#: Added to denominators so that silence gives a mask of 0, never 0/0 (sigsep's value, numpy's float64 epsilon).
EPS = float(np.finfo(np.float64).eps)


# --------------------------------------------------------------------------------------------------------------
# The STFT pair
# --------------------------------------------------------------------------------------------------------------


def _check_stft_sizes(n_fft: int, hop_length: int) -> None:
    if int(n_fft) != n_fft or n_fft < 2:
        raise ValueError(f"n_fft must be a whole number >= 2, got {n_fft!r}")
    if int(hop_length) != hop_length or not 0 < hop_length < n_fft:
        raise ValueError(f"hop_length must be a whole number in [1, n_fft), got {hop_length!r} with n_fft={n_fft}")


def stft(x: torch.Tensor, *, n_fft: int = N_FFT, hop_length: int = HOP_LENGTH) -> torch.Tensor:
    """Complex STFT of ``x`` (shape ``(..., time)``) with a Hann window: shape ``(..., n_fft // 2 + 1, frames)``.

    Centred frames (frame ``t`` is centred on sample ``t * hop_length``), zero padding at both ends so that clips
    shorter than a window work too; ``frames = 1 + time // hop_length``.
    """
    _check_stft_sizes(n_fft, hop_length)
    shape = x.shape
    window = torch.hann_window(n_fft, dtype=x.dtype, device=x.device)
    spec = torch.stft(x.reshape(-1, shape[-1]), n_fft, hop_length, window=window, center=True, pad_mode="constant",
                      return_complex=True)
    return spec.reshape(*shape[:-1], *spec.shape[-2:])


def istft(spec: torch.Tensor, length: int, *, n_fft: int = N_FFT, hop_length: int = HOP_LENGTH) -> torch.Tensor:
    """Inverse of :func:`stft`: a waveform of shape ``(..., length)``. ``istft(stft(x), x.shape[-1])`` gives ``x``
    back up to rounding (overlap-add with the same window, divided by the summed squared windows)."""
    _check_stft_sizes(n_fft, hop_length)
    shape = spec.shape
    window = torch.hann_window(n_fft, dtype=spec.real.dtype, device=spec.device)
    wav = torch.istft(spec.reshape(-1, *shape[-2:]), n_fft, hop_length, window=window, center=True, length=length)
    return wav.reshape(*shape[:-2], length)


# --------------------------------------------------------------------------------------------------------------
# Inputs: a dict of stems or a stacked array, and back
# --------------------------------------------------------------------------------------------------------------


def _as_tensor(x, what: str) -> torch.Tensor:
    t = x.detach() if isinstance(x, torch.Tensor) else torch.from_numpy(np.asarray(x))
    if not t.is_floating_point():
        raise ValueError(f"{what} has dtype {t.dtype}; pass floating point audio")
    return t if t.dtype == torch.float64 else t.float()


def _check_layout(t: torch.Tensor, what: str) -> None:
    """Reject a (time, channels) waveform, the layout musdb (``track.audio``) and soundfile give."""
    if t.dim() >= 2 and t.shape[-1] <= 2 < t.shape[-2]:
        raise ValueError(f"{what} has shape {tuple(t.shape)}, which looks like (time, channels), the layout of musdb's "
                         "track.audio; the oracles take (channels, time): pass audio.T")


def _stack(stems, mixture):
    """Stems as one tensor (sources, channels, time), the mixture (channels, time), and how to give results back."""
    if isinstance(stems, Mapping):
        if not stems:
            raise ValueError("stems is an empty dict; pass name -> waveform (channels, time) for every source")
        names = list(stems)
        values = [_as_tensor(v, f"stem {name!r}") for name, v in stems.items()]
        for name, v in zip(names, values):
            if v.dim() not in (1, 2):
                raise ValueError(f"stem {name!r} must have shape (channels, time) or (time,), got {tuple(v.shape)}")
            _check_layout(v, f"stem {name!r}")
        if len({v.shape for v in values}) != 1:
            raise ValueError("all stems must have the same shape, got "
                             + ", ".join(f"{n}: {tuple(v.shape)}" for n, v in zip(names, values)))
        mono = values[0].dim() == 1
        sources = torch.stack([v[None] if mono else v for v in values])
        numpy_out = all(not isinstance(v, torch.Tensor) for v in stems.values())
    else:
        sources = _as_tensor(stems, "stems")
        if sources.dim() != 3:
            raise ValueError(f"stems must have shape (sources, channels, time) (or be a dict of name -> (channels, "
                             f"time)), got {tuple(sources.shape)}; for mono sources add a channel axis: x[:, None]")
        _check_layout(sources, "stems")
        names, mono, numpy_out = None, False, not isinstance(stems, torch.Tensor)
    if sources.shape[-1] == 0:
        raise ValueError("the stems are empty (0 samples)")
    if not bool(torch.isfinite(sources).all()):
        raise ValueError("the stems contain NaN or infinite samples")

    if mixture is None:
        mix = sources.sum(0)
    else:
        mix = _as_tensor(mixture, "mixture").to(sources.dtype)
        mix = mix[None] if mono and mix.dim() == 1 else mix
        if mix.shape != sources.shape[1:]:
            raise ValueError(f"the mixture must have the shape of one stem, {tuple(sources.shape[1:])}, "
                             f"got {tuple(mix.shape)}")
        if not bool(torch.isfinite(mix).all()):
            raise ValueError("the mixture contains NaN or infinite samples")

    def give_back(estimates: torch.Tensor):
        """Estimates (sources, channels, time) in the container and kind the stems came in."""
        out = estimates.numpy() if numpy_out else estimates
        if names is None:
            return out
        return {name: (e[0] if mono else e) for name, e in zip(names, out)}

    return sources, mix, give_back


# --------------------------------------------------------------------------------------------------------------
# The masks
# --------------------------------------------------------------------------------------------------------------


def _check_alpha(alpha) -> None:
    if not alpha > 0:
        raise ValueError(f"alpha must be positive (1: magnitudes, 2: powers), got {alpha!r}")


def _powers(sources: torch.Tensor, alpha: float, n_fft: int, hop_length: int) -> torch.Tensor:
    """``|STFT(s_j)|^alpha`` for every source, one source at a time (a whole track's complex STFTs are large)."""
    return torch.stack([stft(s, n_fft=n_fft, hop_length=hop_length).abs() ** alpha for s in sources])


def ideal_ratio_mask(stems, *, alpha: float = 2, n_fft: int = N_FFT, hop_length: int = HOP_LENGTH) -> torch.Tensor:
    """The ideal ratio masks, shape ``(sources, channels, n_fft // 2 + 1, frames)``, values in [0, 1].

    ``M_j = |S_j|^alpha / (eps + sum_k |S_k|^alpha)`` per channel, time and frequency: the share of source ``j``
    in each bin. ``stems`` is a dict name -> ``(channels, time)`` (masks stacked in its order) or an array
    ``(sources, channels, time)``.
    """
    _check_alpha(alpha)
    sources, _, _ = _stack(stems, None)
    power = _powers(sources, alpha, n_fft, hop_length)  # |S_j|^alpha
    return power.div_(EPS + power.sum(0))


def ideal_binary_mask(stems, mixture=None, *, alpha: float = 1, theta: float = 0.5, n_fft: int = N_FFT,
                      hop_length: int = HOP_LENGTH) -> torch.Tensor:
    """The ideal binary masks, shape ``(sources, channels, n_fft // 2 + 1, frames)``, values 0 or 1.

    ``M_j = 1`` where ``|S_j|^alpha / (eps + |X|^alpha) > theta``, else 0, with ``X`` the mixture's STFT (the sum
    of the stems unless ``mixture`` is given): a bin goes to every source that makes up more than ``theta`` of
    it; where sources partly cancel that can be more than one.
    """
    _check_alpha(alpha)
    sources, mix, _ = _stack(stems, mixture)
    mix_power = stft(mix, n_fft=n_fft, hop_length=hop_length).abs() ** alpha  # |X|^alpha
    power = _powers(sources, alpha, n_fft, hop_length)  # |S_j|^alpha
    return (power.div_(EPS + mix_power) > theta).to(power.dtype)


def ideal_phase_sensitive_mask(stems, mixture=None, *, truncate: bool = True, n_fft: int = N_FFT,
                                hop_length: int = HOP_LENGTH) -> torch.Tensor:
    """The phase-sensitive masks, shape ``(sources, channels, n_fft // 2 + 1, frames)``, real.

    ``M_j = Re(S_j conj(X)) / (eps + |X|^2)``, the real gain that brings ``M_j X`` closest to ``S_j`` in each bin
    (the projection of ``S_j`` on the direction of ``X``), with ``X`` the mixture's STFT (the sum of the stems
    unless ``mixture`` is given). Untruncated, the masks of all sources sum to 1 where the mixture is the sum of the
    stems; they can be negative (a source out of phase with the mixture) or above 1 (sources that cancel).
    ``truncate`` clips them to [0, 1], the range of a ratio mask: then ``M_j`` minimises ``|M X - S_j|^2`` over
    every real ``M`` in [0, 1], bin by bin.
    """
    sources, mix, _ = _stack(stems, mixture)
    spec = stft(mix, n_fft=n_fft, hop_length=hop_length)  # X
    power = spec.abs() ** 2  # |X|^2
    masks = torch.stack([(stft(s, n_fft=n_fft, hop_length=hop_length) * spec.conj()).real for s in sources])
    masks.div_(EPS + power)  # Re(S_j conj(X)) / |X|^2
    return masks.clamp_(0, 1) if truncate else masks


def _apply_masks(masks: torch.Tensor, mix: torch.Tensor, n_fft: int, hop_length: int) -> torch.Tensor:
    """``iSTFT(M_j X)`` for every source: estimates of shape (sources, channels, time), the mixture's length."""
    spec = stft(mix, n_fft=n_fft, hop_length=hop_length)  # X, keeps the mixture's phase
    return torch.stack([istft(m * spec, mix.shape[-1], n_fft=n_fft, hop_length=hop_length) for m in masks])


def irm(stems, mixture=None, *, alpha: float = 2, n_fft: int = N_FFT, hop_length: int = HOP_LENGTH):
    """Ideal-ratio-mask oracle estimates: ``iSTFT(M_j X)`` with :func:`ideal_ratio_mask`'s ``M_j``.

    ``alpha=2`` is sigsep's "IRM2" (the Demucs paper's IRM oracle), ``alpha=1`` "IRM1". ``stems`` is a dict name ->
    ``(channels, time)`` (or ``(time,)``), or an array ``(sources, channels, time)``; ``mixture`` defaults to the
    sum of the stems. Returns estimates in the same container, kind (numpy or torch) and shape as ``stems``.
    """
    sources, mix, give_back = _stack(stems, mixture)
    masks = ideal_ratio_mask(sources, alpha=alpha, n_fft=n_fft, hop_length=hop_length)
    return give_back(_apply_masks(masks, mix, n_fft, hop_length))


def ibm(stems, mixture=None, *, alpha: float = 1, theta: float = 0.5, n_fft: int = N_FFT,
        hop_length: int = HOP_LENGTH):
    """Ideal-binary-mask oracle estimates: ``iSTFT(M_j X)`` with :func:`ideal_binary_mask`'s ``M_j``.

    The defaults (``alpha=1``, ``theta=0.5``) are sigsep's "IBM1". Inputs and outputs as in :func:`irm`.
    """
    sources, mix, give_back = _stack(stems, mixture)
    masks = ideal_binary_mask(sources, mix, alpha=alpha, theta=theta, n_fft=n_fft, hop_length=hop_length)
    return give_back(_apply_masks(masks, mix, n_fft, hop_length))


def psf(stems, mixture=None, *, truncate: bool = True, n_fft: int = N_FFT, hop_length: int = HOP_LENGTH):
    """Phase-sensitive-mask oracle estimates: ``iSTFT(M_j X)`` with :func:`ideal_phase_sensitive_mask`'s ``M_j``.

    With ``truncate`` (the default) the masks lie in [0, 1] like a ratio mask's; the estimates then need not sum to
    the mixture. Inputs and outputs as in :func:`irm`.
    """
    sources, mix, give_back = _stack(stems, mixture)
    masks = ideal_phase_sensitive_mask(sources, mix, truncate=truncate, n_fft=n_fft, hop_length=hop_length)
    return give_back(_apply_masks(masks, mix, n_fft, hop_length))


def best_scaled_mixture(stems, mixture=None):
    """Each source estimated as ``g_j * x``, the mixture ``x`` times its least-squares gain.

    ``g_j = <x, s_j> / <x, x>`` (sums over all channels and samples) minimises ``||s_j - g x||^2``. The estimate
    is the mixture, only louder or quieter: a model that cannot beat it has separated nothing. Inputs and outputs as
    in :func:`irm`; a silent mixture gives silent estimates.
    """
    sources, mix, give_back = _stack(stems, mixture)
    x = mix.double().flatten()
    gains = (sources.double().flatten(1) @ x) / (x @ x + EPS)  # g_j = <x, s_j> / <x, x>
    return give_back((gains[:, None, None] * mix.double()).to(sources.dtype))
