"""Every chapter: the exercises, built and graded with otter-grader (no Docker).

Each chapter's exercise is written once, as an otter *master* notebook ``solutions/<name>/<name>.ipynb``: the
questions, the solutions between ``# BEGIN SOLUTION`` / ``# END SOLUTION``, and the tests, some of them hidden.
``otter assign`` turns a master into

- the student notebook and its public tests, which this module copies to ``exercises/<name>/``
  (``demucs-course exercises`` regenerates them all; a test fails if they drift from the masters), and
- an autograder zip holding every test, hidden ones included, with which ``otter run`` grades a submission in the
  current Python environment.

``demucs-course grade SUBMISSIONS -o gradebook.csv`` (:func:`grade_submissions`, :func:`write_gradebook`) grades a
folder of submitted notebooks with those autograders, each in its own scratch folder, with a time limit and a guard
against writing outside it (:mod:`demucs_course.grading_guard`), into one CSV gradebook.

Each exercise also ends with an open question (``manual: true`` in its master), which otter does not grade: otter
leaves it out of its results altogether. The gradebook marks it "by hand" for every graded submission, and
:func:`write_manual_sheet` collects, beside the gradebook, each such question's rubric (the master's solution cell)
and every submission's answer, with the figures its experiment printed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .book import REPO_ROOT


class GradingError(RuntimeError):
    """otter could not build an exercise or grade a notebook; the message says which and why."""


def masters_folder(course: Path | str | None = None) -> Path:
    """The folder of the exercise masters (``<name>/<name>.ipynb``) for ``course``: a checkout of the course (its
    ``solutions/``), or the masters' own folder, e.g. a private repository of them. ``None``: this checkout.

    A package installed from a wheel has no course folder of its own: then ``course`` must be given.
    """
    if course is None:
        if REPO_ROOT is None:
            raise GradingError("the exercises' masters are not installed with the package: pass --course DIR, a clone "
                               "of the course repository (or a folder holding the masters, <name>/<name>.ipynb)")
        course = REPO_ROOT
    course = Path(course).expanduser()
    if not course.is_dir():
        raise GradingError(f"the course folder {course} does not exist: pass --course DIR, a clone of the course "
                           "repository (or a folder holding the masters, <name>/<name>.ipynb)")
    for folder in (course / "solutions", course):
        if any(p.stem == p.parent.name for p in folder.glob("*/*.ipynb")):
            return folder
    raise GradingError(f"no exercise masters in {course}: expected {course}/solutions/<name>/<name>.ipynb (a clone "
                       "of the course repository) or <name>/<name>.ipynb (a folder of masters)")


def masters(root: Path | None = None) -> list[Path]:
    """The exercise masters, ``<name>/<name>.ipynb`` in :func:`masters_folder`, sorted by name."""
    folder = masters_folder(root)
    return sorted(p for p in folder.glob("*/*.ipynb") if p.stem == p.parent.name)


def require_otter() -> None:
    """Building and grading exercises run otter-grader: a clear error when it is not installed."""
    import importlib.util

    if importlib.util.find_spec("otter") is None:
        raise GradingError("otter-grader is not installed: pip install 'demucs-course[exercises]'")


def assign(master: Path, dist: Path) -> Path:
    """Run ``otter assign`` on a master notebook into ``dist`` (``dist/student``, ``dist/autograder``).

    otter also runs the tests against the solutions and fails if any does not pass.
    """
    master = Path(master).resolve()
    dist = Path(dist).resolve()
    if dist.exists():
        shutil.rmtree(dist)
    run = subprocess.run([sys.executable, "-m", "otter", "assign", master.name, str(dist)], cwd=master.parent,
                         capture_output=True, text=True)
    if run.returncode != 0:
        raise GradingError(f"otter assign failed on {master}:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}")
    for notebook in dist.glob("*/*.ipynb"):
        _stable_cell_ids(notebook)
    return dist


def _stable_cell_ids(path: Path) -> None:
    """otter gives the cells it adds random ids; derive every id from the cell's place and text instead, so that
    regenerating an exercise gives the same bytes."""
    nb = json.loads(path.read_text())
    for i, cell in enumerate(nb["cells"]):
        text = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        cell["id"] = hashlib.sha1(f"{i}|{text}".encode()).hexdigest()[:8]
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")


def autograder_zip(dist: Path) -> Path:
    """The autograder zip that :func:`assign` wrote into ``dist/autograder``."""
    zips = sorted((Path(dist) / "autograder").glob("*-autograder_*.zip"))
    if not zips:
        raise GradingError(f"no autograder zip in {dist}/autograder: run assign() first")
    return zips[-1]


def generate_exercises(root: Path | None = None, out: Path | None = None, *, progress: bool = False) -> list[Path]:
    """Regenerate ``exercises/<name>/`` from every master of the course ``root`` (see :func:`masters_folder`) into
    ``out`` (default: the course's ``exercises/``; required for a folder of masters alone); returns the folders
    written."""
    from tqdm.auto import tqdm

    found = masters(root)
    if out is None:
        folder = masters_folder(root)
        if folder.name != "solutions":
            raise GradingError(f"{folder} holds the masters alone: say where the exercises go with --out DIR")
        out = folder.parent / "exercises"
    require_otter()
    written = []
    for master in tqdm(found, desc="exercises", unit="exercise", disable=not progress):
        with tempfile.TemporaryDirectory() as tmp:
            dist = assign(master, Path(tmp) / "dist")
            target = Path(out) / master.parent.name
            if target.exists():
                shutil.rmtree(target)
            shutil.copytree(dist / "student", target)
            written.append(target)
    return written


def run_autograder(autograder: Path, notebook: Path, *, timeout: float = 600) -> dict[str, tuple[float, float]]:
    """Grade one notebook with ``otter run`` in a scratch folder: ``{question: (score, max_score)}``.

    Raises :class:`GradingError` if otter fails or the run takes longer than ``timeout`` seconds.
    """
    tests = autograder_results(autograder, notebook, timeout=timeout)
    return {t["name"]: (float(t["score"]), float(t["max_score"])) for t in tests if t.get("max_score") is not None}


def autograder_results(autograder: Path, notebook: Path, *, timeout: float = 600) -> list[dict]:
    """otter's own results for one notebook: the ``tests`` of its ``results.json``, one dict per question (name,
    score, max_score, and the output of every test case, hidden ones included)."""
    with tempfile.TemporaryDirectory() as tmp:
        submission = Path(tmp) / Path(notebook).name
        shutil.copy(notebook, submission)
        try:
            run = subprocess.run([sys.executable, "-m", "otter", "run", "-a", str(Path(autograder).resolve()),
                                  "-o", tmp, "--no-logo", submission.name],
                                 cwd=tmp, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as error:
            raise GradingError(f"grading {notebook} took longer than {timeout:.0f} s") from error
        results = Path(tmp) / "results.json"
        if run.returncode != 0 or not results.is_file():
            raise GradingError(f"otter run failed on {notebook}:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}")
        return json.loads(results.read_text())["tests"]


# --------------------------------------------------------------------------------------------------------------
# Grading a folder of submissions into a gradebook
# --------------------------------------------------------------------------------------------------------------

@dataclasses.dataclass
class GradedSubmission:
    """One row of the gradebook."""

    submission: str
    exercise: str
    status: str                      # "graded", "timeout", "crashed", "outside its folder", "unknown exercise"
    scores: dict[str, tuple[float, float]]
    seconds: float
    reason: str = ""
    manual: dict[str, float] = dataclasses.field(default_factory=dict)   # open questions: points, graded by hand
    answers: dict[str, str] = dataclasses.field(default_factory=dict)    # the submission's answer to each
    rubrics: dict[str, str] = dataclasses.field(default_factory=dict)    # and the rubric it is graded with

    @property
    def total(self) -> float:
        return sum(score for score, _ in self.scores.values())

    @property
    def max_total(self) -> float:
        return sum(best for _, best in self.scores.values())


def exercise_of(notebook: Path, names: list[str]) -> str | None:
    """Which exercise a submitted notebook answers: otter's ``assignment_name`` in its metadata, else its file name."""
    try:
        meta = json.loads(Path(notebook).read_text()).get("metadata", {})
        name = meta.get("otter", {}).get("assignment_name")
    except (OSError, ValueError, AttributeError):
        name = None
    if name in names:
        return name
    stem = Path(notebook).stem
    return next((n for n in names if stem == n or stem.startswith(n)), None)


