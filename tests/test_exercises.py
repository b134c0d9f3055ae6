"""The exercises: generated from their masters without drift, the blank notebook fails, the solution passes,
and plausible wrong answers are caught by the tests (the hidden ones included)."""

import filecmp
import importlib.util
import json
from concurrent.futures import ThreadPoolExecutor

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
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(nb))
    return out


@pytest.fixture(scope="module")
def scores(assigned, tmp_path_factory):
    """The autograder's scores for the blank exercise, the solution and each wrong answer, graded two at a time."""
    master, dist = assigned
    wrong = _wrong_answers(master)
    tmp = tmp_path_factory.mktemp(f"wrong-{master.parent.name}")
    notebooks = {"blank": REPO_ROOT / "exercises" / master.parent.name / master.name,
                 "solution": dist / "autograder" / master.name}
    for k, answers in enumerate(wrong):
        notebooks[f"wrong {k}"] = _fill(dist / "student" / master.name, answers, tmp / str(k) / master.name)
    zip_path = autograder_zip(dist)
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = dict(zip(notebooks, pool.map(lambda nb: run_autograder(zip_path, nb, timeout=600),
                                               notebooks.values())))
    return results, wrong


def test_blank_exercise_fails_every_question(scores):
    results, _ = scores
    assert results["blank"], "the autograder reported no question"
    for question, (score, max_score) in results["blank"].items():
        assert max_score > 0 and score < max_score, f"the blank {question} scored {score}/{max_score}"


def test_solution_passes_every_question(scores):
    results, _ = scores
    for question, (score, max_score) in results["solution"].items():
        assert score == max_score, f"the solution to {question} scored {score}/{max_score}"


def test_wrong_answers_are_caught(scores):
    results, wrong = scores
    assert wrong, "every exercise needs plausible wrong answers in wrong_answers.py"
    for k, answers in enumerate(wrong):
        for question in answers:
            score, max_score = results[f"wrong {k}"][question]
            assert score < max_score, f"wrong answer {k} to {question} got full marks: strengthen the hidden tests"
