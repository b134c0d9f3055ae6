"""Chapter 1: Listening to the problem -- a toy multitrack set in the MUSDB18-HQ layout.

Demucs learns from MUSDB18: 150 songs, each stored as a mixture and its four stems (drums, bass, other, vocals),
with ``mixture = drums + bass + other + vocals``. MUSDB18 cannot be downloaded everywhere the course runs (the test
machines, CI, a first look in a notebook), so this module *writes* a small stand-in with the same shape:

    root/
        train/<Artist - Title>/{mixture,drums,bass,other,vocals}.wav     stereo, 44.1 kHz, 16-bit PCM
        test/<Artist - Title>/...
        valid.txt       the names of the train tracks kept for validation, one a line
        toy.json        the manifest: generator version, arguments, track names per split, durations

That is the MUSDB18-HQ folder layout, so the course reads it with the real ``musdb.DB(root, is_wav=True)``, and the
same code reads the real dataset in Colab. (musdb's own ``split='valid'`` only knows the 14 real MUSDB validation
tracks; on the toy set the course reads ``valid.txt`` instead, see :func:`read_valid_list`.)

Each toy song is generated from a seed: a tempo, a key, a chord progression, and four instruments that follow them --

- **drums**: a kick (a sine whose pitch sweeps down), a snare (a noise burst plus a tone), hi-hats (short high-passed
  noise) and the odd crash and tom, on a tempo grid with a few patterns, fills and velocity variation;
- **bass**: plucked, saw-like low notes (fundamentals of about 40-160 Hz) on the chord roots;
- **other**: the chords, as a pad of detuned saws, an organ, or comping electric keys;
- **vocals**: a sung melody: a glottal-pulse-like harmonic source with vibrato, filtered through vowel formants that
  change every syllable, in phrases with short breaths between them.

Bass, other and vocals are all harmonic and share the same notes and frequency range, as in real music, so the
mixture cannot be split by a simple filter, but each source has its own timbre and rhythm that a network can learn.
Every stem is written as 16-bit integers first and the mixture is their exact integer sum, so the mixture read back
is exactly the sum of the stems read back.

Generating the default set (16 train tracks of 20 s, 4 test tracks of 8 s, about 300 MB) takes about 5 s of one CPU
core (measured: 4.7-5.3 s of CPU time, 8-9 s of wall time on a busy 2-core machine). The first
:func:`ensure_toy_musdb` does it once; later calls find the folder and return at once::

    >>> root = ensure_toy_musdb()                                   # doctest: +SKIP
    >>> mus = musdb.DB(root, is_wav=True, subsets="train")          # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy import signal

from demucs_course import SAMPLE_RATE, SOURCES

#: The generator's version. Bump it whenever the audio it writes changes: it names the cache folder and is stored in
#: the manifest, so an old cached set is never mistaken for a new one.
TOY_VERSION = 1

#: The default arguments of :func:`make_toy_musdb` (the set the course trains on).
TOY_DEFAULTS = dict(n_train=16, n_valid=2, n_test=4, train_seconds=20.0, test_seconds=8.0, seed=0)

#: The five files of every track folder, as in MUSDB18-HQ.
TRACK_FILES = tuple(f"{name}.wav" for name in ("mixture",) + SOURCES)

MANIFEST = "toy.json"
VALID_LIST = "valid.txt"
_INCOMPLETE = ".toy-incomplete"  # present while a generation is under way; an interrupted one leaves it behind
_LOCK = ".toy.lock"  # serialises two processes generating into the same folder

SR = SAMPLE_RATE


# ---------------------------------------------------------------------------------------------------------------------
# 1. Track names: invented "Artist - Title" strings, as in MUSDB18 ("A Classic Education - NightOwl").
# ---------------------------------------------------------------------------------------------------------------------

_ADJECTIVES = (
    "Amber", "Blue", "Broken", "Copper", "Crimson", "Distant", "Electric", "Empty", "Golden", "Hollow", "Honey",
    "Iron", "Lonely", "Lucky", "Midnight", "Neon", "Paper", "Quiet", "Restless", "Silver", "Slow", "Static",
    "Sudden", "Velvet", "Wild", "Winter", "Glass", "Little", "Northern", "Secret",
)
_NOUNS = (
    "Anchors", "Arrows", "Birds", "Bridges", "Clouds", "Comets", "Engines", "Foxes", "Gardens", "Harbours",
    "Horses", "Islands", "Lanterns", "Lights", "Machines", "Mirrors", "Moths", "Oceans", "Rivers", "Satellites",
    "Shadows", "Signals", "Sparrows", "Stones", "Strangers", "Towers", "Trains", "Waves", "Wolves", "Years",
)
_TITLE_WORDS = (
    "Afterglow", "Avenue", "Daylight", "Echo", "Fever", "Firework", "Gravity", "Heartbeat", "Highway", "Horizon",
    "July", "Lullaby", "Monday", "Morning", "Motel", "Orbit", "Paradise", "Postcard", "Rain", "Runaway", "Sunday",
    "Tide", "Thunder", "Undertow", "Weather", "Window", "Wire", "Yesterday", "Kingdom", "Telephone",
)


def _track_names(rng: np.random.Generator, count: int) -> list[str]:
    """``count`` distinct invented names like ``"The Paper Moths - Slow Orbit"``."""
    names: list[str] = []
    while len(names) < count:
        adjective, noun = rng.choice(_ADJECTIVES), rng.choice(_NOUNS)
        artist = f"The {adjective} {noun}" if rng.random() < 0.5 else f"{adjective} {noun}"
        title = f"{rng.choice(_ADJECTIVES)} {rng.choice(_TITLE_WORDS)}"
        name = f"{artist} - {title}"
        if name not in names:
            names.append(name)
    return names


# ---------------------------------------------------------------------------------------------------------------------
# 2. The score: a song is a tempo, a key, a chord progression, and a list of notes or hits per instrument.
# ---------------------------------------------------------------------------------------------------------------------

SHARP_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
FLAT_NAMES = ("C", "Db", "D", "Eb", "E", "F", "Gb", "G", "Ab", "A", "Bb", "B")
SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10)}
#: Chord progressions as scale degrees (0 = the tonic): I-V-vi-IV, vi-IV-I-V, ...; i-VI-III-VII, ...
PROGRESSIONS = {
    "major": ((0, 4, 5, 3), (5, 3, 0, 4), (0, 5, 3, 4), (1, 4, 0, 0), (0, 3, 0, 4), (3, 0, 4, 5)),
    "minor": ((0, 5, 2, 6), (0, 3, 4, 0), (0, 6, 5, 6), (0, 5, 3, 4), (0, 3, 6, 2)),
}
VOWELS = {  # formant frequencies F1, F2, F3 in Hz (adult voice, after Peterson & Barney 1952)
    "a": (730, 1090, 2440),
    "e": (530, 1840, 2480),
    "i": (270, 2290, 3010),
    "o": (570, 840, 2410),
    "u": (300, 870, 2240),
}
FORMANT_BANDWIDTHS = (80.0, 100.0, 130.0)
#: Two higher formants that stay put whatever the vowel (frequency, bandwidth): the voice's "ring".
FIXED_FORMANTS = ((3300.0, 200.0), (3850.0, 250.0))


def midi_to_hz(pitch):
    """The frequency of a MIDI pitch (69 = A4 = 440 Hz; fractional pitches are allowed)."""
    return 440.0 * 2.0 ** ((np.asarray(pitch, dtype=np.float64) - 69.0) / 12.0)


@dataclass
class Note:
    """One note of the score: ``start`` and ``length`` (to the note-off) in seconds, ``pitch`` as a MIDI number."""

    start: float
    length: float
    pitch: float
    velocity: float = 1.0
    vowel: str = ""  # vocals: the syllable's vowel, one of VOWELS
    consonant: str = ""  # vocals: "", "s" (a hiss before the vowel) or "t" (a short burst)


@dataclass
class Hit:
    """One drum hit: ``piece`` is "kick", "snare", "hat", "open_hat", "crash" or "tom0".."tom2"."""

    time: float
    piece: str
    velocity: float


@dataclass
class Song:
    """Everything needed to render one toy track; :func:`plan_song` draws it, :func:`render_song` plays it."""

    seconds: float
    tempo: float  # beats per minute
    tonic: int  # pitch class, 0 = C
    mode: str  # "major" or "minor"
    progression: tuple  # scale degrees, one chord per ``bars_per_chord`` bars
    bars_per_chord: int
    drums: list = field(default_factory=list)  # of Hit
    bass: list = field(default_factory=list)  # of Note
    other: list = field(default_factory=list)  # of Note
    vocals: list = field(default_factory=list)  # of Note
    sound: dict = field(default_factory=dict)  # timbre parameters, one dict per instrument
    gains_db: dict = field(default_factory=dict)  # loudness of each stem, dBFS RMS before the final headroom
    render_seed: int = 0  # seeds the noise of the drums and the breath of the voice

    @property
    def key(self) -> str:
        return f"{_note_names(self.tonic, self.mode)[self.tonic]} {self.mode}"

    def describe(self) -> dict:
        """The song in a few words (stored in the manifest)."""
        chords = [_chord_name(self.tonic, self.mode, degree) for degree in self.progression]
        return {"tempo": round(self.tempo, 2), "key": self.key, "progression": chords,
                "other": self.sound["other"]["style"], "voice": self.sound["vocals"]["register"]}


def _chord_name(tonic: int, mode: str, degree: int) -> str:
    root, third, _ = _chord_pitch_classes(tonic, mode, degree)
    return _note_names(tonic, mode)[root] + ("m" if (third - root) % 12 == 3 else "")


def _note_names(tonic: int, mode: str) -> tuple:
    """Note names as the key signature spells them: with flats in F, Bb, Eb, Ab, Db major (and their minors)."""
    major_tonic = tonic if mode == "major" else (tonic + 3) % 12
    return FLAT_NAMES if major_tonic in (5, 10, 3, 8, 1) else SHARP_NAMES


def _chord_pitch_classes(tonic: int, mode: str, degree: int, seventh: bool = False) -> list[int]:
    """The diatonic triad (or seventh chord) on a scale degree: every other note of the scale."""
    scale = SCALES[mode]
    steps = (0, 2, 4, 6) if seventh else (0, 2, 4)
    return [(tonic + scale[(degree + s) % 7]) % 12 for s in steps]


def _nearest_pitch(pitch_class: int, center: float) -> int:
    """The MIDI pitch of that pitch class closest to ``center``."""
    low = int(np.floor(center - 6))
    return low + (pitch_class - low) % 12


# Drum patterns, as steps of a 16-step bar (16th notes).
_KICKS = ((0, 8), (0, 4, 8, 12), (0, 7, 8, 10), (0, 3, 8, 11), (0, 8, 10), (0, 6, 10))
_SNARES = ((4, 12), (4, 12), (4, 12, 15), (4, 7, 12))
_HATS = {
    "eighths": tuple(range(0, 16, 2)),
    "sixteenths": tuple(range(16)),
    "open_offbeats": (0, 2, 4, 6, 8, 10, 12, 14),  # the off-beat eighths (2, 6, 10, 14) ring open
}
_FILLS = (
    ((12, "snare"), (13, "snare"), (14, "snare"), (15, "snare")),
    ((8, "tom0"), (10, "tom0"), (12, "tom1"), (14, "tom2")),
    ((10, "snare"), (11, "snare"), (12, "tom0"), (13, "tom1"), (14, "tom2"), (15, "tom2")),
)
# Bass patterns: (step, length in steps, what to play): "R" the root, "5" the fifth, "8" the octave, "A" an approach
# note one scale step from the next chord's root.
_BASS_PATTERNS = (
    ((0, 4, "R"), (4, 4, "R"), (8, 4, "R"), (12, 4, "R")),
    ((0, 2, "R"), (2, 2, "R"), (4, 2, "R"), (6, 2, "8"), (8, 2, "R"), (10, 2, "R"), (12, 2, "5"), (14, 2, "A")),
    ((0, 6, "R"), (6, 2, "R"), (8, 4, "5"), (12, 2, "8"), (14, 2, "A")),
    ((0, 3, "R"), (3, 3, "R"), (6, 2, "8"), (8, 3, "R"), (11, 3, "5"), (14, 2, "A")),
    ((0, 8, "R"), (8, 6, "5"), (14, 2, "A")),
)
# Comping rhythms of the "keys" style: (step, length in steps).
_COMPS = (((0, 6), (6, 4), (10, 6)), ((0, 4), (4, 4), (8, 4), (12, 4)), ((0, 3), (3, 5), (8, 3), (11, 5)))


def plan_song(rng: np.random.Generator, seconds: float) -> Song:
    """Draw a song of ``seconds``: tempo, key, progression, timbres, and the notes of the four instruments."""
    mode = "major" if rng.random() < 0.6 else "minor"
    progressions = PROGRESSIONS[mode]
    tempo = float(rng.integers(80, 141))
    song = Song(
        seconds=seconds,
        tempo=tempo,
        tonic=int(rng.integers(12)),
        mode=mode,
        progression=progressions[rng.integers(len(progressions))],
        bars_per_chord=1 if tempo < 110 or rng.random() < 0.5 else 2,
        render_seed=int(rng.integers(2**31)),
    )
    song.sound = _draw_sound(rng)
    # Loudness: every stem near -21 dBFS RMS, each a few dB up or down.
    song.gains_db = {name: -21.0 + rng.uniform(-3.0, 3.0) for name in SOURCES}
    song.drums = _plan_drums(rng, song)
    song.bass = _plan_bass(rng, song)
    song.other = _plan_other(rng, song)
    song.vocals = _plan_vocals(rng, song)
    return song


def _draw_sound(rng: np.random.Generator) -> dict:
    """Per-track timbres: the drum kit, the bass, the chord instrument and the voice."""
    u = rng.uniform
    return {
        "drums": {
            "kick": dict(f_start=u(110, 180), f_end=u(42, 60), sweep=u(0.02, 0.05), decay=u(0.08, 0.2)),
            "snare": dict(tone=u(160, 240), noise_center=u(1500, 3500), decay=u(0.05, 0.12), tone_level=u(0.3, 0.8)),
            "hat": dict(cutoff=u(6000, 9000), decay=u(0.02, 0.05), scale=u(0.8, 1.25)),
            "toms": sorted((u(90, 220) for _ in range(3)), reverse=True),
            "swing": u(0.0, 0.12) if rng.random() < 0.4 else 0.0,
            "pans": dict(kick=0.0, snare=u(-0.15, 0.15), hat=u(-0.5, 0.5), crash=u(-0.6, 0.6)),
        },
        "bass": dict(tilt=u(0.9, 1.3), odd=u(0.3, 1.0), pluck=u(0.08, 0.25), decay=u(0.3, 0.9),
                     sustain=u(0.25, 0.5), pan=u(-0.1, 0.1)),
        "other": dict(style=str(rng.choice(["pad", "organ", "keys"])), tilt=u(0.9, 1.6),
                      detune=u(4.0, 12.0), center=u(58.0, 66.0), pan=u(-0.3, 0.3), width=u(0.3, 0.8)),
        "vocals": dict(register=str(rng.choice(["low", "high"])), tilt=u(1.25, 1.5), vibrato_rate=u(4.5, 6.5),
                       vibrato_cents=u(25.0, 60.0), breath=u(0.01, 0.04), pan=u(-0.15, 0.15)),
        "room": dict(delays_ms=u(3.0, 40.0, size=(2, 4)), gains_db=u(-24.0, -14.0, size=(2, 4))),
    }


def _bars(song: Song) -> tuple[float, int]:
    """The length of a bar (4 beats) in seconds, and how many bars cover the song (plus one, cut at the end)."""
    bar = 4 * 60.0 / song.tempo
    return bar, int(np.ceil(song.seconds / bar)) + 1


def _chord_at(song: Song, bar_index: int) -> int:
    """The scale degree of the chord that plays during a bar."""
    return song.progression[(bar_index // song.bars_per_chord) % len(song.progression)]


def _plan_drums(rng: np.random.Generator, song: Song) -> list[Hit]:
    """Verse and chorus grooves that alternate every 4 bars, a fill closing each 4 bars, a crash on each chorus."""
    bar, n_bars = _bars(song)
    step = bar / 16
    swing = song.sound["drums"]["swing"]
    grooves = []
    for _ in range(2):  # verse, chorus
        grooves.append(dict(kick=_KICKS[rng.integers(len(_KICKS))], snare=_SNARES[rng.integers(len(_SNARES))],
                            hat=list(_HATS)[rng.integers(len(_HATS))]))
    fill = _FILLS[rng.integers(len(_FILLS))]
    hits = []
    for b in range(n_bars):
        groove = grooves[(b // 4) % 2]
        pattern = [(s, "kick", 1.0) for s in groove["kick"]]
        pattern += [(s, "snare", 1.0 if s in (4, 12) else 0.35) for s in groove["snare"]]  # backbeat and ghosts
        for s in _HATS[groove["hat"]]:
            accent = 1.0 if s % 4 == 0 else 0.7 if s % 2 == 0 else 0.5
            open_hat = groove["hat"] == "open_offbeats" and s % 4 == 2
            pattern.append((s, "open_hat" if open_hat else "hat", accent))
        if b % 4 == 3:  # the fill replaces the end of every fourth bar
            first = fill[0][0]
            pattern = [p for p in pattern if p[0] < first or p[1] in ("hat", "open_hat")]
            pattern += [(s, piece, 0.6 + 0.4 * i / len(fill)) for i, (s, piece) in enumerate(fill)]
        if b % 8 == 4 or (b == 0 and rng.random() < 0.5):
            pattern.append((0, "crash", 0.9))
        for s, piece, velocity in pattern:
            time = b * bar + (s + (swing if s % 2 == 1 else 0.0)) * step + rng.normal(0.0, 0.003)
            hits.append(Hit(max(time, 0.0), piece, velocity * rng.uniform(0.8, 1.0)))
    return hits


def _plan_bass(rng: np.random.Generator, song: Song) -> list[Note]:
    """One bass pattern per 4 bars, on the chord roots, in the lowest octave (E1 = 41 Hz to Eb2 = 78 Hz)."""
    bar, n_bars = _bars(song)
    step = bar / 16
    scale = SCALES[song.mode]
    patterns = [_BASS_PATTERNS[rng.integers(len(_BASS_PATTERNS))] for _ in range(2)]
    staccato = rng.uniform(0.6, 0.95)
    notes = []
    for b in range(n_bars):
        root = 28 + (song.tonic + scale[_chord_at(song, b)] - 4) % 12  # 28 = E1
        next_root = 28 + (song.tonic + scale[_chord_at(song, b + 1)] - 4) % 12
        for s, length, what in patterns[(b // 4) % 2]:
            if what == "A":  # the scale note next to the next root, on the side we come from, leading into it
                near = [p for p in range(next_root - 3, next_root + 4) if (p - song.tonic) % 12 in scale]
                below, above = [p for p in near if p < next_root], [p for p in near if p > next_root]
                pitch = below[-1] if next_root >= root else above[0]
            else:
                pitch = root + {"R": 0, "5": 7, "8": 12}[what]
            notes.append(Note(b * bar + s * step + rng.normal(0.0, 0.002), length * step * staccato, pitch,
                              rng.uniform(0.75, 1.0)))
    return notes


def _plan_other(rng: np.random.Generator, song: Song) -> list[Note]:
    """The chords, voiced close around a center pitch: sustained (pad, organ) or in a comping rhythm (keys)."""
    bar, n_bars = _bars(song)
    sound = song.sound["other"]
    seventh = rng.random() < 0.4
    comp = _COMPS[rng.integers(len(_COMPS))]
    notes = []
    for b in range(n_bars):
        classes = _chord_pitch_classes(song.tonic, song.mode, _chord_at(song, b), seventh)
        voicing = sorted(_nearest_pitch(pc, sound["center"]) for pc in classes)
        if sound["style"] == "pad":
            if b % song.bars_per_chord:
                continue  # a pad holds the chord over all its bars
            hits = [(0.0, bar * song.bars_per_chord)]
            voicing = [voicing[0] - 12] + voicing  # with the root doubled an octave below
        elif sound["style"] == "organ":
            hits = [(0.0, bar / 2 * 0.97), (bar / 2, bar / 2 * 0.97)]
        else:
            hits = [(s * bar / 16, n * bar / 16 * 0.9) for s, n in comp]
        for offset, length in hits:
            velocity = rng.uniform(0.8, 1.0)
            for pitch in voicing:
                notes.append(Note(b * bar + offset, length, pitch, velocity))
    return notes


def _plan_vocals(rng: np.random.Generator, song: Song) -> list[Note]:
    """A melody in phrases of 4-8 beats with a breath (at most 0.6 s) between them.

    The pitch walks up and down the scale in small steps; notes that start on a strong beat land on a chord tone.
    One phrase in two repeats the rhythm of the one before, as melodies do.
    """
    beat = 60.0 / song.tempo
    bar, _ = _bars(song)
    low, high = (45, 64) if song.sound["vocals"]["register"] == "low" else (55, 74)  # A2-E4 or G3-D5
    scale = SCALES[song.mode]
    singable = [p for p in range(low, high + 1) if (p - song.tonic) % 12 in scale]
    index = len(singable) // 2
    time = 0.5 * beat * rng.integers(2)  # on the downbeat or an eighth later
    rhythm: list[float] = []
    notes = []
    while time < song.seconds:
        if not rhythm or rng.random() < 0.5:
            total, rhythm = rng.choice([4.0, 6.0, 8.0]) - 1.0, []
            while sum(rhythm) < total:
                rhythm.append(min(rng.choice([0.5, 1.0, 1.0, 1.5, 2.0]), total - sum(rhythm)))
        for i, duration in enumerate(rhythm):
            index = int(np.clip(index + rng.choice([-2, -1, -1, 0, 1, 1, 2, 3, -3]), 0, len(singable) - 1))
            beat_position = time / beat
            if abs(beat_position - round(beat_position)) < 1e-6 or i == len(rhythm) - 1:
                chord = _chord_pitch_classes(song.tonic, song.mode, _chord_at(song, int(time // bar)))
                chord_tones = [j for j, p in enumerate(singable) if p % 12 in chord]
                index = min(chord_tones, key=lambda j: abs(j - index))
            vowel = str(rng.choice(list("aaeioou")))
            consonant = str(rng.choice(["", "", "", "s", "t"]))
            notes.append(Note(time, duration * beat * rng.uniform(0.9, 1.0), singable[index],
                              rng.uniform(0.8, 1.0), vowel, consonant))
            time += duration * beat
        time += min(rng.choice([0.5, 1.0]) * beat, 0.6)  # the breath
    return notes


# ---------------------------------------------------------------------------------------------------------------------
# 3. Sound: oscillators, envelopes, drum voices, a singing voice. Mono signals are float64 arrays at 44.1 kHz.
# ---------------------------------------------------------------------------------------------------------------------

_TABLE_SIZE = 2048


def harmonic_table(amplitudes) -> np.ndarray:
    """One period of ``sum_k a_k sin(2 pi k x)`` (k = 1, 2, ...) sampled at 2048 points, peak 1.

    A wavetable oscillator reads it at any pitch: one table holds a timbre, and playing it needs one look-up per
    sample instead of one sine per harmonic. The extra last sample equals the first (for interpolation).
    """
    amplitudes = np.asarray(amplitudes, dtype=np.float64)
    k = np.arange(1, len(amplitudes) + 1)
    x = np.arange(_TABLE_SIZE) / _TABLE_SIZE
    table = amplitudes @ np.sin(2 * np.pi * np.outer(k, x))
    table /= np.abs(table).max()
    return np.append(table, table[0])


def oscillator(phase: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Read a wavetable at ``phase`` (in cycles, any real number), with linear interpolation."""
    position = phase * _TABLE_SIZE
    whole = np.floor(position)
    frac = position - whole
    index = whole.astype(np.int64) & (_TABLE_SIZE - 1)  # the table size is a power of two: this is "modulo"
    left = table[index]
    return left + frac * (table[index + 1] - left)


