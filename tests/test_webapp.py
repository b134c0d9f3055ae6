"""The web app of Chapter 11 (demucs_course.webapp) in one process: the security rules as functions, the job queue on
SQLite, and every route through FastAPI's test client, with the worker's code run in the test (the real server, its
worker processes and the browser are tests/test_webapp_service.py and tests/test_webapp_browser.py)."""

import io
import os
import time
import zipfile

import pytest
import soundfile as sf
from sqlalchemy import select

pytest.importorskip("fastapi", reason="the web app's tests need the package's web extra")

from fastapi.testclient import TestClient  # noqa: E402

from demucs_course import SOURCES  # noqa: E402
from demucs_course.webapp import Settings, WebAppError  # noqa: E402
from demucs_course.webapp import jobs, security  # noqa: E402
from demucs_course.webapp.app import COOKIE, create_app  # noqa: E402
from demucs_course.webapp.db import Job, User, make_engine, session_factory  # noqa: E402
from demucs_course.webapp.uploads import UploadError, display_name, probe_upload  # noqa: E402
from demucs_course.webapp.worker import Worker, load_model  # noqa: E402

from webapp_support import PASSWORD, write_song  # noqa: E402


# The rules, one function each --------------------------------------------------------------------------------------

def test_passwords_are_stored_as_argon2id_hashes_that_verify_only_the_password():
    stored = security.hash_password(PASSWORD)
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    assert security.hash_password(PASSWORD) != stored                      # a new salt each time
    assert security.verify_password(stored, PASSWORD)
    assert not security.verify_password(stored, PASSWORD + "!")
    assert not security.verify_password(None, PASSWORD)                    # no such user: same work, False
    assert not security.verify_password("not a hash", PASSWORD)
    assert not security.needs_rehash(stored)


def test_passwords_have_a_minimum_and_a_maximum_length():
    assert security.check_password("x" * security.MIN_PASSWORD)
    assert security.check_password("x" * security.MAX_PASSWORD)
    for bad, said in (("x" * (security.MIN_PASSWORD - 1), "too short"), ("x" * (security.MAX_PASSWORD + 1), "too long"),
                      (None, "give a password"), (12345678901, "give a password")):
        with pytest.raises(WebAppError, match=said):
            security.check_password(bad)


def test_email_addresses_are_validated_and_normalised():
    assert security.check_email("  Ada.Lovelace@Example.COM ") == "ada.lovelace@example.com"
    for bad in ("", "no-at-sign", "two@@example.com", "a@b", "<script>@example.com", "a@example.com\nBcc: b@x.com",
                "x" * 250 + "@example.com", None, 42):
        with pytest.raises(WebAppError):
            security.check_email(bad)


def test_session_and_csrf_tokens_are_random_and_compared_in_constant_time():
    tokens = {security.new_token() for _ in range(100)}
    assert len(tokens) == 100 and all(len(token) == 64 for token in tokens)
    token = tokens.pop()
    assert security.token_digest(token) != token and len(security.token_digest(token)) == 64
    assert security.same_token(token, token)
    assert not security.same_token(token[:-1] + "x", token)
    assert not security.same_token(None, token) and not security.same_token(["list"], token)


