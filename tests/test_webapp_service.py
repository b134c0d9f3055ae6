"""The web app of Chapter 11 as a real service: ``demucs-course serve`` started by the test on 127.0.0.1 and a free port,
with real worker processes, and real HTTP requests. Each security rule of the chapter has its test here; then the
load test (20 users at once, 2 workers), the restart test (a worker, then the server and a worker, killed mid-job)
and the same service on a throwaway PostgreSQL cluster, where two ``demucs-course worker`` processes share the job
table through FOR UPDATE SKIP LOCKED."""

import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("fastapi", reason="the web app's tests need the package's web extra")

from sqlalchemy import select  # noqa: E402

from demucs_course import SOURCES, cli  # noqa: E402
from demucs_course.capstone import write_bad_examples  # noqa: E402
from demucs_course.webapp import jobs  # noqa: E402
from demucs_course.webapp.app import COOKIE  # noqa: E402
from demucs_course.webapp.client import ApiError, Client, load_test, start_server, start_worker  # noqa: E402
from demucs_course.webapp.db import Job, User, make_engine, session_factory  # noqa: E402

from webapp_support import PASSWORD, new_user, raw_request, write_song  # noqa: E402

ENV = {"OMP_NUM_THREADS": "1"}
#: Server A's limits: uploads up to 40 MB and 4 minutes, 3 failed log-ins per account.
LIMITS_A = ["--max-upload-mb", 40, "--max-minutes", 4, "--account-limit", 3, "--signup-limit", 500,
            "--login-limit", 500, "--quota-mb", 500, "--max-jobs", 20]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """Server A: one worker process, the limits of :data:`LIMITS_A`."""
    data = tmp_path_factory.mktemp("service-a")
    service = start_server(data, workers=1, args=LIMITS_A, env=ENV)
    yield service
    assert service.stop() == 0, service.output()


@pytest.fixture(scope="module")
def songs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("songs")
    bad = write_bad_examples(folder / "bad")
    (folder / "text.mp3").write_text("These are the lyrics, not the song.\n" * 40)
    (folder / "empty.wav").write_bytes(b"")
    return {"song": write_song(folder / "song.flac", 1.5), "mono": write_song(folder / "mono.wav", 1.5, channels=1),
            "aiff": write_song(folder / "song.aiff", 1.5), "text": folder / "text.mp3", "empty": folder / "empty.wav",
            "damaged": bad["a damaged file"], "silence": bad["silence"], "short": bad["a clip too short"],
            "surround": bad["5 channels"],
            "long": write_song(folder / "long.wav", 5 * 60, channels=1, rate=8000, subtype="PCM_U8")}


def _done(client, path, **options):
    job_id = client.upload(path, **options)
    return job_id, client.wait(job_id, timeout=120)


# Sessions ---------------------------------------------------------------------------------------------------------

def test_the_session_cookie_is_signed_httponly_samesite_lax_and_not_secure_over_http(server):
    answer = httpx.post(f"{server.url}/api/signup", json={"email": "cookie@example.com", "password": PASSWORD})
    assert answer.status_code == 201
    cookie = answer.headers["set-cookie"]
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "samesite", "path", "max-age"} <= attributes and "secure" not in attributes
    assert "samesite=lax" in cookie.lower()
    value = answer.cookies[COOKIE]
    assert httpx.get(f"{server.url}/api/jobs", cookies={COOKIE: value}).status_code == 200
    forged = value[:-2] + ("AA" if not value.endswith("AA") else "BB")         # the signature no longer matches
    assert httpx.get(f"{server.url}/api/jobs", cookies={COOKIE: forged}).status_code == 401


def test_logging_out_invalidates_the_session_on_the_server(server):
    client, _ = new_user(server.url)
    stolen = client.http.cookies[COOKIE]                                     # a copy of the cookie, kept
    assert httpx.get(f"{server.url}/api/jobs", cookies={COOKIE: stolen}).status_code == 200
    client.logout()
    replay = httpx.get(f"{server.url}/api/jobs", cookies={COOKIE: stolen})
    assert replay.status_code == 401                                        # still signed, but its row is gone


# CSRF -------------------------------------------------------------------------------------------------------------

