"""The model being exported and what it says about itself (scales, checksum, measured PSNR).

The scales and scores travel into every artifact's metadata, so a device can tell what it runs
without the training run at hand. Zoo teachers declare them in their zoo entry; students
written by ``edgesr distill`` in their safetensors metadata (``scales``: JSON list,
``measured_psnr``: JSON ``{set: {scale: dB}}``). A file that declares nothing accepts any scale.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import EdgesrError
from ..models.srnet import SRNet
from ..untrusted import read_json


@dataclass
class SourceModel:
    net: SRNet
    name: str
    sha256: str
    #: scales the model was trained for; empty when its file does not say
    scales: tuple[int, ...] = ()
    #: ``{set: {"2": dB}}`` as measured with edgesr's protocol, if known
    psnr: dict = field(default_factory=dict)
    #: the weights file's absolute path ("" for a zoo name), so that bench finds it from any folder
    path: str = ""

    def check_scale(self, scale: int) -> None:
        if self.scales and scale not in self.scales:
            listed = ", x".join(str(s) for s in self.scales)
            raise EdgesrError(f"{Path(self.name).name} was trained for x{listed}, not x{scale}")


def _json_field(meta: dict[str, str], key: str, source: str):
    try:
        return read_json(meta[key]) if key in meta else None
    except ValueError as exc:  # invalid, or nested beyond reason (RecursionError in json.loads)
        raise EdgesrError(f"{source}: metadata field {key!r} is {exc}") from None


def load_source(model: str, scale: int | None = None) -> SourceModel:
    """A zoo name, a weights file or a run folder (its student for ``scale``), with the scales
    and scores it declares."""
    from ..models import zoo

    model = zoo.model_path(model, scale)
    net, meta = zoo.load_model(model)
    scales: tuple[int, ...] = ()
    if zoo.is_zoo_name(model):
        e = zoo.entry(model)
        psnr_table: dict = e.measured_psnr or e.published_psnr
    else:
        psnr_table = _json_field(meta, "measured_psnr", model) or {}
        declared = _json_field(meta, "scales", model)
        try:
            if declared is not None:
                scales = tuple(int(s) for s in declared)
        except (TypeError, ValueError):
            raise EdgesrError(f"{model}: metadata field 'scales' is not a list of integers") from None
    try:
        psnr = {str(name): {str(int(s)): float(v) for s, v in by_scale.items()}
                for name, by_scale in psnr_table.items()}
    except (AttributeError, TypeError, ValueError):
        raise EdgesrError(f"{model}: metadata field 'measured_psnr' is not {{set: {{scale: dB}}}}") from None
    if not scales:
        scales = tuple(sorted({int(s) for by_scale in psnr.values() for s in by_scale}))
    if net.scale is not None:  # an LR-space network upscales by its own scale only, whatever a file says
        scales = (net.scale,)
    path = "" if zoo.is_zoo_name(model) else str(Path(model).resolve())
    return SourceModel(net, model, meta["sha256"], scales, psnr, path)
