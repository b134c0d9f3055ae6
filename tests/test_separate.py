"""Whole-track separation (Chapter 8): padding, segments with cross-fades, the shift trick, and their costs.

Most tests use small models written here, whose outputs are known exactly: an identity (every source is the input)
must give the input back through any combination of shifts and segments. A tiny seeded Demucs checks the things
only a real model shows.
"""

import warnings

import numpy as np
import pytest
import soundfile as sf
import torch
import torch.nn.functional as F
from torch import nn
from torch.profiler import ProfilerActivity, profile, record_function

from demucs_course import SAMPLE_RATE
from demucs_course.audio import AudioError
from demucs_course.model import tiny_demucs
from demucs_course.separate import MAX_SHIFT, SEGMENT, apply_model, channels_cancel, separate_track


class Identity(nn.Module):
    """Every one of the 4 sources is the input. ``valid_length`` adds ``extra`` samples (an odd number by default,
    so padding is uneven), and every call's input is kept in ``inputs``."""

    audio_channels = 2

    def __init__(self, extra: int = 37, keep_inputs: bool = False):
        super().__init__()
        self.extra = extra
        self.keep_inputs = keep_inputs
        self.inputs = []
        self.calls = 0

    def valid_length(self, length: int) -> int:
        return length + self.extra

    def forward(self, x):
        assert x.shape[-1] == self.valid_length(x.shape[-1] - self.extra)
        self.calls += 1
        if self.keep_inputs:
            self.inputs.append(x.clone())
        return x[:, None].expand(-1, 4, -1, -1)


class CallNumber(Identity):
    """Every source is the input times the number of this call (1, 2, 3 ...): shows which call made each sample."""

    def forward(self, x):
        self.calls += 1
        return self.calls * x[:, None].expand(-1, 4, -1, -1)


class Wide(Identity):
    """Allocates activations of 64 channels, as a real first layer does, then returns 4 sources of the input."""

    def forward(self, x):
        self.calls += 1
        hidden = x.repeat(1, 32, 1)                                     # (batch, 64, time): x0, x1, x0, x1 ...
        return hidden.view(x.shape[0], 4, 16, -1)[:, :, :2].contiguous()  # a new tensor: the input, 4 times


