"""Chapter 2: The data pipeline -- data augmentation.

Demucs v1 augments every training batch with four cheap, label-preserving transforms, applied in this order
(as in the reference training script)::

    augment = nn.Sequential(FlipSign(), FlipChannels(), Shift(44100), Remix(group_size=4))

Each one works on a batch of *sources* shaped ``(batch, source, channel, time)``; the mixture a training step feeds
the model is rebuilt afterwards as the sum of the augmented sources (:func:`mix_sources`), so the mixing model
``mixture = sum of sources`` still holds exactly. Each transform draws its randomness per item *and* per source, so
the four stems of one example are transformed independently: the drums may be flipped while the bass is not.

All four are ``torch.nn.Module``: in ``train()`` mode they draw random numbers from torch's global generator
(seed it with ``torch.manual_seed`` for reproducible batches); in ``eval()`` mode they are deterministic
(``Shift`` only crops, the others do nothing).
"""

from __future__ import annotations

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


def default_augment(shift: int = 44100, group_size: int = 4) -> nn.Sequential:
    """The paper's augmentation pipeline, in the reference order: FlipSign, FlipChannels, Shift, Remix."""
    return nn.Sequential(FlipSign(), FlipChannels(), Shift(shift), Remix(group_size))


def mix_sources(sources: torch.Tensor) -> torch.Tensor:
    """The mixing model: ``mixture = sum of sources``. (batch, source, channel, time) -> (batch, channel, time)."""
    _check_batch(sources, "mix_sources")
    return sources.sum(dim=1)
