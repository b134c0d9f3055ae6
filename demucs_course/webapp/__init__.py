"""Chapter 11, "Shipping a separator": a separation web app with accounts, a job queue and worker processes.

``demucs-course serve`` runs it; ``demucs-course worker`` runs more workers, on this machine or on others that share
the database (PostgreSQL) and the data folder. The pieces, one module each:

==============  ==============================================================================================
``config``      :class:`Settings`: the data folder, the database URL and every limit, in one place
``db``          the tables (users, log-in sessions, jobs, attempts) with SQLAlchemy; SQLite or PostgreSQL
``security``    argon2 password hashes, e-mail and password checks, session tokens, CSRF, rate limits
``uploads``     an upload streamed to a server-chosen file, its size, type and duration checked
``jobs``        the job queue in the database: create, claim (``FOR UPDATE SKIP LOCKED``), recover, expire
``worker``      the worker process: claim a job, separate it with the package's model, write the stems
``app``         the FastAPI application: pages, the JSON API, the cookie session
``server``      ``serve``: the HTTP server and its supervised worker processes
``client``      a small client of the JSON API (the chapter, the tests, a script), and starting a local service
==============  ==============================================================================================

Separation never runs in a request: a request stores the upload and inserts a job row; a worker process claims the
row, calls the same :func:`~demucs_course.capstone.separate_song` as the capstone notebook, and writes the stems.
The web framework is FastAPI (Starlette underneath, served by uvicorn); see the chapter for why.
"""

from .config import Settings, WebAppError

__all__ = ["Settings", "WebAppError"]
