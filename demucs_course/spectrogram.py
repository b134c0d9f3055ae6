"""Chapter 10: Waveform or spectrogram? Open-Unmix, a spectrogram-masking model, and its multichannel Wiener filter.

Demucs predicts the waveform of each source. The systems it was measured against mostly did something else: they
compute the STFT of the mixture, predict how much of each time-frequency bin belongs to a source, and give the
estimate the *mixture's* phase. Open-Unmix (Stöter, Uhlich, Liutkus and Mitsufuji 2019, bib key
``stoter2019openunmix``) is the reference system of that family, and this file rebuilds it, top to bottom:

1. :func:`stft`, :func:`istft` and :func:`magnitude`: Open-Unmix's transform (Hann window, ``n_fft`` 4096, hop
   1024, centred with reflection padding), on stereo waveforms.
2. :class:`OpenUnmix`: the per-target network. Magnitudes in, a non-negative mask times the mixture magnitude out.
   Same constructor arguments and module names as ``openunmix.model.OpenUnmix`` (openunmix 1.3.0), so one of its
   ``state_dict`` loads here and gives the same output; :func:`bandwidth_to_max_bin` gives its ``max_bin``.
3. The multichannel Wiener filter (Nugraha, Liutkus and Vincent 2016, bib key ``nugraha2016multichannel``), which
   turns the magnitude estimates of all targets into complex STFTs that add up to the mixture:
   :func:`local_gaussian_model`, :func:`mix_covariance`, :func:`invert`, :func:`apply_filter`,
   :func:`expectation_maximization` and :func:`wiener`. Same tensor layout and arguments as
   ``openunmix.filtering.wiener``, and the same output.
4. :func:`separate`: waveform in, waveforms out, what ``openunmix.model.Separator`` does.

Notation (Nugraha et al. 2016): ``x(f, n)`` is the mixture's STFT at frequency ``f`` and frame ``n``, a vector of
``I`` channels; ``c_j(f, n)`` is the image of source ``j`` (one of ``J``) in it, so ``x = sum_j c_j``. The local
Gaussian model says ``c_j(f, n) ~ N_c(0, v_j(f, n) R_j(f))``: a power spectral density ``v_j`` (how loud the source
is, bin by bin) times a spatial covariance matrix ``R_j`` (``I x I``, where in the stereo image it sits).

Bad input (a waveform with the wrong number of channels, too short for one window, NaN, shapes that do not agree)
raises :class:`SpectrogramError`, a :class:`demucs_course.InputError`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import SAMPLE_RATE, InputError

#: Open-Unmix's STFT: window length (a Hann window of 4096 samples, 93 ms at 44.1 kHz) and hop (a quarter of it).
N_FFT = 4096
N_HOP = 1024


class SpectrogramError(InputError):
    """Input the spectrogram model or the Wiener filter cannot use, with a message that says what to do."""


def _check_finite(x: torch.Tensor, name: str) -> None:
    if not bool(torch.isfinite(x).all()):
        raise SpectrogramError(f"{name} contains NaN or infinite values; check what produced it")


# --------------------------------------------------------------------------------------------------------------
# 1. The STFT
# --------------------------------------------------------------------------------------------------------------


def _check_sizes(n_fft: int, n_hop: int) -> None:
    if int(n_fft) != n_fft or n_fft < 2:
        raise SpectrogramError(f"n_fft must be a whole number >= 2, got {n_fft!r}")
    if int(n_hop) != n_hop or not 0 < n_hop <= n_fft // 2:
        raise SpectrogramError(f"n_hop must be a whole number in [1, n_fft // 2] (Hann windows must overlap by "
                               f"half or more to be inverted), got {n_hop!r} with n_fft={n_fft}")


def stft(audio: torch.Tensor, *, n_fft: int = N_FFT, n_hop: int = N_HOP, center: bool = True) -> torch.Tensor:
    """The complex STFT of ``audio``, shape ``(..., nb_timesteps)`` -> ``(..., nb_bins, nb_frames)``.

    ``nb_bins = n_fft // 2 + 1`` (0 Hz to half the sample rate: 2049 bins of 10.77 Hz at 44.1 kHz). The window
    is a Hann window of ``n_fft`` samples, moved by ``n_hop``:
    ``X(f, n) = sum_k w(k) x(n * n_hop + k) exp(-2 i pi f k / n_fft)``.
    With ``center`` (Open-Unmix's separator), frame ``n`` is centred on sample ``n * n_hop`` and the signal is
    padded at both ends by reflection, so ``nb_frames = 1 + nb_timesteps // n_hop``; the signal must be longer than
    half a window. Without it (Open-Unmix's training), frames start at ``n * n_hop`` and the signal must hold a
    whole window. (Chapter 1's :func:`demucs_course.oracles.stft` pads with zeros instead, so that it takes clips
    shorter than half a window; the two differ only in the first and last frames.)
    """
    _check_sizes(n_fft, n_hop)
    if not isinstance(audio, torch.Tensor) or not audio.is_floating_point() or audio.ndim == 0:
        raise SpectrogramError("audio must be a floating point tensor of shape (..., nb_timesteps), got "
                               f"{type(audio).__name__} {getattr(audio, 'dtype', '')}".rstrip())
    shortest = n_fft // 2 + 1 if center else n_fft
    if audio.shape[-1] < shortest:
        raise SpectrogramError(f"audio has {audio.shape[-1]} samples; the STFT needs at least {shortest} "
                               f"(n_fft={n_fft}, center={center}): pad it or give a longer clip")
    _check_finite(audio, "audio")
    window = torch.hann_window(n_fft, dtype=audio.dtype, device=audio.device)
    frames = torch.stft(audio.reshape(-1, audio.shape[-1]), n_fft, n_hop, window=window, center=center,
                        pad_mode="reflect", normalized=False, onesided=True, return_complex=True)
    return frames.reshape(*audio.shape[:-1], *frames.shape[-2:])


def istft(spec: torch.Tensor, length: int | None = None, *, n_fft: int = N_FFT, n_hop: int = N_HOP) -> torch.Tensor:
    """The inverse of the centred :func:`stft`: complex ``(..., nb_bins, nb_frames)`` -> a waveform ``(..., length)``.

    Each frame is inverted, windowed again and overlap-added, and the sum divided by the summed squared windows;
    ``istft(stft(x), x.shape[-1])`` gives ``x`` back up to rounding. Give ``length`` (the waveform's) to cut the
    padding off exactly. Only centred frames can be inverted: uncentred, the first sample sits under nothing but
    the Hann window's zero.
    """
    _check_sizes(n_fft, n_hop)
    if not isinstance(spec, torch.Tensor) or not spec.is_complex() or spec.ndim < 2:
        raise SpectrogramError("spec must be a complex tensor of shape (..., nb_bins, nb_frames), as stft gives; "
                               f"got {type(spec).__name__} {getattr(spec, 'dtype', '')} "
                               f"{tuple(getattr(spec, 'shape', ()))} (real and imaginary parts last? use "
                               "torch.view_as_complex)")
    if spec.shape[-2] != n_fft // 2 + 1:
        raise SpectrogramError(f"spec has {spec.shape[-2]} frequency bins, n_fft={n_fft} gives {n_fft // 2 + 1}: "
                               "pass the n_fft it was computed with")
    window = torch.hann_window(n_fft, dtype=spec.real.dtype, device=spec.device)
    wav = torch.istft(spec.reshape(-1, *spec.shape[-2:]), n_fft, n_hop, window=window, center=True,
                      normalized=False, onesided=True, length=length)
    return wav.reshape(*spec.shape[:-2], wav.shape[-1])


def magnitude(spec: torch.Tensor) -> torch.Tensor:
    """``|X(f, n)|``, the magnitude spectrogram: what Open-Unmix sees and predicts (the phase is thrown away)."""
    if not isinstance(spec, torch.Tensor) or not spec.is_complex():
        raise SpectrogramError("magnitude takes the complex STFT that stft gives")
    return spec.abs()


def bandwidth_to_max_bin(rate: float = SAMPLE_RATE, n_fft: int = N_FFT, bandwidth: float = 16000) -> int:
    """How many STFT bins lie at or below ``bandwidth`` Hz: the model's ``max_bin``.

    Bin ``k`` sits at ``k * rate / n_fft`` Hz, so the count is ``floor(bandwidth * n_fft / rate) + 1``: 1487 of
    2049 for 16 kHz at 44.1 kHz and ``n_fft`` 4096. Open-Unmix feeds its network only these bins, since MUSDB18's
    AAC files hold (almost) nothing above 16 kHz; it still predicts all of them.
    """
    if not 0 <= bandwidth <= rate / 2:
        raise SpectrogramError(f"bandwidth must lie between 0 and half the sample rate ({rate / 2} Hz), "
                               f"got {bandwidth}")
    return min(int(math.floor(bandwidth * n_fft / rate)) + 1, n_fft // 2 + 1)


# --------------------------------------------------------------------------------------------------------------
# 2. The model
# --------------------------------------------------------------------------------------------------------------


def _statistic(values, nb_bins: int, name: str) -> torch.Tensor:
    """The first ``nb_bins`` values of a per-bin statistic (numpy or torch) as a float32 tensor, checked."""
    t = torch.as_tensor(np.asarray(values, dtype=np.float64) if not isinstance(values, torch.Tensor) else values)
    t = t.detach().to(torch.float32).flatten()
    if t.numel() < nb_bins:
        raise SpectrogramError(f"{name} has {t.numel()} values; the model needs one per input bin ({nb_bins})")
    t = t[:nb_bins]
    _check_finite(t, name)
    return t


class OpenUnmix(nn.Module):
    """Open-Unmix's network for one target (Stöter et al. 2019), module for module as ``openunmix.model.OpenUnmix``.

    It reads the mixture's magnitude spectrogram, shape ``(nb_samples, nb_channels, nb_bins, nb_frames)``, and
    returns the target's, same shape. Frame by frame (the LSTM is the only part that looks across frames):

    - keep the ``max_bin`` lowest bins, shift and scale them by the training set's statistics;
    - ``fc1`` (no bias) maps all channels' bins at once to ``hidden_size``, then ``bn1`` and tanh;
    - ``lstm``, ``nb_layers`` layers over the frames; bidirectional with ``hidden_size // 2`` per direction (so
      ``hidden_size`` out), or forwards only with ``hidden_size`` if ``unidirectional``; dropout 0.4 between layers;
    - the skip: the LSTM's input and output side by side (``2 * hidden_size``);
    - ``fc2`` (no bias), ``bn2`` and ReLU; ``fc3`` (no bias) back to every bin of every channel, ``bn3``;
    - ``output_scale`` and ``output_mean`` per bin, a ReLU: a non-negative mask, which multiplies the mixture's
      magnitude. (The JOSS paper describes a sigmoid here; the openunmix 1.x code, rebuilt here, uses the ReLU.)

    The arguments are the reference's. ``nb_bins`` is the number of STFT bins (``n_fft // 2 + 1``; the reference's
    default, 4096, is one its own training never uses, so the default here is 2049). ``input_mean`` and
    ``input_scale`` are the per-bin mean and standard deviation of the training set's magnitudes (numpy or torch,
    at least ``max_bin`` values); as in the reference, the parameters store *minus* the mean and the *reciprocal*
    of the scale, so a ``state_dict`` moves between the two unchanged. The same seed also gives the same initial
    weights: the layers are built in the reference's order.
    """

    def __init__(self, nb_bins: int = N_FFT // 2 + 1, nb_channels: int = 2, hidden_size: int = 512,
                 nb_layers: int = 3, unidirectional: bool = False, input_mean=None, input_scale=None,
                 max_bin: int | None = None):
        super().__init__()
        for name, value in [("nb_bins", nb_bins), ("nb_channels", nb_channels), ("hidden_size", hidden_size),
                            ("nb_layers", nb_layers)]:
            if int(value) != value or value < 1:
                raise SpectrogramError(f"{name} must be a positive whole number, got {value!r}")
        if not unidirectional and hidden_size % 2:
            raise SpectrogramError(f"hidden_size must be even for a bidirectional LSTM (half per direction), "
                                   f"got {hidden_size}")
        if max_bin is not None and not 0 <= max_bin <= nb_bins:
            raise SpectrogramError(f"max_bin must lie in [0, nb_bins={nb_bins}] (0 or None: every bin), "
                                   f"got {max_bin!r}")
        self.nb_output_bins = nb_bins                  # bins predicted
        self.nb_bins = max_bin or nb_bins              # bins read (0 is None, as in the reference)
        self.nb_channels = nb_channels
        self.hidden_size = hidden_size

        self.fc1 = nn.Linear(self.nb_bins * nb_channels, hidden_size, bias=False)
        self.bn1 = nn.BatchNorm1d(hidden_size)
        self.lstm = nn.LSTM(input_size=hidden_size, hidden_size=hidden_size if unidirectional else hidden_size // 2,
                            num_layers=nb_layers, bidirectional=not unidirectional,
                            dropout=0.4 if nb_layers > 1 else 0.0)
        self.fc2 = nn.Linear(2 * hidden_size, hidden_size, bias=False)
        self.bn2 = nn.BatchNorm1d(hidden_size)
        self.fc3 = nn.Linear(hidden_size, nb_bins * nb_channels, bias=False)
        self.bn3 = nn.BatchNorm1d(nb_bins * nb_channels)

        mean = torch.zeros(self.nb_bins) if input_mean is None else -_statistic(input_mean, self.nb_bins,
                                                                                "input_mean")
        scale = torch.ones(self.nb_bins)
        if input_scale is not None:
            scale = _statistic(input_scale, self.nb_bins, "input_scale")
            if not bool((scale > 0).all()):
                raise SpectrogramError("input_scale must be positive in every bin; floor it, as Open-Unmix's "
                                       "training does (at 1e-4 of its largest value)")
            scale = 1.0 / scale
        self.input_mean = nn.Parameter(mean)           # -mean
        self.input_scale = nn.Parameter(scale)         # 1 / standard deviation
        self.output_scale = nn.Parameter(torch.ones(nb_bins))
        self.output_mean = nn.Parameter(torch.ones(nb_bins))

    def _check_input(self, x: torch.Tensor) -> None:
        if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.is_complex():
            raise SpectrogramError("OpenUnmix takes magnitudes of shape (nb_samples, nb_channels, nb_bins, "
                                   f"nb_frames), got {tuple(getattr(x, 'shape', ()))} "
                                   f"{getattr(x, 'dtype', type(x).__name__)} (complex STFT? take magnitude())")
        nb_samples, nb_channels, nb_bins, nb_frames = x.shape
        if nb_channels != self.nb_channels:
            raise SpectrogramError(f"the model was built for {self.nb_channels} channel(s), the input has "
                                   f"{nb_channels} (shape {tuple(x.shape)}); stereo is (nb_samples, 2, nb_bins, "
                                   "nb_frames)")
        if nb_bins != self.nb_output_bins:
            raise SpectrogramError(f"the model was built for {self.nb_output_bins} bins, the input has {nb_bins}: "
                                   f"use n_fft={2 * (self.nb_output_bins - 1)} (or check the axis order)")
        if nb_samples * nb_frames == 0:
            raise SpectrogramError(f"the input holds no frame (shape {tuple(x.shape)})")
        if self.training and nb_samples * nb_frames < 2:
            raise SpectrogramError("training needs more than one frame per batch (batch norm averages over "
                                   "frames); call model.eval() to separate a single frame")
        _check_finite(x, "the spectrogram")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Magnitudes ``(nb_samples, nb_channels, nb_bins, nb_frames)`` -> the target's, same shape."""
        self._check_input(x)
        nb_samples, nb_channels, _, nb_frames = x.shape
        mix = x.detach()                                  # the mask multiplies it; no gradient flows through it

        x = x.permute(3, 0, 1, 2)                         # (nb_frames, nb_samples, nb_channels, nb_bins)
        x = x[..., :self.nb_bins]                         # the bandwidth cut
        x = (x + self.input_mean) * self.input_scale      # (|X| - mean) / std, bin by bin
        x = self.fc1(x.reshape(nb_frames * nb_samples, nb_channels * self.nb_bins))
        x = torch.tanh(self.bn1(x))                       # every frame of every song: one row of hidden_size
        x = x.reshape(nb_frames, nb_samples, self.hidden_size)

        h, _ = self.lstm(x)                               # (nb_frames, nb_samples, hidden_size)
        x = torch.cat([x, h], dim=-1)                     # the skip: (.., 2 * hidden_size)

        x = F.relu(self.bn2(self.fc2(x.reshape(nb_frames * nb_samples, 2 * self.hidden_size))))
        x = self.bn3(self.fc3(x))                         # (nb_frames * nb_samples, nb_channels * nb_output_bins)
        x = x.reshape(nb_frames, nb_samples, nb_channels, self.nb_output_bins)
        mask = F.relu(x * self.output_scale + self.output_mean)
        return mask.permute(1, 2, 3, 0) * mix             # back to (nb_samples, nb_channels, nb_bins, nb_frames)


