"""Chapter 7: Training. The loop, its presets, checkpoints that survive a disconnect, and the shipped model.

One training step of Demucs v1, as in the paper and its code (Defossez et al. 2019):

1. a batch of extracts of the four sources, ``(batch, 4, 2, segment)``, each normalised by its track's mono-mix
   statistics, with ``segment = valid_length(L) + shift`` samples (L: the seconds of audio the model learns to
   output; shift: the room the Shift augmentation crops);
2. the augmentations of Chapter 2 (FlipSign, FlipChannels, Shift, Remix): the sources become ``valid_length(L)``
   samples long, a valid input length;
3. the mixture is rebuilt as the sum of the augmented sources, ``x = sum_j s_j``;
4. the model separates it: ``ŝ = f(x)``, ``(batch, 4, 2, L + a few)``; the targets are center-trimmed to that;
5. the loss, L1 by default, ``mean |ŝ - s|`` (L2, ``mean (ŝ - s)^2``, is the alternative), and one Adam step
   at a learning rate of 3e-4.

After each epoch the model separates every validation track whole (``separate_track``, as a user would, no shifts)
and the L1 (or L2) distance to the true stems, in the track's normalised scale, is its validation loss; the model
with the best one is kept.

Long runs die: a Colab runtime disconnects, a laptop sleeps. So the loop writes a checkpoint every epoch and every
``save_every_steps`` steps, atomically, with everything needed to continue as if nothing happened: the weights, the
optimizer (and the AMP scaler), the position in the epoch, the random number generators, the epoch's batches and
the history. ``train(config)`` called again on the same folder continues from there.

Files in ``config.checkpoint_dir``:

- ``last.pt``: the whole training state, rewritten every epoch and every ``save_every_steps`` steps;
- ``best.pt``: the weights of the epoch with the best validation loss, with the config and history (what
  :func:`load_checkpoint` loads).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import random
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import SAMPLE_RATE
from .augment import default_augment, mix_sources
from .data import ExtractDataset, load_tracks, normalize
from .model import TINY, Demucs, center_trim, count_parameters
from .separate import separate_track

#: A checkpoint file's ``format`` entry: anything else is not one of ours.
CHECKPOINT_FORMAT = "demucs-course-checkpoint"
#: The folder of the shipped model (:func:`load_pretrained`).
PRETRAINED_DIR = Path(__file__).resolve().parent / "pretrained"
#: The shipped model's file name in :data:`PRETRAINED_DIR`.
PRETRAINED_NAME = "demucs_toy.pt"


# --------------------------------------------------------------------------------------------------------------
# 1. The configuration, and the presets
# --------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class TrainConfig:
    """Everything that defines a training run; stored in every checkpoint.

    Args:
        model: keyword arguments of :class:`~demucs_course.model.Demucs` (default: the tiny model, ``TINY``).
        data: ``"toy"``, ``"preview"`` or the path of a MUSDB18 / MUSDB18-HQ root. Training uses the train split,
            validation the valid split (:func:`~demucs_course.data.load_tracks`).
        segment: seconds of audio the model learns to output per extract (the paper: 10). The extracts are
            ``valid_length(segment) + shift`` samples long.
        shift: seconds of room for the Shift augmentation (the paper: 1).
        stride: seconds between extracts, every extract of every track (the paper: 1). Give stride or per_minute.
        per_minute: random extracts per minute of track, drawn again every epoch (the seed re-implementation: 1.25).
        batch_size: extracts per step; a multiple of ``group_size``.
        group_size: the Remix group (the paper: 4).
        epochs: the number of epochs to reach (a resumed run continues up to it).
        lr: Adam's learning rate (the paper: 3e-4).
        loss: ``"l1"`` (the paper) or ``"l2"`` (mean squared error).
        workers: DataLoader worker processes (0: load in the main process).
        checkpoint_dir: the folder of ``last.pt`` and ``best.pt``.
        save_every_steps: also write ``last.pt`` every this many optimizer steps (0: only at the end of epochs).
        valid_every: validate every this many epochs (and always after the last one).
        seed: seeds torch, numpy, python's random, the batch order and the augmentations.
        device: ``"auto"`` (cuda, then mps, then cpu) or a torch device name.
        amp: mixed precision (float16 autocast and a gradient scaler) when the device is CUDA; ignored elsewhere.
    """

    model: dict = dataclasses.field(default_factory=lambda: dict(TINY))
    data: str | None = "toy"
    segment: float = 3.0
    shift: float = 0.5
    stride: float | None = 1.0
    per_minute: float | None = None
    batch_size: int = 4
    group_size: int = 4
    epochs: int = 10
    lr: float = 3e-4
    loss: str = "l1"
    workers: int = 0
    checkpoint_dir: str = "checkpoints"
    save_every_steps: int = 100
    valid_every: int = 1
    seed: int = 0
    device: str = "auto"
    amp: bool = True

    def check(self) -> None:
        """Raise a ValueError that says what to change when the settings cannot train."""
        if self.data is None:
            raise ValueError("config.data is not set: pass data='toy', 'preview', or the path of a MUSDB18 / "
                             "MUSDB18-HQ root (the folder holding train/ and test/); on the command line: --data PATH")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {sorted(LOSSES)}, got {self.loss!r}")
        for name in ("batch_size", "group_size", "epochs", "valid_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.batch_size % self.group_size:
            lower = max(self.group_size, self.batch_size // self.group_size * self.group_size)
            raise ValueError(
                f"batch_size ({self.batch_size}) must be a multiple of the Remix group_size ({self.group_size}): "
                f"Remix shuffles sources within groups of {self.group_size} examples. Use a batch size of {lower} "
                f"or {lower + self.group_size}.")
        if (self.stride is None) == (self.per_minute is None):
            raise ValueError("give exactly one of stride (seconds between extracts, the paper) or per_minute "
                             f"(random extracts per minute of track); got stride={self.stride!r}, "
                             f"per_minute={self.per_minute!r}")
        if not self.segment > 0 or self.shift < 0 or not self.lr > 0:
            raise ValueError(f"segment and lr must be positive and shift >= 0, got segment={self.segment!r}, "
                             f"shift={self.shift!r}, lr={self.lr!r}")
        if self.workers < 0 or self.save_every_steps < 0:
            raise ValueError(f"workers and save_every_steps must be >= 0, got {self.workers!r}, "
                             f"{self.save_every_steps!r}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown TrainConfig settings {sorted(unknown)}; known: {sorted(known)}")
        return cls(**values)


PRESETS = {
    # Minutes on 2 CPU cores, on the toy set: the tiny model, 3-s extracts with a 1-s stride (59 steps an epoch).
    # Its learning rate is 1e-3, not the paper's 3e-4: a model this small on this little data learns faster with
    # larger steps. Seed 0, after the same 10 epochs (590 steps): validation L1 0.258 at 3e-4, 0.228 at 1e-3.
    "tiny-cpu": TrainConfig(model=dict(TINY), data="toy", segment=3.0, shift=0.5, stride=1.0, batch_size=4,
                            epochs=20, lr=1e-3, checkpoint_dir="checkpoints/tiny-cpu", save_every_steps=50),
    # One 16 GB T4 (Colab's free GPU), as the seed re-implementation trained it: channels 64, batch 8, 1.25 random
    # 11-s extracts per minute of track, 240 epochs, validation every 10 epochs. Needs data=PATH (MUSDB18).
    "colab-t4": TrainConfig(model=dict(channels=64), data=None, segment=10.0, shift=1.0, stride=None,
                            per_minute=1.25, batch_size=8, epochs=240, workers=2, checkpoint_dir="checkpoints/colab-t4",
                            save_every_steps=20, valid_every=10),
    # The paper: channels 100, batch 64, 120 epochs, every 11-s extract with a 1-s stride. It trained on 16 V100
    # 32 GB GPUs (the seed report; 8 in the code); one GPU cannot hold batch 64. Needs data=PATH (MUSDB18).
    "paper": TrainConfig(model=dict(channels=100), data=None, segment=10.0, shift=1.0, stride=1.0, batch_size=64,
                         epochs=120, workers=8, checkpoint_dir="checkpoints/paper", save_every_steps=100),
}


def preset(name: str, **overrides) -> TrainConfig:
    """A copy of the preset ``name`` (``tiny-cpu``, ``colab-t4``, ``paper``) with some settings changed."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    values = PRESETS[name].to_dict()
    if "model" in overrides:
        overrides = {**overrides, "model": {**values["model"], **overrides["model"]}}
    return TrainConfig.from_dict({**values, **overrides})


