"""Every chapter: small helpers the notebooks share.

- :func:`show` displays the source of a package function or class, highlighted, so a chapter teaches the code the
  package runs instead of pasting a second copy of it.
- :func:`setup_cell_source` is the text of every notebook's first cell: in Colab it installs this package beside
  Colab's own torch; locally (after the README's set-up) it does nothing. The repository's public URL lives in one
  place, ``_config.yml`` (``repository.url``); ``python -m demucs_course.book`` rewrites the first cell of every
  notebook from it, and a test checks that none has drifted.
- :func:`timer` measures a cell's wall time; :func:`cpu_seconds` the CPU time every chapter quotes as its run time.
- :func:`glue` hands a figure the cell just computed to the chapter's prose: the Markdown says
  ``{glue}`name``` where it would otherwise type the number, so the text can never drift from the run. The rule
  (``tests/test_numbers.py``): every measured number in a chapter's Markdown is glued, and every number quoted
  from the paper or the reference code is one of the cited constants of :mod:`demucs_course.literature`.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import re
import time
from pathlib import Path

#: The repository's root, when the package runs from a checkout (None when installed from a wheel).
REPO_ROOT = Path(__file__).resolve().parent.parent
if not (REPO_ROOT / "_config.yml").exists():
    REPO_ROOT = None


def _config() -> dict:
    if REPO_ROOT is None:
        raise RuntimeError("the book's settings live in _config.yml: run this from a checkout of the course repository")
    import yaml

    return yaml.safe_load((REPO_ROOT / "_config.yml").read_text())


def repository_url() -> str:
    """The course repository's public URL, read from ``_config.yml`` (``repository.url``)."""
    return _config()["repository"]["url"].rstrip("/")


def repository_ref() -> str:
    """The branch or tag the book is published from (``repository.branch`` in ``_config.yml``): the set-up cells
    install the package from it, and the Colab links open the notebooks at it."""
    return str(_config()["repository"].get("branch") or "main")


def colab_url(path: str) -> str:
    """The "Open in Colab" address of a notebook of the repository, ``path`` relative to its root, at
    :func:`repository_ref`. Colab opens notebooks from GitHub only."""
    url = repository_url()
    prefix = "https://github.com/"
    if not url.startswith(prefix):
        raise ValueError(f"Colab opens notebooks from GitHub only, and repository.url in _config.yml is {url}")
    colab = _config().get("launch_buttons", {}).get("colab_url", "https://colab.research.google.com").rstrip("/")
    return f"{colab}/github/{url[len(prefix):]}/blob/{repository_ref()}/{path}"


def show(obj) -> "IPython.display.Code":
    """Display the source of a function, class or module from ``demucs_course``, highlighted.

    >>> show(FlipSign)          # doctest: +SKIP
    """
    from IPython.display import Code

    return Code(inspect.getsource(obj), language="python")


def pages_url() -> str:
    """The published book's address: the GitHub Pages site of :func:`repository_url` (``html.baseurl`` in
    ``_config.yml``, where ``bash course.sh publish`` puts it)."""
    url = repository_url()
    prefix = "https://github.com/"
    if not url.startswith(prefix) or url[len(prefix):].count("/") != 1:
        raise ValueError(f"repository.url in _config.yml is {url}, not https://github.com/OWNER/NAME: GitHub Pages "
                         "publishes only from GitHub")
    owner, name = url[len(prefix):].split("/")
    return f"https://{owner.lower()}.github.io/{name}/"


#: Where the exercise set-up cell keeps the clone in Colab (a restart goes back to /content, the clone stays).
COLAB_COURSE_DIR = "/content/unmix"

#: The chapters that open on a GPU runtime in Colab (training, whole-track separation, evaluation).
GPU_CHAPTERS = ("07_training", "08_shift_trick", "09_evaluation")


def setup_cell_source(exercise: str | None = None, *, url: str | None = None, ref: str | None = None,
                      folder: str = COLAB_COURSE_DIR) -> str:
    """The first code cell of every chapter (``exercise=None``) and of every exercise (its folder's name).

    Both are safe to run again, and again after Colab's *Restart session* (which returns to ``/content`` and keeps
    the disk but forgets the kernel): they fetch only what is missing. When the repository cannot be reached they
    stop with one line that names the setting to check, ``COURSE_REPO`` and ``COURSE_REF`` at the top of the cell.

    A chapter needs only the package: it is installed with pip from the repository at ``ref`` (the branch or tag
    the book is published from), unless it is already importable -- locally, or on a second run. pip keeps Colab's
    torch, because the package asks for a range of versions.

    An exercise also needs otter-grader and its public tests, which otter reads from a ``tests/`` folder beside the
    notebook (otter cannot read tests from notebook metadata in Colab). In Colab the cell clones the repository into
    ``folder`` unless it is there, installs the package with its ``exercises`` extra from the clone unless both are
    importable, and always moves into the exercise's folder. Outside Colab it does nothing.

    ``url`` and ``ref`` default to ``_config.yml``'s ``repository.url`` and ``repository.branch``; a test passes a
    local repository standing in for them.
    """
    url = url or repository_url()
    ref = ref or repository_ref()
    template = _EXERCISE_SETUP if exercise else _CHAPTER_SETUP
    for name, value in (("URL", url), ("REF", ref), ("FOLDER", folder), ("EXERCISE", exercise or "")):
        template = template.replace(f"<{name}>", json.dumps(value))
    return template


