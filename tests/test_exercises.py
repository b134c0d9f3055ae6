"""The exercises: generated from their masters without drift, the blank notebook fails, the solution passes,
and plausible wrong answers are caught by the tests (the hidden ones included)."""

import filecmp
import importlib.util
import json

import pytest

from demucs_course.book import REPO_ROOT
from demucs_course.grading import assign, autograder_zip, masters, run_autograder

MASTERS = masters(REPO_ROOT)
NAMES = [m.parent.name for m in MASTERS]


@pytest.fixture(scope="module", params=MASTERS, ids=NAMES)
def assigned(request, tmp_path_factory):
    master = request.param
    return master, assign(master, tmp_path_factory.mktemp(master.parent.name) / "dist")


def test_every_exercise_has_a_master():
    exercises = sorted(p.name for p in (REPO_ROOT / "exercises").iterdir() if p.is_dir())
    assert exercises == NAMES, "exercises/ must hold exactly one folder per master in solutions/"
    assert "ch02_data_pipeline" in NAMES


def _same_tree(a, b):
    cmp = filecmp.dircmp(a, b)
    differ = cmp.left_only + cmp.right_only + cmp.diff_files + cmp.funny_files
    for sub in cmp.common_dirs:
        differ += [f"{sub}/{d}" for d in _same_tree(a / sub, b / sub)]
    return differ


def test_exercise_is_what_otter_generates(assigned):
    master, dist = assigned
    differ = _same_tree(dist / "student", REPO_ROOT / "exercises" / master.parent.name)
    assert not differ, f"exercises/{master.parent.name} drifted from its master ({differ}): run `demucs-course exercises`"


def _scores(dist, notebook):
    return run_autograder(autograder_zip(dist), notebook, timeout=600)


def test_blank_exercise_fails_every_question(assigned):
    master, dist = assigned
    scores = _scores(dist, REPO_ROOT / "exercises" / master.parent.name / master.name)
    assert scores, "the autograder reported no question"
    for question, (score, max_score) in scores.items():
        assert max_score > 0 and score < max_score, f"the blank {question} scored {score}/{max_score}"


def test_solution_passes_every_question(assigned):
    master, dist = assigned
    scores = _scores(dist, dist / "autograder" / master.name)
    for question, (score, max_score) in scores.items():
        assert score == max_score, f"the solution to {question} scored {score}/{max_score}"


def _wrong_answers(master):
    path = master.parent / "wrong_answers.py"
    spec = importlib.util.spec_from_file_location(f"wrong_{master.parent.name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.WRONG_ANSWERS


def _fill(student_notebook, answers, out):
    """The blank notebook with each question's answer cell (the one before its check) replaced."""
    nb = json.loads(student_notebook.read_text())
    cells = nb["cells"]
    for question, code in answers.items():
        check = next(i for i, c in enumerate(cells) if "".join(c["source"]).strip() == f'grader.check("{question}")')
        cells[check - 1]["source"] = code
    out.write_text(json.dumps(nb))
    return out


def test_wrong_answers_are_caught(assigned, tmp_path):
    master, dist = assigned
    wrong = _wrong_answers(master)
    assert wrong, f"{master.parent.name} needs wrong answers in wrong_answers.py"
    for k, answers in enumerate(wrong):
        notebook = _fill(dist / "student" / master.name, answers, tmp_path / master.name)
        scores = _scores(dist, notebook)
        for question in answers:
            score, max_score = scores[question]
            assert score < max_score, f"wrong answer {k} to {question} got full marks: strengthen the hidden tests"
