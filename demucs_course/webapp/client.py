"""Chapter 11: using the service from Python -- a client of the JSON API, and a local service to talk to.

:class:`Client` is all a script needs: an ``httpx.Client`` keeps the session cookie, and the CSRF token that
sign-up or log-in returns goes into the ``X-CSRF-Token`` header of every state-changing request.

:func:`load_test` has many users upload at once and measures the API's latencies.

:func:`start_server` and :func:`start_worker` run ``demucs-course serve`` and ``demucs-course worker`` as child
processes, on the loopback interface and a free port by default, their output in log files: the chapter and the
tests start real services with them, and :meth:`Service.stop` (SIGTERM, as systemd or Ctrl-C would) or
:meth:`Service.kill` (SIGKILL, a crash) ends them.
"""

from __future__ import annotations

import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from .. import SOURCES


class ApiError(RuntimeError):
    """An answer of the service other than the one expected: its HTTP status and its ``detail`` message."""

    def __init__(self, status: int, detail: str):
        super().__init__(f"HTTP {status}: {detail}")
        self.status, self.detail = status, detail


class Client:
    """The service's JSON API, with a cookie session. ``base_url``: e.g. ``http://127.0.0.1:8000``."""

    def __init__(self, base_url: str, *, timeout: float = 60.0):
        self.http = httpx.Client(base_url=base_url, timeout=timeout)
        self.csrf_token: str | None = None

    def close(self) -> None:
        self.http.close()

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.close()

    def _checked(self, response: httpx.Response, *expected: int) -> httpx.Response:
        if response.status_code not in expected:
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text
            raise ApiError(response.status_code, str(detail))
        return response

    def _csrf(self) -> dict:
        return {"X-CSRF-Token": self.csrf_token or ""}

    def signup(self, email: str, password: str) -> dict:
        """Create an account and log in (the cookie is kept); returns ``{"csrf_token", "email"}``."""
        body = self._checked(self.http.post("/api/signup", json={"email": email, "password": password}), 201).json()
        self.csrf_token = body["csrf_token"]
        return body

    def login(self, email: str, password: str) -> dict:
        body = self._checked(self.http.post("/api/login", json={"email": email, "password": password}), 200).json()
        self.csrf_token = body["csrf_token"]
        return body

    def logout(self) -> None:
        self._checked(self.http.post("/api/logout", headers=self._csrf()), 200)
        self.csrf_token = None

    def upload(self, path, *, shifts: int = 0) -> str:
        """Upload a song (a path); returns the new job's id."""
        path = Path(path)
        with open(path, "rb") as file:
            response = self.http.post("/api/jobs", headers=self._csrf(), files={"file": (path.name, file)},
                                      data={"shifts": str(shifts)})
        return self._checked(response, 202).json()["id"]

    def job(self, job_id: str) -> dict:
        return self._checked(self.http.get(f"/api/jobs/{job_id}"), 200).json()

    def jobs(self) -> list[dict]:
        return self._checked(self.http.get("/api/jobs"), 200).json()["jobs"]

    def wait(self, job_id: str, *, timeout: float = 120.0, poll: float = 0.2) -> dict:
        """Poll a job until it is done or failed; its last state. A TimeoutError after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            if job["status"] in ("done", "failed"):
                return job
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} is still {job['status']} ({job['stage']}) after {timeout:g} s")
            time.sleep(poll)

    def download(self, job_id: str, folder) -> dict[str, Path]:
        """Download a done job's stems into ``folder``; name -> path."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        paths = {}
        for name in SOURCES:
            response = self._checked(self.http.get(f"/api/jobs/{job_id}/stems/{name}.wav"), 200)
            paths[name] = folder / f"{name}.wav"
            paths[name].write_bytes(response.content)
        return paths

    def download_zip(self, job_id: str, path) -> Path:
        path = Path(path)
        path.write_bytes(self._checked(self.http.get(f"/api/jobs/{job_id}/stems.zip"), 200).content)
        return path

    def delete(self, job_id: str) -> None:
        self._checked(self.http.delete(f"/api/jobs/{job_id}", headers=self._csrf()), 204)


