"""Chapter 1: the toy set's instruments -- oscillators, drum voices, a singing voice, and rendering a song.

Chapter 1 teaches the toy multitrack set (:mod:`demucs_course.toy` writes it). This module plays the score that
:mod:`demucs_course.toy_composition` draws: wavetable oscillators for the bass, the chords and the voice's glottal
source, synthesised drums (kick, snare, cymbals, toms), a sung syllable through vowel formants, and a small room shared
by the four stems. :func:`render_song` returns the four stereo stems as float64 arrays at 44.1 kHz,
:func:`to_int16` quantises them and adds the mixture as their exact integer sum, and :func:`synthesize_track` does it
all for one seed.

Reproducibility: every operation here runs on one thread with no BLAS (no matrix product: the wavetable is a sum in a
fixed order), and every random sample comes from the Generator seeded with the song's ``render_seed``, drawn in the
order of the code. Only numpy's elementwise functions (sin, exp, tanh, power) may round differently in the last bit
on other CPUs; that moves a sample by about 1e-13 of full scale, far below the 16-bit step the stems are stored with
(:func:`demucs_course.toy.content_hash` checks the stored result).
"""

from __future__ import annotations

import numpy as np
from scipy import signal

from demucs_course import SAMPLE_RATE, SOURCES
from demucs_course.toy_composition import (VOWELS, FORMANT_BANDWIDTHS, FIXED_FORMANTS, Note, Song, midi_to_hz,
                                           plan_song)

SR = SAMPLE_RATE


# ---------------------------------------------------------------------------------------------------------------------
# 1. Sound: oscillators, envelopes, drum voices, a singing voice. Mono signals are float64 arrays at 44.1 kHz.
# ---------------------------------------------------------------------------------------------------------------------

_TABLE_SIZE = 2048


def harmonic_table(amplitudes) -> np.ndarray:
    """One period of ``sum_k a_k sin(2 pi k x)`` (k = 1, 2, ...) sampled at 2048 points, peak 1.

    A wavetable oscillator reads it at any pitch: one table holds a timbre, and playing it needs one look-up per
    sample instead of one sine per harmonic. The extra last sample equals the first (for interpolation).
    """
    amplitudes = np.asarray(amplitudes, dtype=np.float64)
    x = np.arange(_TABLE_SIZE) / _TABLE_SIZE
    table = np.zeros(_TABLE_SIZE)
    for k, amplitude in enumerate(amplitudes.tolist(), start=1):  # a sum in a fixed order: no BLAS product
        table += amplitude * np.sin(2 * np.pi * (k * x))
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
# 2. Rendering: the score becomes four stereo stems, (2, T) float64 arrays, then 16-bit integers.
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
