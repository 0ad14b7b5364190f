"""Checkpoints: written atomically and only with finite weights; read without running code.

A checkpoint is the loop's progress (``step``, ``elapsed``, ``log``), the torch RNG states,
the method's state and the recipe it was trained with, all tensors and plain containers, read
with ``torch.load(weights_only=True)``: a run folder from someone else cannot execute anything
when resumed. The recipe lets a resume tell an edited ``recipe.yaml`` from the one the weights
were trained with.
"""

from __future__ import annotations

import io
import math
import pickle
from pathlib import Path
from typing import Any

import torch

from ..config import shown, to_dict
from ..errors import EdgesrError
from ..io import write_bytes
from ..untrusted import MAX_ZIP_EXPANSION, check_archive, leaves
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
             "refitted": trainer.refitted,
             "log": {"sums": dict(trainer.losses.sums), "counts": dict(trainer.losses.counts)},
             "recipe": to_dict(trainer.recipe), **trainer.state_dict(), **rng_state(trainer.device)}
    buf = io.BytesIO()
    torch.save(state, buf)
    write_bytes(path, buf.getbuffer())


def load_checkpoint(path: Path) -> dict:
    """The checkpoint's contents: tensors and plain data, or a one-line error.

    What it may make this process allocate is bounded by its own size: its archive may not
    declare more than a few times the file's bytes (checked before torch reads it), its tensors
    may not claim more (a stride-0 view of one float can claim terabytes), and its containers
    nest at most 32 deep, a million values in all (a recipe nested 5000 deep broke the
    recursive walks that compare recipes)."""
    if not path.is_file():
        raise EdgesrError(f"no checkpoint at {path}: nothing to resume")
    try:
        data = path.read_bytes()
        check_archive(data)
    except (OSError, ValueError) as exc:
        raise EdgesrError(f"checkpoint {path} is unreadable ({exc})") from None
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise EdgesrError(f"checkpoint {path} holds objects other than tensors and plain data: "
                          "refused, nothing in it was run") from None
    except Exception as exc:
        raise EdgesrError(f"checkpoint {path} is unreadable ({type(exc).__name__})") from None
    if not isinstance(state, dict):
        raise EdgesrError(f"checkpoint {path} is not an edgesr checkpoint")
    try:
        claimed = sum(v.numel() * v.element_size() for v in leaves(state) if isinstance(v, torch.Tensor))
    except ValueError as exc:
        raise EdgesrError(f"checkpoint {path} is not an edgesr checkpoint: {exc}") from None
    if claimed > MAX_ZIP_EXPANSION * len(data):
        raise EdgesrError(f"checkpoint {path} is not an edgesr checkpoint: its tensors claim {claimed} bytes "
                          f"in a {len(data)}-byte file")
    return state


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _integer(value: Any, low: int, high: int) -> bool:
    return type(value) is int and low <= value <= high


def check_progress(state: dict, trainer: Trainer) -> str | None:
    """What is wrong with the loop's progress a checkpoint records, or None. Each value is used
    as it stands (a NaN ``elapsed`` went into results.json, a ``horizon`` of 10**12 made the run
    endless, a ``step`` of 10**15 a speed of 3e14 steps/s), so each is checked against the run:
    a budget only ever shortens a run, so no number may pass the steps its recipe plans."""
    planned = trainer.planned_steps
    horizon = state.get("horizon", trainer.horizon)
    if not _integer(horizon, 1, planned):
        return f"horizon {str(horizon)[:40]} is not a step count in [1, {planned}] (the recipe's steps)"
    step, elapsed = state.get("step"), state.get("elapsed")
    if not _integer(step, 0, horizon):
        return f"step {str(step)[:40]} is not in [0, {horizon}]"
    if not _number(elapsed) or elapsed < 0:
        return f"elapsed {str(elapsed)[:40]} is not a number of seconds"
    mark = state.get("speed_mark")
    if mark is not None and not (isinstance(mark, (list, tuple)) and len(mark) == 2 and _integer(mark[0], 0, step)
                                 and _number(mark[1]) and 0 <= mark[1] <= elapsed):
        return f"speed_mark {str(mark)[:40]} is not a (step, seconds) pair before step {step}"
    if type(state.get("refitted", False)) is not bool:
        return f"refitted {str(state['refitted'])[:40]} is not true or false"
    log = state.get("log")
    if not isinstance(log, dict) or set(log) != {"sums", "counts"}:
        return "its loss log is not {sums, counts}"
    sums, counts = log["sums"], log["counts"]
    if not (isinstance(sums, dict) and isinstance(counts, dict) and set(sums) == set(counts) and len(sums) <= 1000
            and all(isinstance(k, str) and _number(sums[k]) and _integer(counts[k], 1, 2**62) for k in sums)):
        return "its loss log's sums and counts are not finite numbers and counts, name for name"
    return None


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
            raise EdgesrError(f"recipe key {key} was changed since the checkpoint "
                              f"({shown(old[key])} -> {shown(new[key])}): "
                              f"a resumed run keeps its recipe except {', '.join(allowed)}; "
                              "undo the edit or start a new run")
    return [f"{k} {shown(old[k])} -> {shown(new[k])}" for k in changed]


def resume(trainer: Trainer, path: Path) -> None:
    """Put ``trainer`` where the checkpoint at ``path`` left off; a checkpoint that does not
    fit the run's recipe, or a recipe edited where it may not be, is a one-line error. The
    accepted edits are left in ``trainer.recipe_changes``. Rank 0 reads it and sends it to
    every rank."""

    def read() -> tuple[dict, list[str]]:
        state = load_checkpoint(path)
        return state, recipe_changes(state.get("recipe"), trainer.recipe)

    state, trainer.recipe_changes = trainer.world.from_main(read)
    problem = check_progress(state, trainer)
    if problem:
        raise everywhere(EdgesrError(f"checkpoint {path} does not fit this run: {problem}"), trainer.world)
    try:
        trainer.step, trainer.elapsed = int(state["step"]), float(state["elapsed"])
        mark = state.get("speed_mark")  # (checkpoints of older edgesr have none)
        trainer.speed_mark = (int(mark[0]), float(mark[1])) if mark else None
        trainer.refitted = state.get("refitted", False)
        trainer.losses = LossLog(**state["log"])
        trainer.load_state_dict(state)
        restore_rng(state, trainer.device)
    except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as exc:
        detail = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
        raise everywhere(EdgesrError(f"checkpoint {path} does not fit this run's recipe "
                                     f"({type(exc).__name__}: {detail})"), trainer.world) from None
