"""The torch model an artifact was exported from, as a reference row where torch is installed.

The only bench module that touches torch; the caller imports it only after torch imported
fine, so a device without torch never gets here.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..data.benchmark import BenchmarkSet
from ..evaluate import evaluate
from .measure import PeakMemory
from .run import BenchRow, Progress, latencies


def torch_row(model: str, sizes: Sequence[int], warmup: int, runs: int, sets: Sequence[BenchmarkSet],
              scales: Sequence[int], threads: int | None = None, with_ssim: bool = True,
              progress: Progress | None = None) -> BenchRow:
    """``model`` (zoo name or weights path, never downloaded here) on torch's CPU backend."""
    import torch

    from ..models.predict import torch_predictor
    from ..models.zoo import load_model

    if threads:
        torch.set_num_threads(threads)
    with PeakMemory() as mem:
        net, _ = load_model(model, download=False)
        predict = torch_predictor(net, "cpu")
        lat = latencies(lambda x: predict(x, 0), lambda n: n, sizes, warmup, runs, progress)
    row = BenchRow(f"{model} (torch)", "torch", f"torch {torch.__version__.split('+')[0]}/CPU", model, "fp32",
                   "bicubic", 0, None, mem.peak_mb, lat)
    if sets and scales:
        if progress:
            progress(f"scoring {model} in torch")
        row.scores = evaluate(predict, sets, scales, with_ssim=with_ssim)
    return row