def test_every_state_changing_request_needs_the_csrf_token(server, songs):
    alice, _ = new_user(server.url)
    bob, _ = new_user(server.url)
    job_id, _ = _done(alice, songs["song"])
    for token in (None, "0" * 64, bob.csrf_token):                            # none, wrong, another user's
        headers = {"X-CSRF-Token": token} if token else {}
        with open(songs["song"], "rb") as file:
            upload = alice.http.post("/api/jobs", files={"file": ("s.flac", file)}, headers=headers)
        assert upload.status_code == 403 and "CSRF" in upload.json()["detail"]
        assert alice.http.delete(f"/api/jobs/{job_id}", headers=headers).status_code == 403
        assert alice.http.post("/api/logout", headers=headers).status_code == 403
        form = alice.http.post("/logout", data={"csrf_token": token or ""}, follow_redirects=False)
        assert form.status_code == 403
    with open(songs["song"], "rb") as file:                                   # the token as a form field works too
        assert alice.http.post("/api/jobs", files={"file": ("s.flac", file)},
                               data={"csrf_token": alice.csrf_token}).status_code == 202
    assert alice.job(job_id)["status"] == "done"                             # nothing was deleted
    login = httpx.post(f"{server.url}/api/login", data={"email": "x@example.com", "password": PASSWORD})
    assert login.status_code == 415                                          # a cross-site form cannot log in


# Rate limits (per account here; per address on server B below) ----------------------------------------------------

def test_failed_log_ins_are_limited_per_account_with_retry_after(server):
    _, email = new_user(server.url)
    _, other = new_user(server.url)
    client = Client(server.url)
    for _ in range(3):
        with pytest.raises(ApiError) as wrong:
            client.login(email, "not the password")
        assert wrong.value.status == 401
    answer = client.http.post("/api/login", json={"email": email, "password": PASSWORD})
    assert answer.status_code == 429                                        # even the right password, for now
    assert 0 < int(answer.headers["retry-after"]) <= 900
    assert client.login(other, PASSWORD)["email"] == other                   # other accounts are not locked


# Isolation --------------------------------------------------------------------------------------------------------

def test_another_users_job_is_404_on_every_route_and_so_is_a_guessed_id(server, songs):
    alice, _ = new_user(server.url)
    mallory, _ = new_user(server.url)
    job_id, job = _done(alice, songs["song"])
    assert job["status"] == "done"
    guessed = jobs.new_job_id()
    for target in (job_id, guessed):
        routes = [("GET", f"/api/jobs/{target}"), ("GET", f"/api/jobs/{target}/stems.zip"),
                  ("DELETE", f"/api/jobs/{target}"), ("GET", f"/jobs/{target}"),
                  *(("GET", f"/api/jobs/{target}/stems/{name}.wav") for name in SOURCES)]
        for method, path in routes:
            answer = mallory.http.request(method, path, headers={"X-CSRF-Token": mallory.csrf_token})
            assert answer.status_code == 404, (method, path)
    assert mallory.jobs() == []
    assert alice.job(job_id)["status"] == "done"                             # still there, untouched


def test_no_path_from_a_request_reaches_the_file_system(server, songs):
    alice, _ = new_user(server.url)
    job_id, _ = _done(alice, songs["song"])
    secret = (Path(server.log).parent / "secret_key").read_text().strip()
    cookie = f"{COOKIE}={alice.http.cookies[COOKIE]}"
    for path in (f"/api/jobs/{job_id}/stems/../../../secret_key", f"/api/jobs/{job_id}/stems/..%2F..%2F..%2Fsecret_key",
                 f"/api/jobs/{job_id}/stems/%2e%2e%2fupload.flac", f"/api/jobs/{job_id}/stems/upload.flac",
                 f"/api/jobs/{job_id}/stems/drums.wav%00.txt", f"/api/jobs/{job_id}/stems/DRUMS.WAV",
                 f"/api/jobs/{job_id}/stems/..", f"/api/jobs/..%2F..%2Fsecret_key", "/api/jobs/../../secret_key",
                 "/static/../secret_key", "/static/..%2F..%2Fsecret_key", "/static/%2e%2e/app.py",
                 "/static//etc/passwd"):
        status, text = raw_request(server.url, f"GET {path} HTTP/1.1\nHost: localhost\nCookie: {cookie}\n"
                                               "Connection: close")
        assert status in (400, 404) and secret not in text and "root:" not in text, (path, status)