def envelope(hold: int, release: int, attack: float, decay: float = np.inf, sustain: float = 1.0) -> np.ndarray:
    """An amplitude envelope of ``hold + release`` samples.

    It rises linearly for ``attack`` seconds, falls exponentially (time constant ``decay`` seconds) towards the
    ``sustain`` level, and after the note-off (sample ``hold``) fades to zero over ``release`` samples.
    """
    t = np.arange(hold + release) / SR
    env = np.minimum(t / max(attack, 1.0 / SR), 1.0)
    if sustain < 1.0:
        env *= sustain + (1.0 - sustain) * np.exp(-np.maximum(t - attack, 0.0) / decay)
    env[hold:] *= (1.0 - np.arange(release) / release) ** 2
    return env


def _filter(x: np.ndarray, kind: str, cutoff, order: int = 2) -> np.ndarray:
    """A Butterworth filter (``kind`` "lowpass", "highpass" or "bandpass"; ``cutoff`` in Hz)."""
    return signal.sosfilt(signal.butter(order, cutoff, kind, fs=SR, output="sos"), x)


def _seconds(x: float) -> int:
    return int(round(x * SR))


def kick(f_start: float, f_end: float, sweep: float, decay: float, rng: np.random.Generator) -> np.ndarray:
    """A kick drum: a sine whose pitch falls from ``f_start`` to ``f_end`` Hz, decaying, with a beater click."""
    t = np.arange(_seconds(6 * decay + 0.05)) / SR
    frequency = f_end + (f_start - f_end) * np.exp(-t / sweep)
    body = np.sin(2 * np.pi * np.cumsum(frequency) / SR) * np.exp(-t / decay)
    click = _filter(rng.standard_normal(len(t)), "lowpass", 4000) * np.exp(-t / 0.003)
    return np.tanh(1.5 * (body + 0.3 * click)) / np.tanh(1.5) * np.minimum(t / 0.001, 1.0)


