"""Chapter 11: the job queue, kept in the database's ``jobs`` table.

A job's life: the upload request inserts it ``queued``; a worker **claims** it (``running``, its ``worker`` set to
``host:pid``, ``attempts`` counted), sends a **heartbeat** every few seconds while it separates, and marks it
``done`` or ``failed``. Every change a worker makes is conditional on the row still being its own (``WHERE id = ...
AND worker = ...``): a job deleted by its user, or given to another worker meanwhile, is not written over.

- **Claiming** is one statement: ``UPDATE jobs SET status = 'running' ... WHERE id = (SELECT id FROM jobs WHERE
  status = 'queued' ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING id``. On PostgreSQL, ``FOR
  UPDATE`` locks the row it picks and ``SKIP LOCKED`` lets a second worker, on this machine or another, take the next
  row instead of waiting: no job is taken twice, and nobody queues behind a lock. SQLite has no row locks (SQLAlchemy
  leaves the clause out); there ``BEGIN IMMEDIATE`` makes the whole statement one writer at a time.
- **Recovery** (:func:`recover`): a ``running`` job whose worker is gone goes back to ``queued``. Gone means no
  heartbeat for ``stale_after`` seconds, or, for a worker on this machine, a process that no longer exists. After
  :data:`MAX_ATTEMPTS` claims the job fails instead, so that a song that kills its worker cannot kill them all.
  Workers recover before each claim, and ``serve`` on start and whenever one of its workers dies; so a killed
  worker's job is re-queued, and a restarted service runs again what was queued or running.
- **Expiry** (:func:`expire`): a finished job is deleted, with its files, ``keep_seconds`` after it finished.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import time
from pathlib import Path

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import aliased

from .db import Job

STATUSES = ("queued", "running", "done", "failed")
#: What a job id looks like: 128 random bits in hex. Anything else is answered 404 before any query.
JOB_ID = re.compile(r"[0-9a-f]{32}")
#: A job is failed, not re-queued, after this many claims.
MAX_ATTEMPTS = 3


def new_job_id() -> str:
    """A job id: 128 bits from the operating system's random source."""
    return secrets.token_hex(16)


def worker_name(pid: int | None = None) -> str:
    """How a worker is recorded on the jobs it holds: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid() if pid is None else pid}"


def claim(db, worker: str, now: float | None = None) -> Job | None:
    """Claim the oldest queued job for ``worker`` and commit; the job, or None when the queue is empty."""
    now = time.time() if now is None else now
    queued = aliased(Job)
    oldest = (select(queued.id).where(queued.status == "queued").order_by(queued.created_at).limit(1)
              .with_for_update(skip_locked=True).scalar_subquery())
    claimed = db.execute(
        update(Job).where(Job.id == oldest, Job.status == "queued")
        .values(status="running", worker=worker, started_at=now, heartbeat_at=now, attempts=Job.attempts + 1,
                stage="decoding", progress=0.05)
        .returning(Job.id).execution_options(synchronize_session=False)).scalar_one_or_none()
    db.commit()
    return None if claimed is None else db.get(Job, claimed, populate_existing=True)


def _mine(job_id: str, worker: str):
    return (Job.id == job_id, Job.worker == worker, Job.status == "running")


def heartbeat(db, job_id: str, worker: str, *, stage: str | None = None, progress: float | None = None) -> bool:
    """Record that ``worker`` is alive on ``job_id`` (and its stage and progress); False when the job is no longer
    its own (deleted, or recovered by another process)."""
    values = {"heartbeat_at": time.time()}
    if stage is not None:
        values.update(stage=stage, progress=progress)
    done = db.execute(update(Job).where(*_mine(job_id, worker)).values(**values)).rowcount == 1
    db.commit()
    return done


def finish(db, job_id: str, worker: str, stems_bytes: int) -> bool:
    """Mark the job done (it expires ``keep_seconds`` from now); False when it is no longer ``worker``'s."""
    now = time.time()
    done = db.execute(update(Job).where(*_mine(job_id, worker)).values(
        status="done", stage="done", progress=1.0, finished_at=now, expires_at=now + Job.keep_seconds,
        stems_bytes=stems_bytes, heartbeat_at=None)).rowcount == 1
    db.commit()
    return done


