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
import time
from pathlib import Path

#: The repository's root, when the package runs from a checkout (None when installed from a wheel).
REPO_ROOT = Path(__file__).resolve().parent.parent
if not (REPO_ROOT / "_config.yml").exists():
    REPO_ROOT = None


def repository_url() -> str:
    """The course repository's public URL, read from ``_config.yml`` (``repository.url``)."""
    if REPO_ROOT is None:
        raise RuntimeError("repository_url() reads _config.yml: run it from a checkout of the course repository")
    import yaml

    config = yaml.safe_load((REPO_ROOT / "_config.yml").read_text())
    return config["repository"]["url"].rstrip("/")


def show(obj) -> "IPython.display.Code":
    """Display the source of a function, class or module from ``demucs_course``, highlighted.

    >>> show(FlipSign)          # doctest: +SKIP
    """
    from IPython.display import Code

    return Code(inspect.getsource(obj), language="python")


def setup_cell_source(exercise: str | None = None) -> str:
    """The first code cell of every chapter (``exercise=None``) and of every exercise (its folder's name).

    A chapter needs only the package: in Colab it is installed from the repository with pip, which keeps Colab's
    torch because the package asks for a range of versions. An exercise also needs otter-grader and its public
    tests, which otter reads from a ``tests/`` folder beside the notebook (otter cannot read tests from notebook
    metadata in Colab): in Colab the cell clones the repository, installs it, and moves into the exercise's folder.
    """
    url = repository_url()
    head = (
        "# Set-up. In Colab this installs the course package (it keeps Colab's torch); locally, after the\n"
        "# README's set-up, everything is already here and this cell does nothing.\n"
    )
    if exercise is None:
        return head + (
            "import importlib.util, subprocess, sys\n"
            "if importlib.util.find_spec(\"demucs_course\") is None:\n"
            f"    subprocess.run([sys.executable, \"-m\", \"pip\", \"install\", \"-q\", \"demucs-course @ git+{url}\"], check=True)"
        )
    return head + (
        "import os, subprocess, sys\n"
        "if \"google.colab\" in sys.modules and not os.path.isdir(\"tests\"):  # fetch the package, otter and the tests\n"
        f"    subprocess.run([\"git\", \"clone\", \"-q\", \"--depth\", \"1\", \"{url}\", \"/content/unmix\"], check=True)\n"
        "    subprocess.run([sys.executable, \"-m\", \"pip\", \"install\", \"-q\", \"/content/unmix[exercises]\"], check=True)\n"
        f"    os.chdir(\"/content/unmix/exercises/{exercise}\")"
    )


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


def _notebooks():
    """Chapters, and the exercise masters in ``solutions/`` (``exercises/`` is generated from those by otter)."""
    for path in sorted((REPO_ROOT / "chapters").glob("*.ipynb")):
        yield path, None
    for path in sorted((REPO_ROOT / "solutions").glob("*/*.ipynb")):
        yield path, path.parent.name


def sync_setup_cells(check: bool = False) -> list[Path]:
    """Rewrite (or, with ``check``, only list) the notebooks whose first code cell is not the set-up cell."""
    drifted = []
    for path, exercise in _notebooks():
        nb = json.loads(path.read_text())
        cell = next(c for c in nb["cells"] if c["cell_type"] == "code")
        want = setup_cell_source(exercise)
        if "".join(cell["source"]) != want:
            drifted.append(path)
            if not check:
                cell["source"] = want.splitlines(keepends=True)
                path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    return drifted


if __name__ == "__main__":
    for p in sync_setup_cells():
        print("rewrote", p)