# --------------------------------------------------------------------------------------------------------------
# 3. The multichannel Wiener filter
# --------------------------------------------------------------------------------------------------------------
# Inside, the STFTs are complex tensors: y (nb_frames, nb_bins, nb_channels, nb_sources) holds the estimates
# c_j(f, n), x (nb_frames, nb_bins, nb_channels) the mixture. expectation_maximization and wiener take and give
# the reference's layout (real and imaginary parts as an axis of 2), so they are drop-in replacements.


def local_gaussian_model(y: torch.Tensor, eps: float = 1e-10) -> tuple[torch.Tensor, torch.Tensor]:
    """The sources' power spectral densities ``v`` and spatial covariance matrices ``R``, from estimates ``y``.

    ``y``: complex ``(nb_frames, nb_bins, nb_channels, nb_sources)``. Returns ``v``, ``(nb_frames, nb_bins,
    nb_sources)``, and ``R``, ``(nb_bins, nb_channels, nb_channels, nb_sources)``.
    """
    nb_channels = y.shape[-2]
    # v_j(f, n) = 1/I sum_i |c_ij(f, n)|^2: the average power over the channels
    v = (y.real ** 2 + y.imag ** 2).sum(dim=-2) / nb_channels
    # R_j(f) = sum_n c_j(f, n) c_j(f, n)^H / sum_n v_j(f, n): Nugraha et al. (2016)'s weighted update with weights
    # v_j(f, n), from the estimates alone (the reference's simplified EM drops the posterior covariance term)
    R = torch.einsum("nfis,nfks->fiks", y, y.conj())
    return v, R / (eps + v.sum(dim=0))[:, None, None, :]


