"""Chapters 3 and 6: short seeded training runs, for the paper's ablations in miniature.

The paper measures each ablation (GLU or ReLU in Chapter 3: The GLU encoder; the init trick or none in Chapter 6:
The init trick) by training the full model for 120 epochs, once. A chapter can afford about a minute of CPU: a tiny
Demucs (:func:`~demucs_course.model.tiny_demucs`) trained for a few hundred Adam steps on random half-second extracts
of the toy set. One such run per setting says little, because a run's result depends on its seed (the initial
weights and the extracts it draws). So every comparison here is run over several seeds, each seed giving both
settings the *same* extracts, and read as a paired difference with its spread.

- :class:`ToyExtracts`: the first seconds of the training and validation tracks, normalised, in memory, and
  :func:`random_extracts`, the seeded batches drawn from them;
- :func:`short_training`: one run (L1 loss, Adam), with its training losses, validation L1, and, on request, the
  relative size of each convolution's first updates, ``||Δw|| / ||w||`` (Chapter 6);
- :func:`seeded_runs`: several settings times several seeds, as a table;
- :func:`paired_differences` and :func:`spread`: the per-seed relative difference of two settings, and the mean,
  standard deviation and range of any column over the seeds.

The loop is the bare minimum of a training step (Chapter 7 writes the real one, with augmentation, checkpoints and
whole-track validation): draw extracts of the four sources, mix them by summing, separate, L1 against the
center-trimmed sources, one Adam step.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import torch
from torch import nn

from . import SAMPLE_RATE
from .data import normalize
from .model import Demucs, center_trim, count_parameters, tiny_demucs


@dataclasses.dataclass
class ToyExtracts:
    """Normalised sources held in memory: ``train`` and ``valid`` shaped (track, source, channel, time)."""

    train: torch.Tensor
    valid: torch.Tensor

    @classmethod
    def from_tracks(cls, train_tracks, valid_tracks, seconds: float = 10.0) -> "ToyExtracts":
        """The first ``seconds`` of each track's sources, normalised by its mono-mix statistics (Chapter 2).

        Every track must be at least ``seconds`` long (the toy tracks are 20 s).
        """
        if not train_tracks or not valid_tracks:
            raise ValueError("ToyExtracts needs training and validation tracks: load them with "
                             "load_tracks('toy', 'train', split='train') and split='valid'")
        length = int(seconds * SAMPLE_RATE)
        short = [t.name for t in [*train_tracks, *valid_tracks] if t.length < length]
        if short:
            raise ValueError(f"ToyExtracts: {len(short)} track(s) are shorter than {seconds} s, e.g. {short[0]!r}; "
                             "ask for fewer seconds")

        def stack(tracks):
            return torch.stack([normalize(t.sources()[..., :length], t.stats) for t in tracks])

        return cls(stack(train_tracks), stack(valid_tracks))

    @property
    def length(self) -> int:
        return self.train.shape[-1]


@dataclasses.dataclass
class ShortRun:
    """What :func:`short_training` returns.

    ``losses``: the training L1 of every step. ``valid``: the validation L1 after each ``valid_every`` steps and at
    the end, as a Series indexed by step; ``valid_l1`` is its last value. ``silence_l1``: the validation L1 of a
    model that outputs zeros, the score to beat. ``updates``: with ``watch=n``, one row per (step, convolution) of
    the first n steps: the weight's norm and std before the step, the gradient's norm, the update's norm, the
    number of weights (``elements``) and of those with a non-zero gradient (``moved``), and the update's size
    relative to the weight, ``ratio = ||Δw|| / ||w||``.
    """

    model: Demucs
    losses: list[float]
    valid: pd.Series
    silence_l1: float
    updates: pd.DataFrame | None = None

    @property
    def valid_l1(self) -> float:
        return float(self.valid.iloc[-1])


def random_extracts(data: ToyExtracts, segment: int, batch: int, seed: int):
    """Endless batches ``(batch, 4, 2, segment)`` of training extracts at random tracks and offsets.

    The draws come from a generator of their own, seeded with ``seed``: they do not depend on the model, so two
    runs with the same seed see the same extracts in the same order.
    """
    draws = torch.Generator().manual_seed(seed)
    while True:
        track = torch.randint(len(data.train), (batch,), generator=draws).tolist()
        offset = torch.randint(data.length - segment, (batch,), generator=draws).tolist()
        yield torch.stack([data.train[t, ..., o:o + segment] for t, o in zip(track, offset)])


def validation_l1(model: Demucs, data: ToyExtracts, segment: int) -> tuple[float, float]:
    """L1 of ``model`` on fixed extracts of the validation tracks (one every second), and L1 of outputting silence."""
    valid = torch.stack([track[..., offset:offset + segment] for track in data.valid
                         for offset in range(0, data.length - segment, SAMPLE_RATE)])
    was_training = model.training
    model.eval()
    with torch.no_grad():
        estimate = model(valid.sum(dim=1))
    model.train(was_training)
    target = center_trim(valid, estimate)
    return (estimate - target).abs().mean().item(), target.abs().mean().item()


def _convolutions(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(name, m) for name, m in model.named_modules() if isinstance(m, (nn.Conv1d, nn.ConvTranspose1d))]


def short_training(data: ToyExtracts, *, steps: int = 150, batch: int = 8, seconds: float = 0.5, lr: float = 3e-3,
                   seed: int = 0, valid_every: int = 0, watch: int = 0, **settings) -> ShortRun:
    """Train ``tiny_demucs(**settings)`` for ``steps`` Adam steps on random extracts of ``data``; see :class:`ShortRun`.

    ``seed`` sets the initial weights (``torch.manual_seed``) and, through a generator of its own, the extracts: two
    runs with the same seed and different ``settings`` see the same extracts in the same order. With ``watch=n``,
    the first n steps record each convolution's update size relative to its weights.
    """
    if steps < 1 or batch < 1 or seconds <= 0 or lr <= 0:
        raise ValueError(f"short_training: steps, batch, seconds and lr must be positive, got steps={steps}, "
                         f"batch={batch}, seconds={seconds}, lr={lr}")
    torch.manual_seed(seed)
    model = tiny_demucs(**settings)
    segment = model.valid_length(int(seconds * SAMPLE_RATE))
    if segment >= data.length:
        raise ValueError(f"short_training: extracts of {segment} samples do not fit in {data.length}-sample tracks; "
                         "ask for fewer seconds")
    extracts = random_extracts(data, segment, batch, seed)     # the same extracts, whatever the model
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    convolutions = _convolutions(model)
    losses, valid, updates = [], {}, []
    for step, sources in zip(range(1, steps + 1), extracts):
        estimate = model(sources.sum(dim=1))           # the mixture is the sum of its sources
        loss = (estimate - center_trim(sources, estimate)).abs().mean()    # L1
        optimizer.zero_grad()
        loss.backward()
        if step <= watch:
            before = {name: m.weight.detach().clone() for name, m in convolutions}
        optimizer.step()
        losses.append(loss.item())
        if step <= watch:
            for name, m in convolutions:
                w, g = before[name], m.weight.grad
                delta = (m.weight.detach() - w).norm().item()
                updates.append(dict(step=step, layer=name, weight_norm=w.norm().item(), weight_std=w.std().item(),
                                    grad_norm=g.norm().item(), update_norm=delta, elements=w.numel(),
                                    moved=int((g != 0).sum()),
                                    ratio=delta / w.norm().item()))
        if valid_every and step % valid_every == 0 and step != steps:
            valid[step] = validation_l1(model, data, segment)[0]
    valid[steps], silence = validation_l1(model, data, segment)
    return ShortRun(model=model, losses=losses, valid=pd.Series(valid, name="validation L1"), silence_l1=silence,
                    updates=pd.DataFrame(updates) if watch else None)


def seeded_runs(data: ToyExtracts, variants: dict[str, dict], seeds, **kwargs) -> tuple[pd.DataFrame, dict]:
    """Every variant (a name and its ``tiny_demucs`` settings) trained with every seed by :func:`short_training`.

    Returns a table with one row per (variant, seed): parameters, mean training L1 of the last 20 steps,
    validation L1, silence L1 and validation L1 / silence; and the runs themselves, by ``(variant, seed)``.
    """
    seeds = list(seeds)
    if not variants or not seeds:
        raise ValueError("seeded_runs needs at least one variant and one seed")
    rows, runs = [], {}
    for seed in seeds:
        for name, settings in variants.items():
            run = short_training(data, seed=seed, **settings, **kwargs)
            runs[name, seed] = run
            rows.append({"variant": name, "seed": seed, "parameters": count_parameters(run.model),
                         "training L1, last 20 steps": float(np.mean(run.losses[-20:])),
                         "validation L1": run.valid_l1, "silence L1": run.silence_l1,
                         "validation L1 / silence": run.valid_l1 / run.silence_l1})
    return pd.DataFrame(rows), runs


def paired_differences(table: pd.DataFrame, variant: str, baseline: str,
                       column: str = "validation L1") -> pd.Series:
    """Per seed, ``(variant - baseline) / baseline`` of ``column``: below 0 means ``variant`` has the lower value."""
    wide = table.pivot(index="seed", columns="variant", values=column)
    missing = {variant, baseline} - set(wide.columns)
    if missing:
        raise ValueError(f"paired_differences: no runs for {sorted(missing)}; the table has {sorted(wide.columns)}")
    return ((wide[variant] - wide[baseline]) / wide[baseline]).rename(f"{variant} relative to {baseline}")


def spread(values) -> dict[str, float]:
    """Mean, sample standard deviation, minimum, maximum and count of ``values`` (e.g. one number per seed)."""
    values = np.asarray(values, dtype=float)
    if values.size < 2:
        raise ValueError(f"spread needs at least 2 values (seeds) to measure a spread, got {values.size}")
    return dict(mean=float(values.mean()), std=float(values.std(ddof=1)), min=float(values.min()),
                max=float(values.max()), n=int(values.size))
