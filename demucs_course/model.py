"""Demucs v1, the model: a convolutional encoder, a BiLSTM, a convolutional decoder, joined by U-Net skips.

Four chapters teach this file, top to bottom:

- Chapter 3: The GLU encoder          -- :func:`encoder_layer`
- Chapter 4: The BiLSTM bottleneck    -- :class:`BLSTM`
- Chapter 5: The decoder and U-Net skips -- :func:`decoder_layer`, :func:`center_trim`, :class:`Demucs`
  (``valid_length``, ``forward``), :func:`parameter_breakdown`
- Chapter 6: The init trick           -- :func:`rescale_module`

It follows the original v1 code (Defossez et al. 2019, arXiv v1) layer for layer: the same defaults, the same
construction order (so a seed gives the same weights) and the same module names (so a v1 ``state_dict`` loads).
Shapes: the mixture is ``(batch, audio_channels, time)``; the output is ``(batch, sources, audio_channels, time')``.

A CPU quirk: oneDNN (PyTorch's CPU convolution library) can spend seconds on the first call of a transposed
convolution at some input lengths, e.g. 110250 frames, which the outermost layer gets for a 10 s input. Later calls
are fast; setting ``torch.backends.mkldnn.enabled = False`` (PyTorch's own kernels) avoids the stall.
"""

from __future__ import annotations

import math

import torch
from torch import nn


# --- Chapter 3: The GLU encoder --------------------------------------------------------------------------------


def encoder_layer(in_channels: int, channels: int, kernel_size: int = 8, stride: int = 4,
                  rewrite: bool = True, glu: bool = True) -> nn.Sequential:
    """One encoder layer (Chapter 3: The GLU encoder).

    ``Conv1d(in_channels, channels, kernel_size, stride)`` and ReLU: a length L becomes ``(L - K) / S + 1``.
    With ``rewrite``, a 1x1 ``Conv1d(channels, 2 * channels)`` and a GLU over the channels, which halves them back:
    GLU(a, b) = a * sigmoid(b), a and b the two halves (Dauphin et al. 2017). With ``glu=False`` the 1x1
    convolution keeps ``channels`` and is followed by a ReLU (the paper's "no GLU" ablation).
    """
    activation, ch_scale = (nn.GLU(dim=1), 2) if glu else (nn.ReLU(), 1)
    layers = [nn.Conv1d(in_channels, channels, kernel_size, stride), nn.ReLU()]
    if rewrite:
        layers += [nn.Conv1d(channels, ch_scale * channels, 1), activation]
    return nn.Sequential(*layers)


# --- Chapter 4: The BiLSTM bottleneck --------------------------------------------------------------------------


