"""The models a demo serves, as the page sees them: a URL-safe id and public facts, no paths.

MATLAB bicubic is always there too, under the reserved id ``bicubic``: it is the floor a model
must beat, and the page puts it on the other side of the comparison slider.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import PurePath

from ..errors import EdgesrError
from ..runtime import Upscaler
from ..runtime.bicubic import BicubicUpscaler

BICUBIC = "bicubic"
#: the scales a ``bicubic``-input model (VDSR) or the bicubic reference may be asked for
ANY_SCALE = (2, 3, 4)
#: backends whose one loaded model may run on several threads at once (an onnxruntime session
#: may; a TensorRT execution context and its buffers may not, nor is CoreML documented to)
CONCURRENT_BACKENDS = ("onnxruntime", "numpy")


@dataclass(frozen=True)
class Choice:
    id: str
    upscaler: Upscaler
    scales: tuple[int, ...]
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def call(self, fn: Callable, *args):
        """``fn(upscaler, *args)``, one at a time unless the backend allows concurrent runs."""
        if self.upscaler.backend in CONCURRENT_BACKENDS:
            return fn(self.upscaler, *args)
        with self._lock:
            return fn(self.upscaler, *args)

    def info(self) -> dict:
        """What the page shows; file *names* only, since responses never carry a machine path."""
        m, u = self.upscaler.meta, self.upscaler
        return {
            "id": self.id,
            "name": PurePath(m.model).name if m.model else u.path.name,
            "file": u.path.name if self.id != BICUBIC else "",
            "scale": m.scale,
            "scales": list(self.scales),
            "precision": m.precision,
            "runtime": u.backend,
            "device": u.device,
            "input": m.input_kind,
            "psnr": m.source_psnr,
        }


def _scales(up: Upscaler) -> tuple[int, ...]:
    """An ``lr`` artifact has its one scale; a ``bicubic`` one serves those its source was measured
    at (VDSR is trained for several), or only its own when it says nothing."""
    if up.meta.input_kind == "lr":
        return (up.meta.scale,)
    measured = {int(s) for by_scale in up.meta.source_psnr.values() for s in by_scale}
    return tuple(sorted((measured & set(ANY_SCALE)) | {up.meta.scale}))


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9._-]+", "-", name.lower()).strip("-.") or "model"


@dataclass(frozen=True)
class Catalog:
    models: tuple[Choice, ...]
    reference: Choice

    def get(self, model_id: str | None) -> Choice:
        """The model by id (the first one when none is given)."""
        if model_id is None:
            return self.models[0]
        if model_id == BICUBIC:
            return self.reference
        for c in self.models:
            if c.id == model_id:
                return c
        raise KeyError(model_id)


def build_catalog(upscalers: Sequence[Upscaler]) -> Catalog:
    """Ids from the file names, made unique (``m``, ``m-2``); ``bicubic`` stays the reference's."""
    if not upscalers:
        raise EdgesrError("the demo needs at least one --model")
    taken = {BICUBIC}
    models = []
    for up in upscalers:
        base = _slug(up.path.stem)
        ident, n = base, 1
        while ident in taken:
            n += 1
            ident = f"{base}-{n}"
        taken.add(ident)
        models.append(Choice(ident, up, _scales(up)))
    scales = tuple(sorted(set(ANY_SCALE) | {s for c in models for s in c.scales}))
    return Catalog(tuple(models), Choice(BICUBIC, BicubicUpscaler(), scales))
