"""``metrics.png``: a training run's log drawn so that it reads at a glance.

One panel per quantity, each on its own scale (a loss near 10 would flatten one near 0.003 on a
shared axis); references logged once (the bicubic floor, the teacher ceiling) drawn as
horizontal lines across the run; noisy losses as a smoothed curve over the faint raw one; a
quantity whose level means nothing by itself (sample diversity) drawn against its own start,
not against a zero it never nears.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Panel:
    """One panel of ``metrics.png``: the metric ``key`` against the step."""

    title: str
    key: str
    #: draw an exponential moving average over the raw values (drawn faint)
    smooth: bool = False
    #: ``(metric key, label)`` drawn as horizontal lines at their latest logged value
    lines: tuple[tuple[str, str], ...] = ()
    #: a dotted line at the first value, which a drift is read against
    start_line: bool = False
    #: the curve's name in the legend (default: the key)
    label: str = ""


def ema(values: list[float], span: int) -> list[float]:
    """Exponential moving average with the weight of a ``span``-point window (pandas' ``span``)."""
    alpha = 2.0 / (span + 1)
    out, level = [], values[0]
    for v in values:
        level = alpha * v + (1 - alpha) * level
        out.append(level)
    return out


def _series(records: list[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    pts = [(r["step"], float(r[key])) for r in records if isinstance(r.get(key), (int, float))]
    return [p[0] for p in pts], [p[1] for p in pts]


def plot_metrics(records: list[dict[str, Any]], path: Path, panels: list[Panel]) -> None:
    """Write ``path``: the ``panels`` whose metric the log holds, two per row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..io import atomic_path

    shown = [p for p in panels if _series(records, p.key)[0]]
    if not shown:
        return
    cols = 2 if len(shown) > 1 else 1
    rows = (len(shown) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(6 * cols, 2.6 * rows), squeeze=False)
    last_step = max(r.get("step", 0) for r in records)
    for ax, panel in zip(axes.flat, shown):
        steps, values = _series(records, panel.key)
        few = len(steps) < 30
        if panel.smooth and len(values) > 4:
            ax.plot(steps, values, color="C0", alpha=0.3, linewidth=0.8, label="raw")
            ax.plot(steps, ema(values, max(3, len(values) // 8)), color="C0", linewidth=1.8, label="smoothed")
        else:
            ax.plot(steps, values, color="C0", marker="." if few else None, linewidth=1.5,
                    label=panel.label or panel.key)
        if panel.start_line:
            ax.axhline(values[0], color="0.5", linestyle=":", linewidth=1, label=f"at start ({values[0]:.3g})")
        for i, (key, label) in enumerate(panel.lines):
            ref = _series(records, key)[1]
            if ref:
                ax.axhline(ref[-1], color=f"C{i + 1}", linestyle="--", linewidth=1.2, label=f"{label} ({ref[-1]:.2f})")
        ax.set_xlim(0, max(last_step, 1))
        ax.set_title(panel.title, fontsize=9)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.25)
        if len(ax.get_legend_handles_labels()[0]) > 1:
            ax.legend(fontsize=7, loc="best")
    for ax in list(axes.flat)[len(shown):]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("step", fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
