"""Chapter 7: training under torchrun -- two gloo processes on the CPU against one process, resuming, failing.

Each test starts ``python -m torch.distributed.run --nproc_per_node 2`` on loopback with a free port, running the
``demucs-course train`` command itself (``-m demucs_course.cli``) on the tiny model and the 6-s tracks of
``toy_root``. Where a test needs a process to die, hang or fail at a given step, a small driver (:data:`DRIVER`)
wraps ``train_step`` and then runs the same command.
"""

import os
import resource
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from demucs_course.distributed import Group, check_batch, rank_seed
from demucs_course.loading import read_checkpoint
from demucs_course.data import load_tracks
from demucs_course.model import Demucs
from demucs_course.presets import ConfigError, extracts_per_epoch, preset
from demucs_course.train import make_dataset, train
from test_train import track_cache  # noqa: F401  (autouse: the runs, and torchrun's processes, cache tracks apart)

ROOT = Path(__file__).resolve().parent.parent

#: The run of every test: the tiny-cpu preset at 4 channels, 0.5-s extracts, a checkpoint after every step.
SETTINGS = dict(segment=0.5, shift=0.1, device="cpu", save_every_steps=1)
FLAGS = {"segment": "--segment", "shift": "--shift", "device": "--device", "save_every_steps": "--save-every",
         "batch_size": "--batch-size", "epochs": "--epochs", "collective_timeout": "--collective-timeout"}

#: Runs the train command with train_step wrapped: at its AT-th call in the process of rank RANK (-1: every
#: process), ACTION: kill (SIGKILL, as a machine that goes away), raise, or hang.
DRIVER = """
import os, signal, sys, time
import demucs_course.train as loop
from demucs_course.cli import main

action, rank, at = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
real, calls = loop.train_step, [0]

def train_step(*args, **kwargs):
    calls[0] += 1
    if calls[0] == at and rank in (-1, int(os.environ["RANK"])):
        if action == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        if action == "raise":
            raise RuntimeError(f"an injected failure in rank {os.environ['RANK']}")
        time.sleep(600)
    return real(*args, **kwargs)

loop.train_step = train_step
sys.exit(main(sys.argv[4:]))
"""


def config(toy_root, folder, **more):
    return preset("tiny-cpu", data=str(toy_root), model={"channels": 4}, checkpoint_dir=str(folder),
                  **{**SETTINGS, **more})


def command(toy_root, folder, **more) -> list[str]:
    """The train command that builds ``config(toy_root, folder, **more)``."""
    args = ["train", "--preset", "tiny-cpu", "--data", str(toy_root), "--channels", "4", "--checkpoint-dir",
            str(folder), "--no-progress"]
    for name, value in {**SETTINGS, **more}.items():
        args += ["--no-augment"] if name == "augment" and not value else [FLAGS[name], str(value)]
    return args


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def torchrun(args: list[str], *, driver: Path | None = None, timeout: float = 300) -> tuple[int, str, float]:
    """Two processes of ``demucs-course train ARGS`` (or of the driver); returns (exit status, output, seconds)."""
    target = [str(driver)] if driver else ["-m", "demucs_course.cli"]
    launch = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
              "--master_addr", "127.0.0.1", "--master_port", str(free_port()), *target, *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    start, cpu = time.perf_counter(), _children_cpu()
    done = subprocess.run(launch, capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)
    seconds = time.perf_counter() - start
    print(f"torchrun {' '.join(args[:3])}...: {seconds:.1f} s, {_children_cpu() - cpu:.1f} CPU-s")
    return done.returncode, done.stdout + done.stderr, seconds


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def write_driver(folder: Path) -> Path:
    path = folder / "driver.py"
    path.write_text(DRIVER)
    return path


def same_run(a: dict, b: dict, rtol: float) -> None:
    np.testing.assert_allclose(a["history"]["step_loss"], b["history"]["step_loss"], rtol=rtol, atol=0)
    np.testing.assert_allclose([e["valid"] for e in a["history"]["epochs"]],
                               [e["valid"] for e in b["history"]["epochs"]], rtol=rtol)
    for name, x in a["model"].items():
        torch.testing.assert_close(x, b["model"][name], rtol=rtol, atol=rtol / 10, msg=name)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The runs in this process use one thread, as the torchrun processes do (OMP_NUM_THREADS=1): a float sum over
    two threads is added in another order, and the comparisons below are to 1e-5."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def one_process(toy_root, tmp_path_factory):
    """Without augmentation, global batch 4: one process, 2 epochs, then on to 3 (the folders of both)."""
    two = tmp_path_factory.mktemp("one-2")
    train(config(toy_root, two, batch_size=4, epochs=2, augment=False), progress=False)
    three = tmp_path_factory.mktemp("one-3")
    shutil.copytree(two, three, dirs_exist_ok=True)
    train(config(toy_root, three, batch_size=4, epochs=3, augment=False), progress=False)
    return two, three


# --- the pieces, in one process ------------------------------------------------------------------------------------


def test_each_process_takes_its_share_of_the_global_batch():
    batch = list(range(8))
    assert [Group(rank, 2).share(batch) for rank in range(2)] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert Group().share(batch) == batch
    assert Group().mean_over([1.0, 2.0, 6.0], lambda items: sum(items) / len(items)) == 3.0
    assert rank_seed(0, 1) != rank_seed(0, 2) and rank_seed(0, 1) == rank_seed(0, 1) != rank_seed(1, 1)


