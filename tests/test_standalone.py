"""The package outside the checkout (every chapter): the wheel installed into a fresh virtual environment, its
command line run from another folder; and the notebooks' set-up cells run the way Colab runs them -- in a Python
without the course package, twice in a row and again after a restart -- against a local git repository standing
in for the course's.

The fresh environment has no system site-packages. pip installs into it with this machine's own pip settings
(indexes, local wheels), constrained to the versions installed here, so it fetches nothing new and the CPU build
of torch stays the CPU build.
"""

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from demucs_course import __version__
from demucs_course.book import REPO_ROOT, repository_ref, setup_cell_source
from demucs_course.grading import masters

EXERCISES = [m.parent.name for m in masters(REPO_ROOT)]


def run(command, *, cwd, env=None, check=True, timeout=1800):
    result = subprocess.run([str(c) for c in command], cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=timeout)
    if check and result.returncode != 0:
        pytest.fail(f"{' '.join(map(str, command))} exited {result.returncode}:\n{result.stdout[-3000:]}\n"
                    f"{result.stderr[-3000:]}")
    return result


@pytest.fixture(scope="module")
def standin(tmp_path_factory):
    """A git repository standing in for the course's: the checkout's files as they are now (those git tracks, and
    new ones it does not ignore), committed on the branch the set-up cells install from (``repository.branch``)."""
    repo = tmp_path_factory.mktemp("standin") / "unmix"
    tracked = run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO_ROOT).stdout
    tracked = tracked.split("\0")
    for name in filter(None, tracked):
        if (REPO_ROOT / name).is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO_ROOT / name, repo / name)
    git = ["git", "-c", "user.name=course", "-c", "user.email=course@example.org"]
    run([*git, "init", "-q", "-b", repository_ref()], cwd=repo)
    run([*git, "add", "-A"], cwd=repo)
    run([*git, "commit", "-q", "-m", "the course"], cwd=repo)
    return repo