def snare(tone: float, noise_center: float, decay: float, tone_level: float, rng: np.random.Generator) -> np.ndarray:
    """A snare: a band-passed noise burst (the wires) over a short two-partial tone (the shell)."""
    t = np.arange(_seconds(6 * decay + 0.05)) / SR
    shell = (np.sin(2 * np.pi * tone * t) + 0.5 * np.sin(2 * np.pi * 1.6 * tone * t)) * np.exp(-t / 0.05)
    wires = _filter(rng.standard_normal(len(t)), "bandpass", (noise_center / 2, min(noise_center * 3, 16000)))
    wires *= np.exp(-t / decay) / wires.std()
    return (tone_level * shell + 0.5 * wires) * np.minimum(t / 0.001, 1.0)


def cymbal(cutoff: float, decay: float, scale: float, rng: np.random.Generator) -> np.ndarray:
    """A hi-hat (short ``decay``) or crash (long): high-passed noise and six inharmonic square waves, decaying."""
    t = np.arange(_seconds(min(6 * decay, 2.5))) / SR
    metal = sum(np.sign(np.sin(2 * np.pi * f * scale * t)) for f in (205.3, 304.4, 369.6, 522.7, 540.0, 800.0))
    noisy = _filter(0.6 * rng.standard_normal(len(t)) + 0.1 * metal, "highpass", cutoff, order=4)
    return noisy / noisy.std() * np.exp(-t / decay) * np.minimum(t / 0.0005, 1.0)


