"""Chapter 7: each model shipped in ``demucs_course/pretrained/`` loads on the CPU, is what its record says, scores
what its record says on the test split of its data set as generated now (to 0.01 dB), separates it at least 3 dB
better than the best scaled mixture (which separates nothing) with every source above it, and the READMEs quote its
record to the digit. ``sampled`` (the default model) is scored on the sampled-instrument set, ``toy`` on the toy
set."""

import hashlib

import numpy as np
import pytest
import torch

from demucs_course.loading import PRETRAINED_MODELS, load_pretrained, pretrained_info, pretrained_path, read_checkpoint
from demucs_course.pretrained.records import (COLUMNS, DATA_NAMES, README, ROWS, TOP_README, _replace_block,
                                              score_test, update_readmes)
from demucs_course import sampled, toy

#: name -> (the module that writes its data set, the pinned version, defaults and content hash of the set)
DATA = {
    "toy": (toy.ensure_toy_musdb, toy.read_manifest, toy.TOY_VERSION, toy.TOY_DEFAULTS, toy.TOY_HASHES[toy.TOY_VERSION]),
    "sampled": (sampled.ensure_sampled_musdb, sampled.read_manifest, sampled.SAMPLED_VERSION, sampled.SAMPLED_DEFAULTS,
                sampled.SAMPLED_HASHES[sampled.SAMPLED_VERSION]["content_sha256"]),
}
MODELS = list(PRETRAINED_MODELS)


@pytest.fixture(scope="module", params=MODELS)
def name(request):
    return request.param


@pytest.fixture(scope="module")
def scores(name):
    """The model and the three references scored now (toy: about 10 s of CPU time; sampled: about a minute)."""
    return score_test(load_pretrained(name=name), PRETRAINED_MODELS[name])


def test_the_file_is_small_and_loads_as_float32_in_eval_mode(name):
    path = pretrained_path(name)
    assert path.stat().st_size < 8 * 2**20
    stored = read_checkpoint(path)
    assert {v.dtype for v in stored["model"].values()} == {torch.float16}
    shipped = load_pretrained(name=name)
    assert not shipped.training
    assert {p.dtype for p in shipped.parameters()} == {torch.float32}
    for key, value in shipped.state_dict().items():
        torch.testing.assert_close(value, stored["model"][key].float(), rtol=0, atol=0, msg=key)


def test_the_record_beside_it_says_how_it_was_made(name):
    info = pretrained_info(name)
    data = PRETRAINED_MODELS[name]
    _, _, version, defaults, pinned = DATA[data]
    path = pretrained_path(name)
    stored = read_checkpoint(path)
    assert info["file"] == path.name
    assert info["command"].startswith(f"OMP_NUM_THREADS=1 demucs-course train --preset {info['preset']}")
    assert f"--seed {info['seed']}" in info["command"] and stored["config"]["seed"] == info["seed"]
    assert stored["config"] == info["config"] and stored["config"]["data"] == data
    assert info[f"{data}_version"] == version and info[f"{data}_arguments"] == defaults
    assert info[f"{data}_content_sha256"] == pinned  # trained on the set the tests pin
    assert stored["metadata"][f"{data}_arguments"] == info[f"{data}_arguments"]
    assert stored["metadata"][f"{data}_content_sha256"] == info[f"{data}_content_sha256"]
    valid = [e["valid"] for e in info["validation_history"]]
    assert info["best_epoch"] == info["validation_history"][int(np.argmin(valid))]["epoch"]
    kept = [e["valid"] for e in stored["history"]["epochs"]]  # the file's history stops at the best epoch
    assert len(kept) == info["best_epoch"] and kept == pytest.approx(valid[:len(kept)], abs=1e-5)
    assert info["bytes"] == path.stat().st_size
    assert info["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


def test_it_was_scored_on_the_pinned_set(name):
    data = PRETRAINED_MODELS[name]
    ensure, read_manifest, version, defaults, pinned = DATA[data]
    scored = pretrained_info(name)["scored_on"]
    assert scored[f"{data}_version"] == version and scored[f"{data}_arguments"] == defaults
    assert scored["content_sha256"] == pinned == read_manifest(ensure())["content_sha256"]
    assert scored["tracks"] == defaults["n_test"] and "without the shift trick" in scored["scoring"]


def test_the_recorded_scores_are_what_it_scores_now(name, scores):
    recorded = pretrained_info(name)["test_sdr_db"]
    assert set(recorded) == set(scores) == set(ROWS)
    for row in ROWS:
        assert set(recorded[row]) == set(COLUMNS)
        for column in COLUMNS:
            assert abs(scores[row][column] - recorded[row][column]) <= 0.01, (row, column, scores[row], recorded[row])


def test_it_separates_its_test_set_3_db_better_than_the_best_scaled_mixture(scores):
    model, floor = scores["shipped model"], scores["best scaled mixture"]
    assert model["mean"] >= floor["mean"] + 3, (model, floor)
    assert all(model[column] > floor[column] for column in floor), "every source is separated better than none"


def test_the_readmes_quote_the_record_to_the_digit(name):
    info = pretrained_info(name)
    data = PRETRAINED_MODELS[name]
    assert update_readmes(info, check=True) == [], "run: python -m demucs_course.pretrained.records"
    recorded = info["test_sdr_db"]
    # read back as a reader would, without the code that wrote it: the table's rows are the json's, to the digit
    text = README.read_text()
    section = text[text.index(f"<!-- {data} scores:"):text.index(f"<!-- end of {data} scores -->")]
    lines = section.splitlines()
    for row, label in ROWS.items():
        [line] = [line for line in lines if line.startswith(f"| {label} |")]
        cells = [cell.strip().strip("*") for cell in line.split("|")[2:-1]]
        assert cells == [f"{recorded[row][column]:.2f}" for column in COLUMNS], (row, line)
    top = " ".join(TOP_README.read_text().split())
    for row in ("shipped model", "best scaled mixture", "IRM oracle"):
        assert f"{recorded[row]['mean']:.2f} dB" in top, row
    assert info["scored_on"]["content_sha256"] in top
    assert f"{DATA_NAMES[data]} version {DATA[data][2]}" in " ".join(section.split())


def test_a_readme_without_its_markers_is_an_error_that_says_what_to_do():
    with pytest.raises(ValueError, match="markers of 'toy scores' are missing: put"):
        _replace_block("# a README\n", "toy scores", "| table |")
