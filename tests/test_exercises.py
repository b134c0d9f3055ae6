"""The exercises: generated from their masters without drift, the blank notebook fails, the solution passes,
plausible wrong answers are caught by the tests (the hidden ones included), and an answer that only calls the
course's own function fails them too (demucs_course.grading_guard.own_work)."""

import filecmp
import importlib.util
import json
import re
from concurrent.futures import ThreadPoolExecutor

import pytest

from demucs_course.book import REPO_ROOT
from demucs_course import grading_guard
from demucs_course.grading import assign, autograder_results, autograder_zip, masters

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


def _answers(master):
    """``solutions/<name>/wrong_answers.py``: its WRONG_ANSWERS and CALL_THROUGH."""
    path = master.parent / "wrong_answers.py"
    spec = importlib.util.spec_from_file_location(f"wrong_{master.parent.name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
    """otter's results for the blank exercise, the solution, each wrong answer and the answer that calls through to
    the package, graded two at a time: ``{notebook: {question: (score, max_score, output)}}``."""
    master, dist = assigned
    wrong = _answers(master).WRONG_ANSWERS
    call_through = _answers(master).CALL_THROUGH
    tmp = tmp_path_factory.mktemp(f"wrong-{master.parent.name}")
    notebooks = {"blank": REPO_ROOT / "exercises" / master.parent.name / master.name,
                 "solution": dist / "autograder" / master.name}
    for k, answers in enumerate(wrong):
        notebooks[f"wrong {k}"] = _fill(dist / "student" / master.name, answers, tmp / str(k) / master.name)
    if call_through:
        notebooks["call through"] = _fill(dist / "student" / master.name, call_through, tmp / "call" / master.name)
    zip_path = autograder_zip(dist)

    def grade(notebook):
        return {t["name"]: (float(t["score"]), float(t["max_score"]), t.get("output", ""))
                for t in autograder_results(zip_path, notebook, timeout=600) if t.get("max_score") is not None}

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = dict(zip(notebooks, pool.map(grade, notebooks.values())))
    return results, wrong


def test_blank_exercise_fails_every_question(scores):
    results, _ = scores
    assert results["blank"], "the autograder reported no question"
    for question, (score, max_score, _) in results["blank"].items():
        assert max_score > 0 and score < max_score, f"the blank {question} scored {score}/{max_score}"


def test_solution_passes_every_question(scores):
    results, _ = scores
    for question, (score, max_score, _) in results["solution"].items():
        assert score == max_score, f"the solution to {question} scored {score}/{max_score}"


def test_wrong_answers_are_caught(scores):
    results, wrong = scores
    assert wrong, "every exercise needs plausible wrong answers in wrong_answers.py"
    for k, answers in enumerate(wrong):
        for question in answers:
            score, max_score, _ = results[f"wrong {k}"][question]
            assert score < max_score, f"wrong answer {k} to {question} got full marks: strengthen the hidden tests"


# --------------------------------------------------------------------------------------------------------------
# Answers that only call the course's own function
# --------------------------------------------------------------------------------------------------------------

GUARD_MESSAGE = "write your own code, do not call "


def test_call_through_answers_fail_the_autograder(scores, assigned):
    """Graded by otter as a student's notebook would be: no points, and the student is told why."""
    results, _ = scores
    master, _ = assigned
    call_through = _answers(master).CALL_THROUGH
    for question in call_through:
        score, max_score, output = results["call through"][question]
        assert score < max_score, f"{question}: an answer that only calls the course's function got full marks"
        assert GUARD_MESSAGE in output, f"{question}: the failure must say to write one's own code:\n{output[-1500:]}"


def _namespace(dist, master):
    """The exercise notebook's namespace after its import cell (otter's grader left out), as a fresh kernel has it."""
    nb = json.loads((dist / "student" / master.name).read_text())
    imports = next("".join(c["source"]) for c in nb["cells"] if "otter.Notebook(" in "".join(c["source"]))
    code = "\n".join(line for line in imports.splitlines() if "otter" not in line)
    namespace = {"__name__": "__main__"}
    exec(compile(code, "<exercise notebook>", "exec"), namespace)
    return namespace


def _run_tests(dist, master, answers, question):
    """otter's test cases of ``question`` (public and hidden), run here on a notebook holding ``answers``."""
    from otter.test_files.ok_test import OKTestFile

    namespace = _namespace(dist, master)
    for name, code in answers.items():
        exec(compile(code, f"<answer to {name}>", "exec"), namespace)
    test = OKTestFile.from_file(str(dist / "autograder" / "tests" / f"{question}.py"))
    test.run(namespace)
    return test.test_case_results


class _NoGuard:
    """own_work switched off: what the tests were before it."""

    def __init__(self, *args, **kwargs):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_call_through_answers_fail_the_hidden_tests_because_of_the_guard(assigned, monkeypatch):
    """Each call-through answer passes every test case once the guard is off (so it is a real, working answer and
    the tests alone would give it full marks), and with the guard on it fails a hidden test case with the guard's
    message. Every question a package function could answer has such an answer."""
    master, dist = assigned
    call_through = _answers(master).CALL_THROUGH
    for question, code in call_through.items():
        guarded = _run_tests(dist, master, call_through, question)
        failed_hidden = [r for r in guarded if not r.passed and r.test_case.hidden]
        assert failed_hidden, f"{question}: the call-through answer passed every hidden test"
        assert any(GUARD_MESSAGE in r.message for r in failed_hidden), failed_hidden[0].message[-1500:]
        with monkeypatch.context() as patch:
            patch.setattr(grading_guard, "own_work", _NoGuard)
            unguarded = _run_tests(dist, master, call_through, question)
        failing = [r.message[-800:] for r in unguarded if not r.passed]
        assert not failing, f"{question}: the call-through answer must be right but for calling the package: {failing}"


def test_every_call_through_question_is_covered():
    """The questions that one package function (or torch's GLU) answers, each with a call-through answer."""
    expected = {"ch01_listening": {"q2"}, "ch02_data_pipeline": {"q1", "q2"}, "ch03_glu_encoder": {"q1", "q2", "q3"},
                "ch04_bilstm_bottleneck": {"q1", "q3"}, "ch05_decoder_unet": {"q1", "q2"},
                "ch06_init_trick": {"q1", "q2"}, "ch07_training": {"q2"}, "ch08_shift_trick": set(),
                "ch09_evaluation": {"q1", "q2"}, "ch11_shipping": {"q1", "q2", "q3"}}
    assert {m.parent.name: set(_answers(m).CALL_THROUGH) for m in MASTERS} == expected



# --------------------------------------------------------------------------------------------------------------
# The open question of each exercise, graded by hand
# --------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("master", MASTERS, ids=NAMES)
def test_each_exercise_has_one_open_question_with_a_rubric(master):
    from demucs_course.grading import manual_questions

    open_questions = manual_questions(master)
    assert len(open_questions) == 1, f"{master.name}: one open question (manual: true) per exercise"
    (question, (points, rubric)), = open_questions.items()
    assert points > 0 and rubric.startswith(f"**Rubric ({points:g} points"), f"{question}: the rubric opens its solution"
    awarded = sum(float(n) for n in re.findall(r"^- (\d+(?:\.\d+)?) points?:", rubric, flags=re.M))
    assert awarded == points, f"{question}: the rubric's items give {awarded:g} points, the question {points:g}"
    assert "**Model answer.**" in rubric, f"{question}: the rubric ends with a model answer"


@pytest.mark.parametrize("master", MASTERS, ids=NAMES)
def test_the_student_notebook_has_no_rubric_and_no_outputs(master):
    """otter assign keeps the solution cells, hence the rubric, out of exercises/; the notebooks hold no outputs;
    and the open question leaves a Markdown cell for the answer."""
    folder = REPO_ROOT / "exercises" / master.parent.name
    for path in folder.rglob("*"):
        if path.is_file():
            text = path.read_text()
            assert "**Rubric" not in text and "**Model answer.**" not in text, f"{path} gives the rubric away"
    nb = json.loads((folder / master.name).read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None, f"{master.name} is stored with outputs"
    sources = ["".join(c["source"]) for c in nb["cells"]]
    assert any("<!-- BEGIN QUESTION -->" in s for s in sources), f"{master.name}: otter marks the open question"
    assert any("_Type your answer here, replacing this text._" in s for s in sources), "a cell for the answer"


def _experiment(master):
    """Run the open question's experiment cell, after the notebook's imports; returns the rows it printed, each a
    list of its numbers (lines without numbers left out) keyed by the line's first word or words."""
    import contextlib
    import io

    cells = json.loads(master.read_text())["cells"]
    sources = ["".join(c["source"]) for c in cells]
    begin = next(i for i, (c, s) in enumerate(zip(cells, sources)) if c["cell_type"] == "raw" and "manual: true" in s)
    code = next(s for c, s in zip(cells[begin:], sources[begin:]) if c["cell_type"] == "code")
    imports = next(s for s in sources if "otter.Notebook(" in s)
    namespace = {"__name__": "__main__"}
    exec(compile("\n".join(l for l in imports.splitlines() if "otter" not in l), "<imports>", "exec"), namespace)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, f"<{master.parent.name} experiment>", "exec"), namespace)
    rows = {}
    for line in printed.getvalue().splitlines():
        numbers = re.findall(r"(?<![\w.])-?\d+(?:\.\d+)?(?![\w.])", line)
        label = re.split(r"\s{2,}", line.strip())[0]
        if numbers:
            rows[label] = [float(n) for n in numbers]
    return rows