def tom(frequency: float, rng: np.random.Generator) -> np.ndarray:
    """A tom: a kick-like pitch sweep around ``frequency`` Hz, longer and higher."""
    return 0.8 * kick(1.5 * frequency, frequency, 0.03, 0.18, rng)


def formant_filter(vowel: str, scale: float = 1.0) -> np.ndarray:
    """The vowel's vocal tract: a cascade of resonators (as SOS sections), unit gain at 0 Hz.

    Three resonators sit at the vowel's formants F1, F2, F3, which move from syllable to syllable; two more at 3.3
    and 3.85 kHz (``FIXED_FORMANTS``) stay put and keep the voice from sounding muffled.

    Each resonator is the two-pole filter ``(1 - 2 r cos w + r^2) / (1 - 2 r cos w z^-1 + r^2 z^-2)`` with
    ``w = 2 pi F / sr`` (the formant frequency F) and ``r = exp(-pi B / sr)`` (its bandwidth B). ``scale`` shifts
    the formants (shorter vocal tracts have higher formants).
    """
    sections = []
    for frequency, bandwidth in (*zip(VOWELS[vowel], FORMANT_BANDWIDTHS), *FIXED_FORMANTS):
        r = np.exp(-np.pi * bandwidth / SR)
        c = 2 * r * np.cos(2 * np.pi * frequency * scale / SR)
        sections.append([1.0 - c + r * r, 0.0, 0.0, 1.0, -c, r * r])
    return np.array(sections)


