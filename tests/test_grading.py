"""One-command grading: a folder of good, wrong, crashing, looping and misbehaving submissions becomes a gradebook
with one row each, and no submission stops the others or writes outside its folder."""

import csv
import json
import shutil

import pytest

from demucs_course.book import REPO_ROOT
from demucs_course.cli import main
from demucs_course.grading import assign

NAME = "ch02_data_pipeline"


def with_cell(source, target, code):
    """A copy of ``source`` with a code cell inserted just before the first check."""
    nb = json.loads(source.read_text())
    first_check = next(i for i, c in enumerate(nb["cells"]) if "grader.check(" in "".join(c["source"]))
    nb["cells"].insert(first_check, {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
                                     "id": "injected", "source": code})
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(nb))


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("grading")
    solution = assign(REPO_ROOT / "solutions" / NAME / f"{NAME}.ipynb", tmp / "dist") / "autograder" / f"{NAME}.ipynb"
    blank = REPO_ROOT / "exercises" / NAME / f"{NAME}.ipynb"
    subs = tmp / "submissions"
    outside = tmp / "outside.txt"
    (subs / "good").mkdir(parents=True)
    shutil.copy(solution, subs / "good" / f"{NAME}.ipynb")
    (subs / "blank").mkdir()
    shutil.copy(blank, subs / "blank" / f"{NAME}.ipynb")
    with_cell(solution, subs / "crash" / f"{NAME}.ipynb", "import os\nos._exit(3)")
    with_cell(solution, subs / "loop" / f"{NAME}.ipynb", "while True:\n    pass")
    with_cell(solution, subs / "writer" / f"{NAME}.ipynb", f"open({str(outside)!r}, 'w').write('gotcha')")
    with_cell(solution, subs / "shell" / f"{NAME}.ipynb", f"import os\nos.system('touch {outside}')")
    (subs / "stray").mkdir()
    (subs / "stray" / "notes.ipynb").write_text(json.dumps({"cells": [], "metadata": {}, "nbformat": 4,
                                                            "nbformat_minor": 5}))
    gradebook = tmp / "gradebook.csv"
    code = main(["grade", str(subs), "-o", str(gradebook), "--timeout", "45", "--jobs", "2"])
    with gradebook.open() as f:
        rows = {row["submission"].split("/")[0]: row for row in csv.DictReader(f)}
    return code, rows, outside


def test_every_submission_gets_a_row(graded):
    code, rows, _ = graded
    assert code == 0
    assert set(rows) == {"good", "blank", "crash", "loop", "writer", "shell", "stray"}
    assert list(next(iter(rows.values())))[:5] == ["submission", "exercise", "status", "q1", "q2"]


def test_good_and_blank_submissions(graded):
    _, rows, _ = graded
    assert rows["good"]["status"] == "graded" and rows["good"]["total"] == rows["good"]["max_total"] == "5"
    assert (rows["good"]["q1"], rows["good"]["q2"]) == ("2", "3")
    assert rows["blank"]["status"] == "graded" and rows["blank"]["total"] == "0"


def test_crash_and_loop_get_zero_with_the_reason(graded):
    _, rows, _ = graded
    assert rows["crash"]["status"] == "crashed" and rows["crash"]["total"] == "0"
    assert "could not be run" in rows["crash"]["reason"]
    assert rows["loop"]["status"] == "timeout" and rows["loop"]["total"] == "0"
    assert "45 s" in rows["loop"]["reason"]


def test_writing_outside_the_folder_is_refused_and_scores_zero(graded):
    _, rows, outside = graded
    assert not outside.exists(), "the guard must stop the write, not only report it"
    assert rows["writer"]["status"] == "outside its folder" and rows["writer"]["total"] == "0"
    assert str(outside) in rows["writer"]["reason"]
    assert rows["shell"]["status"] == "outside its folder" and "starting a program" in rows["shell"]["reason"]


def test_a_notebook_that_is_no_exercise_is_reported(graded):
    _, rows, _ = graded
    assert rows["stray"]["status"] == "unknown exercise" and NAME in rows["stray"]["reason"]


def test_missing_folder_is_a_clear_error(tmp_path, capsys):
    assert main(["grade", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["grade", str(tmp_path)]) == 2
    assert "No notebooks" in capsys.readouterr().err
