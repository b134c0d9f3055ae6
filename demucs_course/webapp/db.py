"""Chapter 11: the web app's tables, through SQLAlchemy, on SQLite (one machine) or PostgreSQL (several).

Four tables:

- ``users``: an e-mail address and its argon2 password hash, never the password;
- ``sessions``: one row per log-in. The cookie holds a random token; the table holds its SHA-256 (a stolen copy of
  the database logs nobody in), the user, the CSRF token of that log-in and when it expires. Logging out deletes
  the row, so the cookie is worthless afterwards even though its signature is still valid;
- ``jobs``: the job queue itself (status, progress, which worker holds it and its last heartbeat, how often it was
  claimed) and what a job owns on disk. Ids are 128 random bits, so that guessing one is hopeless;
- ``attempts``: log-in and sign-up attempts, counted by the rate limits.

Times are seconds since the epoch (floats), the same in both databases. On SQLite every transaction starts with
``BEGIN IMMEDIATE`` (it takes the write lock at once, and waits for it up to 30 s) and the journal is a WAL, so that
a server and several worker processes share one file without "database is locked" errors.
"""

from __future__ import annotations

from sqlalchemy import Float, ForeignKey, Integer, String, Text, create_engine, event, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

from .config import WebAppError


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[float] = mapped_column(Float)


class LoginSession(Base):
    __tablename__ = "sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)          # SHA-256 of the cookie's token
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float)


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)          # 128 random bits, hex
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)            # queued, running, done, failed
    stage: Mapped[str] = mapped_column(String(64), default="queued")
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    name: Mapped[str] = mapped_column(String(200))                         # the upload's name, for display only
    upload: Mapped[str] = mapped_column(String(32))                        # the server's file name: upload.<ext>
    shifts: Mapped[int] = mapped_column(Integer, default=0)
    seconds: Mapped[float] = mapped_column(Float)                          # the song's duration
    upload_bytes: Mapped[int] = mapped_column(Integer)
    stems_bytes: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[float] = mapped_column(Float, index=True)
    started_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    finished_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    keep_seconds: Mapped[float] = mapped_column(Float)                     # kept this long once finished
    expires_at: Mapped[float | None] = mapped_column(Float, nullable=True, index=True)
    worker: Mapped[str | None] = mapped_column(String(200), nullable=True)  # host:pid of the worker holding it
    heartbeat_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)              # how many times a worker claimed it


class Attempt(Base):
    __tablename__ = "attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(300), index=True)              # e.g. login:address:127.0.0.1
    at: Mapped[float] = mapped_column(Float, index=True)


def make_engine(url: str):
    """An engine for ``url``, its tables created if missing. SQLite and PostgreSQL (``postgresql+psycopg://``) only;
    a bad URL or a database that cannot be reached is a :class:`WebAppError` saying so."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise WebAppError(f"--database {url!r} is not a database URL; give sqlite:///path/to/file.sqlite3 or "
                          "postgresql+psycopg://user:password@host:port/database") from None
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise WebAppError(f"--database {parsed.render_as_string()!r}: the web app runs on SQLite or PostgreSQL, not "
                          f"{parsed.get_backend_name()}")
    try:
        if parsed.get_backend_name() == "sqlite":
            engine = create_engine(parsed, connect_args={"timeout": 30, "check_same_thread": False})
            event.listen(engine, "connect", _sqlite_connect)
            event.listen(engine, "begin", lambda connection: connection.exec_driver_sql("BEGIN IMMEDIATE"))
        else:
            engine = create_engine(parsed, pool_pre_ping=True)
        Base.metadata.create_all(engine)
    except NoSuchModuleError:
        raise WebAppError(f"--database {parsed.render_as_string()!r}: no driver {parsed.drivername!r}; for "
                          "PostgreSQL use postgresql+psycopg:// (pip install 'demucs-course[web]')") from None
    except OperationalError as error:
        reason = " ".join(str(error.orig).split())
        raise WebAppError(f"cannot open the database {parsed.render_as_string()!r}: {reason}") from None
    return engine


def _sqlite_connect(connection, _record) -> None:
    connection.isolation_level = None          # transactions are begun by the "begin" event, as BEGIN IMMEDIATE
    for pragma in ("journal_mode=WAL", "busy_timeout=30000", "foreign_keys=ON", "synchronous=NORMAL"):
        connection.execute(f"PRAGMA {pragma}")


def session_factory(engine) -> sessionmaker:
    """Sessions (units of work) on ``engine``; objects stay readable after commit."""
    return sessionmaker(engine, expire_on_commit=False)
