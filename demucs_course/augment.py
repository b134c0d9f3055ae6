"""Chapter 2: The data pipeline -- data augmentation.

Demucs v1 augments every training batch with four cheap, label-preserving transforms, applied in this order
(as in the reference training script)::

    augment = nn.Sequential(FlipSign(), FlipChannels(), Shift(44100), Remix(group_size=4))

The paper's later version (v2, 2021) adds a fifth, :class:`Repitch`: with probability 0.2 an example is played up
to 2 semitones higher or lower and up to 12 % faster or slower, every source by the same amount. It comes first
(the reference code applies it in the dataset, before the others) and needs longer extracts, since a faster
tempo shortens the audio: :meth:`Repitch.input_length`.

Each one works on a batch of *sources* shaped ``(batch, source, channel, time)``; the mixture a training step feeds
the model is rebuilt afterwards as the sum of the augmented sources (:func:`mix_sources`), so the mixing model
``mixture = sum of sources`` still holds exactly. Each transform draws its randomness per item *and* per source, so
the four stems of one example are transformed independently: the drums may be flipped while the bass is not.

All four are ``torch.nn.Module``: in ``train()`` mode they draw random numbers from torch's global generator
(seed it with ``torch.manual_seed`` for reproducible batches); in ``eval()`` mode they are deterministic
(``Shift`` only crops, the others do nothing).
"""

from __future__ import annotations

import math

import torch
from torch import nn


def _check_batch(wav: torch.Tensor, name: str) -> None:
    """Augmentations take (batch, source, channel, time); say so clearly when they get something else."""
    if not isinstance(wav, torch.Tensor):
        raise TypeError(f"{name} expects a torch.Tensor shaped (batch, source, channel, time), got {type(wav).__name__}")
    if wav.dim() != 4:
        raise ValueError(
            f"{name} expects a batch shaped (batch, source, channel, time), got shape {tuple(wav.shape)}. "
            "A single example shaped (source, channel, time) needs a batch axis: wav.unsqueeze(0)."
        )


class FlipSign(nn.Module):
    """Multiply each source of each example by +1 or -1, at random.

    A waveform and its negative sound the same, so the label stays true. Invariant: ``|out| == |in|``.
    """

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        _check_batch(wav, "FlipSign")
        if not self.training:
            return wav
        batch, sources = wav.shape[:2]
        signs = torch.randint(2, (batch, sources, 1, 1), device=wav.device).to(wav.dtype)
        return wav * (2 * signs - 1)


class FlipChannels(nn.Module):
    """Swap left and right of each source of each example, at random (stereo input only).

    Each output channel is drawn from the input's two channels independently of the sources around it, exactly as
    in the reference: a source is either left as it is or has its channels swapped. Mono input is returned as is.
    """

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        _check_batch(wav, "FlipChannels")
        batch, sources, channels, time = wav.shape
        if not self.training or channels != 2:
            return wav
        left = torch.randint(2, (batch, sources, 1, 1), device=wav.device)
        left = left.expand(-1, -1, -1, time)
        right = 1 - left
        return torch.cat([wav.gather(2, left), wav.gather(2, right)], dim=2)


class Shift(nn.Module):
    """Crop ``shift`` samples off each source, keeping a random window: a random time shift per source.

    The input is ``shift`` samples longer than what the model sees; in training each source of each example keeps
    ``time - shift`` samples starting at its own random offset in ``[0, shift)``. Shifting the stems against each
    other makes new mixtures the model has never heard. In ``eval()`` mode it keeps the first ``time - shift``
    samples, always the same.
    """

    def __init__(self, shift: int = 44100):
        super().__init__()
        if shift < 0:
            raise ValueError(f"Shift needs shift >= 0 samples, got {shift}")
        self.shift = int(shift)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        _check_batch(wav, "Shift")
        batch, sources, channels, time = wav.shape
        if self.shift == 0:
            return wav
        length = time - self.shift
        if length <= 0:
            raise ValueError(
                f"Shift({self.shift}) needs examples longer than {self.shift} samples, got {time}: "
                "make the dataset's extracts `shift` samples longer than what the model should see."
            )
        if not self.training:
            return wav[..., :length]
        offsets = torch.randint(self.shift, (batch, sources, 1, 1), device=wav.device)
        offsets = offsets.expand(-1, -1, channels, -1)
        indexes = torch.arange(length, device=wav.device)
        return wav.gather(3, indexes + offsets)