def _check_ch01(rows):
    apart, close = rows["660 Hz"][-2:], rows["450 Hz"][-2:]
    in_phase, quarter, opposite = rows["440 Hz, in phase"][-2:], rows["440 Hz, 90 degrees later"][-2:], \
        rows["440 Hz, opposite phase"][-2:]
    assert min(apart) > 25 and max(close) < min(apart) - 15, "apart in frequency: near perfect; a bin apart: poor"
    assert opposite[1] < 0 < quarter[1] < in_phase[1], "same frequency: the phase decides, opposite is worst"
    assert all(first > second for first, second in (apart, close, in_phase, quarter, opposite)), "the quieter loses"


def _check_ch02(rows):
    for g in (1, 2, 4, 8):
        whole, in_place = rows[str(g)][1:]
        assert abs(whole - g ** -3) < 0.01 and abs(in_place - 1 / g) < 0.02, (g, whole, in_place)


def _check_ch03(rows):
    fields = [rows[str(d)][1] for d in range(1, 7)]
    assert fields[0] == 8 and all(b == 4 * a + 4 for a, b in zip(fields, fields[1:])), fields


def _check_ch04(rows):
    influence = {int(k): v[1:] for k, v in rows.items() if re.fullmatch(r"-?\d+", k)}
    assert all(influence[d][1] == 0 for d in (1, 5, 10, 20)), "the forward LSTM cannot see later frames"
    assert all(influence[d][0] > 0 for d in (-5, -1, 1, 5)), "the BLSTM sees both sides"
    assert max(influence[d][0] for d in (-5, 5)) < 0.1, "the influence falls tenfold within a few frames at init"


