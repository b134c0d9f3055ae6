"""Chapter 8: The shift trick -- and separating a whole track.

A trained Demucs separates a song of any length in these steps, all of them in this file:

1. **normalise** the mixture with the mean and std of its own mono mix, as training did (Chapter 2):
   ``x' = (x - mean(m)) / std(m)`` (a mixture whose channels cancel, R = -L, first has its right channel
   inverted, and the sources get it back: :func:`channels_cancel`);
2. cut a long track into **segments** (10 s, overlapping by a quarter), so that memory stays bounded: a 4-minute
   track in one pass would hold every activation of the model for 4 minutes of audio at once;
3. **pad** each segment to ``model.valid_length`` -- with the audio around it, and zeros beyond the ends of the
   track -- run the model, and :func:`~demucs_course.model.center_trim` the sources back to the segment;
4. **cross-fade** the overlapping segments linearly, so that no seam is heard;
5. the **shift trick** (Defossez et al. 2019): Demucs is not shift-equivariant -- shifting the input by a few
   samples changes the output by more than a shift -- so average the outputs of S randomly shifted copies;
6. **de-normalise** the sources: ``s = s' * std(m) + mean(m)``.

:func:`apply_model` does steps 2-5 on a normalised mixture; :func:`separate_track` adds steps 1 and 6 and checks
its input. Training's validation and the ``demucs-course separate`` command both call :func:`separate_track`.

On the CPU the model runs without oneDNN (see :mod:`demucs_course.model`'s note): its first transposed convolution
at some lengths, the one a 10-s segment gives included, stalls for seconds.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F

from . import SAMPLE_RATE
from .audio import check_waveform
from .data import MONO_STD_FLOOR, mono_stats, normalize
from .model import center_trim

#: The shift trick's largest shift: 0.5 s. The mixture is padded by this much on both sides.
MAX_SHIFT = SAMPLE_RATE // 2
#: The default segment length: 10 s, the length of the extracts the model was trained on.
SEGMENT = 10 * SAMPLE_RATE


def apply_model(model, mix: torch.Tensor, *, shifts: int = 0, split: bool = True, segment: int | None = None,
                overlap: float = 0.25, progress: bool = False, generator: torch.Generator | None = None
                ) -> torch.Tensor:
    """Separate a *normalised* mixture with ``model``: segments, cross-fades and the shift trick (Chapter 8).

    Args:
        model: a Demucs, or any module with a ``valid_length(length)`` method that maps ``(batch, channels, time)``
            to ``(batch, sources, channels, time')``. It runs as given, under ``torch.no_grad()``, on the device of
            its parameters: pass ``model.eval()``. Its train/eval state is not changed.
        mix: the normalised mixture, a float tensor ``(channels, T)`` or ``(batch, channels, T)``.
        shifts: S, the number of random shifts to average (the shift trick); 0 runs the model once per segment.
            The mixture is padded by ``MAX_SHIFT`` = 0.5 s of zeros on both sides, and for S distinct offsets
            ``o`` drawn in ``[0, MAX_SHIFT)`` the model separates ``padded[..., o : o + T + MAX_SHIFT]``; the
            outputs ``out[..., MAX_SHIFT - o : MAX_SHIFT - o + T]`` (the shift undone) are averaged. Cost: S times.
        split: process the mixture in segments of ``segment`` samples (default :data:`SEGMENT`, 10 s) that overlap
            by ``overlap`` (a fraction, at most 0.5) and are cross-faded linearly. Memory then stays bounded by one
            segment's activations whatever the length of the track. ``split=False`` runs one pass.
        progress: show a progress bar (one step per model call).
        generator: the ``torch.Generator`` (CPU) that draws the shift offsets; None uses torch's global one.

    Returns:
        The sources, ``(sources, channels, T)`` or ``(batch, sources, channels, T)``, on ``mix``'s device, in
        ``mix``'s dtype. Only the windows the model reads are moved to the model's device, so a long track can stay
        on the CPU while the model runs on a GPU.

    Each segment ``[s, s + n)`` is padded to ``valid_length(n)`` with the audio around it (zeros beyond the ends of
    the mixture), and the model's output is center-trimmed back to ``n`` samples. Without ``split`` the whole
    (shifted) mixture is one segment, padded with zeros, as in Demucs v1's ``apply_model``.
    """
    _check_arguments(model, mix, shifts, segment, overlap)
    batched = mix.dim() == 3
    if not batched:
        mix = mix[None]
    length = mix.shape[-1]

    if shifts:
        # The shift trick: s_hat = 1/S sum_k shift_{-o_k}( f( shift_{o_k}(x) ) ), o_k distinct offsets in
        # [0, max_shift). With d = MAX_SHIFT - o zeros before the mixture and o after, the shifted input
        # padded[o : o + T + MAX_SHIFT] covers mixture positions [-d, T + o); keeping out[d : d + T] keeps
        # positions [0, T). So each shift is the same separation run over another stretch of the zero-padded mixture.
        offsets = torch.randperm(MAX_SHIFT, generator=generator)[:shifts].tolist()
        spans = [(offset - MAX_SHIFT, length + offset) for offset in offsets]
    else:
        spans = [(0, length)]
    segment = SEGMENT if segment is None else int(segment)
    plans = [_segments(first, last, segment if split else last - first, overlap, length) for first, last in spans]

    from tqdm.auto import tqdm

    bar = tqdm(total=sum(len(p) for p in plans), desc="separating", unit="segment", disable=not progress)
    device = next(iter(model.parameters()), mix).device if isinstance(model, torch.nn.Module) else mix.device
    out = w = None
    with torch.no_grad(), _without_onednn(device), bar:
        for count, plan in enumerate(plans, start=1):
            pending = None       # (position, sources): the end of the last segment, to cross-fade with the next
            for start, stop, fade in plan:
                sources = _run_segment(model, mix, start, stop, device)
                if out is None:
                    out = mix.new_empty(sources.shape[:-1] + (length,))
                if pending is not None:
                    # Linear cross-fade over the overlap: (1 - w) * previous + w * this segment, w rising from
                    # 1 / (n + 1) to n / (n + 1) over its n samples.
                    position, previous = pending
                    n = previous.shape[-1]
                    if w is None or w.numel() != n:
                        w = torch.arange(1, n + 1, device=mix.device, dtype=mix.dtype) / (n + 1)
                    _commit(out, torch.lerp(previous, sources[..., :n], w), position, count)
                    sources, start = sources[..., n:], start + n
                keep = sources.shape[-1] - fade
                _commit(out, sources[..., :keep], start, count)
                pending = (start + keep, sources[..., keep:]) if fade else None
                bar.update()
    return out if batched else out[0]


@contextlib.contextmanager
def _without_onednn(device: torch.device):
    """On the CPU, run without oneDNN (mkldnn), whose first call of a transposed convolution at some lengths -- the
    10-s segment's outermost layer gets one -- stalls for seconds; PyTorch's own kernels are as fast here."""
    if device.type != "cpu":
        yield
        return
    enabled = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = False
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled = enabled


def _check_arguments(model, mix, shifts, segment, overlap) -> None:
    """Clear errors for arguments that would otherwise fail deep inside torch."""
    if not callable(getattr(model, "valid_length", None)):
        raise ValueError(f"apply_model needs a model with a valid_length(length) method, like Demucs; got "
                         f"{type(model).__name__}")
    if not isinstance(mix, torch.Tensor):
        raise ValueError(f"apply_model takes the normalised mixture as a torch.Tensor (channels, T); got "
                         f"{type(mix).__name__} (separate_track takes numpy arrays and normalises for you)")
    channels = getattr(model, "audio_channels", 2)
    if mix.dim() not in (2, 3) or mix.shape[-2] != channels:
        raise ValueError(f"apply_model expects a mixture shaped ({channels}, T) or (batch, {channels}, T), got "
                         f"shape {tuple(mix.shape)} (is the time axis last?)")
    if mix.shape[-1] == 0 or (mix.dim() == 3 and mix.shape[0] == 0):
        raise ValueError(f"apply_model got an empty mixture of shape {tuple(mix.shape)}")
    if not mix.is_floating_point():
        raise ValueError(f"apply_model expects floating point audio, got dtype {mix.dtype} (convert with .float())")
    if not bool(torch.isfinite(mix).all()):
        raise ValueError("apply_model got NaN or infinite samples in the mixture; check the audio and its "
                         "normalisation")
    if isinstance(shifts, bool) or int(shifts) != shifts or not 0 <= shifts <= MAX_SHIFT:
        raise ValueError(f"shifts must be a whole number from 0 to {MAX_SHIFT} (the paper uses 10), got {shifts!r}")
    if segment is not None and (isinstance(segment, bool) or int(segment) != segment or segment < 1):
        raise ValueError(f"segment must be a positive whole number of samples (e.g. 10 * 44100), got {segment!r}")
    if not 0 <= overlap <= 0.5:
        raise ValueError(f"overlap must be a fraction of the segment from 0 to 0.5, got {overlap!r}")


def _segments(first: int, last: int, segment: int, overlap: float, length: int) -> list[tuple[int, int, int]]:
    """The segments ``(start, stop, fade)`` that cover positions ``[first, last)``, in order.

    Segments of ``segment`` samples start every ``segment - fade`` samples, where ``fade = int(overlap * segment)``
    is the overlap of one segment with the next (0 for the last one, which may be shorter). Segments entirely
    outside the mixture ``[0, length)`` are left out: all of their output would be cut away.
    """
    fade = int(overlap * segment)
    plan, start = [], first
    while True:
        stop = min(start + segment, last)
        if stop == last:
            fade = 0
        if stop > 0 and start < length:
            plan.append((start, stop, fade))
        if stop == last:
            return plan
        start = stop - fade


def _run_segment(model, mix: torch.Tensor, start: int, stop: int, device) -> torch.Tensor:
    """The model's sources for mixture positions ``[start, stop)``: pad to the valid length, run, center-trim."""
    n = stop - start
    valid = model.valid_length(n)
    left = (valid - n) // 2                      # as F.pad(x, (delta // 2, delta - delta // 2)) then center_trim
    window = _window(mix, start - left, start - left + valid).to(device)
    out = model(window)
    if out.dim() != 4 or out.shape[0] != mix.shape[0] or out.shape[-1] < n:
        raise ValueError(f"the model mapped an input of shape {tuple(window.shape)} to {tuple(out.shape)}; "
                         f"apply_model needs (batch, sources, channels, time) with time >= {n}")
    return center_trim(out, n).to(mix.device)


def _window(mix: torch.Tensor, start: int, stop: int) -> torch.Tensor:
    """``mix[..., start:stop]`` of the mixture extended with zeros on both sides."""
    length = mix.shape[-1]
    inside = mix[..., min(max(start, 0), length): max(min(stop, length), 0)]
    before = min(max(-start, 0), stop - start)
    return F.pad(inside, (before, stop - start - before - inside.shape[-1]))


def _commit(out: torch.Tensor, values: torch.Tensor, start: int, count: int) -> None:
    """Write ``values`` (positions ``start...``) into ``out``, clipped to ``[0, T)``, as the ``count``-th shift.

    The average over shifts is a running mean, ``out += (y - out) / count``: with one shift it is a copy, and when
    every shift gives the same ``y`` it stays exactly ``y``.
    """
    lo, hi = max(start, 0), min(start + values.shape[-1], out.shape[-1])
    if lo >= hi:
        return
    target, values = out[..., lo:hi], values[..., lo - start: hi - start]
    if count == 1:
        target.copy_(values)
    else:
        target.add_((values - target) / count)


def separate_track(model, mixture, *, shifts: int = 0, split: bool = True, device=None,
                   progress: bool = False) -> torch.Tensor:
    """Separate a raw stereo mixture into its sources (Chapter 8), on CPU memory whatever runs the model.

    Args:
        model: a trained Demucs (or any module :func:`apply_model` accepts), in eval mode.
        mixture: the mixture as read from a file, ``(2, T)``, a numpy array or a tensor, samples in [-1, 1].
        shifts: the shift trick's S (0: off; the paper uses 10, 5 does about as well).
        split: separate in 10-s segments with cross-fades (bounded memory), see :func:`apply_model`.
        device: where the model runs, e.g. ``"cuda"``; the model is moved there (``model.to(device)``, in place).
            None: where the model already is. The track stays on the CPU; only segments travel to the device.
        progress: show a progress bar.

    Returns:
        The sources, float32 ``(sources, 2, T)`` on the CPU, in :data:`~demucs_course.SOURCES` order for a Demucs.

    The mixture is normalised by the mean and std of its mono mix (:func:`~demucs_course.data.mono_stats`), the
    model's output de-normalised with the same two numbers. Raises an :class:`~demucs_course.audio.AudioError` for
    a mixture that cannot be separated: badly shaped, empty, non-float, NaN, a single sample, or silent.

    A mixture whose channels cancel -- the right channel is about the left one inverted (R = -L), the mark of a
    polarity error -- has a mono mix that is silent but for rounding. The model learned on songs whose channels
    mostly agree and gives nearly silent stems for it. So when the mono mix's std is under
    :data:`~demucs_course.data.MONO_STD_FLOOR` (0.25) times the std of the samples, the right channel is inverted
    before separating and inverted back in every source: an exact, invertible change of the input, after which it
    is ordinary music (:func:`channels_cancel`).
    """
    mixture = check_waveform(mixture, name="the mixture").cpu()
    flip = channels_cancel(mixture)
    if flip:
        mixture = mixture * torch.tensor([[1.0], [-1.0]])
    stats = mono_stats(mixture, name="the mixture")
    if device is not None:
        model.to(device)
    sources = apply_model(model, normalize(mixture, stats), shifts=shifts, split=split, progress=progress)
    sources.mul_(stats.std).add_(stats.mean)           # denormalize(), in place: no second copy of the sources
    if flip:
        sources[..., 1, :].neg_()
    return sources


def channels_cancel(mixture: torch.Tensor) -> bool:
    """Whether the two channels of ``mixture`` ``(2, T)`` mostly cancel in the mono mix (R close to -L): the mono
    mix's std is under ``MONO_STD_FLOOR`` times the std of the samples. Music never does this (its ratio is 0.7 to
    1; 0.97 to 0.98 on the toy set); a right channel with its polarity inverted does (ratio near 0)."""
    if mixture.shape[-1] < 2:                          # no std to compare (mono_stats then says why)
        return False
    level = float(mixture.double().std())
    return level > 0 and float(mixture.double().mean(dim=0).std()) < MONO_STD_FLOOR * level
