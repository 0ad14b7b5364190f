"""The SR evaluation loop, independent of what runs the model.

A *predictor* maps a bicubic-upscaled Y image (float32, [0, 1], ``HxW``) to the super-resolved
Y image; torch models, ONNX sessions and TensorRT engines all provide one. Deployable models
that do the bicubic pre-upscaling themselves take the LR Y instead (``input_kind="lr"``): it is the
protocol's own LR, ``imresize(gt, 1/s)``, the image that the bicubic input was made from. The
loop applies the field's protocol (:mod:`edgesr.ops.metrics`) and reports bicubic alongside.
No torch here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass

import numpy as np

from .artifact import INPUT_KINDS
from .data.benchmark import BenchmarkSet, SRPair
from .errors import EdgesrError
from .ops import imresize, psnr, ssim

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


def model_input(pair: SRPair, input_kind: str = "bicubic") -> np.ndarray:
    """The float32 [0, 1] Y image a model of ``input_kind`` sees for ``pair``."""
    if input_kind == "bicubic":
        return (pair.bicubic_y / 255.0).astype(np.float32)
    if input_kind == "lr":
        return imresize(pair.gt_y / 255.0, 1.0 / pair.scale).astype(np.float32)
    raise ValueError(f"input_kind must be one of {INPUT_KINDS}, got {input_kind!r}")


def score_pairs(predict: Predictor, pairs: list[SRPair], set_name: str, with_ssim: bool = True,
                input_kind: str = "bicubic") -> Score:
    """Average PSNR/SSIM over ``pairs`` (per image, border = scale, prediction clipped)."""
    if not pairs:
        raise ValueError(f"{set_name} has no images")
    scale = pairs[0].scale
    p, s, bp, bs = [], [], [], []
    for pair in pairs:
        sr = np.asarray(predict(model_input(pair, input_kind), scale), np.float64) * 255.0
        if sr.shape != pair.gt_y.shape:
            raise EdgesrError(f"the model made a {sr.shape} image from {set_name}/{pair.name} x{scale}, "
                              f"expected {pair.gt_y.shape}")
        p.append(psnr(sr, pair.gt_y, scale))
        bp.append(psnr(pair.bicubic_y, pair.gt_y, scale))
        if with_ssim:
            s.append(ssim(sr, pair.gt_y, scale))
            bs.append(ssim(pair.bicubic_y, pair.gt_y, scale))
    mean = lambda v: float(np.mean(v)) if v else float("nan")  # noqa: E731
    return Score(set_name, scale, len(pairs), mean(p), mean(s), mean(bp), mean(bs))


def evaluate(predict: Predictor, sets: Iterable[BenchmarkSet], scales: Iterable[int],
             with_ssim: bool = True, on_done: Callable[[Score], None] | None = None,
             input_kind: str = "bicubic") -> list[Score]:
    """Scores for every set and scale, in that order."""
    scores = []
    for bset in sets:
        for scale in scales:
            score = score_pairs(predict, bset.pairs(scale), bset.name, with_ssim, input_kind)
            scores.append(score)
            if on_done:
                on_done(score)
    return scores


def bicubic_predictor(bicubic_y: np.ndarray, scale: int) -> np.ndarray:
    """The bicubic baseline as a predictor: its input is already the answer."""
    return bicubic_y


def validation_psnr(predict: Predictor, pairs_by_scale: dict[int, list[SRPair]]) -> dict[str, float]:
    """Mean PSNR per scale (``val_psnr_x<s>``) and over scales (``val_psnr``) of a held-out split;
    what trainers log and plot, never used on the test sets."""
    out = {f"val_psnr_x{s}": score_pairs(predict, pairs, "val", with_ssim=False).psnr
           for s, pairs in pairs_by_scale.items()}
    out["val_psnr"] = float(np.mean(list(out.values())))
    return out