# The set-up cells, with <URL>, <REF>, <FOLDER> and <EXERCISE> for the values. `why` is the first line git or pip
# wrote about the failure ("fatal: unable to access ...: Could not resolve host", "fatal: Remote branch v2 not found"):
# the cell's one line quotes it. GIT_TERMINAL_PROMPT=0: a repository that is not there (or private) fails at once
# instead of waiting for a user name.
_SETTINGS = """COURSE_REPO, COURSE_REF = <URL>, <REF>  # the course repository, and the branch or tag of this book
"""
_WHY = """why = next((line.strip() for line in run.stderr.splitlines() if line.strip().startswith(("fatal:", "ERROR:"))),
           " ".join(run.stderr.split())[-200:])"""
_CHAPTER_SETUP = """# Set-up. In Colab this installs the course package (it keeps Colab's torch); run it again at will, after
# a restart too. Locally, after the README's set-up, the package is already here and this does nothing.
import importlib, importlib.util, os, subprocess, sys
""" + _SETTINGS + """if importlib.util.find_spec("demucs_course") is None:
    package = f"demucs-course @ git+{COURSE_REPO}@{COURSE_REF}"
    run = subprocess.run([sys.executable, "-m", "pip", "install", "-q", package], capture_output=True, text=True,
                         env={**os.environ, "GIT_TERMINAL_PROMPT": "0"})
    if run.returncode:
        """ + _WHY.replace("\n", "\n    ") + """
        raise SystemExit(f"Set-up: cannot install {package} ({why}): check the runtime's internet connection, or set COURSE_REPO and COURSE_REF at the top of this cell")
    importlib.invalidate_caches()"""
_EXERCISE_SETUP = """# Set-up. In Colab this clones the course (its package, otter-grader and this exercise's tests) and moves
# into the exercise's folder; run it again at will, after a restart too. Locally it does nothing.
import importlib, importlib.util, os, subprocess, sys
""" + _SETTINGS + """COURSE_DIR = <FOLDER>  # where the clone is kept
if "google.colab" in sys.modules:
    if not os.path.isdir(COURSE_DIR):
        clone = ["git", "clone", "-q", "--depth", "1", "--branch", COURSE_REF, COURSE_REPO, COURSE_DIR]
        run = subprocess.run(clone, capture_output=True, text=True, env={**os.environ, "GIT_TERMINAL_PROMPT": "0"})
        if run.returncode:
            """ + _WHY.replace("\n", "\n        ") + """
            raise SystemExit(f"Set-up: cannot clone {COURSE_REPO} at {COURSE_REF} ({why}): check the runtime's internet connection, or set COURSE_REPO and COURSE_REF at the top of this cell")
    if importlib.util.find_spec("demucs_course") is None or importlib.util.find_spec("otter") is None:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", f"{COURSE_DIR}[exercises]"], check=True)
        importlib.invalidate_caches()
    os.chdir(os.path.join(COURSE_DIR, "exercises", <EXERCISE>))"""


class _Figure(str):
    """A figure already formatted: its ``repr`` is its text, so myst-nb inserts ``5.13``, not ``'5.13'``."""

    def __repr__(self) -> str:
        return str(self)

    def _repr_pretty_(self, printer, cycle) -> None:
        printer.text(str(self))


def glue(name: str, value, fmt: str = "") -> str:
    """Glue ``value``, formatted with ``fmt`` (e.g. ``".2f"``, ``",d"``, ``".1%"``), under ``name``; return its text.

    In the built book, ``{glue}`name``` in a Markdown cell of the same notebook shows the text. Where myst-nb is
    not installed (Colab), the cell prints ``name = text`` instead, so the student sees the number the prose
    refers to.
    """
    if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
        value = value.item()                    # numpy / torch scalars format like Python numbers
    text = _Figure(format(value, fmt))
    try:
        from myst_nb import glue as myst_glue
    except ImportError:
        print(f"{name} = {text}")
    else:
        myst_glue(name, text, display=False)
    return str(text)


def cpu_seconds() -> float:
    """CPU time (user + system) of this process, every thread, and of the child processes it has waited for
    (ffmpeg started by musdb, DataLoader workers), since it started.

    Each chapter quotes it as its run time: unlike wall time, it hardly depends on what else the machine is doing.
    """
    import resource

    return sum(getattr(resource.getrusage(who), field) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
               for field in ("ru_utime", "ru_stime"))


