"""Chapter 7: Training on many GPUs -- the processes ``torchrun`` starts, and what they share.

One GPU cannot hold the paper's batch of 64 extracts at 100 channels. PyTorch's answer is data parallelism:
``torchrun`` starts one process per GPU (on one machine or several), each holds a whole copy of the model, and
:class:`~torch.nn.parallel.DistributedDataParallel` averages their gradients after every backward pass, so that
every copy takes the same Adam step. The loop of :mod:`demucs_course.train` runs unchanged under it::

    torchrun --nproc_per_node 4 -m demucs_course.cli train --preset paper --data ~/musdb18hq
    torchrun --nnodes 2 --nproc_per_node 4 --rdzv-backend c10d --rdzv-endpoint HOST:29500 \\
        -m demucs_course.cli train --preset paper --data ~/musdb18hq       # on each of two machines

(``bench/slurm_paper.sh`` does the second under SLURM). What changes with ``N`` processes:

- **The batch size is global.** ``config.batch_size`` extracts make one optimizer step, whatever ``N``; each
  process takes its share, ``batch_size / N`` consecutive extracts of each batch (:meth:`Group.share`). DDP averages
  the ``N`` gradients of the per-process mean losses: the gradient of the mean loss over the global batch, the
  step one process would take with the whole batch. Remix mixes within groups of 4 inside one process, so each
  share must be a multiple of ``group_size`` (:func:`check_batch`).
- **The epoch's order is shared.** Every process draws the same list of batches from ``(seed, epoch)``
  (``train.epoch_batches``: what a ``DistributedSampler`` does with ``set_epoch``), and the saved list makes a
  resumed epoch continue where it stopped.
- **The augmentations are not.** Each process seeds its own random stream from ``(seed, rank)``
  (:func:`rank_seed`; rank 0 keeps the stream of a one-process run), so the ``N`` shares are flipped, shifted and
  remixed independently.
- **Rank 0 speaks and writes.** Progress bars, messages and checkpoints come from rank 0 only; a checkpoint
  records the ``world_size`` and the global batch, and the random states of every rank.
- **Resuming works at any world size.** The weights, Adam's state, the epoch's batches and the position are the
  same in every process, so a run saved by 2 processes resumes with 1, or 8, and continues the same optimisation.
  At the same world size each rank gets its own random state back: the run is the same to the bit (on the CPU).
  At another one the augmentations are drawn anew, from ``(seed, rank, step)``.
- **Validation is shared**: each process separates every ``N``-th validation track, and the losses are summed.
- **A process that fails stops the job.** ``torchrun`` ends the others when one exits with an error and names it;
  one that hangs is caught by the process group's timeout (``config.collective_timeout``): the others give up
  with a :class:`PeerLostError` that says so, instead of waiting forever.

NCCL carries the gradients between GPUs, gloo between CPU processes (the tests run two on one CPU). Nothing here
launches processes: that is ``torchrun``'s job; this module reads what it sets (``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``) and joins the process group.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import os

import numpy as np
import torch

from .loading import pick_device
from .presets import ConfigError

#: How long the other processes wait while rank 0 reads the data set into the cache the first time (a full
#: MUSDB18 takes minutes; the sampled set renders in about five CPU-minutes): longer than any exchange in training.
SETUP_TIMEOUT = datetime.timedelta(hours=2)

#: Words in the errors gloo and NCCL raise when another process is gone or silent.
_PEER_ERRORS = ("gloo", "nccl", "timed out waiting", "connection closed", "connection reset", "broken pipe")


class PeerLostError(RuntimeError):
    """Another process of a distributed run failed or stopped answering within ``config.collective_timeout``."""


def environment() -> tuple[int, int, int]:
    """``(rank, world_size, local_rank)`` as ``torchrun`` sets them; ``(0, 1, 0)`` in a plain process."""
    try:
        return (int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                int(os.environ.get("LOCAL_RANK", 0)))
    except ValueError:
        raise ConfigError("RANK, WORLD_SIZE and LOCAL_RANK must be integers (torchrun sets them); got "
                          f"{os.environ.get('RANK')!r}, {os.environ.get('WORLD_SIZE')!r}, "
                          f"{os.environ.get('LOCAL_RANK')!r}") from None


def check_batch(config, world_size: int) -> None:
    """The global batch must split into equal shares, each a whole number of Remix groups (with augmentation)."""
    if config.batch_size % world_size:
        raise ConfigError(f"the global batch_size ({config.batch_size}) must split evenly over the {world_size} "
                          f"processes torchrun started; use a multiple of {world_size}")
    share = config.batch_size // world_size
    if config.augment and share % config.group_size:
        step = world_size * config.group_size
        raise ConfigError(f"each of the {world_size} processes takes {share} extracts of the global batch_size "
                          f"({config.batch_size}), but Remix mixes groups of {config.group_size} within a process: "
                          f"use a batch_size that is a multiple of {step} "
                          f"(e.g. {max(step, config.batch_size // step * step)})")


def choose_device(name: str, world_size: int, local_rank: int) -> torch.device:
    """The device of this process: :func:`~demucs_course.loading.pick_device`, and with several processes the GPU
    of this process's ``LOCAL_RANK`` (one GPU per process)."""
    device = pick_device(name)
    if world_size == 1:
        return device
    if device.type == "mps":
        raise ConfigError("distributed training runs on CUDA GPUs (NCCL) or on CPUs (gloo), not on Apple's MPS; "
                          "use device='cpu' or one process")
    if device.type != "cuda":
        return device
    if device.index is not None:
        raise ConfigError(f"under torchrun each process takes the GPU of its LOCAL_RANK; use device='cuda' or "
                          f"'auto', not {name!r} (to choose the GPUs, set CUDA_VISIBLE_DEVICES)")
    if local_rank >= torch.cuda.device_count():
        raise ConfigError(f"torchrun started process {local_rank} on this machine, which has "
                          f"{torch.cuda.device_count()} GPU(s): use --nproc_per_node {torch.cuda.device_count()}")
    torch.cuda.set_device(local_rank)
    return torch.device("cuda", local_rank)


