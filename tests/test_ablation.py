"""Chapters 3 and 6: the short seeded training runs of the ablations (demucs_course.ablation).

The runs here use a 4-channel, depth-3 Demucs on 2 s of the small toy set, a few steps each: seconds in all.
"""

import math

import pandas as pd
import pytest
import torch

from demucs_course.ablation import (ToyExtracts, paired_differences, random_extracts, seeded_runs, short_training,
                                    spread, validation_l1)
from demucs_course.data import load_tracks

SMALL = dict(channels=4, depth=3)


@pytest.fixture(scope="module")
def data(toy_root, tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    train = load_tracks(toy_root, "train", split="train", cache_dir=cache)
    valid = load_tracks(toy_root, "train", split="valid", cache_dir=cache)
    return ToyExtracts.from_tracks(train, valid, seconds=2)


def test_extracts_are_the_normalised_start_of_each_track(toy_root, tmp_path):
    train = load_tracks(toy_root, "train", split="train", cache_dir=tmp_path)
    valid = load_tracks(toy_root, "train", split="valid", cache_dir=tmp_path)
    data = ToyExtracts.from_tracks(train, valid, seconds=2)
    assert data.train.shape == (len(train), 4, 2, 88200) and data.valid.shape == (len(valid), 4, 2, 88200)
    first = train[0]
    expected = (first.sources()[..., :88200] - first.stats.mean) / first.stats.std
    torch.testing.assert_close(data.train[0], expected)
    with pytest.raises(ValueError, match="shorter than 60 s"):
        ToyExtracts.from_tracks(train, valid, seconds=60)
    with pytest.raises(ValueError, match="load_tracks"):
        ToyExtracts.from_tracks([], valid)


def test_random_extracts_depend_on_the_seed_only(data):
    a, b, c = (random_extracts(data, 1000, 3, seed) for seed in (0, 0, 1))
    first_a, first_b, first_c = next(a), next(b), next(c)
    assert first_a.shape == (3, 4, 2, 1000)
    torch.testing.assert_close(first_a, first_b, rtol=0, atol=0)
    assert not torch.equal(first_a, first_c)
    assert not torch.equal(first_a, next(a))                      # a new batch every step
    # Each extract is a slice of one training track.
    slices = {(t, o) for t in range(len(data.train)) for o in range(data.length - 1000)
              if torch.equal(data.train[t, ..., o:o + 1000], first_a[0])}
    assert len(slices) == 1


def test_short_training_learns_and_is_reproducible(data):
    run = short_training(data, steps=30, batch=4, seconds=0.25, lr=3e-3, seed=0, valid_every=10, **SMALL)
    assert len(run.losses) == 30
    assert list(run.valid.index) == [10, 20, 30] and run.valid_l1 == run.valid.iloc[-1]
    assert run.valid_l1 < run.silence_l1                          # it learned something in 30 steps
    assert sum(run.losses[-5:]) < sum(run.losses[:5])
    again = short_training(data, steps=30, batch=4, seconds=0.25, lr=3e-3, seed=0, valid_every=10, **SMALL)
    assert again.losses == run.losses and again.valid_l1 == run.valid_l1
    other = short_training(data, steps=30, batch=4, seconds=0.25, lr=3e-3, seed=1, **SMALL)
    assert other.losses != run.losses
    # The validation score is the model's own: recomputing it gives the same number.
    segment = run.model.valid_length(int(0.25 * 44100))
    assert validation_l1(run.model, data, segment) == pytest.approx((run.valid_l1, run.silence_l1))


def test_watch_records_adams_first_step(data):
    lr = 1e-3
    run = short_training(data, steps=3, batch=2, seconds=0.25, lr=lr, seed=0, watch=2, **SMALL)
    convs = [m for m in run.model.modules() if isinstance(m, (torch.nn.Conv1d, torch.nn.ConvTranspose1d))]
    assert len(run.updates) == 2 * len(convs) and set(run.updates.step) == {1, 2}
    first = run.updates[run.updates.step == 1]
    # Adam's first step is lr * g / (|g| + eps) for each weight: lr whatever the gradient's scale, as long as |g|
    # is well above eps = 1e-8, so ||Δw|| = lr * sqrt(number moved). (Behind a closed ReLU a weight has no gradient.)
    assert (first.moved <= first.elements).all() and (first.moved > 0).all()
    expected = lr * first.moved.map(math.sqrt)
    assert (first.update_norm <= expected * 1.001).all()
    strong = first[first.grad_norm / first.moved.map(math.sqrt) > 1e-4]         # gradients far above eps
    assert len(strong) >= 2 and first.grad_norm.max() / first.grad_norm.min() > 100   # of very different sizes
    assert ((strong.update_norm - expected[strong.index]).abs() < 0.02 * expected[strong.index]).all()
    assert (first.ratio - first.update_norm / first.weight_norm).abs().max() < 1e-9
    assert short_training(data, steps=1, batch=2, seconds=0.25, **SMALL).updates is None


def test_seeded_runs_and_their_summary(data):
    table, runs = seeded_runs(data, {"GLU": {}, "ReLU": dict(glu=False)}, seeds=[0, 1], steps=3, batch=2,
                              seconds=0.25, **SMALL)
    assert len(table) == 4 and set(runs) == {("GLU", 0), ("ReLU", 0), ("GLU", 1), ("ReLU", 1)}
    glu = table[(table.variant == "GLU") & (table.seed == 1)].iloc[0]
    assert glu["validation L1"] == runs["GLU", 1].valid_l1
    assert glu["parameters"] > table[table.variant == "ReLU"].parameters.iloc[0]
    differences = paired_differences(table, "GLU", "ReLU")
    assert list(differences.index) == [0, 1]
    relu = table[(table.variant == "ReLU") & (table.seed == 1)].iloc[0]
    assert differences[1] == pytest.approx((glu["validation L1"] - relu["validation L1"]) / relu["validation L1"])
    with pytest.raises(ValueError, match="no runs for"):
        paired_differences(table, "GLU", "no rescale")
    with pytest.raises(ValueError, match="at least one"):
        seeded_runs(data, {}, seeds=[0])


def test_paired_differences_by_hand():
    table = pd.DataFrame({"variant": ["a", "b", "a", "b"], "seed": [0, 0, 1, 1],
                          "validation L1": [0.9, 1.0, 2.2, 2.0]})
    assert paired_differences(table, "a", "b").round(6).tolist() == [-0.1, 0.1]


def test_spread():
    summary = spread([1.0, 2.0, 3.0])
    assert summary == dict(mean=2.0, std=1.0, min=1.0, max=3.0, n=3)
    with pytest.raises(ValueError, match="at least 2"):
        spread([1.0])


def test_bad_settings_are_refused_clearly(data):
    with pytest.raises(ValueError, match="must be positive"):
        short_training(data, steps=0, **SMALL)
    with pytest.raises(ValueError, match="do not fit"):
        short_training(data, seconds=3, **SMALL)
