"""Benchmark rows: one per artifact, plus bicubic (and torch) reference rows.

Latency is measured at square output sizes (``--sizes 256 512`` = 256x256 and 512x512
outputs): an ``lr`` artifact gets the LR input of that output, a ``bicubic`` artifact the
full-size bicubic image, so the numbers are what producing that output costs on the
artifact's own path. Quality goes through :func:`edgesr.evaluate.evaluate`, the same loop
and protocol as ``edgesr eval``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..data.benchmark import BenchmarkSet
from ..errors import EdgesrError
from ..evaluate import Score, evaluate
from ..ops import imresize
from ..runtime import Upscaler
from ..runtime.base import MAX_SIDE, MIN_LR_SIDE
from ..runtime.memory import bytes_per_pixel, check_fits
from .measure import Latency, PeakMemory, summarize, time_calls

Progress = Callable[[str], None]


@dataclass
class BenchRow:
    """One model's numbers; ``kind`` is ``artifact`` or a reference (``bicubic``, ``torch``)."""

    name: str
    kind: str
    runtime: str
    #: the model the artifact was exported from (its metadata's ``model``)
    source: str = ""
    precision: str = ""
    input_kind: str = ""
    scale: int = 0
    file_mb: float | None = None
    peak_mb: float | None = None
    latency: list[Latency] = field(default_factory=list)
    scores: list[Score] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: where the source model was at export and its checksum (how ``--torch`` finds it)
    source_path: str = ""
    source_sha256: str = ""
    #: the onnxruntime execution providers the session runs on, in order (empty: not onnxruntime)
    providers: list[str] = field(default_factory=list)

    def latency_at(self, size: int) -> Latency | None:
        return next((lat for lat in self.latency if lat.size == size), None)

    def score(self, set_name: str, scale: int) -> Score | None:
        return next((s for s in self.scores if s.set == set_name and s.scale == scale), None)


