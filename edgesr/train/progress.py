"""What a long training command shows while it runs: a rich bar on a terminal, plain lines
elsewhere (a log file, a pipe, CI), so a redirected run is never silent."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console


def time_left(estimate: float | None, budget_left: float | None) -> float | None:
    """The time left to show: the estimate from the step rate, never more than the time budget
    has left (before a budgeted run fits its schedule, the horizon is the recipe's upper bound
    and the rate's estimate can be ten times the budget)."""
    if budget_left is None:
        return estimate
    return budget_left if estimate is None else min(estimate, budget_left)


def progress_bar(console: Console):
    """The progress bar on a terminal: description, bar, steps, times, live info."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn
    from rich.text import Text

    class TimeLeftColumn(ProgressColumn):
        """rich's time remaining, bounded by the task's ``budget_left`` field (see :func:`time_left`)."""

        max_refresh = 0.5

        def render(self, task) -> Text:
            left = time_left(task.time_remaining, task.fields.get("budget_left"))
            if left is None:
                return Text("-:--:--", style="progress.remaining")
            minutes, seconds = divmod(int(left), 60)
            hours, minutes = divmod(minutes, 60)
            return Text(f"{hours}:{minutes:02d}:{seconds:02d}", style="progress.remaining")

    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeLeftColumn(), TextColumn("{task.fields[info]}"), console=console, transient=False)


def duration(seconds: float) -> str:
    """``7m46s``, ``1h02m``, ``12s``: wall times as edgesr prints them."""
    seconds = max(0, round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


class PlainProgress:
    """Progress without a terminal: one plain line every ``every_s`` seconds, and at the first
    and the last step. ``edgesr distill --recipe quick > log.txt`` writes lines such as::

        distill: step 120/420 (28%), 1.45 steps/s, 1m23s elapsed, about 3m27s left; stage 1/1 kd 0.0290

    steps/s and elapsed count training only (from this process's first step, after the run's
    preparation), as ``results.json``'s ``steps_per_second`` does; the time left is bounded by
    what the time budget has left.
    """

    #: seconds between two lines; ``EDGESR_PROGRESS_SECONDS`` overrides it
    EVERY_S = 30.0

    def __init__(self, console: Console, name: str, start_step: int, every_s: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.console, self.name, self.start_step, self.clock = console, name, start_step, clock
        if every_s is None:
            env = os.environ.get("EDGESR_PROGRESS_SECONDS", "")
            try:
                every_s = float(env) if env else self.EVERY_S
            except ValueError:
                every_s = self.EVERY_S
        self.every_s = every_s
        self.started = clock()
        self.last: float | None = None
        self.shown_step: int | None = None

    def line(self, step: int, total: int, info: str = "", budget_left: float | None = None) -> str:
        elapsed = self.clock() - self.started
        rate = (step - self.start_step) / elapsed if elapsed > 0 else 0.0
        seconds = time_left((total - step) / rate if rate > 0 else None, budget_left)
        left = f", about {duration(seconds)} left" if seconds is not None and step < total else ""
        pct = f" ({100 * step // total}%)" if total else ""
        tail = f"; {info.strip()}" if info.strip() else ""
        return f"{self.name}: step {step}/{total}{pct}, {rate:.2f} steps/s, {duration(elapsed)} elapsed{left}{tail}"

    def update(self, step: int, total: int, info: str = "", force: bool = False,
               budget_left: float | None = None) -> None:
        """A line when one is due (``force``: now, unless this step's is already shown)."""
        now = self.clock()
        due = self.last is None or now - self.last >= self.every_s or step >= total
        if (due or force) and step != self.shown_step:
            self.last, self.shown_step = now, step
            self.console.print(self.line(step, total, info, budget_left), markup=False, highlight=False,
                               soft_wrap=True)


@contextmanager
def status(console: Console, message: str) -> Iterator[None]:
    """A spinner on a terminal; elsewhere the message as one plain line (a log shows what runs)."""
    if console.is_terminal:
        with console.status(message):
            yield
    else:
        console.print(message, markup=False, highlight=False, soft_wrap=True)
        yield
