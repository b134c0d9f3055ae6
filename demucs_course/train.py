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
  :func:`~demucs_course.loading.load_checkpoint` loads).

The same loop runs under ``torchrun`` on several GPUs or machines (``config.batch_size`` is then the global batch,
shared by the processes): :mod:`demucs_course.distributed` holds what that changes.

This module is the loop: the batches of an epoch, one step, validation, :func:`train` and the loss curves. Around it,
in Chapter 7 too: :mod:`demucs_course.presets` (the config, the presets, sizing a run),
:mod:`demucs_course.checkpoints` (atomic writes, random states, export) and :mod:`demucs_course.distributed`.
Loading a model and picking a device are not training: they live in :mod:`demucs_course.loading`, and the paper's
median SDR in :mod:`demucs_course.evaluate`.
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path

import numpy as np
import torch

from .augment import default_augment, mix_sources
from .checkpoints import (config_differences, deterministic, rng_states, save_atomic, seed_everything, seed_worker,
                          set_rng_states)
from .data import ExtractDataset, load_tracks, normalize
from .distributed import join, rank_seed
from .loading import CHECKPOINT_FORMAT, CheckpointError, load_checkpoint, read_checkpoint
from .model import Demucs, center_trim
from .presets import LOSSES, ConfigError, TrainConfig, extract_samples, seconds_to_samples
from .separate import separate_track

# --------------------------------------------------------------------------------------------------------------
# 1. Data: the extracts, and the batches of an epoch
# --------------------------------------------------------------------------------------------------------------


