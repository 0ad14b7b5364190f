"""Data-parallel training over the processes ``torchrun`` starts: one :class:`World` per process.

Under ``torchrun`` (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` in the environment) every process
joins one process group (NCCL for CUDA tensors, gloo for CPU ones) and trains the same networks
on its share of each batch; without it the world is a single process and every method here
does nothing, so a one-process run computes exactly what it computed before.

How the ranks stay in step:

* **The recipe's batch is the global batch.** Rank ``r`` of ``N`` trains on rows
  ``[r*b, (r+1)*b)``, ``b = batch / N`` (:meth:`World.rows`).
* **One random stream, each rank its own rows of it.** Every rank seeds torch's generators
  alike, and a sample source draws the random numbers of the whole global batch (noise, crop
  places, symmetries, views) and keeps its rows; every other draw (the scale of a cycle, the
  bank negatives) is made alike everywhere. The ranks thus see different samples and make the
  same choices, the generator states stay equal on every rank, and the states a checkpoint
  holds mean the same on any number of ranks: a run resumes on another world size and
  continues the same sequence of global batches (a draw costs microseconds, the global batch
  of random numbers no more than a rank's share of one network layer).
* **DDP averages the gradients.** The student (the teacher's model in ``teacher train``), each
  generator and the CMI head are trained through a ``DistributedDataParallel`` wrapper
  (:meth:`World.wrap`): its backward all-reduces their gradients, every rank clips and applies
  the same update to the same weights. The plain module beside each wrapper is what
  checkpoints, validation and no-grad sampling use; a progressive student is wrapped anew at
  each stage.
* **Losses averaged before any update** (:meth:`World.mean`): a non-finite loss on any rank is
  non-finite on all, and every rank skips the same steps.
* **Rows of other ranks** where a loss needs the whole batch (CMI's contrast and its memory
  bank): :meth:`World.all_rows` gathers them, so every rank holds the same bank.
* **Rank 0 owns the run folder**: it resolves the recipe, reads the checkpoint and sends both
  (:meth:`World.from_main`), and alone writes metrics, checkpoints, plots and results.

A collective that fails (another rank died) or waits longer than ``EDGESR_DIST_TIMEOUT``
seconds is one :class:`RankLost` line, not a hang. :attr:`World.traffic` counts the bytes this
rank hands to collectives, DDP's gradient buckets included (``benchmarks/ddp_scaling.py``).
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TypeVar

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook
from torch.nn.parallel import DistributedDataParallel

from ..errors import EdgesrError

T = TypeVar("T")
#: seconds a collective may wait for the other ranks (rank 0 validating or writing a checkpoint
#: is the longest wait of a healthy run)
TIMEOUT_ENV = "EDGESR_DIST_TIMEOUT"
DEFAULT_TIMEOUT_S = 300.0
_PEER_FAILURE = re.compile(r"gloo|nccl|connection (closed|reset|refused)|timed out|broken pipe|ProcessGroup", re.I)


class RankLost(EdgesrError):
    """Another process of the run died or stopped answering; the last checkpoint is kept.

    The process that raised it ends without the interpreter's shutdown (:func:`edgesr.errors.end_process`):
    gloo's worker thread may still be failing collectives queued before the loss, and when it
    drops one it takes the GIL, which during shutdown aborts the process (SIGABRT, "terminate
    called without an active exception"), a second line and a wrong exit code after the one
    this error prints."""

    exit_at_once = True


def everywhere(exc: EdgesrError, world: World) -> EdgesrError:
    """Mark an error every rank raises alike: rank 0 prints it, the others exit without repeating it."""
    exc.echo = not world.main  # read by the CLI's error printer
    return exc


@dataclass(frozen=True)
class World:
    """This process's place among the training processes; ``World()`` is a single process."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    #: bytes this rank handed to collectives, by kind (``all_reduce``, ``all_gather``, ``broadcast``)
    traffic: Counter = field(default_factory=Counter, compare=False, repr=False)

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.size > 1

    def describe(self) -> str:
        return f", {self.size} processes" if self.active else ""

    # ----------------------------------------------------------------- batches
    def rows(self, batch: int) -> slice:
        """This rank's rows of a global batch of ``batch``; a batch the ranks cannot share
        equally is a one-line error (before any run folder is made)."""
        if batch % self.size:
            raise everywhere(EdgesrError(
                f"recipe key batch_size: {batch} is the global batch, split across {self.size} processes: "
                f"give a multiple of {self.size}"), self)
        b = batch // self.size
        return slice(self.rank * b, (self.rank + 1) * b)

    # ----------------------------------------------------------------- collectives
    def _run(self, fn: Callable[..., T], *args, **kwargs) -> T:
        try:
            return fn(*args, **kwargs)
        except RuntimeError as exc:  # torch.distributed's errors derive from it
            raise self._lost(exc) from None

    @contextmanager
    def watching(self) -> Iterator[None]:
        """Collectives torch runs by itself (DDP's all-reduce inside a backward) fail as
        :class:`RankLost` too; any other error passes unchanged."""
        try:
            yield
        except RuntimeError as exc:
            if not self.active or not _peer_failure(exc):
                raise
            raise self._lost(exc) from None

    def _lost(self, exc: BaseException) -> RankLost:
        detail = " ".join(str(exc).split())[:200]
        return RankLost(f"rank {self.rank}: another process of this run died or stopped answering "
                        f"({detail}); the run's last checkpoint is kept")

    def mean(self, t: torch.Tensor) -> torch.Tensor:
        """``t`` averaged over the ranks (a NaN anywhere is a NaN everywhere)."""
        if not self.active:
            return t
        t = t.detach().clone()
        self._count("all_reduce", t)
        self._run(dist.all_reduce, t)
        return t / self.size

    def averaged(self, t: torch.Tensor) -> torch.Tensor:
        """The mean of ``t`` over the ranks, with the gradient of this rank's ``t``: a nonlinear
        function of a batch mean (``-log(1 + L_KD)``) then gets, once gradients are averaged over
        the ranks, the gradient it would have on the whole batch in one process."""
        return t if not self.active else t + (self.mean(t) - t).detach()

    def max(self, *values: float, device: torch.device | None = None) -> list[float]:
        """Each value's maximum over the ranks, in one collective (on ``device``: on GPUs NCCL's
        latency is a fraction of gloo's over TCP)."""
        if not self.active:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=device or self._device())
        self._count("all_reduce", t)
        self._run(dist.all_reduce, t, op=dist.ReduceOp.MAX)
        return t.tolist()

    def all_rows(self, t: torch.Tensor) -> torch.Tensor:
        """The rows of ``t`` from every rank, in rank order: the global batch's. This rank's rows
        keep their gradient, scaled by the number of ranks, so that a loss over all rows, its
        gradients then averaged over the ranks, gets the gradient it has in one process."""
        if not self.active:
            return t
        parts = [torch.empty_like(t) for _ in range(self.size)]
        self._count("all_gather", t)
        self._run(dist.all_gather, parts, t.detach().contiguous())
        parts[self.rank] = t + (self.size - 1) * (t - t.detach())
        return torch.cat(parts)

    def wrap(self, net: nn.Module) -> nn.Module:
        """``net`` as the ranks train it: in DDP, which gives every rank rank 0's weights now and
        averages the gradients in each backward through it (a single process, or a net with
        nothing to train, trains ``net`` itself). The networks here have no buffers, so DDP
        adds no collective to a forward."""
        if not self.active or not any(p.requires_grad for p in net.parameters()):
            return net
        cuda = next(net.parameters()).device.type == "cuda"
        ddp = self._run(DistributedDataParallel, net, device_ids=[self.local_rank] if cuda else None)
        ddp.register_comm_hook(self, _counted_allreduce)
        return ddp

    def broadcast_(self, nets: Iterable[nn.Module]) -> None:
        """Give every rank rank 0's parameters and buffers (in place): ranks that computed the
        same initialisation on GPUs, whose kernels need not be bitwise deterministic, start equal."""
        if not self.active:
            return
        for net in nets:
            for t in [*net.parameters(), *net.buffers()]:
                with torch.no_grad():
                    self._count("broadcast", t)
                    self._run(dist.broadcast, t.data, 0)

    def barrier(self) -> None:
        if self.active:
            self._run(dist.barrier)

    def from_main(self, fn: Callable[[], T]) -> T:
        """``fn()`` computed on rank 0 and sent to every rank; its one-line error, raised on
        every rank. Rank 0 alone reads the run folder, which need not be shared between nodes."""
        if not self.active:
            return fn()
        box: list = [None]
        if self.main:
            try:
                box[0] = ("ok", fn())
            except EdgesrError as exc:
                box[0] = ("error", exc)
        self._run(dist.broadcast_object_list, box, 0, device=torch.device("cpu"))
        kind, value = box[0]
        if kind == "error":
            raise everywhere(value, self) if not self.main else value
        return value

    def _count(self, kind: str, t: torch.Tensor) -> None:
        self.traffic[kind] += t.numel() * t.element_size()

    def _device(self) -> torch.device:
        """The device collectives of scalars use: CPU unless the group's only backend is NCCL."""
        return torch.device("cpu") if dist.get_backend() != "nccl" else torch.device("cuda", self.local_rank)