def _grade_one(notebook: Path, autograder: Path, scratch: Path, timeout: float, max_scores: dict) -> tuple:
    """Run otter on one notebook inside ``scratch`` with the write guard; returns (status, scores, reason)."""
    for sub in ("work", "home", "tmp", "out", "guard"):
        (scratch / sub).mkdir(parents=True, exist_ok=True)
    shutil.copy(Path(__file__).with_name("grading_guard.py"), scratch / "guard" / "sitecustomize.py")
    submission = scratch / "work" / notebook.name
    shutil.copy(notebook, submission)
    violations = scratch / "violations.log"
    from .data import default_cache_dir

    env = dict(os.environ)
    env.update({
        "HOME": str(scratch / "home"), "TMPDIR": str(scratch / "tmp"), "MPLCONFIGDIR": str(scratch / "home"),
        "JUPYTER_RUNTIME_DIR": str(scratch / "tmp"), "IPYTHONDIR": str(scratch / "home" / ".ipython"),
        "XDG_CACHE_HOME": str(scratch / "home"), "PYTHONDONTWRITEBYTECODE": "1",
        "DEMUCS_COURSE_CACHE": str(default_cache_dir()),
        "PYTHONPATH": os.pathsep.join([str(scratch / "guard"), *filter(None, [os.environ.get("PYTHONPATH")])]),
        "UNMIX_GRADING_WRITABLE": os.pathsep.join([str(scratch), str(default_cache_dir())]),
        "UNMIX_GRADING_VIOLATIONS": str(violations),
    })
    zero = {q: (0.0, best) for q, best in max_scores.items()}
    process = subprocess.Popen([sys.executable, "-m", "otter", "run", "-a", str(autograder), "-o",
                                str(scratch / "out"), "--no-logo", str(submission)],
                               cwd=scratch / "work", env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, start_new_session=True)
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # otter, its kernel, and anything they started
        process.communicate()
        return "timeout", zero, f"did not finish within {timeout:.0f} s (an endless loop?)"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    if violations.is_file() and violations.read_text().strip():
        first = violations.read_text().strip().splitlines()[0]
        return "outside its folder", zero, f"refused: {first}"
    results = scratch / "out" / "results.json"
    if process.returncode != 0 or not results.is_file():
        lines = [line for line in output.strip().splitlines() if line.strip()]
        return "crashed", zero, f"the notebook could not be run: {lines[-1][:300] if lines else 'no output'}"
    tests = json.loads(results.read_text())["tests"]
    scores = {t["name"]: (float(t["score"]), float(t["max_score"])) for t in tests
              if t.get("max_score") is not None and t["name"] in max_scores}
    missing = [q for q in max_scores if q not in scores]
    if missing:
        return "crashed", {**zero, **scores}, f"no result for {', '.join(missing)} (the kernel died?)"
    return "graded", scores, ""