class Remix(nn.Module):
    """Shuffle each source across the examples of a batch, within groups of ``group_size`` examples.

    After it, the drums of example 0 may play with the bass of example 2 and the vocals of example 1: new
    mixtures from the same stems. The permutation is drawn per group and per source, so every source of every
    output example still comes from some example of the same group. A batch size that is not a multiple of
    ``group_size`` is an error (choose a batch size that is).
    """

    def __init__(self, group_size: int = 4):
        super().__init__()
        if group_size < 1:
            raise ValueError(f"Remix needs group_size >= 1, got {group_size}")
        self.group_size = int(group_size)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        _check_batch(wav, "Remix")
        if not self.training:
            return wav
        batch, sources, channels, time = wav.shape
        if batch % self.group_size != 0:
            raise ValueError(
                f"Remix(group_size={self.group_size}) needs a batch size that is a multiple of {self.group_size}, "
                f"got {batch}. Use a batch size of {max(1, batch // self.group_size) * self.group_size} "
                "(or drop_last=True in the DataLoader so the last, smaller batch is skipped)."
            )
        groups = batch // self.group_size
        wav = wav.view(groups, self.group_size, sources, channels, time)
        # One random permutation of the group's examples per (group, source): argsort of uniform noise.
        permutations = torch.argsort(torch.rand(groups, self.group_size, sources, 1, 1, device=wav.device), dim=1)
        wav = wav.gather(1, permutations.expand(-1, -1, -1, channels, time))
        return wav.view(batch, sources, channels, time)


# --------------------------------------------------------------------------------------------------------------
# Pitch and tempo: a phase vocoder and a band-limited resampler, in plain torch
# --------------------------------------------------------------------------------------------------------------


