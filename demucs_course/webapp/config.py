"""Chapter 11: the web app's settings -- the data folder, the database and every limit -- in one place.

``demucs-course serve`` builds a :class:`Settings` from its options; the tests build one directly. Each limit is a
security decision of the chapter: the size of an upload, the length of a song, the number of shifts (the cost of a
job), a user's storage and number of jobs, how long finished jobs are kept, how long a log-in lasts, and how many
log-in and sign-up attempts an address or an account may make in a window of time.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field, fields
from pathlib import Path

from .. import InputError

MB = 1 << 20


class WebAppError(InputError):
    """A setting or a request the web app cannot use, with a message that says what to do."""


@dataclass
class Settings:
    """Everything the server and its workers are configured by (see ``demucs-course serve --help``)."""

    #: The folder of the uploads and stems (``jobs/<id>/``), the SQLite database and the session secret.
    data_dir: Path = field(default_factory=lambda: Path("unmix-data"))
    #: An SQLAlchemy URL: ``sqlite:///path`` or ``postgresql+psycopg://user:password@host:port/db``.
    #: None: ``sqlite:///DATA_DIR/unmix.sqlite3``.
    database_url: str | None = None
    #: The key that signs the session cookie. None: read from ``DATA_DIR/secret_key``, written there on first use.
    secret_key: str | None = None
    #: Mark the session cookie ``Secure`` (sent over HTTPS only): set it when the service is behind HTTPS.
    secure_cookies: bool = False
    #: Uploads: the largest file (bytes), the longest song (seconds), the most shifts a job may ask for.
    max_upload_bytes: int = 100 * MB
    max_seconds: float = 15 * 60
    max_shifts: int = 5
    #: Per user: the storage of uploads and stems (bytes), and the number of jobs kept.
    quota_bytes: int = 2048 * MB
    max_jobs: int = 50
    #: A finished job (done or failed) and its files are deleted this long after it finished (seconds).
    expire_seconds: float = 7 * 24 * 3600
    #: A log-in lasts this long (seconds).
    session_seconds: float = 14 * 24 * 3600
    #: Rate limits, per window of ``rate_window`` seconds: log-in attempts per client address, sign-ups per client
    #: address, and failed log-ins or sign-ups per account (e-mail address).
    login_limit: int = 30
    signup_limit: int = 10
    account_limit: int = 5
    rate_window: float = 15 * 60

    def __post_init__(self):
        self.data_dir = Path(self.data_dir).expanduser().resolve()
        for item in fields(self):
            value = getattr(self, item.name)
            if item.type in ("int", "float") and not (isinstance(value, (int, float)) and value > 0):
                raise WebAppError(f"the setting {item.name} must be a positive number, got {value!r}")

    @property
    def database(self) -> str:
        """The database URL in use."""
        return self.database_url or f"sqlite:///{self.data_dir / 'unmix.sqlite3'}"

    def prepare(self) -> None:
        """Create the data folder (a clear error where it cannot be), and the session secret when missing."""
        if self.data_dir.exists() and not self.data_dir.is_dir():
            raise WebAppError(f"the data folder {self.data_dir} is a file; give a folder with --data-dir")
        try:
            (self.data_dir / "jobs").mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise WebAppError(f"cannot create the data folder {self.data_dir} ({error.strerror}); give another one "
                              "with --data-dir") from None

    def session_secret(self) -> str:
        """The key that signs session cookies: :attr:`secret_key`, or the one kept in ``DATA_DIR/secret_key``
        (random, 256 bits, readable by its owner only), so that log-ins survive a restart and several server
        processes on one data folder accept each other's cookies."""
        if self.secret_key:
            return self.secret_key
        path = self.data_dir / "secret_key"
        if not path.exists():
            self.prepare()
            try:
                descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:                       # another process wrote it first
                pass
            else:
                with os.fdopen(descriptor, "w") as file:
                    file.write(secrets.token_hex(32))
        return path.read_text().strip()

    def job_dir(self, job_id: str) -> Path:
        """The folder of one job's files. ``job_id`` comes from the database, never from a request's text."""
        return self.data_dir / "jobs" / job_id
