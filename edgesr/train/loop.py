"""The training loop of every trainer, readable in one sitting.

Each step: the method's update, the NaN streak, then the log line, validation, checkpoint,
stop request and time budget, in that order. A method plugs in through
:class:`~edgesr.train.trainer.Trainer`; nothing here knows which method it drives.

For data-parallel training, the places are: the ``ok`` of a step (reduce it over ranks so that
every rank skips the same steps), ``stop.requested`` (broadcast it), and the metrics, validation
and checkpoint writes (rank 0 only).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import EdgesrError
from .checkpoint import Diverged, save_checkpoint
from .run_folder import CHECKPOINT_FILE, MetricsLog
from .trainer import Trainer


class Interrupted(EdgesrError):
    """Stopped by a signal after writing a checkpoint."""


class StopRequest:
    """Set by SIGINT/SIGTERM; the loop checks it between steps, checkpoints and exits."""

    def __init__(self) -> None:
        self.requested = False
        self.signal_name = ""

    def __call__(self, signum, _frame) -> None:
        self.requested = True
        self.signal_name = signal.Signals(signum).name


@contextmanager
def stop_on_signals() -> Iterator[StopRequest]:
    stop = StopRequest()
    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def fit(trainer: Trainer, run_dir: Path, metrics: MetricsLog, stop: StopRequest,
        on_step: Callable[[int, dict], None] | None = None) -> None:
    """Train ``trainer`` to its horizon, its time budget or a stop request.

    ``on_step(step, record)`` sees every step with its log record (empty between log lines)
    and the latest validation scores.
    """
    r = trainer.recipe
    started = time.perf_counter() - trainer.elapsed
    bad_steps = 0
    last_val: dict[str, float] = {}
    while trainer.step < trainer.horizon:
        ok = trainer.train_step()
        bad_steps = 0 if ok else bad_steps + 1
        if bad_steps >= r.max_bad_steps:
            raise Diverged(f"training diverged at step {trainer.step}: {bad_steps} consecutive non-finite losses "
                           "(the last checkpoint on disk is the last good state; lower the learning rate)")
        trainer.step += 1
        trainer.elapsed = time.perf_counter() - started
        trainer.after_step()
        step = trainer.step
        budget_hit = r.budget_minutes > 0 and trainer.elapsed > 60 * r.budget_minutes
        last = step >= trainer.horizon or budget_hit
        boundary = last or trainer.stage_ended()

        record: dict = {}
        if step % r.log_every == 0 or boundary:
            record = {"step": step, **trainer.log_fields(), "time": round(trainer.elapsed, 2),
                      **trainer.losses.flush()}
        if trainer.val_pairs and (step % r.validation.every == 0 or boundary):
            last_val = trainer.validate()
            record = {"step": step, **record, **last_val}
        if record:
            metrics.write(record)
        if on_step:
            on_step(step, {**record, **last_val})

        if (step % r.checkpoint_every == 0 or stop.requested or last) and bad_steps == 0:
            save_checkpoint(trainer, run_dir / CHECKPOINT_FILE)  # never in the middle of a non-finite streak
        if stop.requested:
            raise Interrupted(f"{stop.signal_name} at step {step}: checkpoint saved; continue with "
                              f"{trainer.command} --resume {run_dir}")
        if budget_hit:
            break
