"""Chapter 7: Training -- checkpoints that survive a disconnect, and resuming exactly.

Long runs die: a Colab runtime disconnects, a laptop sleeps. So the loop (:func:`demucs_course.train.train`) writes
a checkpoint every epoch and every ``save_every_steps`` steps with everything needed to continue as if nothing
happened. This module holds the pieces that make that exact:

- :func:`save_atomic`: a write that a crash at any moment leaves either the old file or the new one, whole;
- :func:`seed_everything`, :func:`seed_worker`, :func:`deterministic`: seeds and deterministic kernels;
- :func:`rng_states` and :func:`set_rng_states`: every random number generator the loop uses, saved and restored;
- :func:`config_differences`: the settings a resumed run may not change;
- :func:`export_model`: a small, model-only copy of a checkpoint (how the shipped model was made).

Reading a checkpoint back is not training: :func:`~demucs_course.loading.read_checkpoint` and
:func:`~demucs_course.loading.load_checkpoint` live in :mod:`demucs_course.loading`, which inference uses too.
"""

from __future__ import annotations

import contextlib
import os
import random
import tempfile
from pathlib import Path

import numpy as np
import torch

from .loading import CHECKPOINT_FORMAT, has_mps, read_checkpoint

# --------------------------------------------------------------------------------------------------------------
# Seeds and determinism
# --------------------------------------------------------------------------------------------------------------


def seed_everything(seed: int) -> None:
    """Seed python's ``random``, numpy's global generator and torch (CPU and every GPU)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def seed_worker(worker_id: int) -> None:
    """A DataLoader ``worker_init_fn``: seed numpy and ``random`` in each worker from torch's per-worker seed
    (the loader's seeded generator makes that one reproducible)."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


@contextlib.contextmanager
def deterministic(device: torch.device):
    """On the CPU, ask torch for deterministic kernels for the duration (and restore the setting afterwards)."""
    if device.type != "cpu":
        yield
        return
    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before)


def rng_states() -> dict:
    """The state of every random number generator the loop uses, as tensors and plain numbers."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "mps": torch.mps.get_rng_state() if has_mps() else None,
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": random.getstate(),
    }


def set_rng_states(states: dict) -> None:
    """Restore what :func:`rng_states` saved."""
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available() and len(states["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(states["cuda"])
    if states.get("mps") is not None and has_mps():
        torch.mps.set_rng_state(states["mps"])
    n = states["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    random.setstate(_as_python_state(states["python"]))


def _as_python_state(state):
    """random.setstate wants tuples; a state that went through a checkpoint may come back with lists."""
    version, internal, gauss = state
    return version, tuple(internal), gauss


# --------------------------------------------------------------------------------------------------------------
# Writing checkpoints
# --------------------------------------------------------------------------------------------------------------


def save_atomic(obj, path) -> Path:
    """``torch.save`` to ``path`` so that a crash at any moment leaves either the old file or the new one, whole.

    The data goes to a temporary file in the same folder, is flushed to the disk (``fsync``), and only then
    replaces ``path`` in one step (``os.replace``, atomic on POSIX file systems and on Windows). If anything fails
    on the way, the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(temporary, 0o644)             # mkstemp makes it private (0600); a checkpoint is an ordinary file
        with os.fdopen(handle, "wb") as file:
            torch.save(obj, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    with contextlib.suppress(OSError):   # make the rename itself durable (not possible on every system)
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
    return path


def export_model(checkpoint, path, *, half: bool = True, metadata: dict | None = None) -> Path:
    """Write the model of ``checkpoint`` (a file or folder) to ``path`` as a small model-only checkpoint: the
    weights (float16 with ``half``: half the size), the config and the history, and ``metadata`` if given."""
    state = read_checkpoint(checkpoint)
    weights = {name: value.half() if half and value.is_floating_point() else value
               for name, value in state["model"].items()}
    small = {"format": CHECKPOINT_FORMAT, "kind": "model", "model": weights, "config": state["config"],
             "history": state["history"], "metadata": metadata or {}}
    return save_atomic(small, path)


def config_differences(saved: dict, config) -> list[str]:
    """The settings that changed since the checkpoint, other than those a resumed run may change."""
    free = {"epochs", "checkpoint_dir", "device", "workers", "save_every_steps", "valid_every", "amp",
            "collective_timeout"}
    now = config.to_dict()
    saved = {**type(config)().to_dict(), **saved}   # a setting added since the checkpoint was written: its default
    return [f"{k}: {saved.get(k)!r} -> {now[k]!r}" for k in now if k not in free and saved.get(k) != now[k]]
