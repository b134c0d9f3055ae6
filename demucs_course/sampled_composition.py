"""Chapter 1: the sampled set's songs -- General MIDI scores for drums, bass, chords and a sung melody.

The "sampled" multitrack set (:mod:`demucs_course.sampled` writes it) is played by real sampled instruments: each
stem is a General MIDI (GM) file rendered through a soundfont. This module is its composer. From a seeded
``numpy.random.Generator`` it draws a :class:`SampledSong` -- a style, a tempo, a key, a chord progression, one GM
program, a loudness and a pan position per role, louder and softer 4-bar sections -- and the notes each role plays:

- **drums**: a GM drum kit on MIDI channel 10 (Standard, Room, Power, Electronic, TR-808, Jazz, Brush), playing the
  style's groove (kick, snare, hi-hats or ride), with a tom fill closing every fourth bar and a crash every eighth;
- **bass**: a bass program (acoustic, fingered, picked, fretless, slap, synth) on the chord roots, fifths and
  octaves, in the style's rhythm;
- **other**: the chords, held or comped, by a piano, an electric piano, an organ, a guitar, strings or a pad;
- **vocals**: the melody, sung by a GM voice program ("Choir Aahs", "Voice Oohs", "Synth Voice"), in phrases with
  breaths, landing on chord tones on strong beats.

:func:`song_midi` turns one role of a song into a ``mido.MidiFile``. Nothing here makes sound. Every random draw
comes from the one Generator passed in, in the order of the code below, so the same seed gives the same song on every
machine; a change to the order or the number of draws changes the songs, and bumps ``sampled.SAMPLED_VERSION``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import mido
import numpy as np

from demucs_course import SOURCES
from demucs_course.toy_composition import PROGRESSIONS, SCALES, SHARP_NAMES

#: Styles: a tempo range (BPM) and the steps (sixteenths of a 4/4 bar) where each drum and the bass play.
#: ``ride`` replaces the hi-hat by the ride cymbal; ``swing`` delays every off-beat eighth by this fraction of a beat.
STYLES = {
    "rock": dict(tempo=(100, 140), kick=(0, 8, 10), snare=(4, 12), hat=(0, 2, 4, 6, 8, 10, 12, 14),
                 bass=(0, 2, 4, 6, 8, 10, 12, 14), comp=(0, 8), ride=False, swing=0.0),
    "pop": dict(tempo=(88, 124), kick=(0, 6, 8), snare=(4, 12), hat=tuple(range(16)),
                bass=(0, 3, 6, 8, 11, 14), comp=(0, 6, 8, 14), ride=False, swing=0.0),
    "funk": dict(tempo=(92, 112), kick=(0, 3, 10), snare=(4, 7, 12, 15), hat=tuple(range(16)),
                 bass=(0, 3, 6, 7, 10, 12, 14), comp=(2, 6, 10, 14), ride=False, swing=0.0),
    "ballad": dict(tempo=(64, 84), kick=(0, 10), snare=(8,), hat=(0, 4, 8, 12),
                   bass=(0, 8, 12), comp=(0,), ride=False, swing=0.0),
    "shuffle": dict(tempo=(120, 160), kick=(0, 8), snare=(4, 12), hat=(0, 2, 4, 6, 8, 10, 12, 14),
                    bass=(0, 4, 8, 12), comp=(2, 6, 10, 14), ride=True, swing=0.3),
    "dance": dict(tempo=(118, 130), kick=(0, 4, 8, 12), snare=(4, 12), hat=(2, 6, 10, 14),
                  bass=(2, 6, 10, 14), comp=(0, 3, 6, 10), ride=False, swing=0.0),
}

#: GM programs (0-based) per role: several instruments each. Drum kits are programs of bank 128 on channel 10.
PROGRAMS = {
    "drums": {"Standard": 0, "Room": 8, "Power": 16, "Electronic": 24, "TR-808": 25, "Jazz": 32, "Brush": 40},
    "bass": {"Acoustic Bass": 32, "Electric Bass (finger)": 33, "Electric Bass (pick)": 34, "Fretless Bass": 35,
             "Slap Bass 1": 36, "Synth Bass 1": 38},
    "other": {"Acoustic Grand Piano": 0, "Electric Piano 1": 4, "Drawbar Organ": 16, "Acoustic Guitar (nylon)": 24,
              "Electric Guitar (clean)": 27, "String Ensemble 1": 48, "Pad 2 (warm)": 89},
    "vocals": {"Choir Aahs": 52, "Voice Oohs": 53, "Synth Voice": 54},
}
#: GM percussion keys (channel 10) the grooves use.
KICK, SNARE, CLOSED_HAT, OPEN_HAT, RIDE, CRASH, TOMS = 36, 38, 42, 46, 51, 49, (50, 47, 45, 43)
DRUM_CHANNEL, MELODIC_CHANNEL = 9, 0  # 0-based: channel 9 is GM's channel 10
TICKS_PER_BEAT = 480


@dataclass
class Note:
    """A note (or a drum hit): start and length in beats, a MIDI key, a velocity 1-127."""

    start: float
    length: float
    key: int
    velocity: int


@dataclass
class SampledSong:
    """A song's score: everything needed to write the four GM files (see :func:`song_midi`)."""

    style: str
    tempo: float                 # beats per minute
    key: str                     # e.g. "F# minor"
    chords: list[int]            # the root of each bar's chord (MIDI key 48-59, C3 to B3)
    programs: dict[str, str]     # role -> GM program (or drum kit) name
    pans: dict[str, int]         # role -> MIDI pan 0 (left) .. 64 (centre) .. 127 (right)
    volumes: dict[str, int]      # role -> MIDI channel volume (controller 7)
    notes: dict[str, list[Note]] = field(default_factory=dict)

    def describe(self) -> dict:
        """The song in a few words, for the manifest."""
        return {"style": self.style, "tempo": round(self.tempo, 2), "key": self.key, "programs": self.programs,
                "pans": self.pans}


