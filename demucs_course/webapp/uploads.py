"""Chapter 11: an upload, from the request's body to a file the server names, checked before any job exists.

The rules, each with a test:

- the body is **never read whole into memory**: the multipart parser spools the file to disk past 1 MiB, and
  :func:`store_upload` copies it in chunks of :data:`CHUNK` bytes. Its size is limited twice, by the
  ``Content-Length`` header before anything is read and by counting the bytes as they arrive (a chunked body has no
  length), both answered with 413 (``app.BodyLimit``);
- the file is stored under a **name the server chooses**, ``jobs/<job id>/upload.<ext>``, where the ending comes
  from the decoded format; the name the browser sent is kept for display only (:func:`display_name`), so no path in
  a request reaches the file system;
- the content is **decoded** to check it is audio (:func:`probe_upload`): a renamed text file, a damaged MP3 or an
  empty file is refused with 400 and a message, and so is a song longer than the limit. Only what the header and the
  first seconds tell is checked here, cheaply, in the request; the worker reads the whole file with the course's
  :func:`~demucs_course.capstone.load_song`, whose errors -- more than two channels, silence, a clip too short --
  become the job's error. Mono is accepted (it is duplicated to stereo).
"""

from __future__ import annotations

import shutil
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import soundfile as sf

from ..audio import _decoder_notes
from .config import WebAppError

#: The formats the service takes, as libsndfile names them, and the ending each is stored with.
FORMATS = {"MP3": "mp3", "WAV": "wav", "WAVEX": "wav", "RF64": "wav", "FLAC": "flac", "OGG": "ogg"}
#: Bytes copied at a time.
CHUNK = 1 << 20
#: How much of the song the request decodes to check it is audio (seconds).
PROBE_SECONDS = 2.0


class UploadError(WebAppError):
    """An upload that is not a usable song (400), with a message that says what to do."""


@dataclass
class Upload:
    """A checked upload: the file's ending (from its content), its duration and its size."""

    ending: str
    seconds: float
    size: int


def display_name(filename) -> str:
    """The name an upload is shown with: the last part of what the browser sent (either slash), without control
    characters, at most 200 characters; ``"upload"`` when nothing is left. Never used as a path."""
    text = str(filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    text = "".join(" " if unicodedata.category(c).startswith("C") else c for c in text)
    return " ".join(text.split())[:200] or "upload"


def store_upload(source, target: Path) -> int:
    """Copy the file object ``source`` to ``target`` in chunks; returns the number of bytes."""
    with open(target, "wb") as out:
        shutil.copyfileobj(source, out, CHUNK)
    return target.stat().st_size


def probe_upload(path: Path, name: str, max_seconds: float) -> Upload:
    """Check that ``path`` holds an MP3, WAV, FLAC or OGG song no longer than ``max_seconds``, and decode its first
    :data:`PROBE_SECONDS`; an :class:`UploadError` naming the upload ``name`` (never the server's path) otherwise."""
    size = path.stat().st_size
    if size == 0:
        raise UploadError(f"{name!r} is empty (0 bytes): choose the audio file again")
    try:
        with _decoder_notes() as notes:
            info = sf.info(str(path))
            if info.format not in FORMATS:
                raise UploadError(f"{name!r} is {info.format_info}; the service takes MP3, WAV, FLAC or OGG files. "
                                  f"Convert it first, e.g. ffmpeg -i in.{info.format.lower()} out.flac")
            with sf.SoundFile(str(path)) as file:
                file.read(frames=min(file.frames, int(PROBE_SECONDS * file.samplerate)), dtype="float32")
    except (sf.SoundFileError, RuntimeError) as error:
        lines = notes[-1].strip().splitlines() if notes else []
        said = next((line[6:] for line in lines if line.startswith("Note: ")), lines[0] if lines else
                    getattr(error, "error_string", "format not recognised"))
        said = str(said).strip().rstrip(".")
        raise UploadError(f"{name!r} cannot be decoded as MP3, WAV, FLAC or OGG audio (the decoder says: {said}). "
                          "Is it an audio file? Re-export or convert it") from None
    seconds = info.frames / info.samplerate
    if seconds > max_seconds:
        raise UploadError(f"{name!r} lasts {seconds / 60:.1f} minutes; the service separates songs of at most "
                          f"{max_seconds / 60:g} minutes. Cut it first, e.g. ffmpeg -i in.mp3 -t "
                          f"{max_seconds:g} out.mp3")
    return Upload(FORMATS[info.format], seconds, size)
