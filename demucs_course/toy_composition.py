"""Chapter 1: the toy set's songs -- names, keys, chords, and the notes and hits of four instruments.

Chapter 1 teaches the toy multitrack set (:mod:`demucs_course.toy` writes it). This module is its composer: from a
seeded ``numpy.random.Generator`` it draws a :class:`Song` -- a tempo, a key, a chord progression, the timbres of a
drum kit, a bass, a chord instrument and a voice -- and the score each of them plays:

- **drums**: a verse and a chorus groove (kick, snare, hi-hats) that alternate every 4 bars, a fill closing every
  fourth bar, a crash on each chorus, swing and timing jitter (:class:`Hit` lists);
- **bass**: one of a few patterns on the chord roots, with fifths, octaves and approach notes (:class:`Note` lists);
- **other**: the chords, held (pad, organ) or in a comping rhythm (keys);
- **vocals**: a melody in phrases with breaths, landing on chord tones on strong beats, one vowel per syllable.

Nothing here makes sound: :mod:`demucs_course.toy_instruments` renders a Song. Every random draw comes from the one
Generator passed in, in the order of the code below, so the same seed gives the same song on every machine; a change
to the order or the number of draws changes every song after it, and bumps ``toy.TOY_VERSION``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from demucs_course import SOURCES


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
