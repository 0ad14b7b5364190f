"""The one interface every device runtime implements, whatever executes the artifact.

Backends differ only in how they load a file and run one ``1x1xHxW`` float32 tensor; the
input-kind logic (``lr`` models take LR Y, ``bicubic`` models need MATLAB pre-upscaling) lives
here once, so bench, upscale and the demo treat an ONNX file and a TensorRT engine alike.
No torch here.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..artifact import ArtifactMeta
from ..errors import EdgesrError
from ..ops import imresize
from .tiling import DEFAULT_MARGIN

#: the smallest LR side an ``lr`` artifact accepts: its in-graph bicubic mirror-pads by up to
#: 2 pixels from slices of the input (``edgesr.ops.bicubic_graph``), so 1-pixel sides fail
MIN_LR_SIDE = 2
#: the largest receptive radius an artifact may declare (a 64-layer network has 64)
MAX_RADIUS = 256
#: the largest image side edgesr exports for (``edgesr.export.onnx_export.MAX_SIDE``, which needs
#: torch to import): the largest square ``edgesr bench`` times
MAX_SIDE = 8192


class Upscaler(ABC):
    """An exported SR artifact, loaded and ready to run on Y images in [0, 1]."""

    #: short runtime name shown in tables (``onnxruntime``, ``tensorrt``, ``coreml``)
    backend: str = ""

    def __init__(self, path: Path, meta: ArtifactMeta) -> None:
        self.path = path
        self.meta = meta
        #: set by :meth:`cancel`: every later call fails at once
        self.cancelled = False

    @abstractmethod
    def _run(self, x: np.ndarray) -> np.ndarray:
        """The artifact itself on a contiguous float32 ``1x1xHxW`` array."""

    @property
    def device(self) -> str:
        """Where it runs (e.g. the execution provider), for tables."""
        return self.backend

    @property
    def file_size(self) -> int:
        """Bytes on disk, summed over a package folder (CoreML ``.mlpackage``)."""
        if self.path.is_dir():
            return sum(f.stat().st_size for f in self.path.rglob("*") if f.is_file())
        return self.path.stat().st_size

    def input_size(self, out_h: int, out_w: int) -> tuple[int, int]:
        """The artifact's input size for an ``out_h x out_w`` output: LR for ``lr`` models."""
        if self.meta.input_kind == "bicubic":
            return out_h, out_w
        s = self.meta.scale
        return out_h // s, out_w // s

    def infer(self, x: np.ndarray) -> np.ndarray:
        """The raw artifact on one 2-D Y image (its own input kind); returns 2-D float32.

        A failure inside the runtime (the artifact is someone else's file) is a one-line error."""
        if x.ndim != 2 or min(x.shape) < 1:
            raise EdgesrError(f"the model needs a non-empty 2-D Y image, got shape {x.shape}")
        if self.cancelled:
            raise EdgesrError(f"{self.path.name} was stopped")
        try:
            out = np.asarray(self._run(np.ascontiguousarray(x, dtype=np.float32)[None, None]), dtype=np.float32)
        except EdgesrError:
            raise
        except Exception as exc:
            detail = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
            raise EdgesrError(f"{self.path.name} failed on a {x.shape[1]}x{x.shape[0]} input: "
                              f"{type(exc).__name__}{f' ({detail})' if detail else ''}") from None
        if out.ndim < 2 or out.size != out.shape[-2] * out.shape[-1]:
            raise EdgesrError(f"{self.path.name} returned shape {out.shape}, not one 2-D image")
        return out.reshape(out.shape[-2:])

    def cancel(self) -> None:
        """Stop for good, from any thread (a server shutting down): every later call fails at
        once, so a tiled photo stops at its next tile, and a run in progress ends as soon as the
        runtime allows (onnxruntime: at its next node; others: when the call returns)."""
        self.cancelled = True

    def probe_size(self) -> tuple[int, int]:
        """``(h, w)`` of the input :meth:`check_graph` runs."""
        return (8, 8) if self.meta.input_kind == "lr" else (16, 16)

    def check_graph(self) -> None:
        """Run the artifact once on a small input and compare its output size with what the
        metadata promises: a forged or mistaken scale or input kind is a one-line error on
        opening, not a shape error in the middle of a folder of photos."""
        h, w = self.probe_size()
        out = self._finite(self.infer(np.full((h, w), 0.5, np.float32)))
        s = self.meta.scale
        want = (h * s, w * s) if self.meta.input_kind == "lr" else (h, w)
        if out.shape != want:
            raise EdgesrError(f"{self.path.name} does not match its metadata ({self.meta.input_kind} input, x{s}): "
                              f"a {w}x{h} input gives {out.shape[1]}x{out.shape[0]}, not {want[1]}x{want[0]}")

    def margin(self, scale: int) -> int:
        """LR pixels of context a tile needs so that tiled and whole results agree: the
        artifact's receptive radius (``extra["radius"]``, in its input pixels, written at
        export) in LR pixels plus the bicubic support, never below the VDSR default."""
        radius = self.meta.extra.get("radius", 0)
        if isinstance(radius, bool) or not isinstance(radius, int) or not 0 <= radius <= MAX_RADIUS:
            radius = 0  # a forged value: the default margin is what every edgesr artifact before it had
        if self.meta.input_kind == "bicubic":
            radius = -(-radius // scale)
        return max(DEFAULT_MARGIN, radius + 2)

    def check_scale(self, scale: int) -> None:
        """``lr`` artifacts are built for one scale; ``bicubic`` ones (VDSR) serve any."""
        if self.meta.input_kind == "lr" and scale != self.meta.scale:
            raise EdgesrError(f"{self.path.name} upscales by x{self.meta.scale} only, not x{scale}")

    def _finite(self, out: np.ndarray) -> np.ndarray:
        """``out``, or a one-line error if it holds NaN or infinities: clipped to [0, 1] they
        would be written as a black (or white) image with exit code 0. Not in :meth:`infer`,
        which bench times."""
        if not np.isfinite(out).all():
            raise EdgesrError(f"{self.path.name} returns NaN or infinite values: its weights are broken "
                              "(re-export it from finite weights)")
        return out

    def upscale_y(self, lr_y: np.ndarray, scale: int) -> np.ndarray:
        """HR Y (float32, [0, 1], not clipped, finite) from LR Y, pre-upscaling for ``bicubic`` models."""
        self.check_scale(scale)
        if self.meta.input_kind == "bicubic":
            return self._finite(self.infer(imresize(lr_y, float(scale))))
        h, w = lr_y.shape[-2:]
        if lr_y.ndim != 2 or min(h, w) < 1 or min(h, w) >= MIN_LR_SIDE:
            return self._finite(self.infer(lr_y))
        # MATLAB's own border rule (symmetric reflection), so the bicubic part stays exact;
        # only the network sees the mirrored pixel instead of its zero padding
        padded = np.pad(lr_y, ((0, max(0, MIN_LR_SIDE - h)), (0, max(0, MIN_LR_SIDE - w))), mode="symmetric")
        return self._finite(self.infer(padded))[: h * scale, : w * scale]

    def predictor(self) -> Callable[[np.ndarray, int], np.ndarray]:
        """The callable :func:`edgesr.evaluate.evaluate` needs, with ``input_kind=meta.input_kind``."""
        if self.meta.input_kind == "lr":
            return self.upscale_y
        return lambda bicubic_y, scale: self._finite(self.infer(bicubic_y))

    def describe(self) -> str:
        m = self.meta
        return f"{self.path.name} ({self.backend}, {m.precision}, {m.input_kind} input, x{m.scale})"