def stereo(length: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(2, length, generator=torch.Generator().manual_seed(seed))


# --- the identity gives the input back, exactly ----------------------------------------------------------------


@pytest.mark.parametrize("shifts", [0, 1, 5])
@pytest.mark.parametrize("split", [True, False])
@pytest.mark.parametrize("length", [1, 2, 999, 1000, 5003])
def test_identity_model_gives_the_input_back_exactly(shifts, split, length):
    mix = stereo(length)
    out = apply_model(Identity(), mix, shifts=shifts, split=split, segment=1000)
    assert out.shape == (4, 2, length)
    assert torch.equal(out, mix.expand(4, -1, -1))


@pytest.mark.parametrize("overlap", [0.0, 0.1, 0.5])
def test_identity_through_segments_of_any_overlap_and_a_batch(overlap):
    mix = torch.randn(3, 2, 4321)
    model = Identity()
    out = apply_model(model, mix, segment=500, overlap=overlap, shifts=2)
    assert out.shape == (3, 4, 2, 4321)
    assert torch.equal(out, mix[:, None].expand(-1, 4, -1, -1))


def test_short_input_is_one_segment_padded_to_the_valid_length():
    model = Identity(extra=101, keep_inputs=True)
    mix = stereo(700)
    apply_model(model, mix)  # the default segment (10 s) is longer than the input
    (window,) = model.inputs
    assert window.shape == (1, 2, 801)
    # (801 - 700) // 2 = 50 zeros before, 51 after, as F.pad(mix, (delta // 2, delta - delta // 2))
    assert torch.equal(window[0], F.pad(mix, (50, 51)))


def test_segments_are_padded_with_the_audio_around_them():
    model = Identity(extra=40, keep_inputs=True)
    mix = stereo(2500)
    apply_model(model, mix, segment=1000, overlap=0.2)  # segments [0, 1000), [800, 1800), [1600, 2500)
    starts, lengths = [0, 800, 1600], [1000, 1000, 900]
    assert len(model.inputs) == 3
    zero_extended = F.pad(mix, (20, 20))
    for window, start, length in zip(model.inputs, starts, lengths):
        assert torch.equal(window[0], zero_extended[:, start: start + length + 40])


# --- the cross-fade --------------------------------------------------------------------------------------------


def test_cross_fade_is_linear_over_the_overlap_and_nothing_else_is_mixed():
    mix = torch.ones(2, 260)
    out = apply_model(CallNumber(), mix, segment=100, overlap=0.25)  # segments start at 0, 75, 150, 225
    curve = out[0, 0]
    assert torch.equal(curve[:75], torch.full((75,), 1.0))           # only segment 1
    assert torch.equal(curve[100:150], torch.full((50,), 2.0))       # only segment 2
    assert torch.equal(curve[250:], torch.full((10,), 4.0))          # only the last (shorter) segment
    for k, lo in enumerate([75, 150, 225], start=1):                   # overlaps: from call k to call k + 1
        fade = curve[lo: lo + 25].double()
        assert (fade > k).all() and (fade < k + 1).all()
        steps = fade.diff()
        assert torch.allclose(steps, torch.full_like(steps, 1 / 26), atol=1e-6)  # linear, weights summing to 1
    assert torch.equal(out, out[:1, :1].expand(4, 2, -1))            # every source and channel alike


def test_segments_on_the_models_grid_match_one_pass_of_a_real_demucs():
    """A real Demucs is not shift-equivariant, so segments only reproduce the one-pass output where their windows
    sit on the same grid of stride ** depth = 256 samples as the one-pass window (lengths that are multiples of 256
    keep the same padding). Then the convolutions see the same samples, thanks to the audio padding each segment,
    and what differs is only the BiLSTM's view (a segment instead of the track) and the cross-fade: both tiny."""
    torch.manual_seed(0)
    model = tiny_demucs().eval()
    assert model.stride ** model.depth == 256
    mix = stereo(256 * 300)
    whole = apply_model(model, mix, split=False)
    pieces = apply_model(model, mix, segment=256 * 64, overlap=0.25)  # 7 segments, 6 cross-fades
    zero_padded = torch.cat([apply_model(model, part, split=False) for part in mix.split(256 * 64, dim=-1)], -1)
    scale = whole.abs().max()
    assert (pieces - whole).abs().max() < 1e-5 * scale
    # Without the surrounding audio (segments padded with zeros, no cross-fade) the seams are far off:
    assert (zero_padded - whole).abs().max() > 1e-2 * scale


# --- the shift trick -------------------------------------------------------------------------------------------


def shift_offsets(windows, length):
    """The shift offset o of each recorded window: the mixture (whose first sample is 1) starts after
    left + MAX_SHIFT - o zeros, left the padding to the valid length."""
    left = (windows[0].shape[-1] - (length + MAX_SHIFT)) // 2
    return [MAX_SHIFT - (int(torch.nonzero(w[0, 0])[0]) - left) for w in windows]


def test_shifts_draw_distinct_offsets_from_the_generator():
    mix = stereo(300).abs() + 1
    found = {}
    for shifts in (1, 5, 10):
        model = Identity(keep_inputs=True)
        out = apply_model(model, mix, shifts=shifts, split=False, generator=torch.Generator().manual_seed(1))
        assert model.calls == shifts
        offsets = shift_offsets(model.inputs, 300)
        assert len(set(offsets)) == shifts and all(0 <= o < MAX_SHIFT for o in offsets)
        assert torch.equal(out, mix.expand(4, -1, -1))
        found[shifts] = offsets
    assert found[10][:5] == found[5]  # the same generator seed draws the same offsets
    model = Identity(keep_inputs=True)
    apply_model(model, mix, shifts=5, split=False, generator=torch.Generator().manual_seed(2))
    assert shift_offsets(model.inputs, 300) != found[5]


class Recording(nn.Module):
    """Runs ``model`` and keeps each input."""

    def __init__(self, model):
        super().__init__()
        self.model, self.inputs = model, []
        self.audio_channels = model.audio_channels

    def valid_length(self, length):
        return self.model.valid_length(length)

    def forward(self, x):
        self.inputs.append(x.clone())
        return self.model(x)


def test_shift_trick_is_the_papers_formula_on_a_real_demucs():
    torch.manual_seed(0)
    model = Recording(tiny_demucs().eval())
    mix = stereo(3000)
    mix[:, 0] = 1.0  # a non-zero first sample, to read the offsets off the recorded inputs
    out = apply_model(model, mix, shifts=3, split=False, generator=torch.Generator().manual_seed(0))
    offsets = shift_offsets(model.inputs, 3000)
    # pad by max_shift on both sides, run on padded[o : o + T + max_shift], keep out[max_shift - o : ... + T], average
    padded = F.pad(mix, (MAX_SHIFT, MAX_SHIFT))
    expected = sum(apply_model(model.model, padded[:, o: o + 3000 + MAX_SHIFT], split=False)
                   [..., MAX_SHIFT - o: MAX_SHIFT - o + 3000] for o in offsets) / 3
    assert torch.allclose(out, expected, rtol=1e-5, atol=1e-6)
    unshifted = apply_model(model.model, mix, split=False)
    assert (out - unshifted).abs().max() > 1e-3 * unshifted.abs().max()  # shifting changes a real Demucs's output


# --- separate_track: normalisation, dtype, device, progress ----------------------------------------------------


def test_separate_track_returns_float32_on_cpu_from_numpy_or_tensor():
    mix = np.random.default_rng(0).normal(size=(2, 5000)) * 0.1  # float64 numpy
    out = separate_track(Identity(), mix)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32 and out.device.type == "cpu"
    assert out.shape == (4, 2, 5000)
    assert torch.allclose(out, torch.from_numpy(mix).float().expand(4, -1, -1), atol=1e-6)
    assert torch.equal(separate_track(Identity(), torch.from_numpy(mix).float()), out)


def test_separate_track_normalises_so_loudness_and_offset_pass_through_a_real_demucs():
    torch.manual_seed(0)
    model = tiny_demucs().eval()
    mix = stereo(4000) * 0.1
    out = separate_track(model, mix, split=False)
    # Normalising by the track's own mean and std makes the separation independent of the level (and the offset
    # comes back on every source): the model alone would not be (it is not linear).
    assert torch.allclose(separate_track(model, 3 * mix, split=False), 3 * out, atol=1e-5)
    assert torch.allclose(separate_track(model, mix + 0.2, split=False), out + 0.2, atol=1e-5)
    raw = apply_model(model, 3 * mix, split=False)
    assert not torch.allclose(raw, 3 * apply_model(model, mix, split=False), atol=1e-3)


def test_model_state_is_left_alone_and_no_graph_is_built():
    torch.manual_seed(0)
    model = tiny_demucs().train()
    out = separate_track(model, stereo(2000))
    assert model.training and not out.requires_grad
    assert all(p.grad is None for p in model.parameters())


def test_progress_bar_only_when_asked(capsys):
    separate_track(Identity(), stereo(3000))
    assert "separating" not in capsys.readouterr().err
    apply_model(Identity(), stereo(3000), segment=1000, progress=True)
    assert "separating" in capsys.readouterr().err


# --- memory ----------------------------------------------------------------------------------------------------


def peak_bytes(runs: dict) -> dict:
    """For each named function in ``runs``, the peak of the bytes torch allocated on the CPU while it ran, from
    torch's own allocation records (one profiler session: starting the profiler costs a second or two)."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        for name, function in runs.items():
            with record_function(name):
                function()
    events = list(prof.profiler.kineto_results.events())
    records = sorted((e.start_ns(), e.nbytes()) for e in events if e.name() == "[memory]")
    peaks = {}
    for event in events:
        if event.name() in runs:
            start, stop = event.start_ns(), event.start_ns() + event.duration_ns()
            total = peak = 0
            for time_ns, nbytes in records:
                if start <= time_ns <= stop:
                    total += nbytes
                    peak = max(peak, total)
            peaks[event.name()] = peak
    return peaks


def test_memory_is_the_output_plus_one_segment_whatever_the_length():
    segment = SAMPLE_RATE // 4
    mixes = {seconds: stereo(seconds * SAMPLE_RATE) for seconds in (3, 12)}
    outputs = {}
    runs = {f"split {s}": lambda s=s: outputs.setdefault(s, apply_model(Wide(), mixes[s], segment=segment))
            for s in mixes}
    runs["one pass"] = lambda: apply_model(Wide(), mixes[3], split=False)
    peaks = peak_bytes(runs)
    assert set(peaks) == set(runs)
    for seconds, mix in mixes.items():
        assert torch.equal(outputs[seconds], mix.expand(4, -1, -1))
        # beyond the output (4 mixtures), in units of one segment's mixture: one segment's 64-channel activations
        # are 32 of them; its input, its output and the previous segment's end add a few. Nothing grows with T.
        extra = (peaks[f"split {seconds}"] - 4 * mix.numel() * 4) / (2 * segment * 4)
        assert 32 <= extra < 50
    # One pass holds the activations of the whole track at once: 32 mixtures and more.
    assert peaks["one pass"] / (mixes[3].numel() * 4) > 36


# --- errors ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mixture, words", [
    (torch.zeros(3, 100) + 0.1, "2 channels"),
    (torch.randn(100, 2), "(time, channels)"),
    (torch.randn(100), "mono"),
    (torch.randn(2, 0), "empty"),
    (torch.ones(2, 100, dtype=torch.int16), "floating point"),
    (torch.full((2, 100), float("nan")), "NaN"),
])
def test_separate_track_rejects_bad_mixtures_clearly(mixture, words):
    with pytest.raises(AudioError, match=words.replace("(", r"\(").replace(")", r"\)")):
        separate_track(Identity(), mixture)


def test_separate_track_rejects_silence():
    with pytest.raises(ValueError, match="silent"):
        separate_track(Identity(), torch.zeros(2, 1000))


@pytest.mark.parametrize("kwargs, words", [
    (dict(shifts=-1), "shifts"), (dict(shifts=1.5), "shifts"), (dict(shifts=MAX_SHIFT + 1), "shifts"),
    (dict(segment=0), "segment"), (dict(overlap=0.75), "overlap"), (dict(overlap=-0.1), "overlap"),
])
def test_apply_model_rejects_bad_arguments(kwargs, words):
    with pytest.raises(ValueError, match=words):
        apply_model(Identity(), stereo(100), **kwargs)


def test_apply_model_rejects_bad_inputs_and_models():
    with pytest.raises(ValueError, match="torch.Tensor"):
        apply_model(Identity(), np.zeros((2, 100), dtype=np.float32))
    with pytest.raises(ValueError, match=r"\(2, T\)"):
        apply_model(Identity(), torch.zeros(1, 100))
    with pytest.raises(ValueError, match="NaN"):
        apply_model(Identity(), torch.full((2, 100), float("inf")))
    with pytest.raises(ValueError, match="valid_length"):
        apply_model(nn.Identity(), stereo(100))
    assert SEGMENT == 10 * SAMPLE_RATE and MAX_SHIFT == SAMPLE_RATE // 2


def test_separate_track_rejects_one_sample_clearly_without_a_torch_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # before: torch's "degrees of freedom is <= 0" warning leaked
        with pytest.raises(AudioError, match="1 sample long"):
            separate_track(Identity(), torch.tensor([[0.1], [0.2]]))


@pytest.fixture(scope="module")
def left_channel(toy_root):
    """2 s of the left channel of a toy test mixture, and the shipped toy model."""
    from demucs_course.loading import load_pretrained

    path = sorted((toy_root / "test").glob("*/mixture.wav"))[0]
    left = torch.from_numpy(sf.read(path, dtype="float32", frames=2 * SAMPLE_RATE)[0][:, 0].copy())
    return left, load_pretrained(name="toy")


def test_channels_that_cancel_are_separated_with_the_right_channel_inverted(left_channel, tmp_path):
    """R = -L: the mono mix is silent but for rounding. Before, it was 'silent' (exact) or scaled ~10^6 times
    (16-bit, std 3e-7) into garbage stems. Now the right channel is inverted, separated, and inverted back."""
    left, model = left_channel
    same = torch.stack([left, left])
    opposite = torch.stack([left, -left])
    assert channels_cancel(opposite) and not channels_cancel(same)
    expected = separate_track(model, same)
    expected[:, 1].neg_()
    got = separate_track(model, opposite)
    assert torch.equal(got, expected)
    assert torch.isfinite(got).all() and got.abs().max() < 2 * opposite.abs().max()
    error = float((got.sum(0) - opposite).norm() / opposite.norm())
    assert error < 0.5, f"the stems add up to the input only within {error:.0%}"
    # As a 16-bit WAV holds it: the mono mix is rounding noise (std ~4e-7), not exactly 0.
    sf.write(tmp_path / "opposite.wav", 0.7 * opposite.T.numpy(), SAMPLE_RATE, subtype="PCM_16")
    quantised = torch.from_numpy(sf.read(tmp_path / "opposite.wav", dtype="float32")[0].T.copy())
    assert 0 < float(quantised.double().mean(0).std()) < 1e-5
    stems = separate_track(model, quantised)
    assert torch.isfinite(stems).all() and stems.abs().max() < 2 * quantised.abs().max()
    assert float((stems.sum(0) - quantised).norm() / quantised.norm()) < 0.5