def sing(note: Note, previous_pitch: float | None, source: np.ndarray, sound: dict, rng: np.random.Generator):
    """One sung syllable, mono: a glottal source with vibrato through the vowel's formants.

    Returns ``(start_sample, signal)``; the signal may start before the note (a consonant leads into the vowel).

    - pitch: the note's pitch, gliding in from the previous note's over 60 ms when the phrase is legato, with a
      vibrato of ``vibrato_cents`` at ``vibrato_rate`` Hz that fades in after 150 ms, as singers do;
    - source: the wavetable ``source`` (harmonics falling like a glottal pulse train) plus a little breath noise;
    - filter: :func:`formant_filter` of the note's vowel; a consonant adds a hiss ("s") or a burst ("t") before it.
    """
    hold, release = _seconds(note.length), _seconds(0.08)
    t = np.arange(hold + release) / SR
    cents = sound["vibrato_cents"] * np.sin(2 * np.pi * sound["vibrato_rate"] * t) * np.clip((t - 0.15) / 0.2, 0, 1)
    if previous_pitch is not None:
        cents += 100.0 * (previous_pitch - note.pitch) * np.clip(1.0 - t / 0.06, 0.0, 1.0)
    frequency = midi_to_hz(note.pitch) * 2.0 ** (cents / 1200.0)
    voice = oscillator(np.cumsum(frequency) / SR + rng.random(), source)
    voice += sound["breath"] * rng.standard_normal(len(t))
    voice *= envelope(hold, release, attack=0.04)
    scale = 1.0 if sound["register"] == "low" else 1.12
    voice = signal.sosfilt(formant_filter(note.vowel, scale), voice)
    voice /= max(np.sqrt(np.mean(voice**2)), 1e-9)  # every vowel about equally loud
    if not note.consonant:
        return _seconds(note.start), voice
    if note.consonant == "s":
        lead = _seconds(0.08)
        hiss = _filter(rng.standard_normal(lead), "highpass", 5000 * scale, order=4)
        consonant = 0.5 * hiss * np.hanning(lead)
    else:
        lead = _seconds(0.015)
        consonant = 1.0 * _filter(rng.standard_normal(lead), "highpass", 1500) * np.exp(-np.arange(lead) / (0.004 * SR))
    return _seconds(note.start) - lead, np.concatenate([consonant, voice])


# ---------------------------------------------------------------------------------------------------------------------
# 4. Rendering: the score becomes four stereo stems, (2, T) float64 arrays.
# ---------------------------------------------------------------------------------------------------------------------


