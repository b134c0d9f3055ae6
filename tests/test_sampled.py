"""The sampled multitrack set (Chapter 1): GM songs rendered by FluidSynth, MUSDB18-HQ layout, exact, deterministic.

These tests need the ``fluidsynth`` program and the FluidR3 GM soundfont; ``bash course.sh test`` installs both.
Without them the tests fail and say so: nothing is skipped.
"""

import json

import musdb
import numpy as np
import pytest
import soundfile as sf

from demucs_course import SAMPLE_RATE, SOURCES
from demucs_course.cli import build_parser, main
from demucs_course.data import get_musdb_tracks
from demucs_course.sampled import (MANIFEST, SAMPLED_DEFAULTS, SAMPLED_HASHES, SAMPLED_VERSION, SampledContentError,
                                   SampledSetError, _check_pinned, default_sampled_root, ensure_sampled_musdb,
                                   make_sampled_musdb, read_manifest)
from demucs_course.sampled_composition import DRUM_CHANNEL, PROGRAMS, STYLES, compose_song, song_midi
from demucs_course.sampled_render import SampledToolError, find_tools, render_midi
from demucs_course.toy import content_hash

TINY = dict(n_train=2, n_valid=1, n_test=1, train_seconds=3.0, test_seconds=2.0, seed=0)
TINY_ARGS = ["--train", "2", "--valid", "1", "--test", "1", "--train-seconds", "3", "--test-seconds", "2", "--quiet"]
#: The content hash of the TINY set, and the synthesiser and soundfont it was pinned with.
TINY_TOOLS = "FluidSynth runtime version 2.3.1 and Debian's FluidR3_GM.sf2 (148398306 bytes)"
TINY_HASH = "5cb274c0cb3fb301912cd656dfdfc0e6d5822faa557c894191eb3dc2051e7b5c"


@pytest.fixture(scope="module")
def tools():
    try:
        return find_tools()
    except SampledToolError as error:
        pytest.fail(f"the sampled set's tools are missing ({error}); `bash course.sh test` installs them")


@pytest.fixture(scope="module")
def tiny(tools, tmp_path_factory):
    return make_sampled_musdb(tmp_path_factory.mktemp("sampled") / "set", **TINY)


def _ints(root, subset, name):
    return {stem: sf.read(root / subset / name / f"{stem}.wav", dtype="int16")[0].astype(np.int32)
            for stem in ("mixture",) + SOURCES}


def test_musdb_reads_the_layout_and_the_course_reads_its_split(tiny):
    manifest = read_manifest(tiny)
    for subset in ("train", "test"):
        tracks = musdb.DB(str(tiny), is_wav=True, subsets=subset).tracks
        assert [t.name for t in tracks] == manifest["tracks"][subset]
        for track in tracks:
            assert track.rate == SAMPLE_RATE and track.audio.shape == (
                round(manifest["durations"][track.name] * SAMPLE_RATE), 2)
            assert set(track.sources) == set(SOURCES)
    valid = [t.name for t in get_musdb_tracks(tiny, "train", "valid")]
    assert valid == manifest["tracks"]["valid"] and len(valid) == TINY["n_valid"]
    assert manifest["sampled_version"] == 1 and manifest["arguments"]["seed"] == 0
    assert manifest["fluidsynth"].startswith("FluidSynth") and manifest["soundfont"]["name"] == "FluidR3_GM.sf2"


def test_mixture_is_the_exact_sum_and_stems_are_distinct_and_audible(tiny):
    manifest = read_manifest(tiny)
    for subset in ("train", "test"):
        for name in manifest["tracks"][subset]:
            audio = _ints(tiny, subset, name)
            assert np.array_equal(audio["mixture"], sum(audio[s] for s in SOURCES)), name
            assert 10_000 < np.abs(audio["mixture"]).max() <= 32767   # normalised, not clipped
            for i, a in enumerate(SOURCES):
                rms = np.sqrt(np.mean(audio[a].astype(float) ** 2))
                assert rms > 100, f"{name}: the {a} stem is (nearly) silent, rms {rms:.0f}"
                for b in SOURCES[i + 1:]:
                    x, y = audio[a].ravel().astype(float), audio[b].ravel().astype(float)
                    corr = abs(x @ y) / np.sqrt((x @ x) * (y @ y))
                    assert corr < 0.5, f"{name}: {a} and {b} are alike (correlation {corr:.2f})"


