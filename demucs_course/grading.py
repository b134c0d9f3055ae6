"""Every chapter: the exercises, built and graded with otter-grader (no Docker).

Each chapter's exercise is written once, as an otter *master* notebook ``solutions/<name>/<name>.ipynb``: the
questions, the solutions between ``# BEGIN SOLUTION`` / ``# END SOLUTION``, and the tests, some of them hidden.
``otter assign`` turns a master into

- the student notebook and its public tests, which this module copies to ``exercises/<name>/``
  (``demucs-course exercises`` regenerates them all; a test fails if they drift from the masters), and
- an autograder zip holding every test, hidden ones included, with which ``otter run`` grades a submission in the
  current Python environment.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
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
