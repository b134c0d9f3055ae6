"""Chapter 11: the web application -- pages, the JSON API and the cookie session -- on FastAPI.

:func:`create_app` builds it from :class:`~demucs_course.webapp.Settings`. Requests only ever read and write rows
and files; separating is the workers' business (:mod:`~demucs_course.webapp.worker`).

The JSON API (a script uses it with a cookie session; the pages' JavaScript uses the same routes):

====================================  =========================================================================
``POST /api/signup``, ``/api/login``  ``{"email", "password"}`` as JSON: set the session cookie, answer
                                      ``{"csrf_token", "email"}`` (201 for a new account, 200 for a log-in)
``POST /api/logout``                  end the session (its row is deleted: the cookie is worthless after)
``POST /api/jobs``                    multipart ``file`` (optional ``shifts``): 202 ``{"id", "status"}``
``GET /api/jobs``                     ``{"jobs": [...]}``, the user's jobs, newest first
``GET /api/jobs/{id}``                ``{"id", "status", "stage", "progress", "error", "stems": {name: url}, ...}``
``GET /api/jobs/{id}/stems/{s}.wav``  one stem; ``GET /api/jobs/{id}/stems.zip``: all four
``DELETE /api/jobs/{id}``             delete the job and its files (204)
``GET /api/health``                   ``{"status": "ok", "queued": n, "running": n}``
====================================  =========================================================================

Every state-changing request but sign-up and log-in carries the session's CSRF token, in the ``X-CSRF-Token`` header
or a ``csrf_token`` form field (403 otherwise). Sign-up and log-in take JSON only (415 for a form): a page of another
site can post a form to us, but not JSON without asking first (CORS), which this server never grants.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.middleware.sessions import SessionMiddleware

from .. import SOURCES
from . import jobs, security
from .config import Settings, WebAppError
from .db import Job, LoginSession, User, make_engine, session_factory
from .uploads import display_name, probe_upload, store_upload

HERE = Path(__file__).resolve().parent
#: The session cookie's name.
COOKIE = "unmix_session"
#: The largest body of a request that is not an upload (JSON, a form).
SMALL_BODY = 64 * 1024
#: Room for the multipart envelope around an upload.
ENVELOPE = 64 * 1024
#: How much of a refused body is read and dropped before the 413 is sent.
DRAIN = 16 << 20
#: The headers every answer carries: the pages run only this site's own scripts, styles and media, in no frame.
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'self'; img-src 'self' data:; media-src 'self' blob:; "
                               "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
}


class NotLoggedIn(Exception):
    """No session, or one that was logged out or expired: 401 from the API, the log-in page for a page."""


@dataclass
class Auth:
    """The logged-in user of a request and its session's CSRF token."""

    user_id: int
    email: str
    session_id: str
    csrf_token: str


class BodyLimit:
    """ASGI middleware: a request body over its limit is answered 413 -- at once from ``Content-Length``, or as
    soon as the counted bytes pass the limit (a chunked body) -- before the route has stored it anywhere."""

    def __init__(self, app, *, upload_limit: int, upload_path: str = "/api/jobs"):
        self.app, self.upload_limit, self.upload_path = app, upload_limit, upload_path

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        upload = scope["path"] == self.upload_path
        limit = self.upload_limit + ENVELOPE if upload else SMALL_BODY
        detail = (f"the file is larger than the limit of {self.upload_limit / 2**20:g} MB" if upload
                  else f"the request body is larger than {SMALL_BODY // 1024} kB")
        too_large = JSONResponse({"detail": detail}, 413, headers={"connection": "close"})
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            return await too_large(scope, receive, send)
        seen, started = 0, False

        async def counted():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                raise _TooLarge
            return message

        async def watched(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except _TooLarge:
            if not started:
                await _drain(receive, DRAIN)
                await too_large(scope, receive, send)


async def _drain(receive, budget: int) -> None:
    """Read and drop what a client still sends of a refused body, up to ``budget`` bytes: a client that is still
    sending when the connection closes may otherwise lose the answer (its socket is reset)."""
    while budget > 0:
        message = await receive()
        budget -= len(message.get("body", b""))
        if message["type"] != "http.request" or not message.get("more_body", False):
            return


class _TooLarge(Exception):
    pass


class SecurityHeaders:
    """ASGI middleware: :data:`SECURITY_HEADERS` on every answer."""

    def __init__(self, app):
        self.app = app
        self.headers = [(name.encode(), value.encode()) for name, value in SECURITY_HEADERS.items()]

    async def __call__(self, scope, receive, send):
        async def add(message):
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *self.headers]
            await send(message)

        await self.app(scope, receive, add if scope["type"] == "http" else send)


