"""Chapter 11: the worker process -- where separation runs, never in a request.

``demucs-course worker`` (and each of the workers ``demucs-course serve`` starts) loads the model once, then loops:
recover the jobs of dead workers, expire old jobs, claim the oldest queued job, separate it, write the stems and a
zip of them, mark it done. The separation is the capstone's, :func:`~demucs_course.capstone.load_song` then
:func:`~demucs_course.capstone.separate_song`, with the package's default shipped model unless a checkpoint is given.

- A song the course refuses (more than two channels, silence, too short, damaged further in) fails its job with the
  package's own message: the user reads it on the job's page.
- Any other error fails the job with a short message; the traceback goes to the worker's log, not to the user.
- While a job runs, a thread sends a heartbeat every ``heartbeat`` seconds. When the job turns out to be deleted
  (or taken over), the worker drops its results.
- SIGTERM or Ctrl-C: the job in hand goes back to the queue, uncounted, and the worker exits.
- ``parent_pid``: a worker started by ``serve`` exits when the server is gone (after the job in hand).
- ``pause``: seconds to wait after separating, before writing the stems, so that a demonstration or a test can
  watch a running job and stop a worker in the middle of one.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
import traceback
import zipfile

from .. import SOURCES, InputError
from . import jobs
from .config import Settings
from .db import Job, make_engine, session_factory


class WorkerStopped(Exception):
    """Raised in the worker's main thread by SIGTERM or SIGINT while a job is in hand."""