def test_uploads_are_stored_under_names_the_server_chooses(server, songs):
    alice, _ = new_user(server.url)
    data = Path(server.log).parent
    before = {path for path in Path(tempfile.gettempdir()).iterdir()}
    with open(songs["song"], "rb") as file:
        answer = alice.http.post("/api/jobs", headers={"X-CSRF-Token": alice.csrf_token},
                                 files={"file": ("../../../../../../tmp/evil.wav", file)})
    job_id = answer.json()["id"]
    assert alice.job(job_id)["name"] == "evil.wav"
    assert "upload.flac" in os.listdir(data / "jobs" / job_id)
    assert not list(data.rglob("evil*")) and not Path("/tmp/evil.wav").exists()
    assert {path for path in Path(tempfile.gettempdir()).iterdir()} - before == set()


# Uploads ----------------------------------------------------------------------------------------------------------

def test_an_upload_over_the_size_limit_is_413_by_its_length_or_by_counting(server):
    client, _ = new_user(server.url)
    cookie = f"{COOKIE}={client.http.cookies[COOKIE]}"
    status, text = raw_request(server.url, f"POST /api/jobs HTTP/1.1\nHost: localhost\nCookie: {cookie}\n"
                                           f"X-CSRF-Token: {client.csrf_token}\nContent-Type: multipart/form-data; "
                                           f"boundary=x\nContent-Length: {10 ** 12}")
    assert status == 413 and "larger than the limit of 40 MB" in text         # answered before any body

    def body():                                                              # chunked: no Content-Length at all
        yield b'--x\r\nContent-Disposition: form-data; name="file"; filename="big.wav"\r\n\r\n'
        for _ in range(48):
            yield bytes(1 << 20)

    answer = client.http.post("/api/jobs", content=body(), headers={"X-CSRF-Token": client.csrf_token,
                                                                    "Content-Type": "multipart/form-data; boundary=x"})
    assert answer.status_code == 413
    assert client.jobs() == []


def test_an_upload_is_never_read_whole_into_memory(server, tmp_path):
    client, _ = new_user(server.url)
    song = tmp_path / "thirty megabytes of silence.wav"
    sf.write(song, np.zeros((180 * 44100, 2), np.int16), 44100, subtype="PCM_16")
    assert song.stat().st_size > 30 * 2**20
    status = Path(f"/proc/{server.pid}/status")
    try:
        Path(f"/proc/{server.pid}/clear_refs").write_text("5")               # reset the peak of resident memory
    except OSError as error:
        pytest.skip(f"cannot reset the server's peak memory (/proc/PID/clear_refs: {error.strerror}); Linux only")
    rss = int(re.search(r"VmRSS:\s+(\d+)", status.read_text())[1])
    job_id = client.upload(song)
    peak = int(re.search(r"VmHWM:\s+(\d+)", status.read_text())[1])
    print(f"server memory: {rss / 1024:.0f} MB before, peak {peak / 1024:.0f} MB during a "
          f"{song.stat().st_size / 2**20:.0f} MB upload")
    assert peak - rss < 12 * 1024                                            # kB: far less than the file
    assert client.wait(job_id)["status"] == "failed"                         # (it is silence: see below)


def test_uploads_that_are_not_songs_get_400_with_a_message(server, songs):
    client, _ = new_user(server.url)
    for kind, said in (("text", "cannot be decoded as MP3, WAV, FLAC or OGG"), ("empty", "is empty (0 bytes)"),
                       ("damaged", "cannot be decoded"), ("aiff", "takes MP3, WAV, FLAC or OGG files"),
                       ("long", "lasts 5.0 minutes; the service separates songs of at most 4 minutes")):
        with pytest.raises(ApiError) as refused:
            client.upload(songs[kind])
        assert refused.value.status == 400 and said in refused.value.detail, (kind, refused.value.detail)
        assert str(Path(server.log).parent) not in refused.value.detail        # no server path in a message
    with pytest.raises(ApiError, match="shifts must be a whole number from 0 to 5"):
        client.upload(songs["song"], shifts=99)
    assert client.jobs() == []


def test_songs_the_course_cannot_separate_fail_with_its_message_and_mono_works(server, songs):
    client, _ = new_user(server.url)
    for kind, said in (("surround", "has 5 channels; the course works on stereo"),
                       ("silence", "the mixture is silent"), ("short", "too short to separate")):
        job_id, job = _done(client, songs[kind])
        assert job["status"] == "failed" and said in job["error"], (kind, job)
        assert client.http.get(f"/api/jobs/{job_id}/stems.zip").status_code == 404
    job_id, job = _done(client, songs["mono"])
    assert job["status"] == "done" and job["error"] is None
    stems = client.download(job_id, Path(server.log).parent / "downloads")
    for path in stems.values():
        audio, rate = sf.read(path)
        assert rate == 44100 and audio.shape == (int(1.5 * 44100), 2)