def _peer_failure(exc: RuntimeError) -> bool:
    """Whether ``exc`` is a collective's failure: torch's distributed error types, or the
    backends' messages when they reach Python as a plain RuntimeError (through autograd)."""
    return isinstance(exc, dist.DistError) or bool(_PEER_FAILURE.search(str(exc)))


def _counted_allreduce(world, bucket):  # unannotated: DDP checks the annotations it finds at run time
    """DDP's own averaging of a gradient bucket (``dist.GradBucket``), its bytes counted in
    ``world.traffic``."""
    world._count("all_reduce", bucket.buffer())
    return allreduce_hook(None, bucket)


def _env_int(name: str, default: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None and default is not None:
        return default
    try:
        return int(raw or "")
    except ValueError:
        raise EdgesrError(f"environment variable {name}={raw!r} is not an integer (set by torchrun)") from None


def timeout_seconds() -> float:
    raw = os.environ.get(TIMEOUT_ENV)
    if raw is None:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise EdgesrError(f"{TIMEOUT_ENV}={raw!r}: give the collective timeout in seconds, > 0")
    return value


@contextmanager
def join_world() -> Iterator[World]:
    """The world of this process: torchrun's (process group joined here, left on exit) or a
    single process. A process group already set up by the caller is used as it is."""
    size = _env_int("WORLD_SIZE", 1)
    if size <= 1 and not dist.is_initialized():
        yield World()
        return
    if dist.is_initialized():
        yield World(dist.get_rank(), dist.get_world_size(), _env_int("LOCAL_RANK", 0))
        return
    rank, local = _env_int("RANK"), _env_int("LOCAL_RANK", 0)
    backend = "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"
    try:
        dist.init_process_group(backend, timeout=timedelta(seconds=timeout_seconds()), rank=rank, world_size=size)
    except (RuntimeError, ValueError) as exc:
        raise EdgesrError(f"rank {rank} could not join the other {size - 1} processes "
                          f"({' '.join(str(exc).split())[:200]})") from None
    try:
        yield World(rank, size, local)
    finally:
        dist.destroy_process_group()