def rank_seed(seed: int, rank: int, *more: int) -> int:
    """A seed for the random stream of process ``rank`` (and, on a resume at another world size, of a step)."""
    return int(np.random.SeedSequence([seed, rank, *more]).generate_state(1)[0])


@dataclasses.dataclass
class Group:
    """The processes of a run: this one's ``rank`` among ``world_size``; every method is a no-op in one process.

    The methods that exchange something (``mean``, ``sum``, ``gather``, ``broadcast``, ``barrier``) must be called by
    every process at the same point of the loop, as the loop does.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    timeout: float = 0.0                 # seconds a process waits at an exchange (config.collective_timeout)
    owned: bool = False                  # this module created the process group (and destroys it)
    setup: object = None                 # a gloo group with a long timeout, for waiting while rank 0 reads data

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that prints and writes the checkpoints."""
        return self.rank == 0

    def share(self, batch: list) -> list:
        """This process's part of a global batch: ``len(batch) / world_size`` consecutive items."""
        size = len(batch) // self.world_size
        return batch[self.rank * size:(self.rank + 1) * size]

    def wrap(self, model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
        """The model in :class:`~torch.nn.parallel.DistributedDataParallel` (which averages the gradients of the
        processes in ``backward()``), or the model itself in one process."""
        if self.world_size == 1:
            return model
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    def _reduce(self, value: float, op) -> float:
        import torch.distributed as dist

        tensor = torch.tensor([value], dtype=torch.float64, device=self._device())
        dist.all_reduce(tensor, op=op)
        return float(tensor.item())

    def _device(self):
        import torch.distributed as dist

        return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else "cpu"

    def mean(self, value: float) -> float:
        """The mean of ``value`` over the processes (the loss of the global batch, from each share's loss)."""
        if self.world_size == 1:
            return value
        import torch.distributed as dist

        return self._reduce(value, dist.ReduceOp.SUM) / self.world_size

    def sum(self, value: float) -> float:
        """The sum of ``value`` over the processes."""
        if self.world_size == 1:
            return value
        import torch.distributed as dist

        return self._reduce(value, dist.ReduceOp.SUM)

    def mean_over(self, items: list, mean_of) -> float:
        """``mean_of(items)`` (a mean over the items), computed in shares: each process takes every
        ``world_size``-th item, and the shares' sums are added."""
        if self.world_size == 1:
            return mean_of(items)
        mine = items[self.rank::self.world_size]
        return self.sum(mean_of(mine) * len(mine) if mine else 0.0) / len(items)

    def gather(self, obj) -> list:
        """``obj`` of every process, in rank order (picklable objects)."""
        if self.world_size == 1:
            return [obj]
        import torch.distributed as dist

        objects = [None] * self.world_size
        dist.all_gather_object(objects, obj)
        return objects

    def broadcast(self, obj):
        """Rank 0's ``obj``, in every process (a decision every process must take alike)."""
        if self.world_size == 1:
            return obj
        import torch.distributed as dist

        holder = [obj]
        dist.broadcast_object_list(holder, src=0)
        return holder[0]

    def barrier(self) -> None:
        if self.world_size > 1:
            import torch.distributed as dist

            dist.barrier()

    def rank_0_first(self, work):
        """``work()`` in rank 0, then in the others (which wait up to :data:`SETUP_TIMEOUT`): rank 0 fills the
        caches (the toy set, the tracks), the others read them."""
        if self.world_size == 1:
            return work()
        import torch.distributed as dist

        if not self.is_main:
            dist.barrier(group=self.setup)
        result = work()
        if self.is_main:
            dist.barrier(group=self.setup)
        return result

    @contextlib.contextmanager
    def guard(self, folder):
        """Turn the error of an exchange with a process that is gone or silent into a :class:`PeerLostError` that
        says what happened and how to go on."""
        try:
            yield
        except RuntimeError as error:
            if self.world_size == 1 or isinstance(error, PeerLostError) or not _is_peer_error(error):
                raise
            raise PeerLostError(
                f"rank {self.rank} of {self.world_size}: another process of this run failed, or did not answer "
                f"within collective_timeout ({self.timeout:g} s; the exchange's error is above). If torchrun names "
                f"this process as the first failure, another one hung: read its output; otherwise fix the one it "
                f"names. Then run the same command again: it resumes from {folder}/last.pt") from error


def _is_peer_error(error: BaseException) -> bool:
    import torch.distributed as dist

    if isinstance(error, getattr(dist, "DistError", ())):
        return True
    text = str(error).lower()
    return any(word in text for word in _PEER_ERRORS)


@contextlib.contextmanager
def join(config):
    """The :class:`Group` of this process, joined from ``torchrun``'s environment: NCCL on CUDA, gloo on the CPU,
    with ``config.collective_timeout`` seconds as the timeout of every exchange. Yields ``(group, device)``; in a
    plain process, ``Group()`` and the device of ``config.device``. Leaves the process group at the end if it
    joined it."""
    rank, world_size, local_rank = environment()
    check_batch(config, world_size)
    device = choose_device(config.device, world_size, local_rank)
    if world_size == 1:
        yield Group(), device
        return
    import torch.distributed as dist

    owned = not dist.is_initialized()
    if owned:
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo",
                                timeout=datetime.timedelta(seconds=config.collective_timeout))
    if dist.get_world_size() != world_size or dist.get_rank() != rank:
        raise ConfigError(f"the process group has rank {dist.get_rank()} of {dist.get_world_size()}, but "
                          f"RANK and WORLD_SIZE say {rank} of {world_size}")
    group = Group(rank, world_size, local_rank, config.collective_timeout, owned,
                  dist.new_group(backend="gloo", timeout=SETUP_TIMEOUT))
    try:
        yield group, device
    finally:
        if owned:
            dist.destroy_process_group()