def test_job_ids_are_128_random_bits():
    ids = {jobs.new_job_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(jobs.JOB_ID.fullmatch(job_id) for job_id in ids)
    for bad in ("1", "../jobs", "0" * 31, "G" * 32, "0" * 32 + "/x"):
        assert not jobs.JOB_ID.fullmatch(bad)


def test_an_upload_is_shown_by_the_last_part_of_its_name_never_used_as_a_path():
    assert display_name("../../etc/passwd") == "passwd"
    assert display_name("C:\\Users\\me\\song.mp3") == "song.mp3"
    assert display_name("a\x00b\r\nc.wav") == "a b c.wav"
    assert display_name("") == display_name(None) == display_name("../") == "upload"
    assert len(display_name("y" * 1000)) == 200


def test_the_rate_check_counts_attempts_in_a_sliding_window(tmp_path):
    db = session_factory(make_engine(f"sqlite:///{tmp_path / 'db.sqlite3'}"))()
    limits = [("login:address:10.0.0.1", 2), ("login:account:a@example.com", 5)]
    assert security.check_rate(db, limits, window=60, now=1000.0) is None
    security.record_attempt(db, "login:address:10.0.0.1", now=1000.0)
    security.record_attempt(db, "login:address:10.0.0.1", now=1010.0)
    assert security.check_rate(db, limits, window=60, now=1020.0) == 40    # until the first attempt is 60 s old
    assert security.check_rate(db, [("login:address:10.0.0.2", 2)], window=60, now=1020.0) is None
    assert security.check_rate(db, limits, window=60, now=1061.0) is None  # the first one left the window


def test_uploads_are_checked_by_their_content(tmp_path):
    good = {"song.flac": write_song(tmp_path / "song.flac"), "song.ogg": write_song(tmp_path / "song.ogg"),
            "song.mp3": write_song(tmp_path / "song.mp3"), "mono.wav": write_song(tmp_path / "mono.wav", channels=1)}
    for name, path in good.items():
        probe = probe_upload(path, name, max_seconds=60)
        assert probe.ending == name.rsplit(".")[1] and abs(probe.seconds - 1.5) < 0.1
    (tmp_path / "text.mp3").write_text("not audio at all\n" * 50)
    (tmp_path / "empty.wav").write_bytes(b"")
    aiff = write_song(tmp_path / "song.aiff")
    for path, said in ((tmp_path / "text.mp3", "cannot be decoded"), (tmp_path / "empty.wav", "empty"),
                       (aiff, "takes MP3, WAV, FLAC or OGG"), (good["song.flac"], "at most 0.01 minutes")):
        with pytest.raises(UploadError, match=said) as caught:
            probe_upload(path, path.name, max_seconds=0.6 if path == good["song.flac"] else 60)
        assert str(tmp_path) not in str(caught.value)                      # never the server's path


# The queue --------------------------------------------------------------------------------------------------------

def _add_jobs(sessions, n, status="queued", **values):
    with sessions() as db:
        user = db.scalar(select(User)) or User(email="q@example.com", password_hash="x", created_at=0.0)
        db.add(user)
        db.flush()
        ids = [jobs.new_job_id() for _ in range(n)]
        db.add_all(Job(id=job_id, user_id=user.id, status=status, stage=status, name="s.wav", upload="upload.wav",
                       seconds=1.0, upload_bytes=1, created_at=time.time() + k, keep_seconds=60.0, **values)
                   for k, job_id in enumerate(ids))
        db.commit()
    return ids


def test_each_queued_job_is_claimed_once_oldest_first(tmp_path):
    sessions = session_factory(make_engine(f"sqlite:///{tmp_path / 'db.sqlite3'}"))
    ids = _add_jobs(sessions, 3)
    with sessions() as db:
        claimed = [jobs.claim(db, f"host:{k}") for k in range(4)]
    assert [job.id for job in claimed[:3]] == ids and claimed[3] is None
    assert all(job.status == "running" and job.attempts == 1 for job in claimed[:3])
    with sessions() as db:
        assert jobs.heartbeat(db, ids[0], "host:0", stage="separating", progress=0.5)
        assert not jobs.heartbeat(db, ids[0], "host:1")                    # not its job
        assert jobs.finish(db, ids[0], "host:0", 123)
        assert not jobs.finish(db, ids[0], "host:0", 123)                  # already done
        job = db.get(Job, ids[0])
        assert (job.status, job.progress, job.stems_bytes) == ("done", 1.0, 123)
        assert job.expires_at == pytest.approx(job.finished_at + 60.0)


def test_a_dead_workers_job_is_queued_again_and_fails_after_three_claims(tmp_path):
    sessions = session_factory(make_engine(f"sqlite:///{tmp_path / 'db.sqlite3'}"))
    dead = jobs.worker_name(pid=2 ** 22 + 12345)                          # above Linux's pid_max: never running
    alive = jobs.worker_name()
    now = time.time()
    stale, gone, fine, worn = _add_jobs(sessions, 4, status="running", heartbeat_at=now)
    with sessions() as db:
        for job_id, worker, beat, attempts in ((stale, "elsewhere:1", now - 100, 1), (gone, dead, now, 1),
                                               (fine, alive, now, 1), (worn, dead, now, 3)):
            job = db.get(Job, job_id)
            job.worker, job.heartbeat_at, job.attempts = worker, beat, attempts
        db.commit()
        assert sorted(jobs.recover(db, stale_after=30)) == sorted([stale, gone, worn])
        status = {job_id: db.get(Job, job_id, populate_existing=True) for job_id in (stale, gone, fine, worn)}
    assert [status[j].status for j in (stale, gone, fine, worn)] == ["queued", "queued", "running", "failed"]
    assert status[stale].worker is None and "stopped 3 times" in status[worn].error


def test_finished_jobs_expire_with_their_files(tmp_path):
    sessions = session_factory(make_engine(f"sqlite:///{tmp_path / 'db.sqlite3'}"))
    old, new = _add_jobs(sessions, 2, status="done")
    for job_id in (old, new):
        (tmp_path / "jobs" / job_id).mkdir(parents=True)
    with sessions() as db:
        db.get(Job, old).expires_at, db.get(Job, new).expires_at = time.time() - 1, time.time() + 100
        db.commit()
        assert jobs.expire(db, tmp_path) == [old]
        assert db.get(Job, old) is None and db.get(Job, new) is not None
    assert not (tmp_path / "jobs" / old).exists() and (tmp_path / "jobs" / new).exists()


def test_bad_database_urls_are_one_clear_error(tmp_path):
    for url, said in (("nonsense", "not a database URL"), ("mysql://u@localhost/db", "SQLite or PostgreSQL"),
                      (f"sqlite:///{tmp_path}/missing/folder/db.sqlite3", "cannot open the database")):
        with pytest.raises(WebAppError, match=said):
            make_engine(url)


# Every route, through the framework's test client ----------------------------------------------------------------

@pytest.fixture(scope="module")
def model():
    return load_model()                                    # the package's default shipped model


@pytest.fixture()
def service(tmp_path, model):
    """The app on a fresh data folder, its test client, and a worker run in the test (``worker.run_one()``)."""
    settings = Settings(data_dir=tmp_path / "data", max_upload_bytes=2 << 20)
    app = create_app(settings)
    with TestClient(app) as client:
        yield client, Worker(settings, model, log=lambda _: None), settings


def _signup(client, email="ada@example.com"):
    answer = client.post("/api/signup", json={"email": email, "password": PASSWORD})
    assert answer.status_code == 201, answer.text
    return answer.json()["csrf_token"]


def test_pages_and_api_without_a_session(service):
    client, _, _ = service
    for page in ("/login", "/signup"):
        answer = client.get(page)
        assert answer.status_code == 200 and 'id="auth-form"' in answer.text
    for page in ("/", "/jobs", f"/jobs/{jobs.new_job_id()}"):
        answer = client.get(page, follow_redirects=False)
        assert answer.status_code == 303 and answer.headers["location"] == "/login"
    job = jobs.new_job_id()
    for method, path in (("GET", "/api/jobs"), ("POST", "/api/jobs"), ("GET", f"/api/jobs/{job}"),
                         ("GET", f"/api/jobs/{job}/stems/drums.wav"), ("GET", f"/api/jobs/{job}/stems.zip"),
                         ("DELETE", f"/api/jobs/{job}"), ("POST", "/api/logout")):
        answer = client.request(method, path)
        assert answer.status_code == 401, (method, path)
        assert answer.json()["detail"].startswith("log in first")
    assert client.get("/api/health").json() == {"status": "ok", "queued": 0, "running": 0}
    assert "unmixMixer" in client.get("/static/app.js").text


def test_signup_and_login_take_json_and_say_what_is_wrong(service):
    client, _, _ = service
    token = _signup(client)
    cookie = client.cookies.get(COOKIE)
    assert cookie and len(token) == 64
    assert client.post("/api/signup", json={"email": "ADA@example.com", "password": PASSWORD}).status_code == 409
    for body, status, said in (({"email": "nope", "password": PASSWORD}, 400, "not a valid e-mail"),
                               ({"email": "b@example.com", "password": "short"}, 400, "too short"),
                               ({"email": "b@example.com"}, 400, "give a password"),
                               (["a list"], 400, "JSON object")):
        answer = client.post("/api/signup", json=body)
        assert (answer.status_code, said in answer.json()["detail"]) == (status, True), answer.text
    form = client.post("/api/login", data={"email": "ada@example.com", "password": PASSWORD})
    assert form.status_code == 415                         # a cross-site form cannot log anybody in
    assert client.post("/api/login", json={"email": "ada@example.com", "password": "wrong password"}).status_code == 401
    assert client.post("/api/login", json={"email": "nobody@example.com", "password": PASSWORD}).status_code == 401
    login = client.post("/api/login", json={"email": "Ada@Example.com", "password": PASSWORD})
    assert login.status_code == 200 and login.json()["csrf_token"] != token
    assert client.cookies.get(COOKIE) != cookie             # a new session on each log-in


def test_a_job_from_upload_to_stems_zip_and_deletion(service, tmp_path):
    client, worker, settings = service
    token = _signup(client)
    song = write_song(tmp_path / "my song.flac", seconds=1.5, channels=1)
    with open(song, "rb") as file:
        answer = client.post("/api/jobs", files={"file": ("my song.flac", file)}, data={"shifts": "1"},
                             headers={"X-CSRF-Token": token})
    assert answer.status_code == 202, answer.text
    job_id = answer.json()["id"]
    assert answer.json() == {"id": job_id, "status": "queued"} and answer.headers["location"] == f"/api/jobs/{job_id}"
    assert [job["id"] for job in client.get("/api/jobs").json()["jobs"]] == [job_id]
    assert "my song.flac" in client.get("/jobs").text
    assert client.get(f"/api/jobs/{job_id}/stems.zip").status_code == 404          # not done yet
    assert os.listdir(settings.job_dir(job_id)) == ["upload.flac"]                 # the server's name
    assert worker.run_one() == job_id
    job = client.get(f"/api/jobs/{job_id}").json()
    assert (job["status"], job["progress"], job["error"], job["shifts"]) == ("done", 1.0, None, 1)
    assert set(job["stems"]) == set(SOURCES)
    for name, url in job["stems"].items():
        answer = client.get(url)
        assert answer.status_code == 200 and answer.headers["content-type"] == "audio/wav"
        audio, rate = sf.read(io.BytesIO(answer.content))
        assert rate == 44100 and audio.shape == (int(1.5 * 44100), 2)
    archive = client.get(job["zip"])
    assert archive.status_code == 200 and "attachment" in archive.headers["content-disposition"]
    assert sorted(zipfile.ZipFile(io.BytesIO(archive.content)).namelist()) == sorted(f"{s}.wav" for s in SOURCES)
    page = client.get(f"/jobs/{job_id}").text
    assert all(f'id="player-{name}"' in page and f'id="gain-{name}"' in page for name in SOURCES)
    assert client.delete(f"/api/jobs/{job_id}").status_code == 403                 # no CSRF token
    assert client.delete(f"/api/jobs/{job_id}", headers={"X-CSRF-Token": token}).status_code == 204
    assert client.get(f"/api/jobs/{job_id}").status_code == 404
    assert client.get(f"/jobs/{job_id}").status_code == 404
    assert not settings.job_dir(job_id).exists()


def test_logging_out_by_api_and_by_form_ends_the_session(service):
    client, _, _ = service
    token = _signup(client)
    assert client.post("/api/logout").status_code == 403                           # no CSRF token
    assert client.post("/api/logout", headers={"X-CSRF-Token": token}).status_code == 200
    assert client.get("/api/jobs").status_code == 401
    token = client.post("/api/login", json={"email": "ada@example.com", "password": PASSWORD}).json()["csrf_token"]
    assert client.post("/logout", data={"csrf_token": "wrong"}, follow_redirects=False).status_code == 403
    answer = client.post("/logout", data={"csrf_token": token}, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/login"
    assert client.get("/api/jobs").status_code == 401


def test_the_cookie_is_signed_httponly_samesite_lax_and_secure_when_asked(tmp_path):
    for secure in (False, True):
        app = create_app(Settings(data_dir=tmp_path / str(secure), secure_cookies=secure))
        with TestClient(app, base_url="https://testserver") as client:
            cookie = client.post("/api/signup", json={"email": "s@example.com", "password": PASSWORD}
                                 ).headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie and ("secure" in cookie) == secure


def test_the_job_page_escapes_the_upload_name(service, tmp_path):
    client, _, _ = service
    token = _signup(client)
    song = write_song(tmp_path / "song.wav")
    with open(song, "rb") as file:
        job_id = client.post("/api/jobs", files={"file": ("<img src=x onerror=alert(1)>.wav", file)},
                             headers={"X-CSRF-Token": token}).json()["id"]
    for page in ("/jobs", f"/jobs/{job_id}"):
        text = client.get(page).text
        assert "<img src=x" not in text and "&lt;img src=x onerror=alert(1)&gt;.wav" in text