def _pan(position: float) -> np.ndarray:
    """Constant-power (left, right) gains for a position from -1 (left) to 1 (right)."""
    angle = (position + 1.0) * np.pi / 4
    return np.array([np.cos(angle), np.sin(angle)])


def _add(out: np.ndarray, start: int, mono: np.ndarray, gains: np.ndarray) -> None:
    """``out[:, start:start + len(mono)] += gains * mono``, cut to the bounds of ``out``."""
    begin, end = max(start, 0), min(start + len(mono), out.shape[1])
    if begin < end:
        out[:, begin:end] += gains[:, None] * mono[begin - start:end - start]


def _room(stem: np.ndarray, room: dict) -> np.ndarray:
    """A few early reflections, at other delays in each ear: one room per song for all its stems, and left != right."""
    mono = stem.mean(axis=0)
    out = stem.copy()
    for channel in range(2):
        for delay_ms, gain_db in zip(room["delays_ms"][channel], room["gains_db"][channel]):
            d = _seconds(delay_ms / 1000)
            out[channel, d:] += 10 ** (gain_db / 20) * mono[:len(mono) - d]
    return out


def _render_drums(song: Song, n: int, rng: np.random.Generator) -> np.ndarray:
    kit = song.sound["drums"]
    pans = kit["pans"]
    hat = kit["hat"]
    samples = {  # two takes of each noisy piece, so repeated hits are not identical
        "kick": [kick(**kit["kick"], rng=rng)],
        "snare": [snare(**kit["snare"], rng=rng) for _ in range(2)],
        "hat": [cymbal(hat["cutoff"], hat["decay"], hat["scale"], rng) for _ in range(2)],
        "open_hat": [cymbal(hat["cutoff"], 4 * hat["decay"], hat["scale"], rng)],
        "crash": [cymbal(0.6 * hat["cutoff"], 0.9, 1.3 * hat["scale"], rng)],
    }
    for i, frequency in enumerate(kit["toms"]):
        samples[f"tom{i}"] = [tom(frequency, rng)]
    levels = dict(kick=1.0, snare=0.8, hat=0.25, open_hat=0.25, crash=0.35, tom0=0.8, tom1=0.8, tom2=0.8)
    out = np.zeros((2, n))
    for hit in song.drums:
        takes = samples[hit.piece]
        position = {"open_hat": pans["hat"], "tom0": -0.4, "tom1": 0.0, "tom2": 0.4}.get(hit.piece)
        gains = _pan(pans.get(hit.piece, position))
        _add(out, _seconds(hit.time), takes[rng.integers(len(takes))], levels[hit.piece] * hit.velocity * gains)
    return out


def _render_bass(song: Song, n: int) -> np.ndarray:
    """A plucked saw-like bass: each note starts bright and darkens (two wavetables, cross-faded)."""
    sound = song.sound["bass"]
    k = np.arange(1, 41)
    partials = k ** -sound["tilt"] * np.where(k % 2 == 0, sound["odd"], 1.0)
    bright = harmonic_table(partials)
    dark = harmonic_table(k[:4] ** -2.5)
    gains = _pan(sound["pan"])
    out = np.zeros((2, n))
    for note in song.bass:
        hold, release = _seconds(note.length), _seconds(0.03)
        t = np.arange(hold + release) / SR
        phase = midi_to_hz(note.pitch) * t
        brightness = np.exp(-t / sound["pluck"])
        tone = brightness * oscillator(phase, bright) + (1 - brightness) * oscillator(phase, dark)
        env = envelope(hold, release, attack=0.004, decay=sound["decay"], sustain=sound["sustain"])
        _add(out, _seconds(note.start), tone * env * note.velocity, gains)
    return out


def _render_other(song: Song, n: int) -> np.ndarray:
    """Each chord note as two detuned oscillators, one a little to the left and one to the right."""
    sound = song.sound["other"]
    k = np.arange(1, 31)
    if sound["style"] == "organ":  # drawbar-like partials 1, 2, 3, 4, 6, 8
        partials = np.zeros(8)
        partials[[0, 1, 2, 3, 5, 7]] = (1.0, 0.7, 0.5, 0.35, 0.25, 0.15)
        table, shape = harmonic_table(partials), dict(attack=0.01)
    elif sound["style"] == "pad":  # a soft saw
        table, shape = harmonic_table(k ** -sound["tilt"] * np.exp(-k / 12)), dict(attack=0.25)
    else:  # keys: a bright attack that decays
        table, shape = harmonic_table(k ** -(sound["tilt"] + 0.5)), dict(attack=0.005, decay=0.5, sustain=0.35)
    ratio = 2.0 ** (sound["detune"] / 1200.0)
    left, right = _pan(sound["pan"] - sound["width"] / 2), _pan(sound["pan"] + sound["width"] / 2)
    out = np.zeros((2, n))
    for note in song.other:
        hold, release = _seconds(note.length), _seconds(0.3 if sound["style"] == "pad" else 0.08)
        t = np.arange(hold + release) / SR
        f0 = midi_to_hz(note.pitch)
        env = envelope(hold, release, **shape) * note.velocity
        start = _seconds(note.start)
        _add(out, start, oscillator(f0 * ratio * t + 0.25, table) * env, left)
        _add(out, start, oscillator(f0 / ratio * t, table) * env, right)
    return out


def _render_vocals(song: Song, n: int, rng: np.random.Generator) -> np.ndarray:
    sound = song.sound["vocals"]
    f_max = float(midi_to_hz(max(note.pitch for note in song.vocals)))
    k = np.arange(1, int(18000 / f_max) + 1)  # every harmonic below 18 kHz
    source = harmonic_table(k ** -sound["tilt"])
    gains = _pan(sound["pan"])
    out = np.zeros((2, n))
    previous = None
    for note in song.vocals:
        legato = previous is not None and note.start - (previous.start + previous.length) < 0.1
        start, voice = sing(note, previous.pitch if legato else None, source, sound, rng)
        _add(out, start, voice, gains * note.velocity)
        previous = note
    return out