@contextlib.contextmanager
def timer(label: str = "took"):
    """``with timer("training"):`` prints the wall time of the block in seconds."""
    start = time.perf_counter()
    yield
    print(f"{label}: {time.perf_counter() - start:.1f} s")


#: The notebooks :func:`sync_setup_cells` keeps in line with ``_config.yml``, by folder.
NOTEBOOK_FOLDERS = ("chapters", "solutions", "exercises")


def _notebooks(folders=NOTEBOOK_FOLDERS):
    """Chapters (and the capstone, in ``chapters/capstone/``), the exercise masters in ``solutions/``, and the
    student notebooks in ``exercises/`` (which otter generates from the masters; the set-up cell is written into
    both so that they need no new ``otter assign``)."""
    if "chapters" in folders:
        chapters = REPO_ROOT / "chapters"
        for path in sorted(chapters.glob("*.ipynb")) + sorted(chapters.glob("*/*.ipynb")):
            if not path.parent.name.startswith("."):            # not Jupyter's .ipynb_checkpoints/
                yield path, None
    for folder in ("solutions", "exercises"):
        if folder in folders:
            for path in sorted((REPO_ROOT / folder).glob("*/*.ipynb")):
                if path.stem == path.parent.name:
                    yield path, path.parent.name


#: In a chapter's Markdown, the exercise's path in backquotes after "Open", and the Colab link that follows it once
#: :func:`sync_setup_cells` has written it: "Open `exercises/<name>/<name>.ipynb` ([open in Colab](...))".
_EXERCISE_LINK = re.compile(r"Open `(exercises/([\w-]+)/\2\.ipynb)`( \(\[open in Colab\]\([^)\s]*\)\))?")


def _synced(nb: dict, path: Path, exercise: str | None) -> dict:
    """``nb`` as :func:`sync_setup_cells` wants it: the set-up cell; for a chapter, the Colab links to its
    exercise and, for the GPU chapters, Colab's GPU runtime."""
    nb = json.loads(json.dumps(nb))
    cell = next(c for c in nb["cells"] if c["cell_type"] == "code")
    cell["source"] = setup_cell_source(exercise).splitlines(keepends=True)
    if path.parent.name == "chapters":
        for cell in nb["cells"]:
            if cell["cell_type"] == "markdown":
                text = "".join(cell["source"])
                linked = _EXERCISE_LINK.sub(lambda m: f"Open `{m[1]}` ([open in Colab]({colab_url(m[1])}))", text)
                if linked != text:
                    cell["source"] = linked.splitlines(keepends=True)
        metadata = nb.setdefault("metadata", {})
        if path.stem in GPU_CHAPTERS:
            metadata["accelerator"] = "GPU"
            metadata.setdefault("colab", {})["gpuType"] = "T4"
        else:
            metadata.pop("accelerator", None)
            metadata.get("colab", {}).pop("gpuType", None)
    return nb


def sync_setup_cells(check: bool = False, folders=NOTEBOOK_FOLDERS) -> list[Path]:
    """Rewrite (or, with ``check``, only list) the notebooks of ``folders`` that are not in line with
    ``_config.yml``: their first code cell must be the set-up cell; a chapter must link its exercise with
    "Open in Colab", and a GPU chapter must ask Colab for a GPU runtime."""
    from .grading import _stable_cell_ids

    drifted = []
    for path, exercise in _notebooks(folders):
        nb = json.loads(path.read_text())
        want = _synced(nb, path, exercise)
        if want != nb:
            drifted.append(path)
            if not check:
                path.write_text(json.dumps(want, indent=1, ensure_ascii=False) + "\n")
                if path.parent.parent.name == "exercises":
                    _stable_cell_ids(path)          # as `otter assign` would write it (demucs_course.grading)
    return drifted


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(prog="python -m demucs_course.book",
                                     description="Write every notebook's set-up cell, Colab links and Colab runtime "
                                                 "from _config.yml (repository.url, repository.branch).")
    parser.add_argument("folders", nargs="*", metavar="FOLDER",
                        help=f"which notebooks: {', '.join(NOTEBOOK_FOLDERS)} (default: all)")
    parser.add_argument("--check", action="store_true", help="only list the notebooks that are not in line")
    options = parser.parse_args()
    if not set(options.folders) <= set(NOTEBOOK_FOLDERS):
        parser.error(f"FOLDER is one of {', '.join(NOTEBOOK_FOLDERS)}")
    paths = sync_setup_cells(check=options.check, folders=options.folders or NOTEBOOK_FOLDERS)
    for path in paths:
        print(("out of line: " if options.check else "rewrote ") + str(path.relative_to(REPO_ROOT)))
    raise SystemExit(1 if options.check and paths else 0)
