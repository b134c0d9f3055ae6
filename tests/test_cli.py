"""The ``demucs-course`` command (every chapter): what ``toy-data`` prints, and which errors are one line (exit 2)."""

import pytest

from demucs_course import InputError, toy
from demucs_course.cli import content_line, is_bad_input, main


def test_toy_data_prints_the_content_hash_the_manifest_records(tmp_path, capsys):
    root = tmp_path / "toy"
    args = ["toy-data", str(root), "--train", "2", "--valid", "1", "--test", "1", "--train-seconds", "1",
            "--test-seconds", "1"]
    assert main(args) == 0
    digest = toy.read_manifest(root)["content_sha256"]
    assert len(digest) == 64 and f"content SHA-256: {digest}\n" in capsys.readouterr().out
    assert main(args) == 0                                  # an existing set: located, and its hash printed again
    assert f"content SHA-256: {digest}\n" in capsys.readouterr().out


def test_a_manifest_without_a_content_hash_gets_a_clear_line(tmp_path, monkeypatch):
    monkeypatch.setattr(toy, "read_manifest", lambda root: {"version": 1})
    line = content_line(tmp_path)
    assert "not recorded" in line and "--overwrite" in line and str(tmp_path) in line


def _raised_by_torch():
    import torch

    try:
        torch.zeros(2, 3) @ torch.zeros(2, 3)
    except RuntimeError as error:
        return error


def _raised_by_numpy():
    import numpy as np

    try:
        np.zeros(3).reshape(2, 2)
    except ValueError as error:
        return error


def _raised_on_purpose():
    from demucs_course.model import center_trim   # a plain ValueError with a message, in the course's own code

    import torch

    try:
        center_trim(torch.zeros(1, 10), 20)
    except ValueError as error:
        return error


def test_bad_input_is_the_course_speaking_not_a_library_failing():
    assert is_bad_input(InputError("a message"))
    assert not is_bad_input(_raised_by_torch())               # a RuntimeError from torch: a bug, keep the traceback
    assert not is_bad_input(_raised_by_numpy())               # a ValueError from numpy's insides: the same
    assert not is_bad_input(RuntimeError("CUDA out of memory"))
    on_purpose = _raised_on_purpose()
    assert on_purpose is not None and is_bad_input(on_purpose)


def test_evaluate_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    (tmp_path / "empty" / "train").mkdir(parents=True)
    cases = [(["--data", str(tmp_path / "nowhere")], "does not exist"),
             (["--data", str(tmp_path / "empty")], "No MUSDB18 tracks found"),
             (["model", "--checkpoint", str(tmp_path / "none.pt")], "none.pt does not exist"),
             (["model", "--device", "gpu"], "unknown device 'gpu'"),
             (["IRM2", "--shifts", "2"], "--checkpoint and --shifts are for WHAT=model")]
    for argv, words in cases:
        code = main(["evaluate", *argv, "--no-progress", "-o", str(tmp_path / "out")])
        err = capsys.readouterr().err
        assert code == 2 and words in err and err.count("\n") == 1, (argv, err)


def test_evaluate_on_a_dataset_with_a_damaged_stem_is_one_line_and_exit_2(toy_root, tmp_path, capsys):
    """Before: a traceback through musdb and stempeg (exit 1), with ffprobe's banner."""
    import shutil

    root = tmp_path / "root"
    shutil.copytree(toy_root, root)
    track = sorted((root / "test").iterdir())[0]
    (track / "vocals.wav").write_bytes(b"RIFF garbage" * 100)
    code = main(["evaluate", "IRM2", "--data", str(root), "--no-progress", "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert "vocals.wav cannot be read as a WAV file" in err


def test_version_is_the_package_version(capsys):
    import demucs_course

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out == f"demucs-course {demucs_course.__version__}\n"


@pytest.mark.parametrize("command", [["exercises"], ["grade", "submissions"]])
def test_grade_and_exercises_outside_a_checkout_ask_for_the_course_folder(command, tmp_path, monkeypatch, capsys):
    """Installed from a wheel, the package has no solutions/ beside it: before, Path(None) raised a TypeError."""
    from demucs_course import grading

    monkeypatch.setattr(grading, "REPO_ROOT", None)
    assert main(command) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--course DIR" in err, err
    assert main([*command, "--course", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nowhere does not exist" in err, err
    assert main([*command, "--course", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no exercise masters in" in err, err


def test_a_folder_of_masters_alone_is_a_course_and_exercises_need_an_output(tmp_path, capsys):
    """The otter habit of keeping the masters in a private repository: <name>/<name>.ipynb at its top."""
    from demucs_course.grading import masters

    (tmp_path / "ch01_x").mkdir()
    (tmp_path / "ch01_x" / "ch01_x.ipynb").write_text("{}")
    (tmp_path / "ch01_x" / "notes.ipynb").write_text("{}")        # not a master: its name is not the folder's
    assert masters(tmp_path) == [tmp_path / "ch01_x" / "ch01_x.ipynb"]
    assert main(["exercises", "--course", str(tmp_path)]) == 2
    assert "--out DIR" in capsys.readouterr().err


def test_ctrl_c_is_one_line_and_exit_130(monkeypatch, capsys):
    from demucs_course import cli

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_tracks", interrupted)
    assert main(["tracks", "toy"]) == 130
    assert capsys.readouterr().err.strip() == "demucs-course tracks: interrupted"
