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
from dataclasses import asdict, dataclass, replace
from typing import Protocol

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
                input_kind: str = "bicubic", bicubic: Score | None = None) -> Score:
    """Average PSNR/SSIM over ``pairs`` (per image, border = scale, prediction clipped).

    ``bicubic``: a score of the same pairs whose bicubic numbers are taken instead of recomputed.
    """
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
        if bicubic is None:
            bp.append(psnr(pair.bicubic_y, pair.gt_y, scale))
        if with_ssim:
            s.append(ssim(sr, pair.gt_y, scale))
            if bicubic is None:
                bs.append(ssim(pair.bicubic_y, pair.gt_y, scale))
    mean = lambda v: float(np.mean(v)) if v else float("nan")  # noqa: E731
    bic = (mean(bp), mean(bs)) if bicubic is None else (bicubic.bicubic_psnr, bicubic.bicubic_ssim)
    return Score(set_name, scale, len(pairs), mean(p), mean(s), *bic)


class ScoreStore(Protocol):
    """Where a model's scores that never change are kept (:class:`edgesr.cache.ScoreCache`)."""

    def get(self, bset: BenchmarkSet, scale: int, with_ssim: bool) -> Score | None: ...

    def put(self, bset: BenchmarkSet, score: Score, with_ssim: bool) -> None: ...


@dataclass
class Row:
    """One model of :func:`evaluate_rows`: how to run it (made only if a score is missing),
    the input it takes, and where its scores are kept, if anywhere."""

    predictor: Callable[[], Predictor]
    input_kind: str = "bicubic"
    store: ScoreStore | None = None


def evaluate_rows(rows: dict[str, Row], sets: Iterable[BenchmarkSet], scales: Iterable[int],
                  with_ssim: bool = True, on_done: Callable[[str, Score], None] | None = None
                  ) -> dict[str, list[Score]]:
    """Scores of every row on every set and scale, in that order.

    Each set's pairs at a scale are read once for all rows, the bicubic numbers are computed
    once (or taken from a stored row), and a row whose score is stored is not run at all.
    """
    scales = list(scales)
    out: dict[str, list[Score]] = {name: [] for name in rows}
    predictors: dict[str, Predictor] = {}
    for bset in sets:
        for scale in scales:
            found = {name: r.store.get(bset, scale, with_ssim) if r.store else None for name, r in rows.items()}
            reference = next((sc for sc in found.values() if sc is not None), None)
            pairs = None
            for name, row in rows.items():
                score = found[name]
                if score is None:
                    pairs = pairs if pairs is not None else bset.pairs(scale)
                    if name not in predictors:
                        predictors[name] = row.predictor()
                    score = score_pairs(predictors[name], pairs, bset.name, with_ssim, row.input_kind, reference)
                    reference = reference or score
                    if row.store:
                        row.store.put(bset, score, with_ssim)
                else:
                    score = replace(score, set=bset.name)
                out[name].append(score)
                if on_done:
                    on_done(name, score)
    return out


def evaluate(predict: Predictor, sets: Iterable[BenchmarkSet], scales: Iterable[int],
             with_ssim: bool = True, input_kind: str = "bicubic") -> list[Score]:
    """Scores of one model for every set and scale, in that order."""
    return evaluate_rows({"model": Row(lambda: predict, input_kind)}, sets, scales, with_ssim)["model"]


def bicubic_predictor(bicubic_y: np.ndarray, scale: int) -> np.ndarray:
    """The bicubic baseline as a predictor: its input is already the answer."""
    return bicubic_y


def validation_psnr(predict: Predictor, pairs_by_scale: dict[int, list[SRPair]],
                    input_kind: str = "bicubic") -> dict[str, float]:
    """Mean PSNR per scale (``val_psnr_x<s>``) and over scales (``val_psnr``) of a held-out split;
    what trainers log and plot, never used on the test sets."""
    out = {f"val_psnr_x{s}": score_pairs(predict, pairs, "val", with_ssim=False, input_kind=input_kind).psnr
           for s, pairs in pairs_by_scale.items()}
    out["val_psnr"] = float(np.mean(list(out.values())))
    return out
