"""Chapter 7: Training -- what defines a run, the four presets, and what a run costs before it starts.

- :class:`TrainConfig`: every setting of a run (model, data, extracts, batch, epochs, optimiser, checkpoints, device),
  stored in every checkpoint, checked by :meth:`TrainConfig.check` with errors that say what to change;
- :data:`PRESETS` and :func:`preset`: ``tiny-cpu`` (minutes on a laptop, the toy set), ``sampled-cpu`` (about an
  hour on 2 CPU cores, the sampled-instrument set), ``colab-t4`` (one 16 GB GPU,
  as the seed re-implementation trained) and ``paper`` (the paper's settings);
- sizing a run before paying for it: :func:`memory_estimate` (GPU memory of one step, measured activations),
  :func:`flops_per_example` (counted on the meta device) and :func:`extracts_per_epoch` (the work of an epoch).

The loop that runs a config is :func:`demucs_course.train.train`; its checkpoints are :mod:`demucs_course.checkpoints`.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F

from . import SAMPLE_RATE, InputError
from .model import TINY, Demucs, count_parameters

class ConfigError(InputError):
    """Training settings that cannot train, with a message that says what to change (a ValueError)."""


#: The training criteria: L1 = mean |ŝ - s| (the paper), L2 = mean (ŝ - s)^2.
LOSSES = {"l1": F.l1_loss, "l2": F.mse_loss}


def seconds_to_samples(seconds: float) -> int:
    return int(round(seconds * SAMPLE_RATE))


# --------------------------------------------------------------------------------------------------------------
# The configuration, and the presets
# --------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class TrainConfig:
    """Everything that defines a training run; stored in every checkpoint.

    Args:
        model: keyword arguments of :class:`~demucs_course.model.Demucs` (default: the tiny model, ``TINY``).
        data: ``"toy"``, ``"sampled"``, ``"preview"`` or the path of a MUSDB18 / MUSDB18-HQ root. Training uses the train split,
            validation the valid split (:func:`~demucs_course.data.load_tracks`).
        segment: seconds of audio the model learns to output per extract (the paper: 10). The extracts are
            ``valid_length(segment) + shift`` samples long.
        shift: seconds of room for the Shift augmentation (the paper: 1).
        stride: seconds between extracts, every extract of every track (the paper: 1). Give stride or per_minute.
        per_minute: random extracts per minute of track, drawn again every epoch (the seed re-implementation: 1.25).
        batch_size: extracts per optimizer step, a multiple of ``group_size``. Global: under ``torchrun`` with N
            processes each takes ``batch_size / N`` of them (a multiple of ``group_size`` too), and the step is the
            one a single process would take with the whole batch (:mod:`demucs_course.distributed`).
        group_size: the Remix group (the paper: 4).
        repitch: the probability that an extract is played at another pitch and tempo (the paper's later
            version: 0.2; 0: off), :class:`~demucs_course.augment.Repitch`.
        augment: the random augmentations of Chapter 2 (FlipSign, FlipChannels, Shift, Remix). False: none; Shift
            then keeps the first window of each extract, and ``repitch`` must be 0. For comparisons that need the
            same batches whatever draws the random numbers (the tests of distributed training).
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
        collective_timeout: under ``torchrun``, the seconds a process waits for the others at an exchange
            (gradients, losses, a checkpoint being written) before it stops with an error: a process that hangs
            stops the run instead of blocking it forever.
    """

    model: dict = dataclasses.field(default_factory=lambda: dict(TINY))
    data: str | None = "toy"
    segment: float = 3.0
    shift: float = 0.5
    stride: float | None = 1.0
    per_minute: float | None = None
    batch_size: int = 4
    group_size: int = 4
    repitch: float = 0.0
    augment: bool = True
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
    collective_timeout: float = 600.0

    def check(self) -> None:
        """Raise a :class:`ConfigError` (a ValueError) that says what to change when the settings cannot train."""
        if self.data is None:
            raise ConfigError("config.data is not set: pass data='toy', 'preview', or the path of a MUSDB18 / "
                             "MUSDB18-HQ root (the folder holding train/ and test/); on the command line: --data PATH")
        if self.loss not in LOSSES:
            raise ConfigError(f"loss must be one of {sorted(LOSSES)}, got {self.loss!r}")
        for name in ("batch_size", "group_size", "epochs", "valid_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if self.batch_size % self.group_size:
            lower = max(self.group_size, self.batch_size // self.group_size * self.group_size)
            raise ConfigError(
                f"batch_size ({self.batch_size}) must be a multiple of the Remix group_size ({self.group_size}): "
                f"Remix shuffles sources within groups of {self.group_size} examples. Use a batch size of {lower} "
                f"or {lower + self.group_size}.")
        if (self.stride is None) == (self.per_minute is None):
            raise ConfigError("give exactly one of stride (seconds between extracts, the paper) or per_minute "
                             f"(random extracts per minute of track); got stride={self.stride!r}, "
                             f"per_minute={self.per_minute!r}")
        if isinstance(self.repitch, bool) or not isinstance(self.repitch, (int, float)) or not 0 <= self.repitch <= 1:
            raise ConfigError(f"repitch is a probability, from 0 (off) to 1, got {self.repitch!r}")
        if not isinstance(self.augment, bool):
            raise ConfigError(f"augment is True or False, got {self.augment!r}")
        if not self.augment and self.repitch > 0:
            raise ConfigError(f"repitch ({self.repitch!r}) is an augmentation: set repitch=0 with augment=False")
        if isinstance(self.collective_timeout, bool) or not isinstance(self.collective_timeout, (int, float)) \
                or not self.collective_timeout > 0:
            raise ConfigError(f"collective_timeout is a number of seconds > 0, got {self.collective_timeout!r}")
        if not self.segment > 0 or self.shift < 0 or not self.lr > 0:
            raise ConfigError(f"segment and lr must be positive and shift >= 0, got segment={self.segment!r}, "
                             f"shift={self.shift!r}, lr={self.lr!r}")
        if self.workers < 0 or self.save_every_steps < 0:
            raise ConfigError(f"workers and save_every_steps must be >= 0, got {self.workers!r}, "
                             f"{self.save_every_steps!r}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ConfigError(f"unknown TrainConfig settings {sorted(unknown)}; known: {sorted(known)}")
        return cls(**values)


PRESETS = {
    # Minutes on 2 CPU cores, on the toy set: the tiny model, 3-s extracts with a 1-s stride (59 steps an epoch).
    # Its learning rate is 1e-3, not the paper's 3e-4: a model this small on this little data learns faster with
    # larger steps. Seed 0, after the same 10 epochs (590 steps): validation L1 0.258 at 3e-4, 0.228 at 1e-3.
    "tiny-cpu": TrainConfig(model=dict(TINY), data="toy", segment=3.0, shift=0.5, stride=1.0, batch_size=4,
                            epochs=20, lr=1e-3, checkpoint_dir="checkpoints/tiny-cpu", save_every_steps=50),
    # The sampled-instrument set on 2 CPU cores, the shipped default model: 29 epochs of 174 steps took 54 CPU-minutes
    # on one thread and reached +3.4 dB over the best scaled mixture on the sampled test songs (pretrained/README.md,
    # Chapter 7). bench/train_sampled.py measured it as it trained.
    "sampled-cpu": TrainConfig(model=dict(channels=16, depth=5, lstm_layers=1), data="sampled", segment=3.0,
                               shift=0.5, stride=None, per_minute=12.0, batch_size=4, epochs=29, lr=1e-3,
                               checkpoint_dir="checkpoints/sampled-cpu", save_every_steps=100),
    # One 16 GB T4 (Colab's free GPU), as the seed re-implementation trained it: channels 64, batch 8, 1.25 random
    # 11-s extracts per minute of track, 240 epochs, validation every 10 epochs. Needs data=PATH (MUSDB18).
    "colab-t4": TrainConfig(model=dict(channels=64), data=None, segment=10.0, shift=1.0, stride=None,
                            per_minute=1.25, batch_size=8, epochs=240, workers=2, checkpoint_dir="checkpoints/colab-t4",
                            save_every_steps=20, valid_every=10),
    # The paper: channels 100, batch 64, 120 epochs, every 11-s extract with a 1-s stride. It trained on 16 V100
    # 32 GB GPUs (the seed report; 8 in the code); one GPU cannot hold batch 64. Needs data=PATH (MUSDB18).
    # On 8 GPUs, as v1's code says, e.g. 2 machines x 4: batch 64 is global, 8 extracts per GPU, workers per GPU,
    #   torchrun --nnodes 2 --nproc_per_node 4 --rdzv-backend c10d --rdzv-endpoint HOST:29500 \
    #       -m demucs_course.cli train --preset paper --data PATH       (on both machines; demucs_course.distributed)
    # bench/slurm_paper.sh is that job under SLURM. Its time is an estimate, not a measurement (no GPU ran it):
    # bench/paper_estimate.py divides the FLOPs of 120 epochs by rates assumed from the V100's datasheet peaks,
    # or by a per-GPU throughput that bench/gpu_check.py measures.
    "paper": TrainConfig(model=dict(channels=100), data=None, segment=10.0, shift=1.0, stride=1.0, batch_size=64,
                         epochs=120, workers=8, checkpoint_dir="checkpoints/paper", save_every_steps=100),
}


def preset(name: str, **overrides) -> TrainConfig:
    """A copy of the preset ``name`` (``tiny-cpu``, ``sampled-cpu``, ``colab-t4``, ``paper``) with some settings
    changed."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    values = PRESETS[name].to_dict()
    if "model" in overrides:
        overrides = {**overrides, "model": {**values["model"], **overrides["model"]}}
    return TrainConfig.from_dict({**values, **overrides})