def test_a_global_batch_that_does_not_split_is_refused(toy_root, tmp_path):
    with pytest.raises(ConfigError, match="split evenly over the 3 processes"):
        check_batch(config(toy_root, tmp_path, batch_size=8), 3)
    with pytest.raises(ConfigError, match="multiple of 8"):
        check_batch(config(toy_root, tmp_path, batch_size=12), 2)     # 6 each: Remix needs groups of 4
    check_batch(config(toy_root, tmp_path, batch_size=4, augment=False), 2)   # no Remix: 2 each is fine
    with pytest.raises(ConfigError, match="repitch"):
        config(toy_root, tmp_path, augment=False, repitch=0.2).check()


def test_an_epoch_is_counted_as_the_dataset_cuts_it(toy_root, tmp_path):
    """extracts_per_epoch (the paper preset's estimate counts its work with it) agrees with the extracts trained on."""
    tracks = load_tracks(str(toy_root), "train", "train", progress=False)
    for more in (dict(), dict(stride=0.4), dict(stride=None, per_minute=30.0), dict(repitch=0.2)):
        run = config(toy_root, tmp_path, **more)
        dataset = make_dataset(run, Demucs(**run.model), tracks)
        assert extracts_per_epoch(run, [track.length for track in tracks]) == len(dataset) > 0, more


# --- two processes ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_processes(toy_root, tmp_path_factory):
    """The same run as ``one_process`` (2 epochs), in two gloo processes: 2 extracts each per step."""
    folder = tmp_path_factory.mktemp("two")
    code, output, _ = torchrun(command(toy_root, folder, batch_size=4, epochs=2, augment=False))
    assert code == 0, output
    return folder


def test_two_processes_take_the_steps_of_one_process_with_the_same_global_batch(one_process, two_processes):
    one, two = read_checkpoint(one_process[0] / "last.pt"), read_checkpoint(two_processes / "last.pt")
    assert len(two["history"]["step_loss"]) == 8
    same_run(two, one, rtol=1e-5)
    assert (two["world_size"], two["global_batch"], one["world_size"], one["global_batch"]) == (2, 4, 1, 4)
    assert read_checkpoint(two_processes / "best.pt")["world_size"] == 2
    assert len(two["rng"]) == 2 and [e["world_size"] for e in two["history"]["epochs"]] == [2, 2]
    assert not torch.equal(two["rng"][0]["torch"], two["rng"][1]["torch"]), "each rank draws its own numbers"


def test_a_run_resumes_at_another_world_size(toy_root, one_process, two_processes, tmp_path):
    straight = read_checkpoint(one_process[1] / "last.pt")
    # 2 -> 1: the two-process run's checkpoint, continued by one process for a third epoch.
    shutil.copytree(two_processes, tmp_path / "2to1")
    train(config(toy_root, tmp_path / "2to1", batch_size=4, epochs=3, augment=False), progress=False)
    same_run(read_checkpoint(tmp_path / "2to1" / "last.pt"), straight, rtol=1e-5)

    # 1 -> 2, mid-epoch: one process stops after 6 steps (epoch 2, step 2), two processes finish epochs 2 and 3.
    folder = tmp_path / "1to2"

    def stop(record):
        if record["global_step"] == 6:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(config(toy_root, folder, batch_size=4, epochs=3, augment=False), progress=False, callback=stop)
    assert read_checkpoint(folder / "last.pt")["step"] == 2
    code, output, _ = torchrun(command(toy_root, folder, batch_size=4, epochs=3, augment=False))
    assert code == 0, output
    resumed = read_checkpoint(folder / "last.pt")
    same_run(resumed, straight, rtol=1e-5)
    assert [e["world_size"] for e in resumed["history"]["epochs"]] == [1, 2, 2]


def test_a_two_process_run_killed_mid_epoch_resumes_exactly(toy_root, tmp_path):
    """With augmentation: each process's random state comes back, so the resumed run is the same run."""
    run = dict(batch_size=8, epochs=3)                           # 2 steps an epoch, 4 extracts per process
    code, output, _ = torchrun(command(toy_root, tmp_path / "straight", **run))
    assert code == 0, output
    killed = tmp_path / "killed"
    code, output, _ = torchrun(["kill", "-1", "4", *command(toy_root, killed, **run)], driver=write_driver(tmp_path))
    assert code != 0, "both processes were killed before their 4th step"
    cut = read_checkpoint(killed / "last.pt")
    assert 1 <= len(cut["history"]["step_loss"]) <= 3 and cut["world_size"] == 2
    args = [a for a in command(toy_root, killed, **run) if a != "--no-progress"]
    code, output, _ = torchrun(args)
    assert code == 0, output
    assert "resuming from" in output and output.count("resuming from") == 1, "rank 0 alone speaks"
    same_run(read_checkpoint(killed / "last.pt"), read_checkpoint(tmp_path / "straight" / "last.pt"), rtol=1e-6)


def test_a_process_that_fails_stops_the_job_and_is_named(toy_root, tmp_path):
    driver = write_driver(tmp_path)
    code, output, _ = torchrun(["raise", "1", "2", *command(toy_root, tmp_path / "run", batch_size=8)],
                                     driver=driver)
    assert code != 0
    assert "an injected failure in rank 1" in output and "Root Cause" in output, output


def test_a_process_that_hangs_stops_the_job_after_the_timeout(toy_root, tmp_path):
    driver = write_driver(tmp_path)
    code, output, seconds = torchrun(["hang", "1", "2", *command(toy_root, tmp_path / "run", batch_size=8,
                                                                 collective_timeout=5.0)], driver=driver)
    assert code != 0
    message = "rank 0 of 2: another process of this run failed, or did not answer within collective_timeout (5 s"
    assert message in output, output
    assert seconds < 200, "the job stopped on the timeout, not on the test's"
