"""One-command grading: a folder of good, wrong, crashing, looping and misbehaving submissions becomes a gradebook
with one row each, and no submission stops the others or writes outside its folder. The open question, which otter
does not grade, is marked "by hand" and collected with its rubric and every answer in a sheet beside the gradebook."""

import csv
import json
import shutil

import pytest

from demucs_course.book import REPO_ROOT
from demucs_course.cli import main
from demucs_course.grading import assign, manual_questions, manual_sheet_path

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
    answered = json.loads(blank.read_text())
    prompt = next(i for i, c in enumerate(answered["cells"]) if "_Type your answer here" in "".join(c["source"]))
    answered["cells"][prompt]["source"] = [OPEN_ANSWER]
    (subs / "open").mkdir()
    (subs / "open" / f"{NAME}.ipynb").write_text(json.dumps(answered))
    (subs / "stray").mkdir()
    (subs / "stray" / "notes.ipynb").write_text(json.dumps({"cells": [], "metadata": {}, "nbformat": 4,
                                                            "nbformat_minor": 5}))
    gradebook = tmp / "gradebook.csv"
    code = main(["grade", str(subs), "-o", str(gradebook), "--timeout", "45", "--jobs", "2"])
    with gradebook.open() as f:
        rows = {row["submission"].split("/")[0]: row for row in csv.DictReader(f)}
    return code, rows, outside, gradebook


OPEN_ANSWER = "With groups of g examples a source stays home with probability 1/g, a whole song with 1/g^3."


def test_every_submission_gets_a_row(graded):
    code, rows, _, _ = graded
    assert code == 0
    assert set(rows) == {"good", "blank", "open", "crash", "loop", "writer", "shell", "stray"}
    assert list(next(iter(rows.values())))[:5] == ["submission", "exercise", "status", "q1", "q2"]


def test_good_and_blank_submissions(graded):
    _, rows, _, _ = graded
    assert rows["good"]["status"] == "graded" and rows["good"]["total"] == rows["good"]["max_total"] == "5"
    assert (rows["good"]["q1"], rows["good"]["q2"]) == ("2", "3")
    assert rows["blank"]["status"] == "graded" and rows["blank"]["total"] == "0"


def test_crash_and_loop_get_zero_with_the_reason(graded):
    _, rows, _, _ = graded
    assert rows["crash"]["status"] == "crashed" and rows["crash"]["total"] == "0"
    assert "could not be run" in rows["crash"]["reason"]
    assert rows["loop"]["status"] == "timeout" and rows["loop"]["total"] == "0"
    assert "45 s" in rows["loop"]["reason"]


def test_writing_outside_the_folder_is_refused_and_scores_zero(graded):
    _, rows, outside, _ = graded
    assert not outside.exists(), "the guard must stop the write, not only report it"
    assert rows["writer"]["status"] == "outside its folder" and rows["writer"]["total"] == "0"
    assert str(outside) in rows["writer"]["reason"]
    assert rows["shell"]["status"] == "outside its folder" and "starting a program" in rows["shell"]["reason"]


def test_a_notebook_that_is_no_exercise_is_reported(graded):
    _, rows, _, _ = graded
    assert rows["stray"]["status"] == "unknown exercise" and NAME in rows["stray"]["reason"]