def render_song(song: Song, n_samples: int) -> dict[str, np.ndarray]:
    """The four stems of a song, each ``(2, n_samples)`` float64, at the loudness of ``song.gains_db``."""
    rng = np.random.default_rng(song.render_seed)
    stems = {
        "drums": _render_drums(song, n_samples, rng),
        "bass": _render_bass(song, n_samples),
        "other": _render_other(song, n_samples),
        "vocals": _render_vocals(song, n_samples, rng),
    }
    for name, stem in stems.items():
        stem = _room(stem, song.sound["room"])
        rms = max(np.sqrt(np.mean(stem**2)), 1e-12)
        stems[name] = stem * (10 ** (song.gains_db[name] / 20) / rms)
    return stems


def to_int16(stems: dict[str, np.ndarray], peak: float = 0.9) -> dict[str, np.ndarray]:
    """Quantise the stems to 16-bit integers and add the mixture, their exact integer sum.

    All stems are scaled by one factor so that the mixture peaks at most at ``peak`` (-0.9 dBFS); nothing clips.
    Returns ``{"mixture": ..., "drums": ..., ...}``, each ``(T, 2)`` int16, the layout soundfile writes.
    """
    mixture_peak = np.abs(sum(stems.values())).max()
    stem_peak = max(np.abs(stem).max() for stem in stems.values())
    scale = 32768 * min(1.0, peak / mixture_peak, peak / stem_peak)
    ints = {name: np.rint(stems[name].T * scale).astype(np.int32) for name in SOURCES}
    mixture = sum(ints.values())
    for name, audio in {"mixture": mixture, **ints}.items():
        if np.abs(audio).max() > 32767:  # cannot happen with the scale above; checked all the same
            raise AssertionError(f"the toy {name} would clip")
    return {name: audio.astype(np.int16) for name, audio in {"mixture": mixture, **ints}.items()}


def synthesize_track(seed, seconds: float) -> tuple[dict[str, np.ndarray], Song]:
    """One toy track: ``({"mixture", "drums", "bass", "other", "vocals"} -> (T, 2) int16, its Song)``.

    ``seed`` is anything ``np.random.default_rng`` takes; the same seed gives the same samples.
    """
    song = plan_song(np.random.default_rng(seed), float(seconds))
    return to_int16(render_song(song, _seconds(seconds))), song


# ---------------------------------------------------------------------------------------------------------------------
# 5. The folder: MUSDB18-HQ layout, manifest written last, reuse when it matches.
# ---------------------------------------------------------------------------------------------------------------------


def default_toy_root() -> Path:
    """Where :func:`ensure_toy_musdb` keeps the default toy set: ``$DEMUCS_COURSE_CACHE/toy-musdb-v{TOY_VERSION}``.

    ``$DEMUCS_COURSE_CACHE`` defaults to ``~/.cache/demucs_course``. The version in the name means a new generator
    never reuses the audio of an old one.
    """
    cache = os.environ.get("DEMUCS_COURSE_CACHE") or Path.home() / ".cache" / "demucs_course"
    return Path(cache).expanduser() / f"toy-musdb-v{TOY_VERSION}"


def _arguments(n_train, n_valid, n_test, train_seconds, test_seconds, seed) -> dict:
    """Check the arguments of :func:`make_toy_musdb` and return them as stored in the manifest."""
    counts = dict(n_train=n_train, n_valid=n_valid, n_test=n_test, seed=seed)
    for name, value in counts.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    if n_train < 1:
        raise ValueError("n_train must be at least 1: a toy set needs training tracks")
    if n_valid >= n_train:
        raise ValueError(f"n_valid ({n_valid}) must be smaller than n_train ({n_train}): the validation tracks are "
                         "taken from the train tracks, and some must be left to train on")
    lengths = dict(train_seconds=train_seconds, test_seconds=test_seconds)
    for name, value in lengths.items():
        if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not 1.0 <= value <= 3600:
            raise ValueError(f"{name} must be a number of seconds between 1 and 3600, got {value!r}")
    return {**{name: int(value) for name, value in counts.items()},
            **{name: float(value) for name, value in lengths.items()}}


def _plan_manifest(arguments: dict) -> dict:
    """The manifest of the set these arguments produce (names and splits only: no audio is synthesised)."""
    rng = np.random.default_rng([arguments["seed"], 0])
    n_train, n_test = arguments["n_train"], arguments["n_test"]
    names = _track_names(rng, n_train + n_test)
    train, test = sorted(names[:n_train]), sorted(names[n_train:])
    valid = sorted(rng.choice(train, size=arguments["n_valid"], replace=False).tolist())
    durations = {name: float(arguments["train_seconds"]) for name in train}
    durations.update({name: float(arguments["test_seconds"]) for name in test})
    return {
        "toy_version": TOY_VERSION,
        "arguments": arguments,
        "sample_rate": SR,
        "tracks": {"train": train, "valid": valid, "test": test},
        "durations": durations,
    }


def read_manifest(root) -> dict | None:
    """The manifest ``root/toy.json`` of a toy set, or None if there is none."""
    path = Path(root) / MANIFEST
    return json.loads(path.read_text()) if path.is_file() else None


def read_valid_list(root) -> list[str]:
    """The names of the validation tracks of the toy set in ``root`` (``root/valid.txt``, one name a line)."""
    path = Path(root) / VALID_LIST
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: {root} holds no toy set. "
                                "Write one with make_toy_musdb(root) or ensure_toy_musdb().")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def _is_complete(root: Path, manifest: dict) -> bool:
    """Whether every file the manifest promises is there, with the promised length."""
    if _INCOMPLETE in os.listdir(root) or not (root / VALID_LIST).is_file():
        return False
    for subset in ("train", "test"):
        for name in manifest["tracks"][subset]:
            frames = _seconds(manifest["durations"][name])
            for file in TRACK_FILES:
                path = root / subset / name / file
                if not path.is_file() or sf.info(str(path)).frames != frames:
                    return False
    return True


def _same_set(found: dict | None, expected: dict) -> bool:
    return found is not None and all(found.get(key) == expected[key] for key in ("toy_version", "arguments"))


def _state(root: Path, expected: dict) -> str:
    """"ready" (the expected set, complete), "empty", "toy" (another or an unfinished toy set) or "foreign"."""
    if not root.exists():
        return "empty"
    if not root.is_dir():
        raise NotADirectoryError(f"{root} is a file; give make_toy_musdb a folder")
    entries = set(os.listdir(root)) - {_LOCK}
    if not entries:
        return "empty"
    found = read_manifest(root)
    if _same_set(found, expected) and _is_complete(root, found):
        return "ready"
    return "toy" if found is not None or _INCOMPLETE in entries else "foreign"