def test_every_answer_carries_the_security_headers(server):
    for path in ("/login", "/api/health", "/static/app.js", "/no/such/page"):
        headers = httpx.get(f"{server.url}{path}").headers
        assert "default-src 'self'" in headers["content-security-policy"], path
        assert headers["x-content-type-options"] == "nosniff" and headers["x-frame-options"] == "DENY"
        assert "server" not in headers


# Server B: Secure cookies, quotas, rate limits per address (its limit tests come last: they use up sign-ups) -----

@pytest.fixture(scope="module")
def server_b(tmp_path_factory):
    """Server B: no workers (jobs stay queued), the Secure flag, small quotas and small limits per address."""
    data = tmp_path_factory.mktemp("service-b")
    service = start_server(data, workers=0, env=ENV, args=[
        "--secure-cookies", "--quota-mb", 0.3, "--max-jobs", 2, "--signup-limit", 4, "--login-limit", 3])
    yield service
    assert service.stop() == 0, service.output()


def _b_user(server_b, email):
    """Sign up on server B; the headers of a request in that session (a Secure cookie: httpx would keep it for
    HTTPS, so it is sent by hand over the test's plain HTTP)."""
    answer = httpx.post(f"{server_b.url}/api/signup", json={"email": email, "password": PASSWORD})
    assert answer.status_code == 201, answer.text
    return answer, {"Cookie": f"{COOKIE}={answer.cookies[COOKIE]}", "X-CSRF-Token": answer.json()["csrf_token"]}


def test_the_cookie_is_secure_when_served_over_https(server_b):
    answer, _ = _b_user(server_b, "secure@example.com")
    attributes = [part.strip().lower() for part in answer.headers["set-cookie"].split(";")]
    assert "secure" in attributes and "httponly" in attributes and "samesite=lax" in attributes


def test_storage_quota_and_job_count_per_user(server_b, tmp_path):
    _, headers = _b_user(server_b, "quota@example.com")

    def upload(path):
        with open(path, "rb") as file:
            return httpx.post(f"{server_b.url}/api/jobs", headers=headers, files={"file": (path.name, file)})

    big = write_song(tmp_path / "big.wav", 2.0)                              # 0.34 MB: over the 0.3 MB quota
    refused = upload(big)
    assert refused.status_code == 403 and "over your quota of 0.30 MB" in refused.json()["detail"]
    small = write_song(tmp_path / "small.flac", 1.0)
    assert [upload(small).status_code for _ in range(3)] == [202, 202, 403]
    assert "you have 2 jobs" in upload(small).json()["detail"]
    assert len(os.listdir(Path(server_b.log).parent / "jobs")) == 2          # nothing left of the refused ones


def test_sign_ups_and_log_ins_are_limited_per_address_with_retry_after(server_b):
    statuses = []
    for k in range(5):
        answer = httpx.post(f"{server_b.url}/api/signup", json={"email": f"many{k}@example.com", "password": PASSWORD})
        statuses.append(answer.status_code)
        if answer.status_code == 429:
            assert int(answer.headers["retry-after"]) > 0
            break
    assert statuses[-1] == 429 and set(statuses[:-1]) <= {201}
    for k in range(4):
        answer = httpx.post(f"{server_b.url}/api/login", json={"email": f"nobody{k}@example.com", "password": "x" * 12})
        if k < 3:
            assert answer.status_code == 401
    assert answer.status_code == 429 and int(answer.headers["retry-after"]) > 0


# Load, restart, PostgreSQL, the command line -------------------------------------------------------------------

def _logged_done(log: str, count: int) -> list[str] | None:
    """The ids of the jobs a log says were done, once there are ``count`` of them (a worker logs a job just after
    marking it done, so a client can see it done first)."""
    done = re.findall(r"job ([0-9a-f]{32}) done", log)
    return done if len(done) >= count else None