# --------------------------------------------------------------------------------------------------------------
# 2. Device, seeds and determinism
# --------------------------------------------------------------------------------------------------------------


def pick_device(device: str = "auto") -> torch.device:
    """``"auto"``: CUDA if there is a GPU, else Apple's MPS, else the CPU. Any other name is used as given."""
    if device != "auto":
        chosen = torch.device(device)
        if chosen.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {device!r} asked for, but torch sees no CUDA GPU; use device='auto' or 'cpu'")
        return chosen
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _has_mps():
        return torch.device("mps")
    return torch.device("cpu")


def _has_mps() -> bool:
    """Whether Apple's Metal GPU backend is there."""
    return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


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
        "mps": torch.mps.get_rng_state() if _has_mps() else None,
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": random.getstate(),
    }


def set_rng_states(states: dict) -> None:
    """Restore what :func:`rng_states` saved."""
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available() and len(states["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(states["cuda"])
    if states.get("mps") is not None and _has_mps():
        torch.mps.set_rng_state(states["mps"])
    n = states["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    random.setstate(_as_python_state(states["python"]))


def _as_python_state(state):
    """random.setstate wants tuples; a state that went through a checkpoint may come back with lists."""
    version, internal, gauss = state
    return version, tuple(internal), gauss


# --------------------------------------------------------------------------------------------------------------
# 3. Data: the extracts, and the batches of an epoch
# --------------------------------------------------------------------------------------------------------------


def seconds_to_samples(seconds: float) -> int:
    return int(round(seconds * SAMPLE_RATE))


def make_dataset(config: TrainConfig, model: Demucs, tracks) -> ExtractDataset:
    """The extracts for training: ``valid_length(segment) + shift`` samples, by stride or at random per minute."""
    length = model.valid_length(seconds_to_samples(config.segment)) + seconds_to_samples(config.shift)
    if config.stride is not None:
        return ExtractDataset(tracks, length, stride=seconds_to_samples(config.stride), seed=config.seed)
    return ExtractDataset(tracks, length, per_minute=config.per_minute, seed=config.seed)


def epoch_batches(n_examples: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """The batches of an epoch: a random order of the extracts drawn from ``(seed, epoch)``, cut into full batches
    (the last, incomplete batch is dropped: Remix needs whole groups). The same seed and epoch give the same list."""
    order = np.random.default_rng([seed, epoch, 1]).permutation(n_examples).tolist()
    usable = n_examples // batch_size * batch_size
    return [order[start:start + batch_size] for start in range(0, usable, batch_size)]


def make_loader(dataset, batches: list[list[int]], config: TrainConfig, epoch: int, device: torch.device):
    """A DataLoader that yields exactly ``batches`` (lists of extract indices), in that order."""
    generator = torch.Generator().manual_seed(config.seed * 1_000_003 + epoch)   # the workers' seeds
    return torch.utils.data.DataLoader(dataset, batch_sampler=batches, num_workers=config.workers,
                                       generator=generator, worker_init_fn=seed_worker,
                                       pin_memory=device.type == "cuda")


# --------------------------------------------------------------------------------------------------------------
# 4. One step, and validation
# --------------------------------------------------------------------------------------------------------------

#: The training criteria: L1 = mean |ŝ - s| (the paper), L2 = mean (ŝ - s)^2.
LOSSES = {"l1": F.l1_loss, "l2": F.mse_loss}


def train_step(model, batch, augment, optimizer, scaler, criterion, device, amp: bool) -> float:
    """One optimizer step on a batch of source extracts ``(batch, 4, 2, segment)``; returns the loss.

    The sources are augmented (and shortened by Shift to a valid length), the mixture is their sum, the model's
    estimates are compared to the sources center-trimmed to the estimates' length.
    """
    sources = augment(batch.to(device, non_blocking=True))     # (B, 4, 2, valid_length(L))
    mix = mix_sources(sources)                                  # x = sum_j s_j: (B, 2, valid_length(L))
    with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=amp):
        estimates = model(mix)                                  # ŝ = f(x): (B, 4, 2, L + a few)
        loss = criterion(estimates.float(), center_trim(sources, estimates))
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()                               # with amp: the loss times a scale, so that small
    scaler.step(optimizer)                                      # float16 gradients do not flush to zero; step()
    scaler.update()                                             # unscales them and skips steps with inf/NaN
    return float(loss.detach())


def validate(model, tracks, criterion, device) -> float:
    """The mean over ``tracks`` of the loss between the whole-track separation and the true stems.

    Each track is separated as a user would separate it, with :func:`~demucs_course.separate.separate_track`
    (normalised by its own statistics, no shifts); the loss is taken in that normalised scale, the scale of the
    training loss: ``criterion(normalize(ŝ), normalize(s))``.
    """
    was_training = model.training
    model.eval()
    try:
        losses = []
        for track in tracks:
            estimates = separate_track(model, track.mixture(), device=device)
            losses.append(float(criterion(normalize(estimates, track.stats), normalize(track.sources(), track.stats))))
    finally:
        model.train(was_training)
    return sum(losses) / len(losses)


# --------------------------------------------------------------------------------------------------------------
# 5. Checkpoints that survive
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


def read_checkpoint(path) -> dict:
    """Load a checkpoint file written by this module, on the CPU, with clear errors for a missing or bad file."""
    path = Path(path).expanduser()
    if path.is_dir():
        candidates = [path / "best.pt", path / "last.pt"]
        found = next((p for p in candidates if p.is_file()), None)
        if found is None:
            raise FileNotFoundError(f"no checkpoint in the folder {path}: expected best.pt or last.pt there "
                                    "(train(config) writes them into config.checkpoint_dir)")
        path = found
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist; give the path of a .pt file written by "
                                "demucs_course.train (or the folder holding best.pt / last.pt)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ValueError(f"checkpoint {path} cannot be read ({type(error).__name__}: {error}); the file is "
                         "truncated or corrupt, or not a PyTorch file. Use another checkpoint (best.pt and last.pt "
                         "are written atomically: a crash cannot corrupt them, but a copy or a download can).") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is a PyTorch file but not a demucs_course checkpoint (no format "
                         f"{CHECKPOINT_FORMAT!r}); to load plain weights, build a Demucs and use load_state_dict")
    return state


def load_checkpoint(path, device=None) -> Demucs:
    """The model of a checkpoint, built from the config stored in it, in eval mode and in float32.

    ``path``: a ``.pt`` file written by :func:`train` (``best.pt``, ``last.pt``) or :func:`export_model`, or a
    checkpoint folder (its ``best.pt``, else ``last.pt``). ``device``: where to put the model (default: the CPU).
    Weights stored in float16 are restored to float32. Raises FileNotFoundError for a missing file and ValueError
    for a corrupt one.
    """
    state = read_checkpoint(path)
    model = Demucs(**state["config"]["model"])
    model.load_state_dict({name: value.float() for name, value in state["model"].items()})
    return model.to(device or "cpu").eval()


def export_model(checkpoint, path, *, half: bool = True, metadata: dict | None = None) -> Path:
    """Write the model of ``checkpoint`` (a file or folder) to ``path`` as a small model-only checkpoint: the
    weights (float16 with ``half``: half the size), the config and the history, and ``metadata`` if given."""
    state = read_checkpoint(checkpoint)
    weights = {name: value.half() if half and value.is_floating_point() else value
               for name, value in state["model"].items()}
    small = {"format": CHECKPOINT_FORMAT, "kind": "model", "model": weights, "config": state["config"],
             "history": state["history"], "metadata": metadata or {}}
    return save_atomic(small, path)


def load_pretrained(device=None) -> Demucs:
    """The model shipped with the course: a small Demucs trained on the toy set (see ``pretrained/README.md``)."""
    return load_checkpoint(PRETRAINED_DIR / PRETRAINED_NAME, device)


def pretrained_info() -> dict:
    """The record beside the shipped model: the command, seed, data version, training time and history."""
    return json.loads((PRETRAINED_DIR / "demucs_toy.json").read_text())


def _config_differences(saved: dict, config: TrainConfig) -> list[str]:
    """The settings that changed since the checkpoint, other than those a resumed run may change."""
    free = {"epochs", "checkpoint_dir", "device", "workers", "save_every_steps", "valid_every", "amp"}
    now = config.to_dict()
    return [f"{k}: {saved.get(k)!r} -> {now[k]!r}" for k in now if k not in free and saved.get(k) != now[k]]


# --------------------------------------------------------------------------------------------------------------
# 6. The loop
# --------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class TrainResult:
    """What :func:`train` returns: the best model (eval mode), the history and where the checkpoints are."""

    model: Demucs
    history: dict
    checkpoint_dir: Path
    seconds: float

    @property
    def best(self) -> dict:
        """The history's record of the best validated epoch."""
        return min((e for e in self.history["epochs"] if e["valid"] is not None), key=lambda e: e["valid"])


def new_history() -> dict:
    """Per-step training losses, and one record per epoch: mean train loss, validation loss, time."""
    return {"step_loss": [], "epochs": []}


def train(config: TrainConfig, *, resume: bool = True, progress: bool = True, callback=None,
          time_limit: float | None = None, clock=time.perf_counter) -> TrainResult:
    """Train Demucs with ``config``; continue from ``checkpoint_dir/last.pt`` when there is one and ``resume``.

    A resumed run continues exactly where the checkpoint left it, mid-epoch included: the same batches, the same
    augmentations, the same losses as a run that was never interrupted (to float precision; bit for bit on the CPU).
    ``config.epochs`` may be raised to train longer; other settings must match the checkpoint's.
    With ``resume=False`` an existing checkpoint in the folder is ignored and overwritten.

    ``callback(record)``, if given, is called after every step with a dict (epoch, step, global_step, loss): a hook
    for logging (raising an exception in it stops training, as a disconnect would).

    ``time_limit`` (seconds): stop at the end of the first epoch after which one more epoch, as long as the mean
    epoch so far, would end past the limit; that epoch is validated. A later call resumes from there. ``clock``
    measures it: the wall clock by default; ``time.process_time`` (this process's CPU time, all its threads) is
    fairer on a machine shared with other work.

    Returns a :class:`TrainResult` whose model is the best one by validation loss.
    """
    config.check()
    started, clock_started = time.perf_counter(), clock()
    device = pick_device(config.device)
    amp = config.amp and device.type == "cuda"
    folder = Path(config.checkpoint_dir).expanduser()
    last_path, best_path = folder / "last.pt", folder / "best.pt"

    seed_everything(config.seed)
    model = Demucs(**config.model).to(device)          # the seed fixes the initial weights
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    criterion = LOSSES[config.loss]
    augment = default_augment(seconds_to_samples(config.shift), config.group_size).to(device).train()

    # Where to start: the beginning, or the position saved in last.pt.
    epoch, step, history, resumed = 0, 0, new_history(), None
    if resume and last_path.is_file():
        resumed = read_checkpoint(last_path)
        if resumed.get("kind") != "training":
            raise ValueError(f"{last_path} holds no training state (only a model); remove it or pass resume=False")
        changed = _config_differences(resumed["config"], config)
        if changed:
            raise ValueError(f"{last_path} was written by a run with other settings ({'; '.join(changed)}). "
                             "Resume with the same settings, or use another checkpoint_dir (or resume=False to "
                             "start again and overwrite it).")
        model.load_state_dict(resumed["model"])
        optimizer.load_state_dict(resumed["optimizer"])
        if amp and resumed["scaler"]:
            scaler.load_state_dict(resumed["scaler"])
        epoch, step, history = resumed["epoch"], resumed["step"], resumed["history"]
        if progress:
            print(f"resuming from {last_path}: epoch {epoch + 1}, after step {step}")
    global_step, first_epoch = len(history["step_loss"]), epoch

    train_tracks = load_tracks(config.data, "train", "train")
    valid_tracks = load_tracks(config.data, "train", "valid")
    dataset = make_dataset(config, model, train_tracks)
    if len(dataset) < config.batch_size:
        raise ValueError(f"an epoch holds {len(dataset)} extracts, fewer than one batch of {config.batch_size}: "
                         "lower batch_size, or take more extracts (a smaller stride or a larger per_minute)")

    def save_last(epoch: int, step: int, batches, epoch_losses) -> None:
        """last.pt: everything needed to continue after ``step`` batches of ``epoch`` (0-based)."""
        save_atomic({"format": CHECKPOINT_FORMAT, "kind": "training", "config": config.to_dict(),
                     "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                     "scaler": scaler.state_dict() if amp else {}, "epoch": epoch, "step": step,
                     "epoch_losses": list(epoch_losses), "rng": rng_states(),
                     "data": {"epoch": epoch, "batches": batches}, "history": history}, last_path)

    if resumed is not None:
        set_rng_states(resumed["rng"])                 # last: the next draw is the one the saved run would make
    with deterministic(device):
        while epoch < config.epochs:
            epoch_start = time.perf_counter()
            dataset.set_epoch(epoch)                   # random mode: this epoch's offsets, from (seed, epoch)
            if resumed is not None and resumed["data"]["batches"] is not None:   # mid-epoch: the saved batches
                batches, epoch_losses = resumed["data"]["batches"], list(resumed["epoch_losses"])
            else:
                batches, epoch_losses = epoch_batches(len(dataset), config.batch_size, config.seed, epoch), []
            resumed = None
            loader = make_loader(dataset, batches[step:], config, epoch, device)
            bar = _progress(loader, progress, f"epoch {epoch + 1}/{config.epochs}", len(batches), step)
            for batch in bar:
                loss = train_step(model, batch, augment, optimizer, scaler, criterion, device, amp)
                if not math.isfinite(loss):
                    raise FloatingPointError(
                        f"the training loss became {loss} at epoch {epoch + 1}, step {step + 1}; lower the learning "
                        f"rate, or resume from {last_path} (the last finite state)")
                epoch_losses.append(loss)
                history["step_loss"].append(loss)
                step += 1
                global_step += 1
                if progress:
                    bar.set_postfix(loss=f"{loss:.4f}")
                if config.save_every_steps and global_step % config.save_every_steps == 0 and step < len(batches):
                    save_last(epoch, step, batches, epoch_losses)
                if callback is not None:
                    callback({"epoch": epoch, "step": step, "global_step": global_step, "loss": loss})

            record = {"epoch": epoch + 1, "train": float(np.mean(epoch_losses)), "valid": None, "best": False,
                      "train_seconds": time.perf_counter() - epoch_start}
            done, elapsed = epoch + 1 - first_epoch, clock() - clock_started
            out_of_time = time_limit is not None and elapsed + elapsed / done > time_limit   # one more would overrun
            if (epoch + 1) % config.valid_every == 0 or epoch + 1 == config.epochs or out_of_time:
                best = min((e["valid"] for e in history["epochs"] if e["valid"] is not None), default=math.inf)
                record["valid"] = validate(model, valid_tracks, criterion, device)
                record["best"] = record["valid"] < best
            record["seconds"] = time.perf_counter() - epoch_start
            history["epochs"].append(record)
            if record["best"]:                         # keep the best model by validation
                save_atomic({"format": CHECKPOINT_FORMAT, "kind": "model", "config": config.to_dict(),
                             "model": {k: v.cpu() for k, v in model.state_dict().items()},
                             "history": history, "epoch": epoch + 1}, best_path)
            if progress:
                valid = f", valid {record['valid']:.4f}" if record["valid"] is not None else ""
                print(f"epoch {epoch + 1}: train {record['train']:.4f}{valid} ({record['seconds']:.1f} s)")
            epoch, step = epoch + 1, 0
            save_last(epoch, 0, None, [])
            if out_of_time:
                break

    model = load_checkpoint(best_path, device)
    return TrainResult(model, history, folder, time.perf_counter() - started)


def _progress(loader, enabled: bool, description: str, total: int, done: int):
    """A tqdm progress bar (tqdm.auto: a widget in notebooks, text in a terminal), or the loader itself."""
    if not enabled:
        return loader
    from tqdm.auto import tqdm

    return tqdm(loader, desc=description, total=total, initial=done, unit="batch", leave=False)


# --------------------------------------------------------------------------------------------------------------
# 7. Loss curves
# --------------------------------------------------------------------------------------------------------------


def plot_history(history: dict, *, label: str | None = None, ax=None):
    """The loss curves of a run: the training loss per step (faint), its mean per epoch, and the validation loss
    per epoch (the best one circled). Returns the matplotlib Figure; pass ``ax`` to draw into existing axes."""
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=(8, 3.5))
    fig = ax.figure
    epochs = history["epochs"]
    if not epochs:
        raise ValueError("the history holds no finished epoch yet: nothing to plot")
    steps_per_epoch = len(history["step_loss"]) / len(epochs)
    prefix = f"{label}: " if label else ""
    steps = np.arange(1, len(history["step_loss"]) + 1) / steps_per_epoch
    line = ax.plot(steps, history["step_loss"], alpha=0.25, lw=0.8)[0]
    color = line.get_color()
    ax.plot([e["epoch"] for e in epochs], [e["train"] for e in epochs], "-", color=color, label=f"{prefix}train")
    validated = [e for e in epochs if e["valid"] is not None]
    ax.plot([e["epoch"] for e in validated], [e["valid"] for e in validated], "--o", color=color, ms=3,
            label=f"{prefix}validation")
    best = min(validated, key=lambda e: e["valid"], default=None)
    if best is not None:
        ax.plot(best["epoch"], best["valid"], "o", ms=10, mfc="none", color=color)
    ax.set(xlabel="epoch", ylabel="loss (normalised scale)", title="loss curves")
    ax.legend()
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------------------------
# 8. Sizing a run before paying for it: memory and compute
# --------------------------------------------------------------------------------------------------------------


def activation_bytes(model_kwargs: dict, seconds: float) -> int:
    """Bytes of the tensors autograd keeps for the backward pass, for one example of ``seconds`` (float32).

    Measured, not guessed: one forward pass on the CPU with a ``saved_tensors_hooks`` that adds up the storage of
    every tensor saved for backward (each storage once; the weights are not counted).
    """
    torch.manual_seed(0)
    model = Demucs(**model_kwargs)
    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved = {}

    def pack(tensor):
        pointer = tensor.untyped_storage().data_ptr()
        if pointer not in weights:
            saved[pointer] = tensor.untyped_storage().nbytes()
        return tensor

    mix = torch.randn(1, model.audio_channels, model.valid_length(seconds_to_samples(seconds)))
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        model(mix)
    return sum(saved.values())


def memory_estimate(config: TrainConfig, *, measure_seconds: float = 1.0) -> dict:
    """GPU memory a training step of ``config`` needs, in GiB, in four parts:

    - ``weights``, ``grads``: 4 bytes per parameter each (float32, also under AMP);
    - ``adam``: two float32 moments per parameter (8 bytes);
    - ``activations``: :func:`activation_bytes` measured at ``measure_seconds`` and ``2 * measure_seconds``,
      extrapolated linearly to ``config.segment`` seconds, times the batch size; under AMP (CUDA) the saved
      activations are mostly float16, counted as 0.55 of the float32 figure, plus the float16 copy of the weights.

    Add about 1 GiB for the CUDA context, cuDNN's workspace and the allocator's slack.
    """
    with torch.device("meta"):
        parameters = count_parameters(Demucs(**config.model))
    gib = 2**30
    one, two = (activation_bytes(config.model, s) for s in (measure_seconds, 2 * measure_seconds))
    per_second = (two - one) / measure_seconds                     # bytes = one + per_second * (seconds - measure)
    activations = (one + per_second * (config.segment - measure_seconds)) * config.batch_size
    estimate = {"parameters": parameters, "weights": 4 * parameters / gib, "grads": 4 * parameters / gib,
                "adam": 8 * parameters / gib, "activations_fp32": activations / gib,
                "activations_amp": (0.55 * activations + 2 * parameters) / gib}
    return estimate


def flops_per_example(model_kwargs: dict, seconds: float) -> float:
    """Floating point operations of one training example (forward and backward) of ``seconds``, counted by
    ``torch.utils.flop_counter`` on the meta device (no memory, no time)."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        model = Demucs(**model_kwargs)
        mix = torch.zeros(1, model.audio_channels, model.valid_length(seconds_to_samples(seconds)))
        with FlopCounterMode(display=False) as counter:
            model(mix).sum().backward()
    return float(counter.get_total_flops())


# --------------------------------------------------------------------------------------------------------------
# 9. How good is it? The SDR on the test tracks
# --------------------------------------------------------------------------------------------------------------


def median_sdr(tracks, estimate) -> dict[str, float]:
    """The paper's score of ``estimate`` on ``tracks``: for each source, the median over tracks of the median
    over 1-s windows of the SDR (BSS-eval v4, :func:`~demucs_course.metrics.sdr_v4`), in dB, and ``"mean"``, the
    mean over the four sources. ``estimate(track)`` returns the separated sources ``(4, 2, T)`` of a track
    (e.g. ``lambda t: separate_track(model, t.mixture())``)."""
    from . import SOURCES
    from .metrics import sdr_v4

    per_track = []
    for track in tracks:
        references = track.sources().numpy().transpose(0, 2, 1)            # (sources, samples, channels)
        estimates = np.asarray(estimate(track), dtype=np.float64).transpose(0, 2, 1)
        per_track.append(np.nanmedian(sdr_v4(references, estimates), axis=1))
    medians = np.median(np.stack(per_track), axis=0)
    scores = {name: float(value) for name, value in zip(SOURCES, medians)}
    scores["mean"] = float(np.mean(medians))
    return scores