@contextlib.contextmanager
def _locked(root: Path):
    """Hold an exclusive lock on ``root/.toy.lock`` (where the OS offers ``fcntl``: Linux, macOS, Colab)."""
    try:
        import fcntl
    except ImportError:  # Windows: no lock; do not generate the same folder from two processes at once there
        yield
        return
    with open(root / _LOCK, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX)
        except OSError:  # a file system without locks (some network mounts): go on without
            yield
            return
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def make_toy_musdb(root, *, n_train: int = 16, n_valid: int = 2, n_test: int = 4, train_seconds: float = 20.0,
                   test_seconds: float = 8.0, seed: int = 0, overwrite: bool = False) -> Path:
    """Write a toy multitrack set in the MUSDB18-HQ layout into the folder ``root`` and return it.

    Writes ``root/{train,test}/<Artist - Title>/{mixture,drums,bass,other,vocals}.wav`` (stereo, 44.1 kHz, 16-bit
    PCM; the mixture is exactly the sum of the stems), ``root/valid.txt`` (the ``n_valid`` train tracks kept for
    validation) and, last, the manifest ``root/toy.json``.

    Args:
        root: the folder; created if needed. It must be empty, or hold a toy set.
        n_train, n_test: how many tracks in ``train/`` and ``test/``.
        n_valid: how many of the train tracks form the validation split (listed in ``valid.txt``).
        train_seconds, test_seconds: the length of each train and test track.
        seed: the same seed writes byte-identical files; another seed, other songs with other names.
        overwrite: replace a toy set with other arguments (or an unfinished one) that is already in ``root``.

    If ``root`` already holds the complete set these arguments describe, nothing is written (this takes
    milliseconds). Two processes generating the same folder at once wait for each other (a lock file).

    Raises:
        ValueError: bad arguments; or ``root`` holds a different or unfinished toy set and ``overwrite`` is False;
            or ``root`` holds other files (this function never deletes anything but a toy set).
    """
    arguments = _arguments(n_train, n_valid, n_test, train_seconds, test_seconds, seed)
    root = Path(root).expanduser()
    expected = _plan_manifest(arguments)
    # Without the lock (fast, and nothing created): reuse the set that is there, or refuse a folder that is not ours.
    if _state(root, expected) in ("ready", "foreign") and not _may_write(root, expected, overwrite):
        return root
    root.mkdir(parents=True, exist_ok=True)
    with _locked(root):  # decide again: another process may have written the set while we waited
        if _may_write(root, expected, overwrite):
            _clear(root)
            _write(root, expected)
    return root


def _may_write(root: Path, expected: dict, overwrite: bool) -> bool:
    """False if ``root`` already holds the expected set (and no ``overwrite``), True if (re)writing it is allowed.

    Raises a ValueError that explains why when ``root`` may not be written.
    """
    state = _state(root, expected)
    if state == "ready" and not overwrite:
        return False
    if state == "foreign":
        raise ValueError(f"{root} is not empty and holds no toy set (no {MANIFEST}): choose an empty or new "
                         "folder for the toy set; make_toy_musdb never deletes files it did not write")
    if state in ("toy", "ready") and not overwrite:
        found = read_manifest(root)
        what = (f"a different toy set (version {found.get('toy_version')}, arguments {found.get('arguments')})"
                if found is not None and not _same_set(found, expected) else "an unfinished toy set")
        raise ValueError(f"{root} already holds {what}; pass overwrite=True to replace it with version "
                         f"{TOY_VERSION}, arguments {expected['arguments']}, or choose another folder")
    return True


def _clear(root: Path) -> None:
    """Remove the toy set's own entries from ``root`` (and nothing else)."""
    for name in ("train", "test"):
        shutil.rmtree(root / name, ignore_errors=True)
    for name in (MANIFEST, VALID_LIST, _INCOMPLETE):
        (root / name).unlink(missing_ok=True)


def _write(root: Path, manifest: dict) -> None:
    """Synthesise and write every track; the manifest goes last, so an interrupted run is seen as unfinished."""
    (root / _INCOMPLETE).write_text("a toy set is being written here; if no process is, it was interrupted\n")
    seed = manifest["arguments"]["seed"]
    songs = {}
    for code, subset in enumerate(("train", "test"), start=1):
        for index, name in enumerate(manifest["tracks"][subset]):
            audio, song = synthesize_track([seed, code, index], manifest["durations"][name])
            folder = root / subset / name
            folder.mkdir(parents=True)
            for file in TRACK_FILES:
                sf.write(str(folder / file), audio[file[:-4]], SR, subtype="PCM_16", format="WAV")
            songs[name] = song.describe()
    (root / VALID_LIST).write_text("".join(f"{name}\n" for name in manifest["tracks"]["valid"]))
    temporary = root / (MANIFEST + ".tmp")
    temporary.write_text(json.dumps({**manifest, "songs": songs}, indent=2) + "\n")
    os.replace(temporary, root / MANIFEST)
    (root / _INCOMPLETE).unlink()


def ensure_toy_musdb(root=None, **kwargs) -> Path:
    """The toy set, generated on first use and reused afterwards; returns its folder.

    With no ``root``, the folder is :func:`default_toy_root` for the default arguments, and a sibling named after
    the arguments (``toy-musdb-v1-<hash>``) for others, so that sets of different sizes do not replace each other.
    ``kwargs`` are those of :func:`make_toy_musdb`. Safe to call from two processes at once (a notebook and pytest):
    one generates, the other waits and reuses.
    """
    if root is None:
        root = default_toy_root()
        unknown = set(kwargs) - set(TOY_DEFAULTS) - {"overwrite"}
        if unknown:
            raise TypeError(f"ensure_toy_musdb() got unknown arguments {sorted(unknown)}; "
                            f"it takes those of make_toy_musdb: {sorted(TOY_DEFAULTS)} and overwrite")
        arguments = _arguments(**{**TOY_DEFAULTS, **{k: v for k, v in kwargs.items() if k != "overwrite"}})
        if arguments != _arguments(**TOY_DEFAULTS):
            digest = hashlib.sha1(json.dumps(arguments, sort_keys=True).encode()).hexdigest()[:8]
            root = root.with_name(f"{root.name}-{digest}")
    return make_toy_musdb(root, **kwargs)