def fail(db, job_id: str, worker: str | None, error: str) -> bool:
    """Mark the job failed with ``error`` (shown to its user); ``worker=None`` for a job nobody holds."""
    now = time.time()
    holder = (Job.worker == worker) if worker is not None else Job.worker.is_(None)
    done = db.execute(update(Job).where(Job.id == job_id, holder, Job.status.in_(("queued", "running"))).values(
        status="failed", stage="failed", error=error, finished_at=now, expires_at=now + Job.keep_seconds,
        heartbeat_at=None)).rowcount == 1
    db.commit()
    return done


def release(db, job_id: str, worker: str) -> bool:
    """Put a job back in the queue without counting the claim: its worker was asked to stop (SIGTERM, Ctrl-C)."""
    done = db.execute(update(Job).where(*_mine(job_id, worker)).values(
        status="queued", stage="queued", progress=0.0, worker=None, heartbeat_at=None,
        attempts=Job.attempts - 1)).rowcount == 1
    db.commit()
    return done


def process_gone(worker: str) -> bool:
    """Whether ``worker`` (``host:pid``) is a process of this machine that no longer runs (or is a zombie)."""
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:                                          # killed, but not yet reaped by its parent: gone all the same
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state in ("Z", "X")


def recover(db, stale_after: float, max_attempts: int = MAX_ATTEMPTS, now: float | None = None) -> list[str]:
    """Re-queue the running jobs whose worker is gone (see the module's notes), or fail those already claimed
    ``max_attempts`` times; returns their ids."""
    now = time.time() if now is None else now
    running = db.execute(select(Job.id, Job.worker, Job.heartbeat_at, Job.attempts)
                         .where(Job.status == "running")).all()
    db.commit()
    recovered = []
    for job_id, worker, beat, attempts in running:
        if not (beat is None or beat < now - stale_after or process_gone(worker or "")):
            continue
        if attempts >= max_attempts:
            changed = fail(db, job_id, worker, f"the worker stopped {attempts} times while separating this song "
                                               "(it may be too long for the server's memory); try a shorter one")
        else:
            changed = db.execute(update(Job).where(*_mine(job_id, worker)).values(
                status="queued", stage="queued again (its worker stopped)", progress=0.0, worker=None,
                heartbeat_at=None)).rowcount == 1
            db.commit()
        if changed:
            recovered.append(job_id)
    return recovered


def live(now: float | None = None):
    """The condition of a job that has not expired."""
    now = time.time() if now is None else now
    return or_(Job.expires_at.is_(None), Job.expires_at > now)


def usage(db, user_id: int) -> tuple[int, int]:
    """A user's number of jobs and the bytes they hold (uploads and stems)."""
    count, size = db.execute(select(func.count(), func.coalesce(func.sum(Job.upload_bytes + Job.stems_bytes), 0))
                             .where(Job.user_id == user_id, live())).one()
    return int(count), int(size)


def remove_files(data_dir: Path, job_id: str) -> None:
    """Delete a job's folder (a job id, never a path from a request)."""
    if JOB_ID.fullmatch(job_id):
        shutil.rmtree(Path(data_dir) / "jobs" / job_id, ignore_errors=True)


def expire(db, data_dir: Path, now: float | None = None) -> list[str]:
    """Delete the jobs past their expiry, and their files; returns their ids."""
    now = time.time() if now is None else now
    ids = list(db.scalars(select(Job.id).where(Job.expires_at <= now)))
    if ids:
        db.execute(delete(Job).where(Job.id.in_(ids)))
    db.commit()
    for job_id in ids:
        remove_files(data_dir, job_id)
    return ids