def test_the_set_has_its_pinned_hash_and_the_cli_writes_the_same_one(tiny, tmp_path, capsys):
    manifest = read_manifest(tiny)
    assert manifest["content_sha256"] == content_hash(tiny)
    assert manifest["content_sha256"] == TINY_HASH, (
        f"the tiny sampled set's hash changed; it was pinned with {TINY_TOOLS}, this machine has "
        f"{manifest['fluidsynth']} and {manifest['soundfont']}: a change of the generator bumps SAMPLED_VERSION")
    assert main(["data", "sampled", str(tmp_path / "again"), *TINY_ARGS]) == 0
    out = capsys.readouterr().out
    assert f"content SHA-256: {TINY_HASH}" in out and "sampled MUSDB18-HQ set in" in out
    assert content_hash(tmp_path / "again") == TINY_HASH
    assert main(["data", "sampled", str(tiny), *TINY_ARGS]) == 0   # the complete set is reused, not rendered
    assert TINY_HASH in capsys.readouterr().out


def test_the_default_set_is_what_the_records_were_made_on(tools):
    """The default set (rendered once, about 5 CPU-minutes; the chapters and the shipped model's record read it)."""
    root = ensure_sampled_musdb()
    assert root == default_sampled_root()
    manifest = read_manifest(root)
    pinned = SAMPLED_HASHES[SAMPLED_VERSION]
    assert manifest["arguments"] == SAMPLED_DEFAULTS
    if (manifest["fluidsynth"], manifest["soundfont"]["bytes"]) == (pinned["fluidsynth"], pinned["soundfont_bytes"]):
        assert manifest["content_sha256"] == pinned["content_sha256"]
    tracks = get_musdb_tracks("sampled", "train", split="valid")
    assert sorted(t.name for t in tracks) == manifest["tracks"]["valid"]
    assert len(get_musdb_tracks("sampled", "test")) == SAMPLED_DEFAULTS["n_test"]


def test_a_hash_other_than_the_pinned_one_is_refused_or_explained(tmp_path, monkeypatch):
    pinned = SAMPLED_HASHES[SAMPLED_VERSION]
    manifest = {"sampled_version": SAMPLED_VERSION, "arguments": dict(SAMPLED_DEFAULTS), "content_sha256": "0" * 64,
                "fluidsynth": pinned["fluidsynth"], "soundfont": {"bytes": pinned["soundfont_bytes"]}}
    monkeypatch.delenv("DEMUCS_COURSE_IGNORE_TOY_HASH", raising=False)
    with pytest.raises(SampledContentError, match="--overwrite"):          # same renderer, other audio: rewrite it
        _check_pinned(tmp_path, manifest, fresh=False)
    with pytest.raises(SampledContentError, match="report"):
        _check_pinned(tmp_path, manifest, fresh=True)
    with pytest.warns(UserWarning, match="differ a little"):               # another FluidSynth: another rendering
        _check_pinned(tmp_path, {**manifest, "fluidsynth": "FluidSynth runtime version 2.2.5"}, fresh=True)
    _check_pinned(tmp_path, {**manifest, "content_sha256": pinned["content_sha256"]}, fresh=True)
    _check_pinned(tmp_path, {**manifest, "arguments": {**SAMPLED_DEFAULTS, "n_test": 2}}, fresh=True)  # not pinned
    monkeypatch.setenv("DEMUCS_COURSE_IGNORE_TOY_HASH", "1")
    with pytest.warns(UserWarning, match="used anyway"):
        _check_pinned(tmp_path, manifest, fresh=False)


def test_a_render_does_not_depend_on_the_thread_count(tools):
    song = compose_song(np.random.default_rng(7), 2.0)
    one, two = (render_midi(song_midi(song, "other"), 2 * SAMPLE_RATE, *tools, threads=n) for n in (1, 2))
    assert np.abs(one).max() > 0 and one.tobytes() == two.tobytes()


