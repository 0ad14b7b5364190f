"""Bench results as one table (rich on the terminal, markdown in files), JSON and a plot.

The terminal and markdown tables come from the same cells, so they never disagree.
"""

from __future__ import annotations

import platform
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


def rich_table(rows: Sequence[BenchRow], sizes: Sequence[int], title: str = "") -> Table:
    headers, body = cells(rows, sizes)
    table = Table(title=title)
    for i, h in enumerate(headers):
        table.add_column(h, justify="left" if i < 4 else "right", no_wrap=i == 0)
    for r, line in zip(rows, body):
        table.add_row(*line, style="dim" if r.kind != "artifact" else None)
    return table


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


def plot(rows: Sequence[BenchRow], sizes: Sequence[int], path: Path) -> None:
    """Median latency at the largest size against PSNR on the first (set, scale), one point per row."""
    keys = quality_keys(rows)
    if not keys or not sizes:
        raise EdgesrError("--plot needs quality scores and latencies: give --data and --sizes")
    set_name, scale = keys[0]
    size = max(sizes)
    points = [(r.name, r.latency_at(size), r.score(set_name, scale)) for r in rows]
    points = [(n, lat.p50_ms, sc.psnr) for n, lat, sc in points if lat is not None and sc is not None]
    require("matplotlib", "plot", "--plot").use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, ms, db in points:
        ax.scatter(ms, db)
        ax.annotate(name, (ms, db), textcoords="offset points", xytext=(5, 3), fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel(f"latency, median ms, {size}x{size} output")
    ax.set_ylabel(f"PSNR dB, {set_name} x{scale} (Y)")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
