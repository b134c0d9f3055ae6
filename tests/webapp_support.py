"""What the web app's tests share: short songs and bad files to upload, users, and a raw HTTP request."""

from __future__ import annotations

import itertools
import socket
from pathlib import Path

import numpy as np
import soundfile as sf

from demucs_course import SAMPLE_RATE
from demucs_course.webapp.client import Client

PASSWORD = "correct horse battery"
_users = itertools.count()


def write_song(path, seconds: float = 1.5, *, channels: int = 2, rate: int = SAMPLE_RATE, **options) -> Path:
    """A short chord with clicks (or ``channels`` of it) at ``rate``, written by soundfile (format from the ending,
    or ``format=``/``subtype=``)."""
    t = np.arange(int(seconds * rate)) / rate
    chord = sum(np.sin(2 * np.pi * f * t) for f in (220.0, 277.2, 329.6)) / 6
    clicks = (np.arange(t.size) % (rate // 4) < rate // 200) * 0.3
    wav = np.stack([(chord + clicks) * (0.9 ** k) for k in range(channels)], axis=1)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, wav, rate, **options)
    return path


def new_user(url: str, prefix: str = "user") -> tuple[Client, str]:
    """A client of ``url`` signed up (and so logged in) as a new user; the client and the e-mail address."""
    email = f"{prefix}{next(_users)}@example.com"
    client = Client(url)
    client.signup(email, PASSWORD)
    return client, email


def raw_request(url: str, head: str, body: bytes = b"", timeout: float = 10.0) -> tuple[int, str]:
    """Send ``head`` (request line and headers, no final blank line) and ``body`` over a plain socket, as no HTTP
    library would (a Content-Length that lies); the status code and the whole answer's text."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(head.replace("\n", "\r\n").encode() + b"\r\n\r\n" + body)
        answer = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            answer += chunk
    text = answer.decode(errors="replace")
    return int(text.split(" ", 2)[1]), text
