"""Checkpoints: written atomically and only with finite weights; read without running code.

A checkpoint is the loop's progress (``step``, ``elapsed``, ``log``), the torch RNG states and
the method's state, all tensors and plain containers, read with ``torch.load(weights_only=True)``:
a run folder from someone else cannot execute anything when resumed.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch

from ..errors import EdgesrError
from ..io import atomic_path
from .distributed import everywhere
from .trainer import LossLog, Trainer, finite


class Diverged(EdgesrError):
    """Training produced non-finite losses or weights; no bad checkpoint was written."""


def rng_state(device: torch.device) -> dict[str, Any]:
    """torch's CPU generator state and the training GPU's: what makes ``--resume`` continue
    exactly. Every rank keeps them equal (:mod:`.distributed`), so rank 0's serve any rank."""
    return {"rng": torch.get_rng_state(),
            "cuda_rng": [torch.cuda.get_rng_state(device)] if device.type == "cuda" else None}


def restore_rng(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["rng"])
    cuda = state.get("cuda_rng")
    if cuda and device.type == "cuda":  # one state, or (older checkpoints) one per visible GPU
        torch.cuda.set_rng_state(cuda[0] if len(cuda) == 1 else cuda[device.index or 0], device)


def save_checkpoint(trainer: Trainer, path: Path) -> None:
    """Write the trainer's checkpoint, unless a weight is non-finite (then stop: never save bad
    state). Every rank checks its weights (the same on all), rank 0 writes."""
    if not all(finite(p) for net in trainer.networks() for p in net.parameters()):
        raise everywhere(Diverged(f"non-finite weights at step {trainer.step}; the previous checkpoint was kept"),
                         trainer.world)
    if not trainer.world.main:
        return
    state = {"step": trainer.step, "elapsed": trainer.elapsed,
             "log": {"sums": dict(trainer.losses.sums), "counts": dict(trainer.losses.counts)},
             **trainer.state_dict(), **rng_state(trainer.device)}
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: Path) -> dict:
    """The checkpoint's contents: tensors and plain data, or a one-line error."""
    if not path.is_file():
        raise EdgesrError(f"no checkpoint at {path}: nothing to resume")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise EdgesrError(f"checkpoint {path} holds objects other than tensors and plain data: "
                          "refused, nothing in it was run") from None
    except Exception as exc:
        raise EdgesrError(f"checkpoint {path} is unreadable ({type(exc).__name__})") from None
    if not isinstance(state, dict):
        raise EdgesrError(f"checkpoint {path} is not an edgesr checkpoint")
    return state


def resume(trainer: Trainer, path: Path) -> None:
    """Put ``trainer`` where the checkpoint at ``path`` left off; a checkpoint that does not
    fit the run's recipe is a one-line error. Rank 0 reads it and sends it to every rank."""
    state = trainer.world.from_main(lambda: load_checkpoint(path))
    try:
        trainer.step, trainer.elapsed = int(state["step"]), float(state["elapsed"])
        trainer.losses = LossLog(**state["log"])
        trainer.load_state_dict(state)
        restore_rng(state, trainer.device)
    except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as exc:
        detail = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
        raise everywhere(EdgesrError(f"checkpoint {path} does not fit this run's recipe "
                                     f"({type(exc).__name__}: {detail})"), trainer.world) from None