def _wait_for(condition, timeout=120.0, what="the condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise TimeoutError(f"{what} did not happen within {timeout:g} s")


def test_load_20_users_upload_at_once_with_2_workers(tmp_path):
    data = tmp_path / "data"
    song = write_song(tmp_path / "song.flac", 1.0)
    service = start_server(data, workers=2, env=ENV, args=["--signup-limit", 100, "--expire-hours", 0.005])
    try:
        result = load_test(service.url, song, users=20)
        assert not result.errors, result.errors
        assert len(result.jobs) == 20 and {job["status"] for job in result.jobs.values()} == {"done"}
        assert all(result.listed[email] == [job["id"]] for email, job in result.jobs.items())   # only their own
        with session_factory(make_engine(f"sqlite:///{data / 'unmix.sqlite3'}"))() as db:
            claims = dict(db.execute(select(Job.id, Job.attempts)).all())
        assert sorted(claims) == sorted(job["id"] for job in result.jobs.values())                # none lost
        assert set(claims.values()) == {1}                                   # each claimed exactly once
        done_lines = _wait_for(lambda: _logged_done(service.output(), len(claims)), what="the workers' log lines")
        assert sorted(done_lines) == sorted(claims)                          # and separated exactly once
        print(f"\nload test: 20 users, 2 workers, {result.seconds:.1f} s from the first sign-up to the last stem")
        for kind, row in result.table().items():
            print(f"  {kind:7s} p50 {row['p50 ms']:7.1f} ms  p95 {row['p95 ms']:7.1f} ms  ({row['calls']} calls)")
        deadline = time.monotonic() + 60                                     # finished jobs expire (18 s here)
        while os.listdir(data / "jobs") and time.monotonic() < deadline:
            time.sleep(1)
        assert os.listdir(data / "jobs") == []
        with Client(service.url) as client:
            client.login("load0@example.com", "load test password")
            assert client.jobs() == []
            assert client.http.get(f"/api/jobs/{result.jobs['load0@example.com']['id']}").status_code == 404
    finally:
        assert service.stop() == 0, service.output()


def test_a_killed_worker_and_a_killed_server_lose_no_job(tmp_path):
    data = tmp_path / "data"
    song = write_song(tmp_path / "song.flac", 1.0)
    service = start_server(data, workers=1, env=ENV, args=["--pause", 3])
    sessions = session_factory(make_engine(f"sqlite:///{data / 'unmix.sqlite3'}"))

    def row(job_id):
        with sessions() as db:
            return db.get(Job, job_id, populate_existing=True)

    def running(job_id):
        job = row(job_id)
        return job if job.status == "running" and job.stage == "separated" else None

    try:
        client, _ = new_user(service.url)
        first = client.upload(song)
        holder = _wait_for(lambda: running(first), what="the first job running").worker
        os.kill(int(holder.rsplit(":", 1)[1]), 9)                             # the worker crashes mid-job
        job = client.wait(first, timeout=120)
        assert (job["status"], row(first).attempts) == ("done", 2)
        assert row(first).worker != holder
        assert "goes back to the queue" in service.output()

        second, third = client.upload(song), client.upload(song)             # one runs, one waits
        holder = _wait_for(lambda: running(second), what="the second job running").worker
        service.kill()                                                       # the server crashes,
        os.kill(int(holder.rsplit(":", 1)[1]), 9)                             # and its worker with it
        assert row(second).status == "running" and row(third).status == "queued"
    finally:
        service.kill()
    service = start_server(data, workers=1, env=ENV)                         # restarted, without the pause
    try:
        assert "1 job(s) queued again" in service.output()
        client.http.base_url = service.url
        for job_id, claims in ((second, 2), (third, 1)):
            assert client.wait(job_id, timeout=120)["status"] == "done"
            assert row(job_id).attempts == claims
        assert len(client.download(second, tmp_path / "stems")) == len(SOURCES)
    finally:
        assert service.stop() == 0, service.output()


@pytest.fixture(scope="module")
def postgres():
    """A throwaway PostgreSQL cluster on 127.0.0.1 and a free port, in a temporary folder; its URL. Run as the user
    ``unmix-pg`` (created if missing) when the tests run as root, since PostgreSQL refuses to."""
    binaries = [os.path.dirname(shutil.which("initdb") or ""), *sorted(map(str, Path("/usr/lib/postgresql").glob(
        "*/bin")), reverse=True)]
    folder = next((b for b in binaries if b and os.access(os.path.join(b, "initdb"), os.X_OK)), None)
    if folder is None:
        pytest.skip("no PostgreSQL server here (initdb and pg_ctl): apt-get install postgresql to run this test")
    root = Path(tempfile.mkdtemp(prefix="unmix-pg-"))
    prefix = []
    if os.geteuid() == 0:
        if subprocess.run(["id", "-u", "unmix-pg"], capture_output=True).returncode != 0:
            made = subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                                   "unmix-pg"], capture_output=True, text=True)
            if made.returncode != 0:
                pytest.skip(f"PostgreSQL refuses to run as root, and useradd unmix-pg failed: {made.stderr.strip()}")
        shutil.chown(root, "unmix-pg")
        prefix = ["runuser", "-u", "unmix-pg", "--"]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    def run(*command):
        done = subprocess.run([*prefix, os.path.join(folder, command[0]), *command[1:]], capture_output=True,
                              text=True)
        if done.returncode != 0:
            pytest.skip(f"PostgreSQL could not be started here: {command[0]}: {(done.stderr or done.stdout).strip()}")

    run("initdb", "-D", str(root / "data"), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
    run("pg_ctl", "-D", str(root / "data"), "-l", str(root / "log"), "-w", "-o",
        f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off", "start")
    yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    subprocess.run([*prefix, os.path.join(folder, "pg_ctl"), "-D", str(root / "data"), "-m", "immediate", "stop"],
                   capture_output=True)
    shutil.rmtree(root, ignore_errors=True)


def test_postgres_skip_locked_lets_a_second_worker_take_the_next_job(postgres):
    sessions = session_factory(make_engine(postgres))
    with sessions() as db:
        user = User(email="pg@example.com", password_hash="x", created_at=0.0)
        db.add(user)
        db.flush()
        ids = [jobs.new_job_id() for _ in range(2)]
        db.add_all(Job(id=job_id, user_id=user.id, status="queued", name="s.wav", upload="upload.wav", seconds=1.0,
                       upload_bytes=1, created_at=float(k), keep_seconds=60.0) for k, job_id in enumerate(ids))
        db.commit()
    with sessions() as first, sessions() as second:
        locked = first.scalar(select(Job).where(Job.status == "queued").order_by(Job.created_at).limit(1)
                              .with_for_update())                            # a claim in progress holds the oldest
        assert locked.id == ids[0]
        second.connection().exec_driver_sql("SET lock_timeout = '2s'")      # waiting would fail after 2 s
        start = time.perf_counter()
        taken = jobs.claim(second, "other-host:1")
        assert taken.id == ids[1] and time.perf_counter() - start < 1.5        # the next one, without waiting
        first.rollback()
        assert jobs.claim(first, "this-host:1").id == ids[0]
        assert jobs.claim(first, "this-host:1") is None


def test_two_worker_processes_share_a_postgres_job_table(postgres, tmp_path):
    data = tmp_path / "data"
    song = write_song(tmp_path / "song.flac", 1.0)
    service = start_server(data, workers=0, database=postgres, env=ENV)
    workers = [start_worker(data, database=postgres, env=ENV, log=tmp_path / f"worker{k}.log") for k in range(2)]
    try:
        alice, _ = new_user(service.url, "pg-a")
        bob, _ = new_user(service.url, "pg-b")
        ids = [client.upload(song) for client in (alice, bob, alice, bob)]
        finished = [(alice if k % 2 == 0 else bob).wait(job_id, timeout=180) for k, job_id in enumerate(ids)]
        assert {job["status"] for job in finished} == {"done"}
        with session_factory(make_engine(postgres))() as db:
            claims = dict(db.execute(select(Job.id, Job.attempts).where(Job.id.in_(ids))).all())
        assert claims == {job_id: 1 for job_id in ids}
        logs = _wait_for(lambda: _logged_done("".join(worker.output() for worker in workers), len(ids)),
                         what="the workers' log lines")
        assert sorted(logs) == sorted(ids)
        assert bob.http.get(f"/api/jobs/{ids[0]}").status_code == 404
    finally:
        for worker in workers:
            assert worker.stop() == 0, worker.output()
        assert service.stop() == 0, service.output()


def test_the_commands_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    data = str(tmp_path / "data")
    (tmp_path / "a file").write_text("")
    for argv, said in ((["serve", "--port", "70000"], "--port must be from 0 to 65535"),
                       (["serve", "--data-dir", data, "--max-upload-mb", "0"], "max_upload_bytes must be a positive"),
                       (["serve", "--data-dir", str(tmp_path / "a file")], "is a file; give a folder"),
                       (["serve", "--data-dir", data, "--database", "mysql://u@h/db"], "SQLite or PostgreSQL"),
                       (["serve", "--data-dir", data, "--port", str(taken.getsockname()[1])], "cannot listen on"),
                       (["worker", "--data-dir", data, "--checkpoint", str(tmp_path / "none.pt")], "no such file"),
                       (["worker", "--data-dir", data, "--threads", "0"], "--threads must be 1 or more")):
        assert cli.main(argv) == 2, argv
        err = capsys.readouterr().err
        assert said in err and err.count("\n") == 1, (argv, err)
    taken.close()