@pytest.fixture(scope="module")
def wheel(standin, tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", out, standin],
        cwd=out)
    (built,) = out.glob("demucs_course-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory):
    """A fresh virtual environment (no system site-packages) with the wheel, its ``exercises`` extra and their
    dependencies installed."""
    folder = tmp_path_factory.mktemp("venv")
    constraints = folder / "constraints.txt"
    pins = {d.metadata["Name"].lower(): d.version for d in importlib.metadata.distributions() if d.metadata["Name"]}
    pins.pop("demucs-course", None)
    constraints.write_text("".join(f"{name}=={version}\n" for name, version in sorted(pins.items())))
    env = {**os.environ, "PIP_CONSTRAINT": str(constraints), "PIP_DISABLE_PIP_VERSION_CHECK": "1",
           "PIP_NO_COMPILE": "1", "PYTHONPATH": ""}
    run([sys.executable, "-m", "venv", folder / "env"], cwd=folder)
    python = folder / "env" / "bin" / "python"
    run([python, "-m", "pip", "install", "-q", f"{wheel}[exercises]"], cwd=folder, env=env)
    return python, env


def test_the_wheel_alone_outside_the_checkout(venv, standin, tmp_path):
    python, env = venv
    bin_ = python.parent
    run([python, "-m", "pip", "uninstall", "-q", "-y", "otter-grader"], cwd=tmp_path, env=env, check=False)
    where = run([python, "-c", "import demucs_course, demucs_course.book as b; print(demucs_course.__file__); "
                               "print(b.REPO_ROOT)"], cwd=tmp_path, env=env).stdout.split("\n")
    assert Path(where[0]).is_relative_to(python.parent.parent) and where[1] == "None"
    metadata = run([python, "-c", "import importlib.metadata as m; print(m.metadata('demucs-course'))"],
                   cwd=tmp_path, env=env).stdout
    assert "License-Expression: MIT" in metadata and "License-File: LICENSE" in metadata
    assert "Requires-Dist: torch>=2.3\n" in metadata
    assert 'Requires-Dist: otter-grader[grading]<8,>=6; extra == "exercises"' in metadata
    cli = bin_ / "demucs-course"
    assert run([cli, "--version"], cwd=tmp_path).stdout == f"demucs-course {__version__}\n"

    env1 = {**env, "OMP_NUM_THREADS": "1", "DEMUCS_COURSE_CACHE": str(tmp_path / "cache")}
    root = tmp_path / "toy"
    run([cli, "toy-data", root, "--train", "3", "--valid", "1", "--test", "1", "--train-seconds", "3",
         "--test-seconds", "3"], cwd=tmp_path, env=env1)
    out = run([cli, "train", "--data", root, "--epochs", "1", "--channels", "4", "--segment", "1",
               "--batch-size", "4", "--checkpoint-dir", "run", "--no-progress"], cwd=tmp_path, env=env1).stdout
    assert (tmp_path / "run" / "best.pt").is_file(), out
    out = run([cli, "evaluate", "--data", root, "--checkpoint", "run", "--no-progress", "-o", "scores"],
              cwd=tmp_path, env=env1).stdout
    assert "SDR" in out and list((tmp_path / "scores" / "test").glob("*.json"))
    (song,) = (root / "test").glob("*/mixture.wav")
    out = run([cli, "separate", song, "-o", "stems", "--no-progress"], cwd=tmp_path, env=env1).stdout  # shipped model
    assert sorted(p.name for p in (tmp_path / "stems" / "mixture").iterdir()) == [
        "bass.wav", "drums.wav", "other.wav", "vocals.wav"], out

    # exit status 2 and one line: bad input, and the commands that need the course folder
    (tmp_path / "submissions").mkdir()
    for command, words in [(["separate", "missing.wav"], "missing.wav"),
                           (["grade", "submissions"], "pass --course DIR"),
                           (["exercises"], "pass --course DIR"),
                           (["grade", "submissions", "--course", standin], "pip install 'demucs-course[exercises]'")]:
        result = run([cli, *command], cwd=tmp_path, env=env1, check=False)
        assert result.returncode == 2 and words in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert run([cli, "train", "--preset", "nope"], cwd=tmp_path, check=False).returncode == 2   # usage


def _colab(tmp_path):
    """What Colab gives a notebook: the ``google.colab`` module, and ``/content`` as the working folder."""
    fake = tmp_path / "colab-modules" / "google" / "colab"
    fake.mkdir(parents=True)
    (fake.parent / "__init__.py").write_text("")
    (fake / "__init__.py").write_text("")
    content = tmp_path / "content"
    content.mkdir()
    return fake.parent.parent, content


def _kernel(python, cells, *, cwd, env, colab=True):
    """Run ``cells`` one after the other in one Python process, as one kernel would (Colab's imports
    ``google.colab`` first); print the folder it ends in."""
    program = ("import google.colab\n" if colab else "") + "import os\n"
    program += "".join(f"exec(compile({cell!r}, 'cell', 'exec'))\n" for cell in cells)
    return run([python, "-c", program + "print(os.getcwd())"], cwd=cwd, env=env, check=False)


def test_colab_setup_cells_twice_in_a_row_and_after_a_restart(venv, standin, tmp_path):
    python, env = venv
    # Colab has torch, Jupyter and the rest, but not the course package nor otter-grader
    run([python, "-m", "pip", "uninstall", "-q", "-y", "demucs-course", "otter-grader"], cwd=tmp_path, env=env)
    assert run([python, "-c", "import demucs_course"], cwd=tmp_path, env=env, check=False).returncode == 1
    modules, content = _colab(tmp_path)
    env = {**env, "PYTHONPATH": str(modules)}
    url = f"file://localhost{standin}"        # pip wants a host in a git URL; git takes this one too
    moved = tmp_path / "unreachable"
    folder = str(content / "unmix")

    def chapter(url=url):
        return setup_cell_source(url=url)

    def exercise(name, url=url):
        return setup_cell_source(name, url=url, folder=folder)

    # the repository cannot be reached: one line that names the settings
    for cell in (chapter(f"file://localhost{moved}"), exercise(EXERCISES[0], f"file://localhost{moved}")):
        result = _kernel(python, [cell], cwd=content, env=env)
        assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stdout + result.stderr
        assert result.stderr.startswith("Set-up: cannot") and "COURSE_REPO and COURSE_REF" in result.stderr
        assert "fatal: '" in result.stderr and "does not appear to be a git repository" in result.stderr
        assert not Path(folder).exists()

    # a chapter: installs the package from the repository, once
    first = _kernel(python, [chapter(), chapter()], cwd=content, env=env)
    assert first.returncode == 0, first.stderr
    shutil.move(standin, moved)               # from now on, any fetch would fail
    try:
        again = _kernel(python, [chapter(), "import demucs_course.model"], cwd=content, env=env)  # a restart
        assert again.returncode == 0 and again.stdout.strip() == str(content), again.stderr
        shutil.move(moved, standin)

        # an exercise: clones, installs the exercises extra, moves into the exercise's folder; twice in a row
        first = _kernel(python, [exercise(EXERCISES[0]), exercise(EXERCISES[0])], cwd=content, env=env)
        assert first.returncode == 0, first.stderr
        assert first.stdout.strip() == os.path.join(folder, "exercises", EXERCISES[0])
        shutil.move(standin, moved)
        # after a restart, back in /content: every exercise's cell, with nothing left to fetch
        cells = [exercise(name) for name in EXERCISES]
        checks = [f"assert os.path.isdir('tests') and os.path.basename(os.getcwd()) == {name!r}" for name in EXERCISES]
        again = _kernel(python, [c for pair in zip(cells, checks) for c in pair] + ["import otter, demucs_course"],
                        cwd=content, env=env)
        assert again.returncode == 0, again.stderr
        assert again.stdout.strip() == os.path.join(folder, "exercises", EXERCISES[-1])
    finally:
        if moved.exists():
            shutil.move(moved, standin)
    # outside Colab an exercise's cell does nothing
    local = _kernel(python, [exercise(EXERCISES[0])], cwd=tmp_path, env={**env, "PYTHONPATH": ""}, colab=False)
    assert local.returncode == 0 and local.stdout.strip() == str(tmp_path)
