"""How bench shows its numbers: a table readable at 80 columns, a plot whose labels fit."""

from __future__ import annotations

import io
import itertools

import pytest
from rich.console import Console

from edgesr.bench.measure import Latency
from edgesr.bench.outputs import cells, figure, rich_tables
from edgesr.bench.rows import BenchRow
from edgesr.evaluate import Score


def _row(name: str, ms: float, db: float, kind: str = "artifact") -> BenchRow:
    return BenchRow(name, kind, "onnxruntime/CPU", "student", "int8", "lr", 2, 0.35, 41.0,
                    [Latency(256, 10, ms / 4, ms / 3.9, ms / 3.8, ms / 4, 1.7), Latency(512, 10, ms, ms, ms, ms, 1.7)],
                    [Score("Set5", 2, 5, db, 0.9571, 33.69, 0.93), Score("Set14", 2, 14, db - 4, 0.91, 30.2, 0.9)])


ROWS = [_row("student_x2_lr_int8.onnx", 255.3, 37.004), _row("student_x2_lr_fp32.onnx", 560.1, 37.011),
        _row("bicubic (MATLAB, NumPy)", 20.2, 33.690, "bicubic")]


@pytest.mark.parametrize("width", [80, 100, 1000])
def test_every_cell_shown_whole_at_any_width(width):
    """At 80 columns the table used to read ``38.…`` and ``onn…``."""
    console = Console(file=io.StringIO(), width=width)
    tables = rich_tables(ROWS, [256, 512], width, title="edgesr bench")
    for table in tables:
        console.print(table)
    text = console.file.getvalue()
    assert "…" not in text and all(len(line) <= width for line in text.splitlines())
    _, body = cells(ROWS, [256, 512])
    assert all(cell in text for line in body for cell in line)
    assert (len(tables) == 1) == (width == 1000)  # one piece where it fits


def test_plot_labels_inside_the_figure_and_apart():
    """Names written beside their points overlapped (two models a hundredth of a dB apart) and
    ran past the plot; the legend below the axes keeps every name whole and apart."""
    import matplotlib.pyplot as plt

    fig = figure([*ROWS, _row("a_model_with_a_rather_long_name_x2_lr_fp16.onnx", 300.0, 37.0)], [256, 512])
    try:
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        drawn = fig.get_tightbbox(renderer)  # inches: everything drawn, every visible label included
        width, height = fig.get_size_inches()
        assert drawn.x0 >= 0 and drawn.y0 >= 0 and drawn.x1 <= width and drawn.y1 <= height
        names = [t for t in fig.legends[0].get_texts()]
        assert len(names) == 4 and all(" ms, " in t.get_text() for t in names)
        boxes = [t.get_window_extent(renderer) for t in names]
        assert not any(a.overlaps(b) for a, b in itertools.combinations(boxes, 2))
        axes = fig.axes[0].get_window_extent(renderer)
        assert not any(b.overlaps(axes) for b in boxes)
    finally:
        plt.close(fig)


def test_peak_memory_does_not_depend_on_the_order(tmp_path):
    """Measured in the benchmarking process, the first row paid for importing onnxruntime and a
    later one reused the pages an earlier one left (a small model read 19 MB first, 56 MB
    second): each artifact is now measured in a process of its own."""
    from edgesr.bench.rows import run_bench
    from tests.artifacts import bicubic_artifact, lr_artifact, tiny_vdsr

    big = bicubic_artifact(tmp_path / "big.onnx", tiny_vdsr(width=32, depth=8))
    small = lr_artifact(tmp_path / "small.onnx")
    peaks = []
    for order in ([big, small], [small, big]):
        rows = run_bench(order, [128], 0, 1, [], None, 1, None)
        peaks.append({r.name: r.peak_mb for r in rows if r.kind == "artifact"})
        assert all(r.providers == ["CPUExecutionProvider"] for r in rows if r.kind == "artifact")
    assert peaks[0].keys() == peaks[1].keys() == {"big.onnx", "small.onnx"}
    for name in peaks[0]:
        assert peaks[0][name] == pytest.approx(peaks[1][name], abs=2.0), name
    assert peaks[0]["big.onnx"] > peaks[0]["small.onnx"]
