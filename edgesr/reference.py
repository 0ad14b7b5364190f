"""The torch model an artifact was exported from, as a reference row of ``edgesr bench``.

Host-side (it imports torch), so it lives beside the CLI rather than in ``bench/``, which must
run on devices without torch; the CLI passes it to :func:`edgesr.bench.rows.run_bench` only
when torch is installed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .bench.measure import PeakMemory
from .bench.rows import BenchRow, Progress, latencies
from .data.benchmark import BenchmarkSet
from .errors import EdgesrError
from .evaluate import evaluate


def torch_row(model: str, sha256: str, sizes: Sequence[int], warmup: int, runs: int, sets: Sequence[BenchmarkSet],
              scales: Sequence[int], threads: int | None = None, with_ssim: bool = True,
              progress: Progress | None = None) -> BenchRow:
    """``model`` on torch's CPU backend: a zoo name (never downloaded here), or the absolute
    path its artifact recorded at export, whose weights must still have the recorded ``sha256``
    (a file changed or replaced since is refused rather than benchmarked as the source)."""
    import torch

    from .models.predict import torch_predictor
    from .models.zoo import load_model

    if threads:
        torch.set_num_threads(threads)
    with PeakMemory() as mem:
        net, meta = load_model(model, download=False)
        if sha256 and meta["sha256"] != sha256:
            raise EdgesrError(f"{model} is not the file the artifact was exported from (sha256 differs)")
        predict = torch_predictor(net, "cpu")
        lat = latencies(lambda x: predict(x, 0), lambda n: n, sizes, warmup, runs, progress)
    name = Path(model).name
    row = BenchRow(f"{name} (torch)", "torch", f"torch {torch.__version__.split('+')[0]}/CPU", name, "fp32",
                   "bicubic", 0, None, mem.peak_mb, lat)
    if sets and scales:
        if progress:
            progress(f"scoring {model} in torch")
        row.scores = evaluate(predict, sets, scales, with_ssim=with_ssim)
    return row
