"""Plausible wrong answers to exercise 11. Each dict is one wrong submission; the tests check that the autograder
gives every question in it less than full marks (tests/test_exercises.py)."""

WRONG_ANSWERS = [
    {
        # == stops at the first difference: the answer's timing tells how much of a guess was right
        "q1": '''def same_token(given, expected):
    return isinstance(given, str) and given == expected''',
        # os.path.basename knows only the forward slash, and only newlines and NUL are taken out
        "q2": '''import os
def display_name(filename):
    text = os.path.basename(filename or "")
    text = text.replace("\\x00", " ").replace("\\r", " ").replace("\\n", " ")
    return " ".join(text.split())[:200] or "upload"''',
        # an attempt exactly `window` seconds old is left out of the count
        "q3": '''import math
def retry_after(attempts, limits, window, now):
    wait = None
    for key, limit in limits:
        recent = [at for at in attempts.get(key, ()) if at > now - window]
        if len(recent) >= limit:
            wait = max(wait or 0, max(1, math.ceil(min(recent) + window - now)))
    return wait''',
    },
    {
        # compare_digest on the strings themselves: a TypeError for a token outside ASCII, or for None
        "q1": '''import hmac
def same_token(given, expected):
    return hmac.compare_digest(given, expected)''',
        # only the ASCII control characters: the right-to-left override and zero-width spaces stay
        "q2": '''def display_name(filename):
    text = ("" if filename is None else str(filename)).replace("\\\\", "/").rsplit("/", 1)[-1]
    text = "".join(" " if ord(c) < 32 or ord(c) == 127 else c for c in text)
    return " ".join(text.split())[:200] or "upload"''',
        # waits until the newest attempt leaves the window, and rounds down
        "q3": '''def retry_after(attempts, limits, window, now):
    wait = None
    for key, limit in limits:
        recent = [at for at in attempts.get(key, ()) if at >= now - window]
        if len(recent) >= limit:
            wait = max(wait or 0, max(1, int(max(recent) + window - now)))
    return wait''',
    },
    {
        # the byte strings compared with ==, after a check of the type
        "q1": '''def same_token(given, expected):
    if not isinstance(given, str):
        return False
    return given.encode() == expected.encode()''',
        # cut to 200 characters before the whitespace is collapsed, and no "upload" for an empty name
        "q2": '''import unicodedata
def display_name(filename):
    text = ("" if filename is None else str(filename)).replace("\\\\", "/").rsplit("/", 1)[-1]
    text = "".join(" " if unicodedata.category(c).startswith("C") else c for c in text)[:200]
    return " ".join(text.split())''',
        # no minimum of 1 s, and the shortest wait over the keys instead of the longest
        "q3": '''import math
def retry_after(attempts, limits, window, now):
    waits = []
    for key, limit in limits:
        recent = [at for at in attempts.get(key, ()) if at >= now - window]
        if len(recent) >= limit:
            waits.append(math.ceil(min(recent) + window - now))
    return min(waits) if waits else None''',
    },
]

# Answers that only call the course's own functions: the tests run the student's code inside
# demucs_course.grading_guard.own_work, so these fail (tests/test_exercises.py).
CALL_THROUGH = {
    "q1": '''from demucs_course.webapp.security import same_token''',
    "q2": '''from demucs_course.webapp import uploads
def display_name(filename):
    return uploads.display_name(filename)''',
    # check_rate counts in the database: the answer puts the attempts in an in-memory one first
    "q3": '''from sqlalchemy import create_engine
from sqlalchemy.orm import Session
from demucs_course.webapp.db import Attempt, Base
from demucs_course.webapp.security import check_rate
def retry_after(attempts, limits, window, now):
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    with Session(engine) as db:
        db.add_all(Attempt(key=key, at=at) for key, times in attempts.items() for at in times)
        db.flush()
        return check_rate(db, limits, window, now=now)''',
}