# --------------------------------------------------------------------------------------------------------------
# Sizing a run before paying for it: memory and compute
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


def extract_samples(config: TrainConfig, model: Demucs) -> int:
    """Samples of one training extract: ``valid_length(segment) + shift``, longer with ``config.repitch`` (which
    cuts every extract: :meth:`~demucs_course.augment.Repitch.input_length`)."""
    from .augment import Repitch

    length = model.valid_length(seconds_to_samples(config.segment)) + seconds_to_samples(config.shift)
    return Repitch(config.repitch).input_length(length) if config.repitch > 0 else length


def extracts_per_epoch(config: TrainConfig, track_samples) -> int:
    """The extracts of one epoch of ``config`` over tracks of ``track_samples`` samples each, counted as
    :class:`~demucs_course.data.ExtractDataset` cuts them: one every ``stride`` wherever a whole extract fits (at
    least one per track), or ``round(minutes * per_minute)`` per track (at least one). The batches of an epoch are
    ``extracts // batch_size``."""
    with torch.device("meta"):
        length = extract_samples(config, Demucs(**config.model))
    if config.stride is not None:
        return sum(len(range(0, max(0, n - length) + 1, seconds_to_samples(config.stride))) for n in track_samples)
    return sum(max(1, round(n / SAMPLE_RATE / 60 * config.per_minute)) for n in track_samples)


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
