"""What a training run shows: plain progress lines without a terminal, and metrics.png."""

from __future__ import annotations

import io

from rich.console import Console

from edgesr.train.plot import Panel, ema, plot_metrics
from edgesr.train.progress import PlainProgress, duration


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_plain_progress_every_interval_first_and_last():
    out, clock = io.StringIO(), Clock()
    p = PlainProgress(Console(file=out, width=80), "distill", start_step=0, every_s=30, clock=clock)
    for step in range(1, 101):
        clock.t += 1.0  # one step per second
        p.update(step, 100, "stage 1/1 kd 0.0300")
    lines = out.getvalue().splitlines()
    # step 1, then every 30 s (31, 61, 91), then the last: long lines are never wrapped
    assert [ln.split(",")[0] for ln in lines] == ["distill: step 1/100 (1%)", "distill: step 31/100 (31%)",
                                                   "distill: step 61/100 (61%)", "distill: step 91/100 (91%)",
                                                   "distill: step 100/100 (100%)"]
    assert lines[2] == ("distill: step 61/100 (61%), 1.00 steps/s, 1m01s elapsed, about 39s left; "
                        "stage 1/1 kd 0.0300")
    assert "left" not in lines[-1]
    p.update(100, 100, force=True)  # a step already shown is not shown again
    assert len(out.getvalue().splitlines()) == 5


def test_a_run_cut_short_shows_its_last_step():
    out, clock = io.StringIO(), Clock()
    p = PlainProgress(Console(file=out, width=80), "distill", start_step=0, every_s=30, clock=clock)
    for step in range(1, 11):
        clock.t += 1.0
        p.update(step, 100)
    p.update(10, 100, force=True)  # the time budget ended it at step 10: said, although no line was due
    assert [ln.split(",")[0] for ln in out.getvalue().splitlines()] == ["distill: step 1/100 (1%)",
                                                                        "distill: step 10/100 (10%)"]


def test_resumed_progress_counts_its_own_rate():
    clock = Clock()
    p = PlainProgress(Console(file=io.StringIO()), "teacher train", start_step=500, every_s=30, clock=clock)
    clock.t += 10
    assert p.line(520, 1000).startswith("teacher train: step 520/1000 (52%), 2.00 steps/s, 10s elapsed, about 4m00s")


def test_budget_bounds_the_estimate_before_the_schedule_is_fitted():
    """quick's first line said "step 200/20000 ... about 49m53s left" under an 8.75-minute
    budget: the horizon is the recipe's upper bound until the budget fits it."""
    clock = Clock()
    p = PlainProgress(Console(file=io.StringIO()), "distill", start_step=0, every_s=30, clock=clock)
    clock.t += 30
    assert "about 49m30s left" in p.line(200, 20000)  # no budget: the rate's estimate
    assert "about 8m15s left" in p.line(200, 20000, budget_left=495.0)
    assert "about 6m00s left" in p.line(200, 2600, budget_left=495.0)  # a fitted horizon: the rate's, smaller


def test_bar_time_left_is_bounded_by_the_budget():
    from rich.progress import Progress

    from edgesr.train.progress import progress_bar

    bar = progress_bar(Console(file=io.StringIO(), force_terminal=True, width=200))
    column = next(c for c in bar.columns if type(c).__name__ == "TimeLeftColumn")
    with Progress() as scratch:
        task_id = scratch.add_task("distill", total=20000, budget_left=344.0)
        task = scratch.tasks[0]
        assert column.render(task).plain == "0:05:44"  # no rate yet: the budget's figure
        scratch.update(task_id, budget_left=None)
        assert column.render(task).plain == "-:--:--"


def test_duration():
    assert [duration(s) for s in (0, 59.4, 61, 466, 3720)] == ["0s", "59s", "1m01s", "7m46s", "1h02m"]


def test_ema_follows_a_step():
    smooth = ema([0.0] * 5 + [1.0] * 30, span=5)
    assert smooth[4] == 0 and 0 < smooth[6] < 1 and smooth[-1] > 0.99


def test_plot_skips_absent_panels_and_draws_references(tmp_path):
    records = [{"step": 0, "val_psnr": 26.9, "val_bicubic_psnr": 26.9, "val_teacher_psnr": 28.9}]
    records += [{"step": s, "kd": 0.03 + 0.001 * (s % 3), "g_diversity": 0.003} for s in range(10, 200, 10)]
    records += [{"step": 200, "val_psnr": 27.6}]
    panels = [Panel("psnr", "val_psnr", lines=(("val_teacher_psnr", "teacher"), ("val_bicubic_psnr", "bicubic"))),
              Panel("kd", "kd", smooth=True), Panel("diversity", "g_diversity", start_line=True),
              Panel("never logged", "g_cr")]
    import matplotlib.pyplot as plt

    drawn = {}
    real_close = plt.close

    def keep(fig):
        drawn["fig"] = fig

    plt.close = keep
    try:
        plot_metrics(records, tmp_path / "m.png", panels)
    finally:
        plt.close = real_close
    assert (tmp_path / "m.png").read_bytes()[:4] == b"\x89PNG"
    axes = [ax for ax in drawn["fig"].axes if ax.get_visible()]
    assert [ax.get_title() for ax in axes] == ["psnr", "kd", "diversity"]
    psnr_ax, kd_ax, div_ax = axes
    # floor and ceiling are lines across the whole run, not points at step 0
    refs = {ln.get_label().split(" (")[0]: ln for ln in psnr_ax.get_lines()[1:]}
    assert set(refs) == {"teacher", "bicubic"} and all(ln.get_ydata()[0] == ln.get_ydata()[1] for ln in refs.values())
    assert list(refs["teacher"].get_ydata()[:1]) == [28.9] and psnr_ax.get_xlim() == (0, 200)
    assert [ln.get_label() for ln in kd_ax.get_lines()] == ["raw", "smoothed"]
    # a constant diversity of 0.003 is drawn on its own scale, not against a zero it never nears
    low, high = div_ax.get_ylim()
    assert 0 < low < 0.003 < high
    real_close(drawn["fig"])
