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
from .trainer import LossLog, Trainer, finite


class Diverged(EdgesrError):
    """Training produced non-finite losses or weights; no bad checkpoint was written."""


def rng_state() -> dict[str, Any]:
    """torch's CPU and CUDA generator states: what makes ``--resume`` continue exactly."""
    return {"rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["rng"])
    if state.get("cuda_rng") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])


def save_checkpoint(trainer: Trainer, path: Path) -> None:
    """Write the trainer's checkpoint, unless a weight is non-finite (then stop: never save bad state)."""
    if not all(finite(p) for net in trainer.networks() for p in net.parameters()):
        raise Diverged(f"non-finite weights at step {trainer.step}; the previous checkpoint was kept")
    state = {"step": trainer.step, "elapsed": trainer.elapsed,
             "log": {"sums": dict(trainer.losses.sums), "counts": dict(trainer.losses.counts)},
             **trainer.state_dict(), **rng_state()}
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
    fit the run's recipe is a one-line error."""
    state = load_checkpoint(path)
    try:
        trainer.step, trainer.elapsed = int(state["step"]), float(state["elapsed"])
        trainer.losses = LossLog(**state["log"])
        trainer.load_state_dict(state)
        restore_rng(state)
    except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as exc:
        detail = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
        raise EdgesrError(f"checkpoint {path} does not fit this run's recipe "
                          f"({type(exc).__name__}: {detail})") from None