class BLSTM(nn.Module):
    """The bottleneck (Chapter 4: The BiLSTM bottleneck).

    A bidirectional LSTM with ``layers`` layers and hidden size ``dim`` reads the sequence of encoder frames forwards
    and backwards; ``Linear(2 * dim, dim)`` mixes the two directions back to ``dim`` channels. Outside it works on
    ``(batch, dim, time)`` like the convolutions, inside on ``(time, batch, dim)`` like ``nn.LSTM``.
    """

    def __init__(self, dim: int, layers: int = 1):
        super().__init__()
        self.lstm = nn.LSTM(input_size=dim, hidden_size=dim, num_layers=layers, bidirectional=True)
        self.linear = nn.Linear(2 * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(2, 0, 1)        # (batch, dim, time) -> (time, batch, dim)
        x = self.lstm(x)[0]           # (time, batch, 2 * dim): forward and backward states side by side
        x = self.linear(x)            # (time, batch, dim)
        return x.permute(1, 2, 0)     # -> (batch, dim, time)


# --- Chapter 5: The decoder and U-Net skips --------------------------------------------------------------------


def decoder_layer(channels: int, out_channels: int, kernel_size: int = 8, stride: int = 4, rewrite: bool = True,
                  glu: bool = True, context: int = 3, last: bool = False) -> nn.Sequential:
    """One decoder layer, the mirror of an encoder layer (Chapter 5: The decoder and U-Net skips).

    With ``rewrite``, ``Conv1d(channels, 2 * channels, context)`` without padding and a GLU (or, with ``glu=False``,
    ``channels`` and a ReLU): each output looks at ``context`` neighbouring frames, and the length shrinks by
    ``context - 1``. Then ``ConvTranspose1d(channels, out_channels, kernel_size, stride)``: L becomes
    ``(L - 1) * S + K``. A ReLU follows on every layer but the ``last`` (outermost) one, whose output is the
    waveforms, and so linear.
    """
    activation, ch_scale = (nn.GLU(dim=1), 2) if glu else (nn.ReLU(), 1)
    layers = []
    if rewrite:
        layers += [nn.Conv1d(channels, ch_scale * channels, context), activation]
    layers += [nn.ConvTranspose1d(channels, out_channels, kernel_size, stride)]
    if not last:
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def center_trim(tensor: torch.Tensor, reference: torch.Tensor | int) -> torch.Tensor:
    """Trim both ends of ``tensor``'s last dimension to ``reference``'s length (Chapter 5: The decoder and U-Net skips).

    ``reference`` is a tensor (its last dimension's size is used) or an int. When the difference is odd, the extra
    sample comes off the right. A ``reference`` longer than ``tensor`` is an error: trimming cannot lengthen.
    """
    length = reference if isinstance(reference, int) else reference.size(-1)
    delta = tensor.size(-1) - length
    if delta < 0:
        raise ValueError(f"center_trim: the tensor has {tensor.size(-1)} samples, fewer than the reference's "
                         f"{length}; trimming cannot lengthen (pad the tensor instead)")
    return tensor[..., delta // 2: tensor.size(-1) - (delta - delta // 2)]


# --- Chapter 6: The init trick ---------------------------------------------------------------------------------


def rescale_module(module: nn.Module, reference: float = 0.1) -> None:
    """Rescale every convolution's weights towards the standard deviation ``reference`` (Chapter 6: The init trick).

    For each ``Conv1d`` and ``ConvTranspose1d`` (LSTM and Linear are left alone), in place:
    scale = sqrt(std(w) / reference); w <- w / scale; b <- b / scale, so the new std is sqrt(std(w) * reference),
    the geometric mean of the default std and the reference. On the meta device (shapes without values) it does
    nothing.
    """
    for sub in module.modules():
        if isinstance(sub, (nn.Conv1d, nn.ConvTranspose1d)) and not sub.weight.is_meta:
            scale = (sub.weight.detach().std() / reference) ** 0.5
            sub.weight.data /= scale
            if sub.bias is not None:
                sub.bias.data /= scale


# --- The whole model (Chapter 5) -------------------------------------------------------------------------------


class Demucs(nn.Module):
    """Demucs v1 (Chapter 5: The decoder and U-Net skips puts the pieces of Chapters 3-6 together).

    Args:
        sources: number of stems to output (4: drums, bass, other, vocals).
        audio_channels: 2 for stereo.
        channels: output channels of the first encoder layer; each next layer has ``growth`` times more.
        depth: number of encoder (and decoder) layers.
        rewrite: add the 1x1 convolution to each encoder layer and the ``context`` convolution to each decoder layer.
        glu: use GLU after those convolutions (else ReLU).
        rescale: the reference std of the init trick (Chapter 6); 0 turns it off.
        kernel_size, stride: of the strided encoder convolutions and the transposed decoder convolutions.
        growth: channel multiplier from one layer to the next.
        lstm_layers: layers of the BiLSTM bottleneck; 0 removes it.
        context: kernel size of the decoder's first convolution.
    """

    def __init__(self, sources: int = 4, audio_channels: int = 2, channels: int = 64, depth: int = 6,
                 rewrite: bool = True, glu: bool = True, rescale: float = 0.1, kernel_size: int = 8,
                 stride: int = 4, growth: float = 2.0, lstm_layers: int = 2, context: int = 3):
        super().__init__()
        for name, value in (("sources", sources), ("audio_channels", audio_channels), ("channels", channels),
                            ("depth", depth), ("kernel_size", kernel_size), ("stride", stride),
                            ("context", context)):
            if int(value) != value or value < 1:
                raise ValueError(f"Demucs: {name} must be a positive integer, got {value!r}")
        if lstm_layers < 0 or rescale < 0 or growth <= 0:
            raise ValueError(f"Demucs: lstm_layers and rescale must be >= 0 and growth > 0, got "
                             f"lstm_layers={lstm_layers!r}, rescale={rescale!r}, growth={growth!r}")
        self.sources = sources
        self.audio_channels = audio_channels
        self.kernel_size = kernel_size
        self.stride = stride
        self.depth = depth
        # Without rewrite there is no context convolution, so nothing to make room for (v1 kept `context` in
        # valid_length there too, and padded more than the layers need).
        self.context = context if rewrite else 1

        self.encoder = nn.ModuleList()
        self.decoder = nn.ModuleList()
        # As in v1, one loop builds encoder layer i and then its mirror decoder layer i (inserted at the front, so
        # the decoder runs innermost first): the random draws, and so the weights for a seed, match the reference.
        in_channels = audio_channels
        for index in range(depth):
            self.encoder.append(encoder_layer(in_channels, channels, kernel_size, stride, rewrite, glu))
            out_channels = in_channels if index > 0 else sources * audio_channels
            self.decoder.insert(0, decoder_layer(channels, out_channels, kernel_size, stride, rewrite, glu,
                                                 context, last=index == 0))
            in_channels = channels
            channels = int(growth * channels)

        self.lstm = BLSTM(in_channels, lstm_layers) if lstm_layers else None

        if rescale:
            rescale_module(self, reference=rescale)

    def valid_length(self, length: int) -> int:
        """The input length to use for ``length`` samples of audio (Chapter 5: The decoder and U-Net skips).

        It is the smallest input length that every strided convolution covers exactly (no sample left over) and
        whose output is at least ``length`` samples long, so it can be center-trimmed to the mixture (the decoder's
        context convolutions eat ``context - 1`` frames per layer: the input must be longer than the output).
        Pad a mixture of T samples to ``valid_length(T)`` and ``center_trim`` the output back to T.
        At the defaults: 441000 (10 s) -> 451924, whose output has 441004 samples.
        """
        if int(length) != length or length < 1:
            raise ValueError(f"valid_length: length must be a positive integer number of samples, got {length!r}")
        for _ in range(self.depth):
            length = math.ceil((length - self.kernel_size) / self.stride) + 1   # encoder: L -> ceil((L - K) / S) + 1
            length = max(1, length)
            length += self.context - 1                                          # room for the context convolution
        for _ in range(self.depth):
            length = (length - 1) * self.stride + self.kernel_size              # decoder: L -> (L - 1) * S + K
        return int(length)

    def lengths(self, length: int) -> tuple[list[int], list[int]]:
        """The time lengths after each encoder layer and after each decoder layer, for an input of ``length``.

        Exact integer arithmetic of what ``forward`` does; it raises a ValueError when ``length`` is not one the
        model accepts (see :meth:`valid_length`).
        """
        K, S = self.kernel_size, self.stride
        encoded, L = [], int(length)
        for index in range(self.depth):
            if L < K or (L - K) % S:
                raise ValueError(
                    f"Demucs: an input of {length} samples is not a valid length: encoder layer {index + 1} would "
                    f"get {L} frames, and a convolution with kernel {K} and stride {S} covers exactly only "
                    f"{K} + {S} * n frames. Pad the input to model.valid_length({length}) = "
                    f"{self.valid_length(length)} samples (and center_trim the output back).")
            L = (L - K) // S + 1
            encoded.append(L)
        if L < self.context:
            raise ValueError(
                f"Demucs: an input of {length} samples is too short: the bottleneck gets {L} frame(s), fewer than "
                f"the decoder's context of {self.context}. Pad the input to model.valid_length({length}) = "
                f"{self.valid_length(length)} samples.")
        decoded = []
        for _ in range(self.depth):
            L = (L - self.context + 1 - 1) * S + K
            decoded.append(L)
        return encoded, decoded

    def _check_input(self, mix: torch.Tensor) -> None:
        expected = f"(batch, {self.audio_channels}, time) with time = model.valid_length(T)"
        if not isinstance(mix, torch.Tensor):
            raise ValueError(f"Demucs expects a torch.Tensor shaped {expected}, got {type(mix).__name__}")
        if mix.dim() != 3:
            hint = " (add a batch dimension with mix[None])" if mix.dim() == 2 else ""
            raise ValueError(f"Demucs expects a tensor shaped {expected}, got shape {tuple(mix.shape)}{hint}")
        if mix.size(1) != self.audio_channels:
            raise ValueError(f"Demucs expects {self.audio_channels} audio channels, shape {expected}; got shape "
                             f"{tuple(mix.shape)} (is the time axis last? mono to stereo: mix.expand(-1, 2, -1))")
        if mix.size(0) == 0 or mix.size(-1) == 0:
            raise ValueError(f"Demucs got an empty tensor of shape {tuple(mix.shape)}; expected {expected}")
        if not mix.is_floating_point():
            raise ValueError(f"Demucs expects floating point audio, got dtype {mix.dtype} (convert with .float())")
        if not mix.is_meta and not bool(torch.isfinite(mix).all()):
            raise ValueError("Demucs got NaN or infinite samples in its input; check the audio and its normalisation")
        self.lengths(mix.size(-1))

    def forward(self, mix: torch.Tensor) -> torch.Tensor:
        """Separate ``mix`` of shape ``(batch, audio_channels, time)`` into ``(batch, sources, audio_channels, time')``.

        ``time`` must be a valid length (pad to ``model.valid_length(T)``); ``time'`` is a little shorter (see
        :meth:`lengths`), center-trim the sources to the mixture you padded.
        """
        self._check_input(mix)
        x = mix
        saved = []                                  # the encoder outputs, for the U-Net skips
        for encode in self.encoder:
            x = encode(x)
            saved.append(x)
        if self.lstm is not None:
            x = self.lstm(x)
        for decode in self.decoder:                 # innermost first
            skip = center_trim(saved.pop(-1), x)    # the matching encoder output, trimmed to x's length
            x = decode(x + skip)
        return x.view(x.size(0), self.sources, self.audio_channels, x.size(-1))


# --- Sizes, and a model small enough for a CPU ------------------------------------------------------------------

#: A Demucs small enough to train for a minute on two CPU cores (the book's CI): 8 channels doubling to 64 over
#: 4 layers, one BiLSTM layer. Its valid lengths are multiples of 4 ** 4 = 256 samples apart.
TINY = dict(channels=8, depth=4, lstm_layers=1)


def tiny_demucs(**overrides) -> Demucs:
    """A :data:`TINY` Demucs; keyword arguments override its settings (e.g. ``tiny_demucs(glu=False)``)."""
    return Demucs(**{**TINY, **overrides})


def count_parameters(model: nn.Module) -> int:
    """The number of parameters (scalars) of ``model``; works on the meta device too."""
    return sum(p.numel() for p in model.parameters())


def parameter_breakdown(model: Demucs) -> dict[str, int]:
    """Parameters of the encoder, the BiLSTM bottleneck (with its Linear) and the decoder, and their total."""
    parts = {"encoder": count_parameters(model.encoder),
             "lstm": count_parameters(model.lstm) if model.lstm is not None else 0,
             "decoder": count_parameters(model.decoder)}
    parts["total"] = sum(parts.values())
    return parts