def _check_ch05(rows):
    by_depth = {4: [], 6: []}
    for values in rows.values():
        if len(values) == 5:
            by_depth[int(values[1])].append(values)
    for depth, lines in by_depth.items():
        percents = [line[4] for line in lines]
        assert percents == sorted(percents, reverse=True), f"depth {depth}: the relative overhead shrinks"
    for four, six in zip(by_depth[4], by_depth[6]):
        assert 10 < six[3] / four[3] < 25, "about sixteen times more extra samples for 6 layers than for 4"


def _check_ch06(rows):
    table = {v[0]: v[1:] for v in rows.values() if len(v) == 3}
    assert table[0.01][0] < table[0.1][0] < table[1.0][0] and table[1.0][0] > 100 * table[0.01][0]
    assert abs(table[0.1][1] - (table[0][1] * 0.1) ** 0.5) < 2e-4, "the geometric mean of the default and 0.1"


def _check_ch07(rows):
    l1, l2 = rows["l1: c ="][-1], rows["l2: c ="][-1]
    median, mean = rows["median"]
    assert abs(l1 - median) < 0.02 and abs(l2 - mean) < 0.02, (l1, median, l2, mean)


def _check_ch08(rows):
    stride = int(rows["total stride 256"][0])
    change = {int(v[0]): v[1] for k, v in rows.items() if re.fullmatch(r"\d+", k)}
    assert change[1] > 10 * change[4] and change[4] > change[stride], "off the first layer's grid is worst"
    assert change[stride] < 1e-3 < change[1], "a shift by the total stride is almost invisible"
    assert change[2 * stride] > change[stride], "the LSTM's residual grows with the shift"


def _check_ch09(rows):
    bass, hihat = rows["bass (55 Hz sine)"][-3:], rows["hi-hat (white noise)"][-3:]
    for gain, _, noise in (bass, hihat):
        assert abs(gain - 20) < 0.1 and abs(noise - 20) < 0.5, "a gain of 0.9 and noise 20 dB down cost 20 dB"
    assert bass[1] > 35 and -3.5 < hihat[1] < -2.5, "a one-sample delay: nothing for the bass, -3 dB for noise"


def _check_ch11(rows):
    per_second, days = rows["online, through the log-in"]
    sha256, sha256_seconds = rows["offline, salted SHA-256"][-2:]
    argon2, argon2_seconds = rows["offline, argon2id"]
    limit, minutes = next(values for label, values in rows.items() if label.startswith("rate limit:"))
    assert abs(days - 10_000 / (limit * 24 * 60 / minutes)) < 0.1 and 14 < days < 30, "online: about three weeks"
    assert sha256 > 1e5 and argon2 < 100 and sha256 > 1e4 * argon2, "argon2id is some 10^5 times slower per guess"
    assert sha256_seconds < 1 and argon2_seconds > 100, "offline: milliseconds against thousands of CPU-seconds"


@pytest.mark.parametrize("master", MASTERS, ids=NAMES)
def test_the_open_question_experiment_shows_what_the_rubric_says(master):
    """The model answer's claims hold for the figures the experiment prints (seeded, seconds of CPU)."""
    check = globals()[f"_check_{master.parent.name[:4]}"]
    check(_experiment(master))