def grade_submissions(submissions: Path, *, timeout: float = 600, jobs: int = 1, root: Path | None = None,
                      progress: bool = True) -> list[GradedSubmission]:
    """Grade every notebook under ``submissions`` against the exercise it answers.

    Each notebook runs in its own scratch folder, with otter's hidden tests, a ``timeout`` in seconds, and the
    write guard of :mod:`demucs_course.grading_guard`. A notebook that crashes, loops, or writes outside its folder
    gets a row with 0 points and the reason; the others are graded as usual. ``jobs`` notebooks run at once.
    """
    from concurrent.futures import ThreadPoolExecutor

    from tqdm.auto import tqdm

    by_name = {m.parent.name: m for m in masters(root)}
    require_otter()
    submissions = Path(submissions)
    if not submissions.is_dir():
        raise FileNotFoundError(f"The submissions folder {submissions} does not exist")
    notebooks = sorted(p for p in submissions.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
    if not notebooks:
        raise GradingError(f"No notebooks (*.ipynb) under {submissions}: nothing to grade")
    with tempfile.TemporaryDirectory(prefix="unmix-grading-") as tmp:
        tmp = Path(tmp)
        graders = {}
        for notebook in notebooks:
            name = exercise_of(notebook, list(by_name))
            if name is not None and name not in graders:
                dist = assign(by_name[name], tmp / "assign" / name)
                graders[name] = (autograder_zip(dist), _max_scores(dist, by_name[name].name),
                                 manual_questions(by_name[name]))

        def one(index_notebook):
            index, notebook = index_notebook
            relative = str(notebook.relative_to(submissions))
            name = exercise_of(notebook, list(by_name))
            if name is None:
                return GradedSubmission(relative, "", "unknown exercise", {}, 0.0,
                                        f"not one of the exercises: {', '.join(by_name)}")
            autograder, max_scores, manual = graders[name]
            start = time.perf_counter()
            status, scores, reason = _grade_one(notebook, autograder, tmp / "runs" / str(index), timeout, max_scores)
            return GradedSubmission(relative, name, status, scores, time.perf_counter() - start, reason,
                                    manual={q: points for q, (points, _) in manual.items()},
                                    answers=manual_answers(notebook, list(manual)),
                                    rubrics={q: rubric for q, (_, rubric) in manual.items()})

        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            results = list(tqdm(pool.map(one, enumerate(notebooks)), total=len(notebooks), desc="grading",
                                unit="notebook", disable=not progress))
    return results


def _max_scores(dist: Path, notebook_name: str) -> dict[str, float]:
    """Each question's points, read from the autograder's test files (``tests/qN.py``)."""
    scores = {}
    for test in sorted((dist / "autograder" / "tests").glob("*.py")):
        namespace = {}
        exec(compile(test.read_text(), str(test), "exec"), namespace)
        scores[namespace["test"]["name"]] = float(namespace["test"]["points"])
    if not scores:
        raise GradingError(f"no tests found for {notebook_name} in {dist}")
    return scores


def _question_configs(master: Path) -> list[dict]:
    """The configuration of every question of a master (its ``# BEGIN QUESTION`` cells), in order."""
    import yaml

    configs = []
    for cell in json.loads(Path(master).read_text())["cells"]:
        text = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        if cell["cell_type"] == "raw" and text.strip().startswith("# BEGIN QUESTION"):
            configs.append(yaml.safe_load(text.split("\n", 1)[1]) or {})
    return configs


def manual_questions(master: Path) -> dict[str, tuple[float, str]]:
    """The open questions of a master, graded by hand: ``{name: (points, rubric)}``, the rubric being the Markdown
    of the question's solution (which ``otter assign`` keeps out of the student's notebook)."""
    nb = json.loads(Path(master).read_text())
    configs = iter(_question_configs(master))
    found, current, in_solution = {}, None, False
    for cell in nb["cells"]:
        text = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        marker = text.strip() if cell["cell_type"] == "raw" else ""
        if marker.startswith("# BEGIN QUESTION"):
            config = next(configs)
            current = config["name"] if config.get("manual") else None
            if current:
                found[current] = (float(config.get("points", 0)), "")
        elif marker == "# END QUESTION":
            current = None
        elif marker == "# BEGIN SOLUTION":
            in_solution = True
        elif marker == "# END SOLUTION":
            in_solution = False
        elif current and in_solution and cell["cell_type"] == "markdown":
            points, rubric = found[current]
            found[current] = (points, (rubric + "\n\n" + text).strip())
    return found


def manual_answers(notebook: Path, questions: list[str]) -> dict[str, str]:
    """A submission's answers to the open questions ``questions`` (in the order of the exercise): for each, the
    figures its experiment cell printed (if the notebook was saved with its outputs) and the Markdown the student
    wrote. otter marks each open question with ``<!-- BEGIN QUESTION -->`` / ``<!-- END QUESTION -->`` cells."""
    try:
        cells = json.loads(Path(notebook).read_text()).get("cells", [])
    except (OSError, ValueError):
        return {}
    blocks, block = [], None
    for cell in cells:
        text = "".join(cell.get("source", "")) if isinstance(cell.get("source"), list) else cell.get("source", "")
        if cell.get("cell_type") == "markdown" and "<!-- BEGIN QUESTION -->" in text:
            block = []
        elif cell.get("cell_type") == "markdown" and "<!-- END QUESTION -->" in text and block is not None:
            blocks.append(block)
            block = None
        elif block is not None:
            block.append((cell.get("cell_type"), text, cell.get("outputs", [])))
    answers = {}
    for question, cells_of_question in zip(questions, blocks):
        printed = "".join("".join(o.get("text", "")) for kind, _, outputs in cells_of_question if kind == "code"
                          for o in outputs if o.get("output_type") == "stream")
        written = [text for kind, text, _ in cells_of_question[1:] if kind == "markdown"]  # [0] is the prompt
        answer = "\n\n".join(written).strip()
        if not answer or answer == "_Type your answer here, replacing this text._":
            answer = "(no answer)"
        answers[question] = (f"```text\n{printed.rstrip()}\n```\n\n" if printed.strip() else "") + answer
    return answers


def write_gradebook(rows: list[GradedSubmission], path: Path) -> Path:
    """A CSV with one row per submission: exercise, status, each question's points, total, seconds and reason.

    Question columns are named ``q1``, ``q2``... when one exercise was graded, ``<exercise>:q1`` otherwise. An open
    question, graded by hand, reads ``by hand`` in a graded row; ``total`` and ``max_total`` count the autograded
    points, and ``by_hand`` says how many points are still to be given by hand. The sheet for that,
    :func:`write_manual_sheet`, is written beside the CSV (``gradebook.manual.md`` for ``gradebook.csv``).
    """
    import csv

    exercises = sorted({r.exercise for r in rows if r.exercise})

    def column(row, question):
        return question if len(exercises) <= 1 else f"{row.exercise}:{question}"

    columns = []
    for row in rows:
        for question in [*row.scores, *row.manual]:
            if column(row, question) not in columns:
                columns.append(column(row, question))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["submission", "exercise", "status", *columns, "total", "max_total", "by_hand", "seconds",
                         "reason"])
        for row in rows:
            cells = {column(row, q): f"{s:g}" for q, (s, _) in row.scores.items()}
            graded = row.status == "graded"
            cells.update({column(row, q): "by hand" if graded else "0" for q in row.manual})
            by_hand = "; ".join(f"{q}: {points:g} points" for q, points in row.manual.items()) if graded else ""
            writer.writerow([row.submission, row.exercise, row.status, *[cells.get(c, "") for c in columns],
                             f"{row.total:g}", f"{row.max_total:g}", by_hand, f"{row.seconds:.1f}", row.reason])
    write_manual_sheet(rows, manual_sheet_path(path))
    return path


