"""Chapter 7: the model shipped in ``demucs_course/pretrained/`` loads on the CPU, is what its record says, and
separates the toy test set at least 3 dB better than the best scaled mixture (which separates nothing)."""

import numpy as np
import pytest
import torch

from demucs_course.data import load_tracks
from demucs_course.oracles import best_scaled_mixture
from demucs_course.separate import separate_track
from demucs_course.toy import TOY_DEFAULTS, TOY_VERSION
from demucs_course.train import (PRETRAINED_DIR, PRETRAINED_NAME, load_pretrained, median_sdr, pretrained_info,
                                 read_checkpoint)


@pytest.fixture(scope="module")
def shipped():
    return load_pretrained()


def test_the_file_is_small_and_loads_as_float32_in_eval_mode(shipped):
    path = PRETRAINED_DIR / PRETRAINED_NAME
    assert path.stat().st_size < 3 * 2**20
    stored = read_checkpoint(path)
    assert {v.dtype for v in stored["model"].values()} == {torch.float16}
    assert not shipped.training
    assert {p.dtype for p in shipped.parameters()} == {torch.float32}
    for name, value in shipped.state_dict().items():
        torch.testing.assert_close(value, stored["model"][name].float(), rtol=0, atol=0, msg=name)


def test_the_record_beside_it_says_how_it_was_made():
    info = pretrained_info()
    stored = read_checkpoint(PRETRAINED_DIR / info["file"])
    assert info["command"].startswith("demucs-course train --preset tiny-cpu")
    assert f"--seed {info['seed']}" in info["command"] and stored["config"]["seed"] == info["seed"]
    assert stored["config"] == info["config"] and stored["config"]["data"] == "toy"
    assert info["toy_version"] == TOY_VERSION and info["toy_arguments"] == TOY_DEFAULTS
    assert stored["metadata"]["toy_arguments"] == info["toy_arguments"]
    valid = [e["valid"] for e in info["validation_history"]]
    assert info["best_epoch"] == info["validation_history"][int(np.argmin(valid))]["epoch"]
    assert info["bytes"] == (PRETRAINED_DIR / info["file"]).stat().st_size


def test_it_separates_the_toy_test_set_3_db_better_than_the_best_scaled_mixture(shipped):
    tracks = load_tracks("toy", "test")
    model = median_sdr(tracks, lambda t: separate_track(shipped, t.mixture()))
    floor = median_sdr(tracks, lambda t: best_scaled_mixture(t.sources(), t.mixture()))
    assert model["mean"] >= floor["mean"] + 3, (model, floor)
    assert all(model[name] > floor[name] for name in floor), "every source is separated better than no separation"
