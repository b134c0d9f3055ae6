"""Chapter 7: the model shipped in ``demucs_course/pretrained/`` loads on the CPU, is what its record says, scores
what its record says on the toy test set as generated now (to 0.01 dB), separates it at least 3 dB better than the
best scaled mixture (which separates nothing), and the READMEs quote its record to the digit."""

import hashlib

import numpy as np
import pytest
import torch

from demucs_course.pretrained.records import (COLUMNS, README, ROWS, TOP_README, _replace_block, score_toy_test,
                                              update_readmes)
from demucs_course.toy import TOY_DEFAULTS, TOY_HASHES, TOY_VERSION, ensure_toy_musdb, read_manifest
from demucs_course.loading import PRETRAINED_DIR, PRETRAINED_NAME, load_pretrained, pretrained_info, read_checkpoint


@pytest.fixture(scope="module")
def shipped():
    return load_pretrained()


@pytest.fixture(scope="module")
def scores(shipped):
    """The model and the three references scored now (about 10 s of CPU time)."""
    return score_toy_test(shipped)


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
    path = PRETRAINED_DIR / info["file"]
    stored = read_checkpoint(path)
    assert info["command"].startswith("OMP_NUM_THREADS=1 demucs-course train --preset tiny-cpu")
    assert f"--seed {info['seed']}" in info["command"] and stored["config"]["seed"] == info["seed"]
    assert stored["config"] == info["config"] and stored["config"]["data"] == "toy"
    assert info["toy_version"] == TOY_VERSION and info["toy_arguments"] == TOY_DEFAULTS
    assert info["toy_content_sha256"] == TOY_HASHES[TOY_VERSION]  # trained on the set the tests pin
    assert stored["metadata"]["toy_arguments"] == info["toy_arguments"]
    assert stored["metadata"]["toy_content_sha256"] == info["toy_content_sha256"]
    valid = [e["valid"] for e in info["validation_history"]]
    assert info["best_epoch"] == info["validation_history"][int(np.argmin(valid))]["epoch"]
    kept = [e["valid"] for e in stored["history"]["epochs"]]  # the file's history stops at the best epoch
    assert len(kept) == info["best_epoch"] and kept == pytest.approx(valid[:len(kept)], abs=1e-5)
    assert info["bytes"] == path.stat().st_size
    assert info["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


def test_it_was_scored_on_the_pinned_toy_set():
    scored = pretrained_info()["scored_on"]
    assert scored["toy_version"] == TOY_VERSION and scored["toy_arguments"] == TOY_DEFAULTS
    assert scored["content_sha256"] == TOY_HASHES[TOY_VERSION] == read_manifest(ensure_toy_musdb())["content_sha256"]
    assert scored["tracks"] == TOY_DEFAULTS["n_test"] and "without the shift trick" in scored["scoring"]


def test_the_recorded_scores_are_what_it_scores_now(scores):
    recorded = pretrained_info()["test_sdr_db"]
    assert set(recorded) == set(scores) == set(ROWS)
    for row in ROWS:
        assert set(recorded[row]) == set(COLUMNS)
        for name in COLUMNS:
            assert abs(scores[row][name] - recorded[row][name]) <= 0.01, (row, name, scores[row], recorded[row])


def test_it_separates_the_toy_test_set_3_db_better_than_the_best_scaled_mixture(scores):
    model, floor = scores["shipped model"], scores["best scaled mixture"]
    assert model["mean"] >= floor["mean"] + 3, (model, floor)
    assert all(model[name] > floor[name] for name in floor), "every source is separated better than no separation"


def test_the_readmes_quote_the_record_to_the_digit():
    info = pretrained_info()
    assert update_readmes(info, check=True) == [], "run: python -m demucs_course.pretrained.records"
    recorded = info["test_sdr_db"]
    # read back as a reader would, without the code that wrote it: the table's rows are the json's, to the digit
    lines = README.read_text().splitlines()
    for row, label in ROWS.items():
        [line] = [line for line in lines if line.startswith(f"| {label} |")]
        cells = [cell.strip().strip("*") for cell in line.split("|")[2:-1]]
        assert cells == [f"{recorded[row][name]:.2f}" for name in COLUMNS], (row, line)
    top = " ".join(TOP_README.read_text().split())
    for row in ("shipped model", "best scaled mixture", "IRM oracle"):
        assert f"{recorded[row]['mean']:.2f} dB" in top, row
    assert info["scored_on"]["content_sha256"] in top
    assert f"toy set version {TOY_VERSION}" in " ".join(README.read_text().split())


def test_a_readme_without_its_markers_is_an_error_that_says_what_to_do():
    with pytest.raises(ValueError, match="markers of 'scores' are missing: put"):
        _replace_block("# a README\n", "scores", "| table |")