def manual_sheet_path(gradebook: Path) -> Path:
    """Where :func:`write_gradebook` puts the sheet of open questions: ``gradebook.manual.md`` beside ``gradebook.csv``."""
    return Path(gradebook).with_suffix(".manual.md")


def write_manual_sheet(rows: list[GradedSubmission], path: Path) -> Path | None:
    """A Markdown sheet for grading the open questions by hand: for each exercise and open question, its rubric and
    model answer, then every graded submission's answer (with the figures its run printed). None when no graded
    submission has an open question."""
    graded = [r for r in rows if r.status == "graded" and r.manual]
    if not graded:
        return None
    lines = ["# Open questions to grade by hand", "",
             "Give each answer its points with the rubric, then write them in the gradebook's column for the "
             "question (it reads `by hand`) and add them to `total`.", ""]
    for exercise in sorted({r.exercise for r in graded}):
        first = next(r for r in graded if r.exercise == exercise)
        for question, points in first.manual.items():
            lines += [f"## {exercise}, {question} ({points:g} points)", "", first.rubrics.get(question, ""), ""]
            for row in (r for r in graded if r.exercise == exercise):
                lines += [f"### {row.submission}: {question}", "", row.answers.get(question, "(no answer)"), "",
                          f"**Points:** ___ / {points:g}", ""]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    return path
