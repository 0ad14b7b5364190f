"""The training loop of every trainer, readable in one sitting.

Each step: the method's update, the NaN streak, then the log line, validation, checkpoint,
stop request and time budget, in that order. A method plugs in through
:class:`~edgesr.train.trainer.Trainer`; nothing here knows which method it drives.

Under torchrun every rank runs this loop in step with the others: a step's ``ok`` is already
agreed (the method averaged its losses over the ranks), the stop request and the clock are
agreed once per step (the largest over the ranks), and the log, validation, progress and
checkpoint writes are rank 0's.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import EdgesrError
from .checkpoint import Diverged, save_checkpoint
from .distributed import everywhere
from .run_folder import CHECKPOINT_FILE, MetricsLog
from .trainer import Trainer


class Interrupted(EdgesrError):
    """Stopped on request (SIGINT/SIGTERM) after saving what there was to save: not an error.

    ``str()`` names the command as ``edgesr ...``; :meth:`resume_with` as the user's own
    program (``.venv/bin/edgesr``), so that the line can be pasted as printed.
    """

    def __init__(self, signum: int, what: str, command: str, run_dir: Path, note: str = "") -> None:
        self.signum, self.what, self.command, self.run_dir, self.note = int(signum), what, command, run_dir, note
        super().__init__(self.resume_with("edgesr"))

    def resume_with(self, program: str) -> str:
        name = signal.Signals(self.signum).name
        return (f"{name} {self.what}; continue with {program} {self.command} --resume {self.run_dir}{self.note}")


class StopRequest:
    """Set by SIGINT/SIGTERM; the loop checks it between steps, checkpoints and exits."""

    def __init__(self) -> None:
        #: the signal received, as a number for the ranks to agree on (0: none)
        self.signum = 0

    def __call__(self, signum: int, _frame) -> None:
        self.signum = int(signum)


@contextmanager
def stop_on_signals(handler: Callable[[int, object], None] | None = None) -> Iterator[StopRequest]:
    """SIGINT and SIGTERM call ``handler`` (default: a :class:`StopRequest` the loop checks
    between steps) while the block runs."""
    stop = StopRequest()
    previous = {s: signal.signal(s, handler or stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for s, old in previous.items():
            signal.signal(s, old)


def fit(trainer: Trainer, run_dir: Path, metrics: MetricsLog | None, stop: StopRequest,
        on_step: Callable[[int, dict], None] | None = None) -> None:
    """Train ``trainer`` to its horizon, its time budget or a stop request.

    ``on_step(step, record)`` sees every step with its log record (empty between log lines)
    and the latest validation scores; ``metrics`` and ``on_step`` are rank 0's (None elsewhere).
    """
    r = trainer.recipe
    world = trainer.world
    world.broadcast_(trainer.networks())  # every rank starts from rank 0's weights
    started = time.perf_counter() - trainer.elapsed
    bad_steps = 0
    last_val: dict[str, float] = {}
    while trainer.step < trainer.horizon:
        with world.watching():  # DDP's gradient all-reduce fails inside the step
            ok = trainer.train_step()
        bad_steps = 0 if ok else bad_steps + 1
        if bad_steps >= r.max_bad_steps:
            raise everywhere(Diverged(
                f"training diverged at step {trainer.step}: {bad_steps} consecutive non-finite losses "
                "(the last checkpoint on disk is the last good state; lower the learning rate)"), world)
        trainer.step += 1
        # one collective: a stop request on any rank stops all; the budget runs on the slowest clock
        signum, trainer.elapsed = world.max(stop.signum, time.perf_counter() - started, device=trainer.device)
        trainer.after_step()
        step = trainer.step
        budget_hit = bool(trainer.budget_seconds) and trainer.elapsed > trainer.budget_seconds
        last = step >= trainer.horizon or budget_hit
        boundary = last or trainer.stage_ended()

        if world.main:
            record: dict = {}
            if step % r.log_every == 0 or boundary:
                record = {"step": step, **trainer.log_fields(), "time": round(trainer.elapsed, 2),
                          **trainer.losses.flush()}
            if trainer.val_pairs and (step % r.validation.every == 0 or boundary):
                last_val = trainer.validate()
                record = {"step": step, **record, **last_val}
            if record and metrics:
                metrics.write(record)
            if on_step:
                on_step(step, {**record, **last_val})

        if not world.active:
            signum = stop.signum  # a single process also honours a request made during this step
        if (step % r.checkpoint_every == 0 or signum or last) and bad_steps == 0:
            save_checkpoint(trainer, run_dir / CHECKPOINT_FILE)  # never in the middle of a non-finite streak
        if signum:
            world.barrier()  # the checkpoint is on disk before any rank exits
            again = " (on one process, or under torchrun with any number that divides batch_size)"
            raise everywhere(Interrupted(signum, f"at step {step}: checkpoint saved",
                                         trainer.command.removeprefix("edgesr "), run_dir,
                                         again if world.active else ""), world)
        if budget_hit:
            break