def _test_image(size: int) -> np.ndarray:
    """A smooth-plus-noise Y image: latency does not depend on content, but keep it image-like."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size] / max(size, 1)
    return (0.5 + 0.3 * np.sin(6 * xx) * np.cos(4 * yy) + 0.05 * rng.standard_normal((size, size))).clip(0, 1)


def check_sizes(sizes: Sequence[int]) -> None:
    """``--sizes``: each at most :data:`MAX_SIDE` (memory is checked per artifact, once loaded)."""
    for size in sizes:
        if size > MAX_SIDE:
            raise EdgesrError(f"--sizes {size} is larger than {MAX_SIDE}, the largest side edgesr exports for")


def latencies(run: Callable[[np.ndarray], object], input_side: Callable[[int], int], sizes: Sequence[int],
              warmup: int, runs: int, progress: Progress | None = None) -> list[Latency]:
    """Latency per output size of ``run`` on an input of side ``input_side(size)``."""
    out = []
    for size in sizes:
        side = input_side(size)
        if side < MIN_LR_SIDE:
            raise EdgesrError(f"--sizes {size} is too small for this model: its input would be {side}x{side}")
        x = _test_image(side).astype(np.float32)
        if progress:
            progress(f"timing {size}x{size}")
        out.append(summarize(size, time_calls(lambda x=x: run(x), warmup, runs)))
    return out


def artifact_scales(upscaler: Upscaler, scales: Sequence[int] | None) -> tuple[list[int], list[str]]:
    """The scales to evaluate an artifact at, and notes on the ones it cannot do."""
    if not scales:
        return [upscaler.meta.scale], []
    if upscaler.meta.input_kind == "bicubic":
        return list(scales), []
    skipped = [s for s in scales if s != upscaler.meta.scale]
    notes = ([f"x{', x'.join(map(str, skipped))} skipped: an lr artifact upscales by x{upscaler.meta.scale} only"]
             if skipped else [])
    return [s for s in scales if s == upscaler.meta.scale], notes


def bench_artifact(open_fn: Callable[[], Upscaler], sizes: Sequence[int], warmup: int, runs: int,
                   sets: Sequence[BenchmarkSet], scales: Sequence[int] | None, with_ssim: bool = True,
                   progress: Progress | None = None, name: str | None = None,
                   peak: Callable[[], tuple[float | None, str]] | None = None) -> BenchRow:
    """Time, then score one artifact (``name``: its row's name, by default the model file's);
    ``peak`` measures its memory (:func:`edgesr.bench.memory.artifact_peak_mb`: in a process of
    its own, so that no row's memory depends on the rows before it). Sizes that would not fit
    in memory are refused before anything runs."""
    u = open_fn()  # a bad artifact is its one-line error before anything is measured
    for size in sizes:
        check_fits(size * size * bytes_per_pixel(u), f"timing a {size}x{size} output with {u.path.name}",
                   "choose smaller --sizes")
    peak_mb, note = peak() if peak else (None, "")
    lat = latencies(u.infer, lambda n: u.input_size(n, n)[0], sizes, warmup, runs, progress)
    m = u.meta
    row = BenchRow(name or u.path.name, "artifact", f"{u.backend}/{u.device}", m.model, m.precision, m.input_kind,
                   m.scale, u.file_size / 1e6, peak_mb, lat, source_path=m.source_path,
                   source_sha256=m.source_sha256, providers=list(getattr(u, "providers", [])))
    if note:
        row.notes.append(note)
    eval_scales, notes = artifact_scales(u, scales)
    row.notes += notes
    if sets and eval_scales:
        if progress:
            progress(f"scoring {u.path.name}")
        row.scores = evaluate(u.predictor(), sets, eval_scales, with_ssim=with_ssim, input_kind=m.input_kind)
    return row


def bicubic_row(rows: Sequence[BenchRow], sizes: Sequence[int], scale: int, warmup: int, runs: int) -> BenchRow:
    """MATLAB bicubic in NumPy: the floor every model must beat, timed at ``scale``.

    Its scores are the bicubic numbers every artifact's evaluation already carries.
    """
    with PeakMemory() as mem:
        lat = latencies(lambda x: imresize(x, float(scale)), lambda n: n // scale, sizes, warmup, runs)
    seen: dict[tuple[str, int], Score] = {}
    for r in rows:
        for s in r.scores:
            seen.setdefault((s.set, s.scale), Score(s.set, s.scale, s.images, s.bicubic_psnr, s.bicubic_ssim,
                                                    s.bicubic_psnr, s.bicubic_ssim))
    return BenchRow("bicubic (MATLAB, NumPy)", "bicubic", "numpy", "", "fp64", "lr", scale, None, mem.peak_mb,
                    lat, list(seen.values()))


#: builds the reference row of a source model (a zoo name, or the absolute path its artifact
#: recorded, with the weights' sha256) for the scales scored; the CLI supplies one (the torch model)
ReferenceRow = Callable[[str, str, Sequence[int]], "BenchRow"]


def run_bench(artifacts: Sequence[Path], sizes: Sequence[int], warmup: int, runs: int,
              sets: Sequence[BenchmarkSet], scales: Sequence[int] | None, threads: int | None = None,
              providers: Sequence[str] | None = None, reference: ReferenceRow | None = None,
              with_ssim: bool = True, progress: Progress | None = None) -> list[BenchRow]:
    """Every artifact, then bicubic, then the ``reference`` row of each source model.

    Reference rows come last so that their memory (torch's) never counts against an artifact.
    """
    from ..runtime import open_upscaler, resolve_artifact
    from .memory import artifact_peak_mb

    rows = []
    for path in artifacts:
        if progress:
            progress(f"loading {path.name}")
        model = resolve_artifact(path) if path.exists() else path
        name = path.name if model == path else f"{path.name}/{model.name}"
        rows.append(bench_artifact(lambda p=path: open_upscaler(p, threads, providers), sizes, warmup, runs,
                                   sets, scales, with_ssim, progress, name,
                                   peak=lambda p=path: artifact_peak_mb(p, threads, providers, sizes)))
    scale = rows[0].scale if rows else 2
    refs = [bicubic_row(rows, sizes, scale, warmup, runs)]
    sources = sorted({(r.source_path or r.source, r.source_sha256) for r in rows if r.source})
    if reference and sources:
        eval_scales = sorted({s.scale for r in rows for s in r.scores})
        for model, sha in sources:
            try:
                refs.append(reference(model, sha, eval_scales))
            except EdgesrError as exc:
                next(r for r in rows if (r.source_path or r.source) == model).notes.append(
                    f"no torch reference row: {exc}")
    return rows + refs
