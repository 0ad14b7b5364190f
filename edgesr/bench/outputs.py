"""Bench results as one table (rich on the terminal, markdown in files), JSON and a plot.

The terminal and markdown tables come from the same cells, so they never disagree.
"""

from __future__ import annotations

import platform
import textwrap
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from rich.table import Table

from ..errors import EdgesrError
from ..io import atomic_path, write_json, write_text
from ..optional import require
from .rows import BenchRow


def quality_keys(rows: Sequence[BenchRow]) -> list[tuple[str, int]]:
    """(set, scale) pairs any row was scored on, in first-seen order."""
    return list(dict.fromkeys((s.set, s.scale) for r in rows for s in r.scores))


def _fmt(v: float | None, spec: str) -> str:
    return "—" if v is None else format(v, spec)


def cells(rows: Sequence[BenchRow], sizes: Sequence[int]) -> tuple[list[str], list[list[str]]]:
    """Headers and cells: latency p50 (p90/p99) per size, MP/s at the largest, PSNR/SSIM per set."""
    keys = quality_keys(rows)
    headers = ["model", "runtime", "precision", "input", "file MB", "peak MB"]
    headers += [f"{n}² ms p50/p90/p99" for n in sizes] + [f"MP/s @{max(sizes)}²" if sizes else "MP/s"]
    headers += [f"{name} x{s} PSNR/SSIM" for name, s in keys]
    body = []
    for r in rows:
        line = [r.name, r.runtime, r.precision, r.input_kind, _fmt(r.file_mb, ".2f"), _fmt(r.peak_mb, ".0f")]
        for n in sizes:
            lat = r.latency_at(n)
            line.append("—" if lat is None else f"{lat.p50_ms:.1f}/{lat.p90_ms:.1f}/{lat.p99_ms:.1f}")
        big = r.latency_at(max(sizes)) if sizes else None
        line.append(_fmt(big.mpix_per_s if big else None, ".2f"))
        for name, s in keys:
            sc = r.score(name, s)
            line.append("—" if sc is None else f"{sc.psnr:.3f}/{sc.ssim:.4f}")
        body.append(line)
    return headers, body


def _needed(header: str, column: Sequence[str]) -> int:
    """Columns a table column needs to show every cell whole: cells never wrap (numbers), the
    header may, at its spaces."""
    from rich.cells import cell_len

    return max([cell_len(w) for w in header.split()] + [cell_len(c) for c in column])


def rich_table(rows: Sequence[BenchRow], sizes: Sequence[int], title: str = "",
               columns: Sequence[int] | None = None) -> Table:
    """The table, or only its ``columns`` (indices into :func:`cells`' headers); every column is
    as wide as its widest cell, so none is ever cut to ``38.…``."""
    headers, body = cells(rows, sizes)
    keep = list(range(len(headers))) if columns is None else list(columns)
    table = Table(title=title or None)
    for i in keep:
        # the header wrapped to its cells' width: the column is as wide as its widest cell
        header = textwrap.fill(headers[i], _needed(headers[i], [line[i] for line in body]))
        table.add_column(header, justify="left" if i < 4 else "right", no_wrap=True)
    for r, line in zip(rows, body):
        table.add_row(*(line[i] for i in keep), style="dim" if r.kind != "artifact" else None)
    return table


def rich_tables(rows: Sequence[BenchRow], sizes: Sequence[int], width: int, title: str = "") -> list[Table]:
    """The table in as many parts as ``width`` columns need, split between columns (each part
    repeats the model column): at 80 columns the whole table is unreadable."""
    headers, body = cells(rows, sizes)
    need = [_needed(h, [line[i] for line in body]) + 3 for i, h in enumerate(headers)]  # padding, divider
    parts: list[list[int]] = []
    used = 0
    for i in range(1, len(headers)):
        if parts and used + need[i] <= width:
            parts[-1].append(i)
            used += need[i]
        else:
            parts.append([i])
            used = 1 + need[0] + need[i]  # the left edge, the model column, this one
    return [rich_table(rows, sizes, title if k == 0 else "", [0, *cols]) for k, cols in enumerate(parts or [[]])]


def markdown(rows: Sequence[BenchRow], sizes: Sequence[int]) -> str:
    headers, body = cells(rows, sizes)
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(line) + " |" for line in body]
    notes = [f"- {r.name}: {n}" for r in rows for n in r.notes]
    return "\n".join(lines + ([""] + notes if notes else [])) + "\n"


def machine() -> dict:
    return {"platform": platform.platform(), "machine": platform.machine(), "processor": platform.processor(),
            "python": platform.python_version()}


def write_results(rows: Sequence[BenchRow], sizes: Sequence[int], settings: dict, json_path: Path | None = None,
                  markdown_path: Path | None = None) -> None:
    if json_path:
        write_json(json_path, {"machine": machine(), "settings": settings, "rows": [asdict(r) for r in rows]})
    if markdown_path:
        write_text(markdown_path, markdown(rows, sizes))


def figure(rows: Sequence[BenchRow], sizes: Sequence[int]):
    """Median latency at the largest size against PSNR on the first (set, scale), one marker
    per row, named in a legend beside the axes: names written next to their points overlapped
    where two models score alike and ran past the plot's edge."""
    keys = quality_keys(rows)
    if not keys or not sizes:
        raise EdgesrError("--plot needs quality scores and latencies: give --data and --sizes")
    set_name, scale = keys[0]
    size = max(sizes)
    points = [(r.name, r.latency_at(size), r.score(set_name, scale)) for r in rows]
    points = [(n, lat.p50_ms, sc.psnr) for n, lat, sc in points if lat is not None and sc is not None]
    require("matplotlib", "plot", "--plot").use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5), layout="constrained")
    markers = "osD^vP*Xh<>"
    for k, (name, ms, db) in enumerate(points):
        ax.scatter(ms, db, marker=markers[k % len(markers)], s=40, label=f"{name}: {ms:.1f} ms, {db:.2f} dB")
    ax.set_xscale("log")
    ax.set_xlabel(f"latency, median ms, {size}x{size} output")
    ax.set_ylabel(f"PSNR dB, {set_name} x{scale} (Y)")
    ax.grid(True, alpha=0.3)
    labels = [t.get_label() for t in ax.collections]
    two = len(labels) > 1 and max(len(t) for t in labels) <= 55  # two columns of legend fit 8 inches
    fig.legend(loc="outside lower center", fontsize=8, ncols=2 if two else 1, frameon=False)
    return fig


def plot(rows: Sequence[BenchRow], sizes: Sequence[int], path: Path) -> None:
    """:func:`figure` as a PNG."""
    import matplotlib.pyplot as plt

    fig = figure(rows, sizes)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