def time_stretch(wav: torch.Tensor, rate: float, *, n_fft: int = 2048, hop: int = 512) -> torch.Tensor:
    """Play ``wav`` (..., time) ``rate`` times faster without changing its pitch: a phase vocoder.

    The short-time Fourier transform is read at fractional frame positions ``t = 0, rate, 2 rate, ...``; each output
    frame takes the magnitude interpolated between the two frames around ``t``, and a phase that advances by each
    bin's measured instantaneous frequency (Flanagan and Golden 1966; Laroche and Dolson 1999)::

        φ_{m+1}(k) = φ_m(k) + ω_k H + princarg(∠X_{n+1}(k) - ∠X_n(k) - ω_k H),   ω_k = 2π k / N_fft

    so that partials keep their frequency while the frames come closer together (``rate > 1``) or further apart.
    Returns ``round(time / rate)`` samples.
    """
    if not rate > 0:
        raise ValueError(f"time_stretch needs rate > 0, got {rate!r}")
    shape, time = wav.shape[:-1], wav.shape[-1]
    window = torch.hann_window(n_fft, device=wav.device, dtype=wav.dtype)
    spec = torch.stft(wav.reshape(-1, time), n_fft, hop, window=window, return_complex=True)   # (N, F, frames)
    frames = spec.shape[-1]
    steps = torch.arange(0, frames, rate, device=wav.device, dtype=torch.float64)
    before = steps.floor().long()
    alpha = (steps - before).to(wav.dtype)
    spec = nn.functional.pad(spec, (0, 2))                      # frames n+1 and n+2 exist for the last steps
    now, next_ = spec[..., before], spec[..., before + 1]
    omega_hop = torch.linspace(0, math.pi * hop, spec.shape[-2], device=wav.device, dtype=wav.dtype)[:, None]
    deviation = next_.angle() - now.angle() - omega_hop
    deviation = deviation - 2 * math.pi * torch.round(deviation / (2 * math.pi))      # princarg: into [-π, π]
    # The first frames overlap the padding around the signal, and their phase differences are not those of the
    # music: output frames read there keep their own phase, and the accumulation starts at the first clean frame.
    start = int((before >= n_fft // (2 * hop)).nonzero()[0]) if (before >= n_fft // (2 * hop)).any() else len(steps)
    advance = nn.functional.pad((omega_hop + deviation)[..., :-1], (1, 0))
    advance[..., :start + 1] = 0
    phase = now.angle()
    if start < len(steps):
        phase = torch.cat([phase[..., :start], phase[..., start:start + 1] + advance[..., start:].cumsum(-1)], -1)
    magnitude = (1 - alpha) * now.abs() + alpha * next_.abs()
    out = torch.istft(torch.polar(magnitude, phase), n_fft, hop, window=window, length=round(time / rate))
    return out.reshape(*shape, -1)


def resample_fft(wav: torch.Tensor, length: int) -> torch.Tensor:
    """Resample ``wav`` (..., time) to ``length`` samples by cutting or zero-padding its spectrum (band-limited)."""
    time = wav.shape[-1]
    spectrum = torch.fft.rfft(wav)
    bins = length // 2 + 1
    if bins <= spectrum.shape[-1]:
        spectrum = spectrum[..., :bins]
    else:
        spectrum = nn.functional.pad(spectrum, (0, bins - spectrum.shape[-1]))
    return torch.fft.irfft(spectrum, n=length) * (length / time)


def repitch(wav: torch.Tensor, semitones: float, tempo: float) -> torch.Tensor:
    """``wav`` (..., time) ``semitones`` higher and ``tempo`` percent faster, in ``round(time / (1 + tempo/100))``
    samples. A pitch factor ``f = 2^(semitones/12)`` is a resampling (playing ``f`` times faster raises the pitch and
    shortens the audio by ``f``); the phase vocoder first stretches by ``(1 + tempo/100) / f`` so that both come out
    as asked."""
    factor = 2 ** (semitones / 12)
    speed = 1 + tempo / 100
    if not speed > 0:
        raise ValueError(f"tempo must be above -100 %, got {tempo!r}")
    stretched = time_stretch(wav, speed / factor) if speed != factor else wav
    return resample_fft(stretched, round(wav.shape[-1] / speed))


class Repitch(nn.Module):
    """Change the pitch and the tempo of some examples, every source of an example by the same amount.

    As the reference code of the paper's later version (its ``RepitchedWrapper``, which calls the ``soundstretch``
    program; this one is :func:`repitch`, in torch): each example is changed with probability ``proba``, by a whole
    number of semitones drawn uniformly in ``[-max_pitch, max_pitch]`` and a tempo change in percent drawn from a
    normal law of standard deviation ``tempo_std``, clipped to ``[-max_tempo, max_tempo]``. Every example, changed
    or not, is then cut to ``int((1 - max_tempo/100) * time)`` samples, so the batch keeps one length: give it
    extracts :meth:`input_length` long. In ``eval()`` mode it only cuts.
    """

    def __init__(self, proba: float = 0.2, max_pitch: int = 2, max_tempo: float = 12.0, tempo_std: float = 5.0):
        super().__init__()
        if not 0 <= proba <= 1 or max_pitch < 0 or not 0 <= max_tempo < 100 or tempo_std < 0:
            raise ValueError(f"Repitch needs 0 <= proba <= 1, max_pitch >= 0, 0 <= max_tempo < 100 and tempo_std >= 0;"
                             f" got proba={proba}, max_pitch={max_pitch}, max_tempo={max_tempo}, tempo_std={tempo_std}")
        self.proba, self.max_pitch, self.max_tempo, self.tempo_std = float(proba), int(max_pitch), float(max_tempo), \
            float(tempo_std)

    def output_length(self, time: int) -> int:
        return int((1 - self.max_tempo / 100) * time)

    def input_length(self, length: int) -> int:
        """The extract length that comes out as ``length`` samples: the least ``time`` with
        ``output_length(time) >= length``."""
        time = math.ceil(length / (1 - self.max_tempo / 100))
        while self.output_length(time) < length:
            time += 1
        return time

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        _check_batch(wav, "Repitch")
        length = self.output_length(wav.shape[-1])
        if not self.training or self.proba == 0:
            return wav[..., :length]
        out = wav[..., :length].clone()
        chosen = (torch.rand(wav.shape[0]) < self.proba).nonzero().flatten().tolist()
        for index in chosen:
            semitones = int(torch.randint(-self.max_pitch, self.max_pitch + 1, ()))
            tempo = float((torch.randn(()) * self.tempo_std).clamp(-self.max_tempo, self.max_tempo))
            out[index] = repitch(wav[index], semitones, tempo)[..., :length]
        return out


def default_augment(shift: int = 44100, group_size: int = 4, repitch: float = 0.0) -> nn.Sequential:
    """The paper's augmentation pipeline, in the reference order: FlipSign, FlipChannels, Shift, Remix; with
    ``repitch > 0``, :class:`Repitch` (with that probability) comes first, as in the paper's later version."""
    steps = [FlipSign(), FlipChannels(), Shift(shift), Remix(group_size)]
    return nn.Sequential(*([Repitch(repitch)] if repitch > 0 else []), *steps)


def mix_sources(sources: torch.Tensor) -> torch.Tensor:
    """The mixing model: ``mixture = sum of sources``. (batch, source, channel, time) -> (batch, channel, time)."""
    _check_batch(sources, "mix_sources")
    return sources.sum(dim=1)