class Worker:
    """One worker: a model, a database, a loop. ``run()`` until stopped; ``run_one()`` claims and runs one job."""

    def __init__(self, settings: Settings, model, *, heartbeat: float = 2.0, stale_after: float = 30.0,
                 poll: float = 0.5, pause: float = 0.0, parent_pid: int | None = None, name: str | None = None,
                 log=print):
        self.settings, self.model = settings, model
        self.heartbeat, self.stale_after, self.poll, self.pause = heartbeat, stale_after, poll, pause
        self.parent_pid = parent_pid
        self.name = name or jobs.worker_name()
        self.log = log
        self.sessions = session_factory(make_engine(settings.database))
        self.current: str | None = None
        self.stopping = threading.Event()
        self._lost = threading.Event()         # the job in hand was deleted or taken over
        self._last_chores = 0.0

    # -- the loop --------------------------------------------------------------------------------------------

    def run(self, *, max_jobs: int | None = None) -> int:
        """Work until stopped (a signal, the parent gone) or after ``max_jobs`` jobs; returns the number run."""
        self._install_signals()
        self.log(f"worker {self.name}: ready, taking jobs from {_shown(self.settings.database)}")
        done = 0
        while not self.stopping.is_set() and (max_jobs is None or done < max_jobs):
            if self.parent_pid is not None and os.getppid() != self.parent_pid:
                self.log(f"worker {self.name}: the server is gone, stopping")
                break
            try:
                ran = self.run_one()
            except WorkerStopped:
                break
            if ran:
                done += 1
            else:
                self.stopping.wait(self.poll)
        self.log(f"worker {self.name}: stopped after {done} job(s)")
        return done

    def chores(self) -> None:
        """Re-queue the jobs of dead workers, delete expired jobs (at most once a second)."""
        if time.monotonic() - self._last_chores < 1.0:
            return
        self._last_chores = time.monotonic()
        with self.sessions() as db:
            for job_id in jobs.recover(db, self.stale_after):
                self.log(f"worker {self.name}: job {job_id} had lost its worker: queued again or failed")
            jobs.expire(db, self.settings.data_dir)

    def run_one(self) -> str | None:
        """Claim one job and run it; its id, or None when the queue was empty."""
        self.chores()
        with self.sessions() as db:
            job = jobs.claim(db, self.name)
        if job is None:
            return None
        self.current = job.id
        self._lost.clear()
        beating = threading.Thread(target=self._beat, args=(job.id,), daemon=True)
        beating.start()
        started = time.perf_counter()
        try:
            outcome = self._separate(job)
        except WorkerStopped:
            with self.sessions() as db:
                jobs.release(db, job.id, self.name)
            self.log(f"worker {self.name}: stopped; job {job.id} is queued again")
            raise
        finally:
            self.current = None
            beating.join()
        self.log(f"worker {self.name}: job {job.id} {outcome} in {time.perf_counter() - started:.2f} s "
                 f"(attempt {job.attempts})")
        return job.id

    # -- one job ---------------------------------------------------------------------------------------------

    def _stage(self, job_id: str, stage: str, progress: float) -> None:
        with self.sessions() as db:
            if not jobs.heartbeat(db, job_id, self.name, stage=stage, progress=progress):
                self._lost.set()

    def _separate(self, job: Job) -> str:
        from ..capstone import load_song, save_stems, separate_song

        folder = self.settings.job_dir(job.id)
        try:
            try:
                data = (folder / job.upload).read_bytes()
            except FileNotFoundError:
                if self._still_there(job.id):
                    raise                                   # the server lost the upload: a failure
                raise _Lost from None                       # deleted by its user before it started
            song = load_song(data, name=job.name)
            self._stage(job.id, "separating", 0.1)
            stems = separate_song(self.model, song, shifts=job.shifts)
            self._stage(job.id, "separated", 0.8)
            deadline = time.monotonic() + self.pause
            while time.monotonic() < deadline and not self._lost.is_set():
                time.sleep(0.05)
            if self._lost.is_set():
                raise _Lost
            self._stage(job.id, "writing the stems", 0.9)
            paths = save_stems(stems, folder / "stems")
            with zipfile.ZipFile(folder / "stems.zip", "w", zipfile.ZIP_STORED) as archive:
                for name in SOURCES:
                    archive.write(paths[name], f"{name}.wav")
            size = sum(path.stat().st_size for path in paths.values()) + (folder / "stems.zip").stat().st_size
            with self.sessions() as db:
                if not jobs.finish(db, job.id, self.name, size):
                    raise _Lost
            return "done"
        except _Lost:
            if not self._still_there(job.id):          # deleted: what was written since goes too
                jobs.remove_files(self.settings.data_dir, job.id)
            return "dropped (deleted or taken over meanwhile)"
        except InputError as error:                        # the course's own message about the song
            with self.sessions() as db:
                jobs.fail(db, job.id, self.name, str(error))
            return f"failed: {error}"
        except WorkerStopped:
            raise
        except Exception:                                  # a bug or the machine: log it, tell the user little
            traceback.print_exc()
            with self.sessions() as db:
                jobs.fail(db, job.id, self.name, "the separation failed on the server; try again later")
            return "failed with an unexpected error (see the traceback above)"

    def _still_there(self, job_id: str) -> bool:
        with self.sessions() as db:
            return db.get(Job, job_id) is not None

    def _beat(self, job_id: str) -> None:
        while self.current == job_id:
            with self.sessions() as db:
                if not jobs.heartbeat(db, job_id, self.name):
                    self._lost.set()
            for _ in range(int(self.heartbeat / 0.05)):
                if self.current != job_id:
                    return
                time.sleep(0.05)

    # -- signals ---------------------------------------------------------------------------------------------

    def _install_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return

        def stop(signum, _frame):
            self.stopping.set()
            if self.current is not None:
                raise WorkerStopped(signal.Signals(signum).name)

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)


class _Lost(Exception):
    """The job in hand was deleted by its user or recovered by another process."""


def _shown(url: str) -> str:
    from sqlalchemy import make_url

    return make_url(url).render_as_string(hide_password=True)


def load_model(checkpoint=None, model: str | None = None, device: str = "auto"):
    """The model a worker separates with: a checkpoint, else the shipped model ``model`` (default: the package's
    default); it must output the four MUSDB18 sources."""
    from ..loading import load_checkpoint, load_pretrained, pick_device
    from ..pretrained import DEFAULT_MODEL

    where = pick_device(device)
    net = load_checkpoint(checkpoint, where) if checkpoint else load_pretrained(where, model or DEFAULT_MODEL)
    if net.sources != len(SOURCES):
        raise InputError(f"the model outputs {net.sources} sources; the web app serves the {len(SOURCES)} of MUSDB18 "
                         f"({', '.join(SOURCES)})")
    return net


def main_loop(settings: Settings, *, checkpoint=None, model=None, device="auto", threads: int = 1, **options) -> int:
    """``demucs-course worker``: load the model, then work until stopped."""
    import torch

    torch.set_num_threads(threads)
    settings.prepare()
    net = load_model(checkpoint, model, device)
    worker = Worker(settings, net, log=lambda text: print(text, flush=True), **options)
    worker.run()
    sys.stdout.flush()
    return 0