def test_the_composer_is_deterministic_and_varied():
    def midi_bytes(seed, role):
        midi = song_midi(compose_song(np.random.default_rng(seed), 8.0), role)
        return [message.bytes() for message in midi.tracks[0] if not message.is_meta]

    for role in SOURCES:
        assert midi_bytes(3, role) == midi_bytes(3, role)
        assert midi_bytes(3, role) != midi_bytes(4, role)
    songs = [compose_song(np.random.default_rng(seed), 10.0) for seed in range(40)]
    assert len({s.style for s in songs}) >= 5 and {s.style for s in songs} <= set(STYLES)
    for role in SOURCES:
        used = {s.programs[role] for s in songs}
        assert len(used) >= 3 and used <= set(PROGRAMS[role]), (role, used)
        assert len({s.pans[role] for s in songs}) >= 5
    assert {s.programs["vocals"] for s in songs} == {"Choir Aahs", "Voice Oohs", "Synth Voice"}
    for song in (compose_song(np.random.default_rng(seed), 60.0) for seed in range(5)):   # louder, softer sections
        for role in SOURCES:
            bars = np.array([int(n.start // 16) for n in song.notes[role]])   # 4-bar sections
            velocity = np.array([n.velocity for n in song.notes[role]])
            means = [velocity[bars == b].mean() for b in np.unique(bars)]
            assert max(means) - min(means) > 8, (role, means)
    tempi = [s.tempo for s in songs]
    assert max(tempi) - min(tempi) > 50 and len({s.key for s in songs}) >= 10
    for song in songs[:5]:
        for role in SOURCES:
            assert song.notes[role], f"{role} has no notes"
            channels = {m.channel for m in song_midi(song, role).tracks[0] if not m.is_meta}
            assert channels == {DRUM_CHANNEL if role == "drums" else 0}
        assert all(55 <= n.key < 80 for n in song.notes["vocals"])
        assert all(28 <= n.key <= 51 for n in song.notes["bass"])


def test_the_commands_defaults_are_the_modules():
    args = build_parser().parse_args(["data", "sampled", "DIR"])
    given = dict(n_train=args.train, n_valid=args.valid, n_test=args.test, train_seconds=args.train_seconds,
                 test_seconds=args.test_seconds, seed=args.seed)
    assert given == SAMPLED_DEFAULTS


def test_missing_tools_say_how_to_install_them(tmp_path, monkeypatch, capsys):
    with pytest.raises(SampledToolError, match="bash course.sh test"):
        find_tools(fluidsynth="no-such-fluidsynth")
    with pytest.raises(SampledToolError, match="bash course.sh test"):
        make_sampled_musdb(tmp_path / "a", **TINY, soundfont=tmp_path / "missing.sf2")
    assert main(["data", "sampled", str(tmp_path / "b"), *TINY_ARGS, "--soundfont", str(tmp_path / "x.sf2")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "x.sf2 does not exist" in err and "bash course.sh test" in err
    monkeypatch.setenv("PATH", str(tmp_path))   # no fluidsynth on the PATH
    assert main(["data", "sampled", str(tmp_path / "c"), *TINY_ARGS]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "'fluidsynth' is not installed" in err and "bash course.sh test" in err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists() and not (tmp_path / "c").exists()


def test_wrong_folders_and_arguments_are_refused_in_one_line(tiny, tools, tmp_path, capsys):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    assert main(["data", "sampled", str(tmp_path / "mine"), *TINY_ARGS]) == 2
    assert "holds no sampled set" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == ["notes.txt"]   # nothing written there
    (tmp_path / "file").write_text("")
    with pytest.raises(SampledSetError, match="is a file"):
        make_sampled_musdb(tmp_path / "file", **TINY)
    with pytest.raises(SampledSetError, match="already holds a different sampled set.*overwrite"):
        make_sampled_musdb(tiny, **{**TINY, "seed": 1})
    assert main(["data", "sampled", str(tmp_path / "d"), *TINY_ARGS, "--valid", "2"]) == 2
    assert "n_valid (2) must be smaller than n_train (2)" in capsys.readouterr().err
    assert json.loads((tiny / MANIFEST).read_text())["arguments"]["seed"] == 0   # the refused call changed nothing
    (tmp_path / "cut").mkdir()
    (tmp_path / "cut" / ".sampled-incomplete").write_text("")   # what an interrupted generation leaves behind
    with pytest.raises(SampledSetError, match="already holds an unfinished sampled set.*overwrite"):
        make_sampled_musdb(tmp_path / "cut", **TINY)