def make_dataset(config: TrainConfig, model: Demucs, tracks) -> ExtractDataset:
    """The extracts for training, by stride or at random per minute: ``valid_length(segment) + shift`` samples
    (:func:`~demucs_course.presets.extract_samples`)."""
    length = extract_samples(config, model)
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
# 2. One step, and validation
# --------------------------------------------------------------------------------------------------------------


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
# 3. The loop
# --------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class TrainResult:
    """What :func:`train` returns: the best model (eval mode), the history and where the checkpoints are; under
    ``torchrun``, this process's ``rank`` of ``world_size`` (only rank 0 holds the best model: the others hold the
    weights as training left them)."""

    model: Demucs
    history: dict
    checkpoint_dir: Path
    seconds: float
    rank: int = 0
    world_size: int = 1

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

    Under ``torchrun`` every process runs this function (:mod:`demucs_course.distributed`); ``callback`` is called
    in each, ``progress`` and the checkpoints are rank 0's, and ``checkpoint_dir`` must be a folder they all see.

    Returns a :class:`TrainResult` whose model is the best one by validation loss.
    """
    config.check()
    with join(config) as (group, device):
        with group.guard(Path(config.checkpoint_dir).expanduser()):
            return _train(config, group, device, resume=resume, progress=progress and group.is_main,
                          callback=callback, time_limit=time_limit, clock=clock)


def _train(config, group, device, *, resume, progress, callback, time_limit, clock) -> TrainResult:
    """:func:`train` in one process of ``group`` (one process: the whole run)."""
    started, clock_started = time.perf_counter(), clock()
    amp = config.amp and device.type == "cuda"
    folder = Path(config.checkpoint_dir).expanduser()
    last_path, best_path = folder / "last.pt", folder / "best.pt"

    seed_everything(config.seed)
    model = Demucs(**config.model).to(device)          # the seed fixes the initial weights (the same in every process)
    if group.rank > 0:
        seed_everything(rank_seed(config.seed, group.rank))   # its own augmentations; rank 0 goes on with the seed's
    net = group.wrap(model, device)                   # several processes: DDP averages their gradients
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    criterion = LOSSES[config.loss]
    augment = default_augment(seconds_to_samples(config.shift), config.group_size, config.repitch).to(device)
    augment.train(config.augment)                      # eval(): no random augmentation, Shift keeps the first window

    # Where to start: the beginning, or the position saved in last.pt.
    epoch, step, history, resumed = 0, 0, new_history(), None
    if resume and last_path.is_file():
        resumed = read_checkpoint(last_path)
        if resumed.get("kind") != "training":
            raise CheckpointError(f"{last_path} holds no training state (only a model); remove it or pass resume=False")
        changed = config_differences(resumed["config"], config)
        if changed:
            raise CheckpointError(f"{last_path} was written by a run with other settings ({'; '.join(changed)}). "
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
    if len(set(group.gather((epoch, step, global_step)))) > 1:
        raise CheckpointError(f"the processes of this run found different checkpoints in {folder}: checkpoint_dir "
                              "must be one folder that every process sees (on several machines, a shared file system)")

    def read_data():                                   # a full MUSDB18: minutes, the first time
        return (load_tracks(config.data, "train", "train", progress=progress),
                load_tracks(config.data, "train", "valid", progress=progress))

    train_tracks, valid_tracks = group.rank_0_first(read_data)   # rank 0 fills the cache, the others read it
    dataset = make_dataset(config, model, train_tracks)
    if len(dataset) < config.batch_size:
        raise ConfigError(f"an epoch holds {len(dataset)} extracts, fewer than one batch of {config.batch_size}: "
                         "lower batch_size, or take more extracts (a smaller stride or a larger per_minute)")

    def save_last(epoch: int, step: int, batches, epoch_losses) -> None:
        """last.pt: everything needed to continue after ``step`` batches of ``epoch`` (0-based); written by rank 0,
        with the random states of every rank."""
        rng = group.gather(rng_states())
        if group.is_main:
            save_atomic({"format": CHECKPOINT_FORMAT, "kind": "training", "config": config.to_dict(),
                         "world_size": group.world_size, "global_batch": config.batch_size,
                         "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                         "scaler": scaler.state_dict() if amp else {}, "epoch": epoch, "step": step,
                         "epoch_losses": list(epoch_losses), "rng": rng,
                         "data": {"epoch": epoch, "batches": batches}, "history": history}, last_path)

    if resumed is not None:                            # last: the next draw is the one the saved run would make
        saved_rng = resumed["rng"] if isinstance(resumed["rng"], list) else [resumed["rng"]]   # older: one process
        if len(saved_rng) == group.world_size:
            set_rng_states(saved_rng[group.rank])
        else:                                          # another world size: the same steps, new augmentations
            seed_everything(rank_seed(config.seed, group.rank, global_step))
            if progress:
                print(f"the checkpoint was written by {len(saved_rng)} process(es), this run has "
                      f"{group.world_size}: the weights, the batches and the position continue; the augmentations "
                      "are drawn anew")
    with deterministic(device):
        while epoch < config.epochs:
            epoch_start = time.perf_counter()
            dataset.set_epoch(epoch)                   # random mode: this epoch's offsets, from (seed, epoch)
            if resumed is not None and resumed["data"]["batches"] is not None:   # mid-epoch: the saved batches
                batches, epoch_losses = resumed["data"]["batches"], list(resumed["epoch_losses"])
            else:
                batches, epoch_losses = epoch_batches(len(dataset), config.batch_size, config.seed, epoch), []
            resumed = None
            shares = [group.share(batch) for batch in batches[step:]]   # this process's part of each batch
            loader = make_loader(dataset, shares, config, epoch, device)
            bar = _progress(loader, progress, f"epoch {epoch + 1}/{config.epochs}", len(batches), step)
            for batch in bar:
                loss = train_step(net, batch, augment, optimizer, scaler, criterion, device, amp)
                loss = group.mean(loss)                # the global batch's loss
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
                      "train_seconds": time.perf_counter() - epoch_start, "world_size": group.world_size}
            done, elapsed = epoch + 1 - first_epoch, clock() - clock_started
            out_of_time = time_limit is not None and elapsed + elapsed / done > time_limit   # one more would overrun
            out_of_time = group.broadcast(out_of_time)      # rank 0's clock decides for all
            if (epoch + 1) % config.valid_every == 0 or epoch + 1 == config.epochs or out_of_time:
                best = min((e["valid"] for e in history["epochs"] if e["valid"] is not None), default=math.inf)
                record["valid"] = group.mean_over(valid_tracks, lambda tracks: validate(model, tracks, criterion,
                                                                                         device))
                record["best"] = record["valid"] < best
            record["seconds"] = time.perf_counter() - epoch_start
            history["epochs"].append(record)
            if record["best"] and group.is_main:       # keep the best model by validation
                save_atomic({"format": CHECKPOINT_FORMAT, "kind": "model", "config": config.to_dict(),
                             "world_size": group.world_size, "global_batch": config.batch_size,
                             "model": {k: v.cpu() for k, v in model.state_dict().items()},
                             "history": history, "epoch": epoch + 1}, best_path)
            if progress:
                valid = f", valid {record['valid']:.4f}" if record["valid"] is not None else ""
                print(f"epoch {epoch + 1}: train {record['train']:.4f}{valid} ({record['seconds']:.1f} s)")
            epoch, step = epoch + 1, 0
            save_last(epoch, 0, None, [])
            if out_of_time:
                break

    group.barrier()                                    # rank 0 has written its last checkpoint
    model = load_checkpoint(best_path, device) if group.is_main else model.eval()
    return TrainResult(model, history, folder, time.perf_counter() - started, group.rank, group.world_size)


def _progress(loader, enabled: bool, description: str, total: int, done: int):
    """A tqdm progress bar (tqdm.auto: a widget in notebooks, text in a terminal), or the loader itself."""
    if not enabled:
        return loader
    from tqdm.auto import tqdm

    return tqdm(loader, desc=description, total=total, initial=done, unit="batch", leave=False)


# --------------------------------------------------------------------------------------------------------------
# 4. Loss curves
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