def percentile(values, q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values`` by the nearest rank: a value that was measured."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("percentile of no values")
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


@dataclass
class LoadResult:
    """What :func:`load_test` measured: the seconds from the first sign-up to the last stem, each API call's latency
    by kind (signup, upload, status, stem), each user's job as it ended and the jobs each user's list showed."""

    seconds: float
    latencies: dict[str, list[float]]
    jobs: dict[str, dict]
    listed: dict[str, list[str]]
    errors: list[str]

    def table(self) -> dict[str, dict[str, float]]:
        """Per kind of call: how many, and the p50 and p95 latency in milliseconds."""
        return {kind: {"calls": len(values), "p50 ms": 1000 * percentile(values, 50),
                       "p95 ms": 1000 * percentile(values, 95)} for kind, values in self.latencies.items() if values}


def load_test(url: str, song, *, users: int = 20, password: str = "load test password", prefix: str = "load",
              poll: float = 0.2, timeout: float = 300.0) -> LoadResult:
    """``users`` clients at once, one thread each: sign up, wait for all the others, upload ``song`` at the same
    moment, poll until the job is done or failed, download one stem. Nothing is asserted here: the result says
    what happened (a test or a chapter then checks it)."""
    latencies = {"signup": [], "upload": [], "status": [], "stem": []}
    jobs, listed, errors = {}, {}, []
    start_line = threading.Barrier(users)

    def timed(kind, call, *args, **options):
        start = time.perf_counter()
        value = call(*args, **options)
        latencies[kind].append(time.perf_counter() - start)
        return value

    def user(k: int) -> None:
        email = f"{prefix}{k}@example.com"
        try:
            with Client(url, timeout=timeout) as client:
                timed("signup", client.signup, email, password)
                start_line.wait(timeout)
                job_id = timed("upload", client.upload, song)
                deadline = time.monotonic() + timeout
                while (job := timed("status", client.job, job_id))["status"] not in ("done", "failed"):
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"job {job_id} still {job['status']} after {timeout:g} s")
                    time.sleep(poll)
                if job["status"] == "done":
                    client._checked(timed("stem", client.http.get, job["stems"]["vocals"]), 200)
                jobs[email], listed[email] = job, [item["id"] for item in client.jobs()]
        except Exception as error:                        # a user's failure is a result, not a crash
            start_line.abort()
            errors.append(f"{email}: {error!r}")

    start = time.perf_counter()
    threads = [threading.Thread(target=user, args=(k,)) for k in range(users)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return LoadResult(time.perf_counter() - start, latencies, jobs, listed, errors)


@dataclass
class Service:
    """A ``demucs-course serve`` or ``worker`` child process: its process, its log file and (a server) its URL."""

    process: subprocess.Popen
    log: Path
    url: str | None = None
    command: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, then wait: a graceful stop. Returns the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return self.kill()

    def kill(self) -> int:
        """SIGKILL: what a crash looks like to the rest of the service."""
        if self.process.poll() is None:
            self.process.kill()
        return self.process.wait()

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "demucs_course.cli", *args]


def _launch(command: list[str], log: Path, env: dict | None) -> subprocess.Popen:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})


def start_server(data_dir, *, workers: int = 1, database: str | None = None, host: str = "127.0.0.1",
                 port: int = 0, args=(), log=None, env: dict | None = None, timeout: float = 60.0) -> Service:
    """Start ``demucs-course serve`` (with ``workers`` worker processes) and wait until it answers; its URL is
    read from its log (port 0: the operating system picks a free port)."""
    data_dir = Path(data_dir)
    log = Path(log) if log else data_dir / "server.log"
    offset = log.stat().st_size if log.exists() else 0
    command = _command("serve", "--data-dir", str(data_dir), "--host", host, "--port", str(port), "--workers",
                       str(workers), "--log-level", "warning", *(["--database", database] if database else []),
                       *map(str, args))
    process = _launch(command, log, env)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(log, "rb") as file:
            file.seek(offset)
            found = re.search(rb"serving on (http://\S+)", file.read())
        if found:
            url = found[1].decode()
            try:
                if httpx.get(f"{url}/api/health", timeout=5).status_code == 200:
                    return Service(process, log, url, command)
            except httpx.TransportError:
                pass
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with status {process.returncode}: "
                               f"{log.read_text(errors='replace')[offset:][-2000:]}")
        time.sleep(0.1)
    process.kill()
    raise TimeoutError(f"the server did not answer within {timeout:g} s; its log: {log}")


def start_worker(data_dir, *, database: str | None = None, args=(), log=None, env: dict | None = None) -> Service:
    """Start one ``demucs-course worker`` on the service's data folder and database."""
    data_dir = Path(data_dir)
    log = Path(log) if log else data_dir / f"worker-{time.time_ns()}.log"
    command = _command("worker", "--data-dir", str(data_dir), *(["--database", database] if database else []),
                       *map(str, args))
    return Service(_launch(command, log, env), log, None, command)
