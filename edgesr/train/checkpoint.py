"""Checkpoints: written atomically and only with finite weights; read without running code.

A checkpoint is the loop's progress (``step``, ``elapsed``, ``log``), the torch RNG states,
the method's state and the recipe it was trained with, all tensors and plain containers, read
with ``torch.load(weights_only=True)``: a run folder from someone else cannot execute anything
when resumed. The recipe lets a resume tell an edited ``recipe.yaml`` from the one the weights
were trained with.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import torch

from ..config import to_dict
from ..errors import EdgesrError
from ..io import write_bytes
from .distributed import everywhere
from .trainer import LossLog, Trainer


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
    if not all(bool(torch.isfinite(p).all()) for net in trainer.networks() for p in net.parameters()):
        raise everywhere(Diverged(f"non-finite weights at step {trainer.step}; the previous checkpoint was kept"),
                         trainer.world)
    if not trainer.world.main:
        return
    state = {"step": trainer.step, "elapsed": trainer.elapsed,
             "speed_mark": list(trainer.speed_mark) if trainer.speed_mark else None,
             "log": {"sums": dict(trainer.losses.sums), "counts": dict(trainer.losses.counts)},
             "recipe": to_dict(trainer.recipe), **trainer.state_dict(), **rng_state(trainer.device)}
    buf = io.BytesIO()
    torch.save(state, buf)
    write_bytes(path, buf.getbuffer())


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


def _leaves(tree: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a.b": value}`` for every non-mapping value of a nested mapping."""
    if not isinstance(tree, dict):
        return {prefix.rstrip("."): tree}
    out: dict[str, Any] = {}
    for k, v in tree.items():
        out.update(_leaves(v, f"{prefix}{k}."))
    return out


def recipe_changes(saved: Any, recipe: Any) -> list[str]:
    """The keys of ``recipe`` that differ from the recipe a checkpoint was trained with, as
    ``key old -> new``; a change outside ``recipe.RESUMABLE`` is a one-line error naming it.

    Keys only one side has (a checkpoint from before the key existed) are not compared."""
    if not isinstance(saved, dict):
        return []  # checkpoints written before recipes were saved in them
    old, new = _leaves(saved), _leaves(to_dict(recipe))
    changed = [k for k in new if k in old and old[k] != new[k]]
    allowed = tuple(recipe.RESUMABLE)
    for key in changed:
        if not any(key == a or key.startswith(a + ".") for a in allowed):
            raise EdgesrError(f"recipe key {key} was changed since the checkpoint ({old[key]!r} -> {new[key]!r}): "
                              f"a resumed run keeps its recipe except {', '.join(allowed)}; "
                              "undo the edit or start a new run")
    return [f"{k} {old[k]!r} -> {new[k]!r}" for k in changed]


def resume(trainer: Trainer, path: Path) -> None:
    """Put ``trainer`` where the checkpoint at ``path`` left off; a checkpoint that does not
    fit the run's recipe, or a recipe edited where it may not be, is a one-line error. The
    accepted edits are left in ``trainer.recipe_changes``. Rank 0 reads it and sends it to
    every rank."""

    def read() -> tuple[dict, list[str]]:
        state = load_checkpoint(path)
        return state, recipe_changes(state.get("recipe"), trainer.recipe)

    state, trainer.recipe_changes = trainer.world.from_main(read)
    try:
        trainer.step, trainer.elapsed = int(state["step"]), float(state["elapsed"])
        mark = state.get("speed_mark")  # (checkpoints of older edgesr have none)
        trainer.speed_mark = (int(mark[0]), float(mark[1])) if mark else None
        trainer.losses = LossLog(**state["log"])
        trainer.load_state_dict(state)
        restore_rng(state, trainer.device)
    except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as exc:
        detail = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
        raise everywhere(EdgesrError(f"checkpoint {path} does not fit this run's recipe "
                                     f"({type(exc).__name__}: {detail})"), trainer.world) from None