def create_app(settings: Settings) -> FastAPI:
    """The web application for ``settings``: the database's tables are created if missing."""
    settings.prepare()
    engine = make_engine(settings.database)
    sessions = session_factory(engine)
    app = FastAPI(title="Unmix", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.settings, app.state.engine = settings, engine
    templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.filters["when"] = lambda t: datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.add_middleware(SessionMiddleware, secret_key=settings.session_secret(), session_cookie=COOKIE,
                       max_age=int(settings.session_seconds), same_site="lax", https_only=settings.secure_cookies)
    app.add_middleware(BodyLimit, upload_limit=settings.max_upload_bytes)
    app.add_middleware(SecurityHeaders)

    def database():
        with sessions() as db:
            yield db

    # -- errors ----------------------------------------------------------------------------------------------

    @app.exception_handler(NotLoggedIn)
    async def not_logged_in(request: Request, _error):
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": "log in first (POST /api/login)"}, 401)
        return RedirectResponse("/login", 303)

    @app.exception_handler(WebAppError)
    async def bad_input(_request: Request, error: WebAppError):
        return JSONResponse({"detail": str(error)}, 400)

    # -- sessions --------------------------------------------------------------------------------------------

    def current(request: Request, db=Depends(database)) -> Auth:
        token = request.session.get("token")
        if not isinstance(token, str):
            raise NotLoggedIn
        row = db.execute(select(LoginSession, User.email).join(User, User.id == LoginSession.user_id)
                         .where(LoginSession.id == security.token_digest(token))).first()
        db.commit()
        if row is None or row[0].expires_at < time.time():
            request.session.clear()
            raise NotLoggedIn
        return Auth(row[0].user_id, row[1], row[0].id, row[0].csrf_token)

    def check_csrf(request: Request, auth: Auth, form_token=None) -> None:
        given = request.headers.get("x-csrf-token") or form_token
        if not security.same_token(given, auth.csrf_token):
            raise HTTPException(403, "missing or wrong CSRF token: send the X-CSRF-Token header (or a csrf_token "
                                     "form field) with the token that log-in returned")

    def start_session(request: Request, db, user: User) -> str:
        now = time.time()
        old = request.session.get("token")
        if isinstance(old, str):                       # a new log-in never reuses the browser's old session
            db.execute(delete(LoginSession).where(LoginSession.id == security.token_digest(old)))
        db.execute(delete(LoginSession).where(LoginSession.expires_at < now))
        token, csrf = security.new_token(), security.new_token()
        db.add(LoginSession(id=security.token_digest(token), user_id=user.id, csrf_token=csrf, created_at=now,
                            expires_at=now + settings.session_seconds))
        db.commit()
        request.session.clear()
        request.session["token"] = token
        return csrf

    async def credentials(request: Request) -> dict:
        if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
            raise HTTPException(415, 'send JSON: Content-Type: application/json, {"email": ..., "password": ...}')
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise HTTPException(400, 'send a JSON object: {"email": ..., "password": ...}')
        return body

    def rate_limited(db, limits) -> None:
        wait = security.check_rate(db, limits, settings.rate_window)
        if wait is not None:
            db.commit()
            raise HTTPException(429, f"too many attempts: try again in {wait} s", headers={"Retry-After": str(wait)})

    def address(request: Request) -> str:
        return request.client.host if request.client else "unknown"

    @app.post("/api/signup", status_code=201)
    def api_signup(request: Request, body: dict = Depends(credentials), db=Depends(database)):
        email = security.check_email(body.get("email"))
        by_address, by_account = f"signup:address:{address(request)}", f"signup:account:{email}"
        rate_limited(db, [(by_address, settings.signup_limit), (by_account, settings.account_limit)])
        security.record_attempt(db, by_address, by_account)
        db.commit()
        password = security.check_password(body.get("password"))
        user = User(email=email, password_hash=security.hash_password(password), created_at=time.time())
        db.add(user)
        try:
            db.commit()
        except IntegrityError:
            db.rollback()
            raise HTTPException(409, "an account with this e-mail address exists: log in") from None
        csrf = start_session(request, db, user)
        return {"csrf_token": csrf, "email": email}

    @app.post("/api/login")
    def api_login(request: Request, body: dict = Depends(credentials), db=Depends(database)):
        email, password = body.get("email"), body.get("password")
        if not isinstance(email, str) or not isinstance(password, str) or len(email) > security.MAX_EMAIL:
            raise HTTPException(400, 'send {"email": ..., "password": ...} as strings')
        email = email.strip().lower()
        by_address, by_account = f"login:address:{address(request)}", f"login:account:{email}"
        rate_limited(db, [(by_address, settings.login_limit), (by_account, settings.account_limit)])
        security.record_attempt(db, by_address)
        user = db.scalar(select(User).where(User.email == email))
        db.commit()
        if len(password) > security.MAX_PASSWORD or not security.verify_password(user and user.password_hash,
                                                                                  password):
            security.record_attempt(db, by_account)
            db.commit()
            raise HTTPException(401, "wrong e-mail address or password")
        if security.needs_rehash(user.password_hash):
            user.password_hash = security.hash_password(password)
        csrf = start_session(request, db, user)
        return {"csrf_token": csrf, "email": user.email}

    def end_session(request: Request, db, auth: Auth) -> None:
        db.execute(delete(LoginSession).where(LoginSession.id == auth.session_id))
        db.commit()
        request.session.clear()

    @app.post("/api/logout")
    def api_logout(request: Request, auth: Auth = Depends(current), db=Depends(database)):
        check_csrf(request, auth)
        end_session(request, db, auth)
        return {"status": "logged out"}

    @app.post("/logout")
    async def page_logout(request: Request, auth: Auth = Depends(current), db=Depends(database)):
        form = await request.form()
        check_csrf(request, auth, form.get("csrf_token"))
        await run_in_threadpool(end_session, request, db, auth)
        return RedirectResponse("/login", 303)

    # -- jobs ------------------------------------------------------------------------------------------------

    def find_job(db, auth: Auth, job_id: str) -> Job:
        job = None
        if jobs.JOB_ID.fullmatch(job_id):
            job = db.scalar(select(Job).where(Job.id == job_id, Job.user_id == auth.user_id, jobs.live()))
        db.commit()
        if job is None:                                # another user's job and no job at all look the same
            raise HTTPException(404, "no such job")
        return job

    def described(job: Job) -> dict:
        done = job.status == "done"
        base = f"/api/jobs/{job.id}"
        return {"id": job.id, "status": job.status, "stage": job.stage, "progress": round(job.progress, 3),
                "error": job.error, "name": job.name, "shifts": job.shifts, "seconds": round(job.seconds, 3),
                "created_at": job.created_at, "finished_at": job.finished_at, "expires_at": job.expires_at,
                "stems": {name: f"{base}/stems/{name}.wav" for name in SOURCES} if done else {},
                "zip": f"{base}/stems.zip" if done else None}

    def check_quota(db, auth: Auth, size: int) -> None:
        count, used = jobs.usage(db, auth.user_id)
        db.commit()
        if count >= settings.max_jobs:
            raise HTTPException(403, f"you have {count} jobs, the most this service keeps per user: delete some")
        if used + size > settings.quota_bytes:
            raise HTTPException(403, f"your files would take {(used + size) / 2**20:.2f} MB, over your quota of "
                                     f"{settings.quota_bytes / 2**20:.2f} MB: delete some jobs")

    def shifts_of(value) -> int:
        text = "0" if value is None else str(value).strip()
        if not text.isdigit() or int(text) > settings.max_shifts:
            raise HTTPException(400, f"shifts must be a whole number from 0 to {settings.max_shifts}, got {text!r}")
        return int(text)

    def insert_job(db, auth: Auth, job: Job) -> None:
        check_quota(db, auth, job.upload_bytes)
        db.add(job)
        db.commit()

    @app.post("/api/jobs", status_code=202)
    async def api_create_job(request: Request, auth: Auth = Depends(current), db=Depends(database)):
        if request.headers.get("x-csrf-token"):
            check_csrf(request, auth)                  # before a byte of the body is read
        await run_in_threadpool(check_quota, db, auth, 0)
        async with request.form(max_files=1, max_fields=4) as form:
            check_csrf(request, auth, form.get("csrf_token"))
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise HTTPException(400, "send the song as the multipart field 'file'")
            shifts = shifts_of(form.get("shifts"))
            name = display_name(upload.filename)
            job_id = jobs.new_job_id()
            folder = settings.job_dir(job_id)
            folder.mkdir(parents=True)
            try:
                part = folder / "upload.part"
                size = await run_in_threadpool(store_upload, upload.file, part)
                if size > settings.max_upload_bytes:
                    raise HTTPException(413, f"the file is larger than the limit of "
                                             f"{settings.max_upload_bytes / 2**20:g} MB")
                probe = await run_in_threadpool(probe_upload, part, name, settings.max_seconds)
                part.rename(folder / f"upload.{probe.ending}")
                job = Job(id=job_id, user_id=auth.user_id, status="queued", stage="queued", progress=0.0,
                          name=name, upload=f"upload.{probe.ending}", shifts=shifts, seconds=probe.seconds,
                          upload_bytes=size, stems_bytes=0, created_at=time.time(),
                          keep_seconds=settings.expire_seconds, attempts=0)
                await run_in_threadpool(insert_job, db, auth, job)
            except BaseException:
                jobs.remove_files(settings.data_dir, job_id)
                raise
        return JSONResponse({"id": job_id, "status": "queued"}, 202, headers={"location": f"/api/jobs/{job_id}"})

    @app.get("/api/jobs")
    def api_jobs(auth: Auth = Depends(current), db=Depends(database)):
        rows = db.scalars(select(Job).where(Job.user_id == auth.user_id, jobs.live())
                          .order_by(Job.created_at.desc())).all()
        db.commit()
        return {"jobs": [described(job) for job in rows]}

    @app.get("/api/jobs/{job_id}")
    def api_job(job_id: str, auth: Auth = Depends(current), db=Depends(database)):
        return described(find_job(db, auth, job_id))

    def done_job(db, auth: Auth, job_id: str) -> Job:
        job = find_job(db, auth, job_id)
        if job.status != "done":
            raise HTTPException(404, f"the job is {job.status}: no stems yet")
        return job

    @app.get("/api/jobs/{job_id}/stems/{file_name}")
    def api_stem(job_id: str, file_name: str, auth: Auth = Depends(current), db=Depends(database)):
        job = done_job(db, auth, job_id)
        stem = next((name for name in SOURCES if file_name == f"{name}.wav"), None)
        if stem is None:                               # the path is built from SOURCES, never from the request
            raise HTTPException(404, f"no such stem: the stems are {', '.join(f'{s}.wav' for s in SOURCES)}")
        return FileResponse(settings.job_dir(job.id) / "stems" / f"{stem}.wav", media_type="audio/wav")

    @app.get("/api/jobs/{job_id}/stems.zip")
    def api_zip(job_id: str, auth: Auth = Depends(current), db=Depends(database)):
        job = done_job(db, auth, job_id)
        return FileResponse(settings.job_dir(job.id) / "stems.zip", media_type="application/zip",
                            filename=f"unmix-{job.id[:8]}-stems.zip")

    @app.delete("/api/jobs/{job_id}", status_code=204)
    def api_delete(job_id: str, request: Request, auth: Auth = Depends(current), db=Depends(database)):
        check_csrf(request, auth)
        job = find_job(db, auth, job_id)
        db.execute(delete(Job).where(Job.id == job.id, Job.user_id == auth.user_id))
        db.commit()
        jobs.remove_files(settings.data_dir, job.id)
        return Response(status_code=204)

    @app.get("/api/health")
    def api_health(db=Depends(database)):
        counts = dict(db.execute(select(Job.status, func.count()).group_by(Job.status)).all())
        db.commit()
        return {"status": "ok", "queued": counts.get("queued", 0), "running": counts.get("running", 0)}

    # -- pages -----------------------------------------------------------------------------------------------

    def page(request: Request, name: str, auth: Auth | None = None, status: int = 200, **context):
        limits = {"max_mb": settings.max_upload_bytes / 2**20, "max_minutes": settings.max_seconds / 60,
                  "max_shifts": settings.max_shifts}
        return templates.TemplateResponse(request, name, {"auth": auth, "limits": limits, **context},
                                          status_code=status)

    @app.get("/")
    def home(auth: Auth = Depends(current)):
        return RedirectResponse("/jobs", 303)

    @app.get("/login")
    def login_page(request: Request):
        return page(request, "auth.html", mode="login")

    @app.get("/signup")
    def signup_page(request: Request):
        return page(request, "auth.html", mode="signup")

    @app.get("/jobs")
    def jobs_page(request: Request, auth: Auth = Depends(current), db=Depends(database)):
        rows = db.scalars(select(Job).where(Job.user_id == auth.user_id, jobs.live())
                          .order_by(Job.created_at.desc())).all()
        db.commit()
        return page(request, "jobs.html", auth, jobs=rows)

    @app.get("/jobs/{job_id}")
    def job_page(request: Request, job_id: str, auth: Auth = Depends(current), db=Depends(database)):
        try:
            job = find_job(db, auth, job_id)
        except HTTPException:
            return page(request, "missing.html", auth, status=404)
        return page(request, "job.html", auth, job=job, info=described(job), sources=SOURCES)

    return app
