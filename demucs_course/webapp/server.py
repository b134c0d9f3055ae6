"""Chapter 11: ``demucs-course serve`` -- the HTTP server and the worker processes it supervises.

One process answers HTTP (uvicorn running the FastAPI app of :mod:`~demucs_course.webapp.app`); ``--workers N``
separate, each a ``demucs-course worker`` process of its own, so that a separation never holds up a request and a
crash in one never takes the server down. The server

- re-queues, on start, the running jobs whose worker is gone (a restart runs again what was queued or running);
- watches its workers: one that exits is logged, its job re-queued at once, and it is started again (after a pause
  that doubles, up to 30 s, while it keeps failing, so that a broken model does not spin);
- on SIGTERM or Ctrl-C, stops accepting requests, then stops its workers (each puts its job back in the queue).

``--workers 0`` serves without workers: run ``demucs-course worker`` elsewhere, as many as wanted, on the same
database (PostgreSQL for several machines) and the same data folder (a shared file system).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time

from . import jobs
from .config import Settings, WebAppError
from .db import session_factory


class WorkerPool:
    """``count`` worker processes started with ``command``, restarted when they exit, stopped together."""

    def __init__(self, count: int, command: list[str], on_exit, log=print):
        self.count, self.command, self.on_exit, self.log = count, command, on_exit, log
        self.processes: list[subprocess.Popen] = []
        self.stopping = threading.Event()
        self._watcher = threading.Thread(target=self._watch, daemon=True)

    def start(self) -> "WorkerPool":
        self.processes = [self._spawn() for _ in range(self.count)]
        self._watcher.start()
        return self

    def _spawn(self) -> subprocess.Popen:
        return subprocess.Popen([*self.command, "--parent-pid", str(os.getpid())])

    def _watch(self) -> None:
        failures = [0] * self.count
        restart_at = [0.0] * self.count
        while not self.stopping.wait(0.5):
            for slot, process in enumerate(self.processes):
                if process is None or process.poll() is None:
                    if process is None and time.monotonic() >= restart_at[slot] and not self.stopping.is_set():
                        self.processes[slot] = self._spawn()
                    continue
                self.log(f"serve: worker pid {process.pid} exited with status {process.returncode}; its job goes "
                         "back to the queue and the worker is started again")
                self.on_exit()
                failures[slot] = failures[slot] + 1 if process.returncode not in (0, -9) else 0
                restart_at[slot] = time.monotonic() + min(30.0, 2.0 ** failures[slot] - 1)
                self.processes[slot] = None

    def pids(self) -> list[int]:
        return [process.pid for process in self.processes if process is not None]

    def stop(self, timeout: float = 15.0) -> None:
        self.stopping.set()
        live = [process for process in self.processes if process is not None]
        for process in live:
            process.terminate()
        deadline = time.monotonic() + timeout
        for process in live:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: any free port), or a :class:`WebAppError` saying why not."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as error:
        raise WebAppError(f"cannot listen on {host}:{port} ({error.strerror or error}); choose another --host or "
                          "--port") from None
    sock.set_inheritable(False)
    return sock


def serve(settings: Settings, *, host: str = "127.0.0.1", port: int = 8000, workers: int = 1,
          worker_command: list[str] | None = None, stale_after: float = 30.0, log_level: str = "info") -> int:
    """Run the service until SIGTERM or Ctrl-C: the app on ``host:port`` and ``workers`` worker processes started
    with ``worker_command`` (the ``demucs-course worker`` command line, without ``--parent-pid``)."""
    import uvicorn

    from .app import create_app

    app = create_app(settings)
    sessions = session_factory(app.state.engine)

    def recover() -> list[str]:
        with sessions() as db:
            return jobs.recover(db, stale_after)

    requeued = recover()
    sock = listen(host, port)
    address = sock.getsockname()
    shown = f"[{address[0]}]" if ":" in address[0] else address[0]
    pool = WorkerPool(workers, worker_command or [], recover, log=lambda text: print(text, flush=True))
    config = uvicorn.Config(app, log_level=log_level, proxy_headers=False, server_header=False,
                            timeout_graceful_shutdown=5, access_log=log_level == "debug")
    print(f"serving on http://{shown}:{address[1]} with {workers} worker process(es); data in {settings.data_dir}"
          + (f"; {len(requeued)} job(s) queued again" if requeued else ""), flush=True)
    # uvicorn catches SIGTERM and SIGINT while it runs, shuts down gracefully, then raises the signal again for
    # the handlers that were there before: these, so that the workers are stopped here rather than orphaned.
    for name in ("SIGTERM", "SIGINT"):
        signal.signal(getattr(signal, name), lambda *_: None)
    pool.start()
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        pool.stop()
        sys.stdout.flush()
    return 0
