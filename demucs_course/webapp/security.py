"""Chapter 11: the web app's security rules, each a small function with its own test.

- **Passwords** are hashed with argon2id (argon2-cffi's defaults: 3 passes over 64 MiB, 4 lanes), the winner of the
  Password Hashing Competition: slow and memory-hard on purpose, so that a stolen table of hashes is expensive to
  attack. A password has :data:`MIN_PASSWORD` to :data:`MAX_PASSWORD` characters (the maximum bounds the work one
  request can ask for). An unknown e-mail address costs a log-in as much as a wrong password
  (:func:`verify_password` against a dummy hash), so the time of an answer does not tell which addresses exist.
- **E-mail addresses** are checked and normalised by email-validator (syntax only: no DNS look-up).
- **Session and CSRF tokens** are 256 random bits from :mod:`secrets`; the database keeps the session token's
  SHA-256 only. CSRF tokens are compared in constant time.
- **Rate limits** count attempts in the ``attempts`` table, per client address and per account, over a sliding
  window; over the limit, :func:`check_rate` answers how many seconds to wait (the ``Retry-After`` header).
"""

from __future__ import annotations

import functools
import hashlib
import math
import secrets
import time

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from email_validator import EmailNotValidError, validate_email
from sqlalchemy import delete, func, select

from .config import WebAppError
from .db import Attempt

MIN_PASSWORD = 10
MAX_PASSWORD = 128
MAX_EMAIL = 254            # RFC 5321's limit on a forward path

_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    return _hasher.hash("not the password of anyone")


class CredentialsError(WebAppError):
    """An e-mail address or password that cannot be used, with what to do."""


def check_email(email) -> str:
    """The normalised form of an e-mail address (domain in lower case, then all of it in lower case), or a
    :class:`CredentialsError` saying what is wrong with it."""
    if not isinstance(email, str) or not email.strip():
        raise CredentialsError("give an e-mail address")
    if len(email) > MAX_EMAIL:
        raise CredentialsError(f"an e-mail address has at most {MAX_EMAIL} characters")
    try:
        return validate_email(email.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError as error:
        raise CredentialsError(f"not a valid e-mail address: {error}") from None


def check_password(password) -> str:
    """``password`` if its length is within :data:`MIN_PASSWORD` and :data:`MAX_PASSWORD`, else a
    :class:`CredentialsError`."""
    if not isinstance(password, str):
        raise CredentialsError("give a password")
    if len(password) < MIN_PASSWORD:
        raise CredentialsError(f"the password is too short: use at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise CredentialsError(f"the password is too long: use at most {MAX_PASSWORD} characters")
    return password


def hash_password(password: str) -> str:
    """The argon2id hash of ``password`` (its parameters and salt are in the string)."""
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches ``password_hash``. With ``password_hash=None`` (no such user) it checks against
    a dummy hash and returns False: the same work, so the answer's timing tells nothing."""
    try:
        return _hasher.verify(password_hash or _dummy_hash(), password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """Whether a hash was made with weaker parameters than today's (rehash it at the next log-in)."""
    return _hasher.check_needs_rehash(password_hash)


def new_token() -> str:
    """256 random bits, hex: a session token, a CSRF token."""
    return secrets.token_hex(32)


def token_digest(token: str) -> str:
    """What the database keeps of a session token: its SHA-256, hex."""
    return hashlib.sha256(token.encode()).hexdigest()


def same_token(given, expected: str) -> bool:
    """Whether a CSRF token sent with a request is the session's, compared in constant time."""
    return isinstance(given, str) and secrets.compare_digest(given.encode(), expected.encode())


def check_rate(db, keys_and_limits, window: float, now: float | None = None) -> int | None:
    """Seconds to wait (at least 1) if any ``(key, limit)`` of ``keys_and_limits`` already has ``limit`` attempts
    in the last ``window`` seconds, else None. Old attempts are deleted on the way."""
    now = time.time() if now is None else now
    db.execute(delete(Attempt).where(Attempt.at < now - window))
    wait = None
    for key, limit in keys_and_limits:
        count, oldest = db.execute(select(func.count(), func.min(Attempt.at)).where(Attempt.key == key)).one()
        if count >= limit:
            wait = max(wait or 0, max(1, math.ceil(oldest + window - now)))
    return wait


def record_attempt(db, *keys: str, now: float | None = None) -> None:
    """Count one attempt against each of ``keys``."""
    now = time.time() if now is None else now
    db.add_all(Attempt(key=key, at=now) for key in keys)