def test_missing_folder_is_a_clear_error(tmp_path, capsys):
    assert main(["grade", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["grade", str(tmp_path)]) == 2
    assert "No notebooks" in capsys.readouterr().err


def test_the_open_question_is_left_to_grade_by_hand(graded):
    """otter leaves a manual question out of its results; the gradebook lists it as "by hand", with its points."""
    _, rows, _, _ = graded
    points = manual_questions(REPO_ROOT / "solutions" / NAME / f"{NAME}.ipynb")
    assert list(points) == ["q3"] and points["q3"][0] == 4
    for name in ("good", "blank", "open"):
        assert rows[name]["q3"] == "by hand" and rows[name]["by_hand"] == "q3: 4 points", rows[name]
    assert rows["good"]["max_total"] == "5", "total and max_total count the autograded points only"
    assert rows["crash"]["q3"] == "0" and rows["crash"]["by_hand"] == "", "a notebook that did not run gets 0"


def test_the_manual_sheet_holds_the_rubric_and_every_answer(graded):
    _, rows, _, gradebook = graded
    sheet = manual_sheet_path(gradebook)
    assert sheet.is_file(), "the grade command writes the sheet of open questions beside the gradebook"
    text = sheet.read_text()
    assert "## ch02_data_pipeline, q3 (4 points)" in text and "**Model answer.**" in text and "1/g^3" in text
    assert OPEN_ANSWER in text, "the student's answer is copied into the sheet"
    assert "### blank/ch02_data_pipeline.ipynb: q3\n\n(no answer)" in text
    assert "crash/" not in text, "only graded notebooks are listed"


# --------------------------------------------------------------------------------------------------------------
# own_work: the student's code runs without the course's solution
# --------------------------------------------------------------------------------------------------------------

def student(code: str) -> dict:
    """``code`` run as a student's notebook cell would be (a file outside the package and the libraries)."""
    namespace = {"__name__": "__main__"}
    exec(compile(code, "/tmp/ipykernel_0/student_cell.py", "exec"), namespace)
    return namespace


def test_own_work_refuses_every_way_of_reaching_a_package_function():
    import torch

    from demucs_course.grading_guard import OwnWorkError, own_work
    from demucs_course.model import center_trim

    cell = student('''
import demucs_course.model
from demucs_course.model import center_trim as trim, BLSTM
def by_alias(x, n): return trim(x, n)
def by_module(x, n): return demucs_course.model.center_trim(x, n)
def by_default(x, n, f=trim): return f(x, n)
def hidden(x, n):
    try:
        return trim(x, n)
    except Exception:
        return x[..., :n]
class Sub(BLSTM):
    pass
''')
    x = torch.arange(10)
    for name in ("by_alias", "by_module", "by_default", "hidden"):
        with pytest.raises(OwnWorkError, match="write your own code, do not call demucs_course.model.center_trim"):
            with own_work():
                cell[name](x, 6)
    with pytest.raises(OwnWorkError, match="BLSTM.__init__"):
        with own_work():
            cell["Sub"](4)
    assert center_trim(x, 6).tolist() == [2, 3, 4, 5, 6, 7], "the function is itself again after the block"
    assert cell["by_alias"](x, 6).tolist() == [2, 3, 4, 5, 6, 7]


def test_own_work_lets_own_code_allowed_names_and_the_package_internals_run():
    import torch

    from demucs_course.grading_guard import OwnWorkError, own_work
    from demucs_course.model import tiny_demucs

    cell = student('''
import torch
from demucs_course.oracles import stft, irm
def own(x, n):
    d = x.shape[-1] - n
    return x[..., d // 2: d // 2 + n]
def spectrum(x): return stft(x)              # stft calls the package's own helpers
def oracle(s): return irm(s)
def step(model, mix): return model(mix)     # through torch's Module.__call__
''')
    with own_work():
        assert cell["own"](torch.arange(10), 6).tolist() == [2, 3, 4, 5, 6, 7]
    with own_work(allow=["demucs_course.oracles.stft"]):
        assert cell["spectrum"](torch.randn(2, 5000)).shape == (2, 2049, 5)
    with pytest.raises(OwnWorkError, match="oracles.irm"):
        with own_work(allow=["demucs_course.oracles.stft"]):
            cell["oracle"](torch.randn(2, 1, 5000))
    model = tiny_demucs()
    mix = torch.randn(1, 2, model.valid_length(1000))
    with own_work(allow=["demucs_course.model"]):
        assert cell["step"](model, mix).shape[:3] == (1, 4, 2)
    with pytest.raises(OwnWorkError, match="Demucs.forward"):
        with own_work():
            cell["step"](model, mix)


def test_own_work_can_forbid_a_library_function_and_does_not_nest():
    import torch

    from demucs_course.grading_guard import OwnWorkError, own_work

    cell = student('''
import torch
def functional(x): return torch.nn.functional.glu(x, dim=1)
def module(x): return torch.nn.GLU(dim=1)(x)
''')
    for name in ("functional", "module"):
        with pytest.raises(OwnWorkError, match="torch.nn.functional.glu"):
            with own_work(forbid=["torch.nn.functional.glu"]):
                cell[name](torch.randn(1, 4, 3))
    assert cell["module"](torch.randn(1, 4, 3)).shape == (1, 2, 3)
    with pytest.raises(ValueError, match="names no function"):
        with own_work(forbid=["torch.nn.functional.no_such_thing"]):
            pass
    with own_work():
        with pytest.raises(RuntimeError, match="do not nest"):
            with own_work():
                pass