def _velocity(rng: np.random.Generator, base: float, spread: float = 8.0) -> int:
    return int(np.clip(round(base + spread * rng.standard_normal()), 1, 127))


def _drums(rng, style: dict, bars: int, loudness: np.ndarray) -> list[Note]:
    """The groove of ``style`` for ``bars`` bars: ghost notes dropped at random, fills and crashes."""
    notes = []
    hat = RIDE if style["ride"] else CLOSED_HAT
    for bar in range(bars):
        fill, level = bar % 4 == 3, loudness[bar]
        for step in range(16):
            beat = 4 * bar + step / 4 + (style["swing"] / 2 if step % 4 == 2 else 0.0)
            accent = 10 if step % 4 == 0 else 0
            if fill and step >= 8:  # the last half bar of every fourth bar: a tom fill down the kit
                if step % 2 == 0 or rng.random() < 0.4:
                    notes.append(Note(beat, 0.25, TOMS[(step - 8) // 2 % 4], _velocity(rng, level + 5)))
                continue
            if step in style["kick"]:
                notes.append(Note(beat, 0.25, KICK, _velocity(rng, level + 8)))
            if step in style["snare"]:
                notes.append(Note(beat, 0.25, SNARE, _velocity(rng, level + 6)))
            if step in style["hat"] and rng.random() < 0.93:
                key = OPEN_HAT if step == 14 and not style["ride"] and rng.random() < 0.3 else hat
                notes.append(Note(beat, 0.25, key, _velocity(rng, level - 12 + accent)))
        if bar % 8 == 0:
            notes.append(Note(4 * bar, 1.0, CRASH, _velocity(rng, level + 4)))
    return notes


def _bass(rng, style: dict, chords: list[int], loudness: np.ndarray) -> list[Note]:
    """Roots, fifths and octaves of each bar's chord, from E1 up, in the style's rhythm."""
    notes = []
    steps = style["bass"]
    for bar, root in enumerate(chords):
        for i, step in enumerate(steps):
            end = steps[i + 1] if i + 1 < len(steps) else 16
            interval = 0 if step == 0 else int(rng.choice((0, 0, 0, 7, 12, 10 if step > 8 else 7)))
            length = (end - step) / 4 * (0.9 if rng.random() < 0.7 else 0.5)
            low = 28 + (root - 28) % 12  # the root between E1 (41 Hz) and D#2 (78 Hz)
            notes.append(Note(4 * bar + step / 4, length, low + interval, _velocity(rng, loudness[bar])))
    return notes


def _chord_keys(root: int, mode: str, tonic: int, seventh: bool) -> list[int]:
    """The triad (or seventh chord) of the scale built on ``root``, in close position."""
    scale = [(tonic + s) % 12 for s in SCALES[mode]]
    degree = scale.index(root % 12)
    thirds = (0, 2, 4, 6) if seventh else (0, 2, 4)
    keys = []
    for step in thirds:
        pitch = scale[(degree + step) % 7]
        key = root + (pitch - root) % 12
        keys.append(key)
    return keys


def _other(rng, style: dict, chords: list[int], mode: str, tonic: int, held: bool, loudness: np.ndarray) -> list[Note]:
    """The chords: held a bar (pads, strings, organ) or struck on the style's comping steps."""
    notes = []
    seventh = rng.random() < 0.4
    steps = (0,) if held else style["comp"]
    for bar, root in enumerate(chords):
        keys = [k + 12 for k in _chord_keys(root, mode, tonic, seventh)]
        for i, step in enumerate(steps):
            end = steps[i + 1] if i + 1 < len(steps) else 16
            length = (end - step) / 4 * (0.98 if held else 0.7)
            velocity = _velocity(rng, loudness[bar])
            notes.extend(Note(4 * bar + step / 4, length, key, velocity) for key in keys)
    return notes


def _melody(rng, chords: list[int], mode: str, tonic: int, loudness: np.ndarray) -> list[Note]:
    """A sung line: two-bar phrases of quarter and eighth notes and a breath, chord tones on strong beats."""
    scale = [k for k in range(55, 80) if (k - tonic) % 12 in SCALES[mode]]
    notes, index = [], len(scale) // 2
    for phrase in range(0, len(chords) - 1, 2):
        beat, end = 4.0 * phrase + float(rng.choice((0.0, 0.5, 1.0))), 4.0 * phrase + 7.0 - float(rng.integers(0, 2))
        while beat < end:
            length = float(rng.choice((0.5, 1.0, 1.0, 1.5, 2.0)))
            index = int(np.clip(index + rng.choice((-2, -1, -1, 0, 1, 1, 2)), 0, len(scale) - 1))
            if beat % 2 == 0:  # a strong beat: move to the nearest tone of the bar's chord
                chord = {k % 12 for k in _chord_keys(chords[int(beat // 4)], mode, tonic, False)}
                tones = [i for i, k in enumerate(scale) if k % 12 in chord]
                index = min(tones, key=lambda i: abs(i - index))
            length = min(length, end - beat)
            notes.append(Note(beat, length * 0.95, scale[index], _velocity(rng, loudness[int(beat // 4)], 5)))
            beat += length
    return notes


def compose_song(rng: np.random.Generator, seconds: float) -> SampledSong:
    """Draw one song of at least ``seconds`` seconds from ``rng``: its style, key, programs and every note."""
    style_name = str(rng.choice(sorted(STYLES)))
    style = STYLES[style_name]
    tempo = float(rng.uniform(*style["tempo"]))
    mode = str(rng.choice(sorted(SCALES)))
    tonic = int(rng.integers(0, 12))
    progression = PROGRESSIONS[mode][int(rng.integers(len(PROGRESSIONS[mode])))]
    bars = int(np.ceil(seconds * tempo / 240.0)) + 1
    chords = [48 + (tonic + SCALES[mode][progression[bar % 4]]) % 12 for bar in range(bars)]  # roots C3..B3
    programs = {role: str(rng.choice(sorted(PROGRAMS[role]))) for role in SOURCES}
    pans = {role: int(np.clip(round(64 + (12 if role == "drums" else 44) * rng.uniform(-1, 1)), 0, 127))
            for role in SOURCES}
    volumes = {role: int(rng.integers(90, 121)) for role in SOURCES}
    sections = rng.uniform(-12, 8, size=bars // 4 + 1)  # louder and softer 4-bar sections, all roles together
    loudness = {role: float(rng.uniform(70, 105)) + np.repeat(sections, 4)[:bars] for role in SOURCES}
    held = programs["other"] in ("Drawbar Organ", "String Ensemble 1", "Pad 2 (warm)")
    notes = {
        "drums": _drums(rng, style, bars, loudness["drums"]),
        "bass": _bass(rng, style, chords, loudness["bass"]),
        "other": _other(rng, style, chords, mode, tonic, held, loudness["other"]),
        "vocals": _melody(rng, chords, mode, tonic, loudness["vocals"]),
    }
    return SampledSong(style_name, tempo, f"{SHARP_NAMES[tonic]} {mode}", chords, programs, pans, volumes, notes)


def song_midi(song: SampledSong, role: str) -> mido.MidiFile:
    """The GM file of one role of ``song``: tempo, program (or drum kit), volume, pan, then its notes.

    Drums play on channel 10 (index 9), where GM synthesisers use the percussion bank; the other roles on channel 1.
    Note-offs sort before note-ons at the same tick, so a repeated key is released before it is struck again.
    """
    channel = DRUM_CHANNEL if role == "drums" else MELODIC_CHANNEL
    track = mido.MidiTrack()
    track.append(mido.MetaMessage("set_tempo", tempo=int(round(60_000_000 / song.tempo)), time=0))
    track.append(mido.Message("program_change", channel=channel, program=PROGRAMS[role][song.programs[role]]))
    track.append(mido.Message("control_change", channel=channel, control=7, value=song.volumes[role]))
    track.append(mido.Message("control_change", channel=channel, control=10, value=song.pans[role]))
    events = []
    for note in song.notes[role]:
        on = int(round(note.start * TICKS_PER_BEAT))
        off = max(on + 1, int(round((note.start + note.length) * TICKS_PER_BEAT)))
        events.append((on, 1, note.key, note.velocity))
        events.append((off, 0, note.key, 0))
    now = 0
    for tick, is_on, key, velocity in sorted(events):
        kind = "note_on" if is_on else "note_off"
        track.append(mido.Message(kind, channel=channel, note=key, velocity=velocity, time=tick - now))
        now = tick
    midi = mido.MidiFile(ticks_per_beat=TICKS_PER_BEAT)
    midi.tracks.append(track)
    return midi
