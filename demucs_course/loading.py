"""Chapters 7-9: loading a trained model, and choosing the device it runs on.

Separating a song (Chapter 8), scoring a model (Chapter 9), a web app and training (Chapter 7) all need the same
two things: a device to run on and a model read from a checkpoint. They live here, below all of them, so that
inference never imports the training code:

    loading.py  <-  separate.py, evaluate.py, cli.py, a web app
                <-  train.py (which also *writes* checkpoints: checkpoints.py)

- :func:`pick_device`: CUDA, then Apple's MPS, then the CPU;
- :func:`read_checkpoint`: a checkpoint file (or a training folder's ``best.pt`` / ``last.pt``) as a dict, with
  clear errors for a missing, corrupt or foreign file;
- :func:`load_checkpoint`: the model a checkpoint holds, rebuilt from the config stored with it;
- :func:`load_pretrained` and :func:`pretrained_info`: the models shipped with the course and their records, by
  name (:data:`~demucs_course.pretrained.PRETRAINED_MODELS`; ``"toy"``: trained on the toy synthesiser's set).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from . import InputError
from .model import Demucs
from .pretrained import DEFAULT_MODEL, PRETRAINED_MODELS

#: A checkpoint file's ``format`` entry: anything else is not one of ours.
CHECKPOINT_FORMAT = "demucs-course-checkpoint"
#: The folder of the shipped models (:func:`load_pretrained`).
PRETRAINED_DIR = Path(__file__).resolve().parent / "pretrained"


def pretrained_path(name: str = DEFAULT_MODEL, suffix: str = ".pt") -> Path:
    """The file of the shipped model ``name`` (``suffix=".json"``: its record)."""
    if name not in PRETRAINED_MODELS:
        raise InputError(f"no shipped model named {name!r}; the course ships {', '.join(PRETRAINED_MODELS)}")
    return PRETRAINED_DIR / f"demucs_{name}{suffix}"


class CheckpointError(InputError):
    """A checkpoint that cannot be used: corrupt, or not one of the course's (a ValueError)."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """No checkpoint where one was named (both a :class:`CheckpointError` and a ``FileNotFoundError``)."""


def pick_device(device: str = "auto") -> torch.device:
    """``"auto"``: CUDA if there is a GPU, else Apple's MPS, else the CPU. Any other name is used as given; an
    unknown name, or a GPU that is not there, is an :class:`~demucs_course.InputError` (a ValueError)."""
    if device != "auto":
        try:
            chosen = torch.device(device)
        except RuntimeError:
            raise InputError(f"unknown device {device!r}: use auto, cpu, cuda, cuda:1 or mps") from None
        if chosen.type == "cuda" and not torch.cuda.is_available():
            raise InputError(f"device {device!r} asked for, but torch sees no CUDA GPU; use device='auto' or 'cpu'")
        if chosen.type == "mps" and not has_mps():
            raise InputError(f"device {device!r} asked for, but this torch has no Apple MPS backend; use 'auto' or "
                             "'cpu'")
        return chosen
    if torch.cuda.is_available():
        return torch.device("cuda")
    if has_mps():
        return torch.device("mps")
    return torch.device("cpu")


def has_mps() -> bool:
    """Whether Apple's Metal GPU backend is there."""
    return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


def read_checkpoint(path) -> dict:
    """Load a checkpoint file written by the course, on the CPU, with clear errors for a missing or bad file."""
    path = Path(path).expanduser()
    if path.is_dir():
        candidates = [path / "best.pt", path / "last.pt"]
        found = next((p for p in candidates if p.is_file()), None)
        if found is None:
            raise CheckpointNotFoundError(f"no checkpoint in the folder {path}: expected best.pt or last.pt there "
                                    "(train(config) writes them into config.checkpoint_dir)")
        path = found
    if not path.is_file():
        raise CheckpointNotFoundError(f"checkpoint {path} does not exist; give the path of a .pt file written by "
                                "demucs_course.train (or the folder holding best.pt / last.pt)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise CheckpointError(f"checkpoint {path} cannot be read ({type(error).__name__}: {error}); the file is "
                         "truncated or corrupt, or not a PyTorch file. Use another checkpoint (best.pt and last.pt "
                         "are written atomically: a crash cannot corrupt them, but a copy or a download can).") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is a PyTorch file but not a demucs_course checkpoint (no format "
                         f"{CHECKPOINT_FORMAT!r}); to load plain weights, build a Demucs and use load_state_dict")
    return state


def load_checkpoint(path, device=None) -> Demucs:
    """The model of a checkpoint, built from the config stored in it, in eval mode and in float32.

    ``path``: a ``.pt`` file written by :func:`~demucs_course.train.train` (``best.pt``, ``last.pt``) or
    :func:`~demucs_course.checkpoints.export_model`, or a checkpoint folder (its ``best.pt``, else ``last.pt``).
    ``device``: where to put the model (default: the CPU). Weights stored in float16 are restored to float32.
    Raises FileNotFoundError for a missing file and ValueError for a corrupt one.
    """
    state = read_checkpoint(path)
    model = Demucs(**state["config"]["model"])
    model.load_state_dict({name: value.float() for name, value in state["model"].items()})
    return model.to(device or "cpu").eval()


def load_pretrained(device=None, name: str = DEFAULT_MODEL) -> Demucs:
    """A model shipped with the course, by name (see ``pretrained/README.md``; default
    :data:`~demucs_course.pretrained.DEFAULT_MODEL`)."""
    return load_checkpoint(pretrained_path(name), device)


def pretrained_info(name: str = DEFAULT_MODEL) -> dict:
    """The record beside a shipped model: the command, seed, data set, training time, history and scores."""
    return json.loads(pretrained_path(name, ".json").read_text())
