"""The SR evaluation loop, independent of what runs the model.

A *predictor* maps a bicubic-upscaled Y image (float32, [0, 1], ``HxW``) to the super-resolved
Y image; torch models, ONNX sessions and TensorRT engines all provide one. The loop applies
the field's protocol (:mod:`edgesr.ops.metrics`) and reports bicubic alongside. No torch here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass

import numpy as np

from .data.benchmark import BenchmarkSet, SRPair
from .ops import psnr, ssim

Predictor = Callable[[np.ndarray, int], np.ndarray]


@dataclass
class Score:
    """Mean PSNR/SSIM of one model on one set at one scale, with bicubic for reference."""

    set: str
    scale: int
    images: int
    psnr: float
    ssim: float
    bicubic_psnr: float
    bicubic_ssim: float

    def to_dict(self) -> dict:
        return asdict(self)


def score_pairs(predict: Predictor, pairs: list[SRPair], set_name: str, with_ssim: bool = True) -> Score:
    """Average PSNR/SSIM over ``pairs`` (per image, border = scale, prediction clipped)."""
    if not pairs:
        raise ValueError(f"{set_name} has no images")
    scale = pairs[0].scale
    p, s, bp, bs = [], [], [], []
    for pair in pairs:
        sr = np.asarray(predict((pair.bicubic_y / 255.0).astype(np.float32), scale), np.float64) * 255.0
        p.append(psnr(sr, pair.gt_y, scale))
        bp.append(psnr(pair.bicubic_y, pair.gt_y, scale))
        if with_ssim:
            s.append(ssim(sr, pair.gt_y, scale))
            bs.append(ssim(pair.bicubic_y, pair.gt_y, scale))
    mean = lambda v: float(np.mean(v)) if v else float("nan")  # noqa: E731
    return Score(set_name, scale, len(pairs), mean(p), mean(s), mean(bp), mean(bs))


def evaluate(predict: Predictor, sets: Iterable[BenchmarkSet], scales: Iterable[int],
             with_ssim: bool = True, on_done: Callable[[Score], None] | None = None) -> list[Score]:
    """Scores for every set and scale, in that order."""
    scores = []
    for bset in sets:
        for scale in scales:
            score = score_pairs(predict, bset.pairs(scale), bset.name, with_ssim)
            scores.append(score)
            if on_done:
                on_done(score)
    return scores