def mix_covariance(v: torch.Tensor, R: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """The mixture's covariance under the model: ``(nb_frames, nb_bins, nb_channels, nb_channels)``.

    ``v``: ``(nb_frames, nb_bins, nb_sources)``; ``R``: ``(nb_bins, nb_channels, nb_channels, nb_sources)``.
    """
    # C_x(f, n) = sum_j v_j(f, n) R_j(f) + sqrt(eps) I: the sources are independent, so their covariances add;
    # the small diagonal load keeps C_x invertible in silent bins
    nb_channels = R.shape[1]
    load = math.sqrt(eps) * torch.eye(nb_channels, dtype=R.dtype, device=R.device)
    return torch.einsum("nfs,fiks->nfik", v.to(R.dtype), R) + load


def invert(M: torch.Tensor) -> torch.Tensor:
    """The inverses of the square matrices on the last two axes of ``M``, in closed form for 1 or 2 channels."""
    if M.shape[-1] == 1:
        return 1.0 / M
    if M.shape[-1] == 2:
        # [[a, b], [c, d]]^-1 = [[d, -b], [-c, a]] / (ad - bc)
        a, b, c, d = M[..., 0, 0], M[..., 0, 1], M[..., 1, 0], M[..., 1, 1]
        adjugate = torch.stack([torch.stack([d, -b], dim=-1), torch.stack([-c, a], dim=-1)], dim=-2)
        return adjugate / (a * d - b * c)[..., None, None]
    return torch.linalg.inv(M)


def apply_filter(v: torch.Tensor, R: torch.Tensor, inv_Cxx: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Each source's multichannel Wiener estimate: complex ``(nb_frames, nb_bins, nb_channels, nb_sources)``.

    ``v``: ``(nb_frames, nb_bins, nb_sources)``; ``R``: ``(nb_bins, nb_channels, nb_channels, nb_sources)``;
    ``inv_Cxx``: ``(nb_frames, nb_bins, nb_channels, nb_channels)``; ``x``: ``(nb_frames, nb_bins, nb_channels)``.
    """
    # c_j(f, n) = W_j(f, n) x(f, n), W_j(f, n) = v_j(f, n) R_j(f) C_x(f, n)^-1: the posterior mean of c_j.
    # Computed as v_j R_j (C_x^-1 x), which never forms the gains W_j. Since sum_j v_j R_j = C_x (but for the
    # diagonal load), the estimates add up to the mixture.
    whitened = torch.einsum("nfik,nfk->nfi", inv_Cxx, x)
    return v.to(R.dtype)[:, :, None, :] * torch.einsum("fiks,nfk->nfis", R, whitened)


def _from_pairs(t: torch.Tensor, axis: int) -> torch.Tensor:
    """A complex tensor from one whose axis ``axis`` holds (real, imaginary)."""
    return torch.view_as_complex(t.movedim(axis, -1).contiguous())


def _to_pairs(t: torch.Tensor, axis: int) -> torch.Tensor:
    """The reverse of :func:`_from_pairs`."""
    return torch.view_as_real(t).movedim(-1, axis)


def _em(y: torch.Tensor, x: torch.Tensor, iterations: int, eps: float, batch_size: int | None):
    """:func:`expectation_maximization` on complex tensors: y (n, f, i, j), x (n, f, i)."""
    nb_frames, nb_bins, nb_channels = x.shape
    v = torch.zeros(nb_frames, nb_bins, y.shape[-1], dtype=x.real.dtype, device=x.device)
    R = torch.zeros(nb_bins, nb_channels, nb_channels, y.shape[-1], dtype=x.dtype, device=x.device)
    step = batch_size or nb_frames
    for _ in range(iterations):
        v, R = local_gaussian_model(y, eps)                  # M-step: the model from the current estimates
        parts = []
        for start in range(0, nb_frames, step):              # E-step, a few frames at a time (memory)
            t = slice(start, start + step)
            parts.append(apply_filter(v[t], R, invert(mix_covariance(v[t], R, eps)), x[t]))
        y = torch.cat(parts)
    return y, v, R


def expectation_maximization(y: torch.Tensor, x: torch.Tensor, iterations: int = 2, eps: float = 1e-10,
                             batch_size: int | None = 200):
    """Refine source estimates ``y`` of the mixture ``x`` by ``iterations`` rounds of EM (Nugraha et al. 2016).

    Each round fits the local Gaussian model to the current estimates (:func:`local_gaussian_model`), then
    separates the mixture again with the multichannel Wiener filter that model implies (:func:`mix_covariance`,
    :func:`invert`, :func:`apply_filter`); ``batch_size`` frames at a time, to bound the memory. This is the
    reference's simplified EM, which takes the estimates' empirical covariances for the model.

    Layout as ``openunmix.filtering.expectation_maximization``: ``y`` ``(nb_frames, nb_bins, nb_channels, 2,
    nb_sources)`` and ``x`` ``(nb_frames, nb_bins, nb_channels, 2)``, real and imaginary parts on the axis of 2.
    Returns the new ``y`` (same layout), ``v`` ``(nb_frames, nb_bins, nb_sources)`` and ``R`` ``(nb_bins,
    nb_channels, nb_channels, 2, nb_sources)``. Work in float64 for accuracy: ``x.double()``.
    """
    _check_iterations(iterations)
    if y.ndim != 5 or y.shape[3] != 2 or y.shape[:3] != x.shape[:3] or x.ndim != 4 or x.shape[-1] != 2:
        raise SpectrogramError(f"y must be (nb_frames, nb_bins, nb_channels, 2, nb_sources) and x (nb_frames, "
                               f"nb_bins, nb_channels, 2); got {tuple(y.shape)} and {tuple(x.shape)}")
    y, v, R = _em(_from_pairs(y.to(x.dtype), 3), _from_pairs(x, 3), iterations, eps, batch_size)
    return _to_pairs(y, 3), v, _to_pairs(R, 3)


def _check_iterations(iterations) -> None:
    if isinstance(iterations, bool) or int(iterations) != iterations or iterations < 0:
        raise SpectrogramError(f"iterations must be a whole number >= 0, got {iterations!r}")


def _check_wiener_input(targets_spectrograms, mix_stft) -> None:
    for name, t in [("targets_spectrograms", targets_spectrograms), ("mix_stft", mix_stft)]:
        if not isinstance(t, torch.Tensor) or not t.is_floating_point():
            raise SpectrogramError(f"{name} must be a real floating point tensor, got "
                                   f"{getattr(t, 'dtype', type(t).__name__)} (a complex STFT? pass "
                                   "torch.view_as_real(stft))")
    if mix_stft.ndim != 4 or mix_stft.shape[-1] != 2:
        raise SpectrogramError(f"mix_stft must be (nb_frames, nb_bins, nb_channels, 2), real and imaginary parts "
                               f"last, got {tuple(mix_stft.shape)}")
    if targets_spectrograms.ndim != 4:
        raise SpectrogramError("targets_spectrograms must be (nb_frames, nb_bins, nb_channels, nb_sources), got "
                               f"{tuple(targets_spectrograms.shape)}")
    frames, bins, channels, _ = targets_spectrograms.shape
    if (frames, bins) != tuple(mix_stft.shape[:2]) or channels not in (1, mix_stft.shape[2]):
        raise SpectrogramError(f"targets_spectrograms {tuple(targets_spectrograms.shape)} does not fit mix_stft "
                               f"{tuple(mix_stft.shape)}: frames and bins must agree, and the channels be 1 or the "
                               "mixture's")
    if frames == 0 or targets_spectrograms.shape[-1] == 0:
        raise SpectrogramError("targets_spectrograms holds no frame or no source")
    _check_finite(targets_spectrograms, "targets_spectrograms")
    _check_finite(mix_stft, "mix_stft")
    if bool((targets_spectrograms < 0).any()):
        raise SpectrogramError("targets_spectrograms must be magnitudes (>= 0), as the model gives them")


def wiener(targets_spectrograms: torch.Tensor, mix_stft: torch.Tensor, iterations: int = 1,
           softmask: bool = False, residual: bool = False, scale_factor: float = 10.0,
           eps: float = 1e-10) -> torch.Tensor:
    """Separate the mixture's STFT with the multichannel Wiener filter, given the sources' magnitudes.

    ``targets_spectrograms``: ``(nb_frames, nb_bins, nb_channels, nb_sources)`` magnitudes (``nb_channels`` may be
    1); ``mix_stft``: ``(nb_frames, nb_bins, nb_channels, 2)``, real and imaginary parts last. Returns the sources'
    STFTs, ``(nb_frames, nb_bins, nb_channels, 2, nb_sources)``, as ``openunmix.filtering.wiener``:

    1. a first estimate: each magnitude with the mixture's phase (``softmask=False``), or the mixture times the
       ratio mask ``|Y_j| / (eps + sum_k |Y_k|)`` (``softmask=True``: better when the estimates are poor);
    2. with ``residual``, one more source: the mixture minus the sum of the others;
    3. ``iterations`` rounds of :func:`expectation_maximization`, on the STFTs divided by
       ``max(1, max |x| / scale_factor)`` (for numerical safety) and multiplied back. With 0 iterations the first
       estimate is returned. ``eps`` regularises every division.

    Unlike openunmix 1.3.0, this leaves ``mix_stft`` untouched: the reference's phase computation writes 1 into
    the real part of every bin where the mixture is exactly 0, in the caller's tensor, and then separates that.
    Elsewhere the two agree to rounding. Work in float64 for accuracy: ``mix_stft.double()``.
    """
    _check_iterations(iterations)
    _check_wiener_input(targets_spectrograms, mix_stft)
    x = _from_pairs(mix_stft, -1)                                   # (nb_frames, nb_bins, nb_channels)
    mags = targets_spectrograms.to(mix_stft.dtype)
    if softmask:
        y = x[..., None] * (mags / (eps + mags.sum(dim=-1, keepdim=True)))
    else:
        mags, phase = torch.broadcast_tensors(mags, x.angle()[..., None])   # mono magnitudes: every channel
        y = torch.polar(mags.contiguous(), phase.contiguous())              # |Y_j| exp(i angle(x))
    if residual:
        y = torch.cat([y, x[..., None] - y.sum(dim=-1, keepdim=True)], dim=-1)
    if iterations:
        scale = max(1.0, float(x.abs().max()) / scale_factor)
        y = _em(y / scale, x / scale, iterations, eps, 200)[0] * scale
    return _to_pairs(y.contiguous(), 3)


# --------------------------------------------------------------------------------------------------------------
# 4. Separation: waveform in, waveforms out
# --------------------------------------------------------------------------------------------------------------


def separate(audio: torch.Tensor, target_models: Mapping[str, nn.Module], *, niter: int = 1,
             softmask: bool = False, residual: bool = False, wiener_win_len: int | None = 300,
             n_fft: int = N_FFT, n_hop: int = N_HOP) -> torch.Tensor:
    """Separate ``audio`` ``(nb_samples, nb_channels, nb_timesteps)`` into ``(nb_samples, nb_targets, nb_channels,
    nb_timesteps)``, the targets in the order of ``target_models``; what ``openunmix.model.Separator`` does.

    The STFT of the mixture; each model's magnitude estimate; the Wiener filter (:func:`wiener`, ``niter``
    iterations: 1 is Open-Unmix's command-line default), on windows of ``wiener_win_len`` frames (``None``: the
    whole track at once, in far more memory); the inverse STFT. With ``residual``, one more target: the rest of the
    mixture. Put the models in ``eval()`` mode, and call this under ``torch.inference_mode()`` unless you train
    through it. The filter runs in the audio's dtype; pass float64 audio for the most accurate filter.
    """
    if audio.ndim != 3:
        raise SpectrogramError(f"audio must be (nb_samples, nb_channels, nb_timesteps), got shape "
                               f"{tuple(audio.shape)}; one track is audio[None]")
    nb_targets = len(target_models) + int(residual)
    if nb_targets == 0 or (nb_targets == 1 and niter > 0):
        raise SpectrogramError("the Wiener filter's EM needs two targets or more: give more models, or "
                               "residual=True (the rest of the mixture), or niter=0")
    mix_stft = stft(audio, n_fft=n_fft, n_hop=n_hop)                    # (samples, channels, bins, frames)
    X = magnitude(mix_stft)
    spectrograms = torch.stack([model(X) for model in target_models.values()], dim=-1).to(audio.dtype)
    spectrograms = spectrograms.permute(0, 3, 2, 1, 4)                  # (samples, frames, bins, channels, J)
    mix_pairs = torch.view_as_real(mix_stft.permute(0, 3, 2, 1))        # (samples, frames, bins, channels, 2)
    nb_frames = X.shape[-1]
    step = wiener_win_len or nb_frames
    estimates = []
    for k in range(audio.shape[0]):                                     # song by song, window by window
        estimates.append(torch.cat([wiener(spectrograms[k, t:t + step], mix_pairs[k, t:t + step], niter,
                                           softmask=softmask, residual=residual)
                                    for t in range(0, nb_frames, step)]))
    estimates = torch.stack(estimates)                                  # (samples, frames, bins, channels, 2, J)
    estimates = torch.view_as_complex(estimates.permute(0, 5, 3, 2, 1, 4).contiguous())
    return istft(estimates, audio.shape[-1], n_fft=n_fft, n_hop=n_hop)
