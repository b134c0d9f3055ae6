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


def masters(root: Path | None = None) -> list[Path]:
    """The exercise masters, ``solutions/<name>/<name>.ipynb``, sorted by name."""
    root = Path(root or REPO_ROOT)
    return sorted(p for p in (root / "solutions").glob("*/*.ipynb") if p.stem == p.parent.name)


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


def generate_exercises(root: Path | None = None) -> list[Path]:
    """Regenerate ``exercises/<name>/`` from every master; returns the exercise folders written."""
    root = Path(root or REPO_ROOT)
    written = []
    for master in masters(root):
        with tempfile.TemporaryDirectory() as tmp:
            dist = assign(master, Path(tmp) / "dist")
            target = root / "exercises" / master.parent.name
            if target.exists():
                shutil.rmtree(target)
            shutil.copytree(dist / "student", target)
            written.append(target)
    return written


def run_autograder(autograder: Path, notebook: Path, *, timeout: float = 600) -> dict[str, tuple[float, float]]:
    """Grade one notebook with ``otter run`` in a scratch folder: ``{question: (score, max_score)}``.

    Raises :class:`GradingError` if otter fails or the run takes longer than ``timeout`` seconds.
    """
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
        tests = json.loads(results.read_text())["tests"]
    return {t["name"]: (float(t["score"]), float(t["max_score"])) for t in tests if t.get("max_score") is not None}


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

    submissions = Path(submissions)
    if not submissions.is_dir():
        raise FileNotFoundError(f"The submissions folder {submissions} does not exist")
    notebooks = sorted(p for p in submissions.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
    if not notebooks:
        raise GradingError(f"No notebooks (*.ipynb) under {submissions}: nothing to grade")
    by_name = {m.parent.name: m for m in masters(root)}
    with tempfile.TemporaryDirectory(prefix="unmix-grading-") as tmp:
        tmp = Path(tmp)
        graders = {}
        for notebook in notebooks:
            name = exercise_of(notebook, list(by_name))
            if name is not None and name not in graders:
                dist = assign(by_name[name], tmp / "assign" / name)
                graders[name] = (autograder_zip(dist), _max_scores(dist, by_name[name].name))

        def one(index_notebook):
            index, notebook = index_notebook
            relative = str(notebook.relative_to(submissions))
            name = exercise_of(notebook, list(by_name))
            if name is None:
                return GradedSubmission(relative, "", "unknown exercise", {}, 0.0,
                                        f"not one of the exercises: {', '.join(by_name)}")
            autograder, max_scores = graders[name]
            start = time.perf_counter()
            status, scores, reason = _grade_one(notebook, autograder, tmp / "runs" / str(index), timeout, max_scores)
            return GradedSubmission(relative, name, status, scores, time.perf_counter() - start, reason)

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


def write_gradebook(rows: list[GradedSubmission], path: Path) -> Path:
    """A CSV with one row per submission: exercise, status, each question's points, total, seconds and reason.

    Question columns are named ``q1``, ``q2``... when one exercise was graded, ``<exercise>:q1`` otherwise.
    """
    import csv

    exercises = sorted({r.exercise for r in rows if r.exercise})
    columns = []
    for row in rows:
        for question in row.scores:
            column = question if len(exercises) <= 1 else f"{row.exercise}:{question}"
            if column not in columns:
                columns.append(column)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["submission", "exercise", "status", *columns, "total", "max_total", "seconds", "reason"])
        for row in rows:
            cells = {(q if len(exercises) <= 1 else f"{row.exercise}:{q}"): f"{s:g}" for q, (s, _) in row.scores.items()}
            writer.writerow([row.submission, row.exercise, row.status, *[cells.get(c, "") for c in columns],
                             f"{row.total:g}", f"{row.max_total:g}", f"{row.seconds:.1f}", row.reason])
    return path
