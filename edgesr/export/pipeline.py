"""``edgesr export``: one request in, one artifact out (an ONNX file, a bundle or a package).

Everything that can fail because of the user's input (target, scale, weights, calibration
folder) is checked before any slow work, and every output is written through a temporary
path, so a failed export leaves nothing behind.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..artifact import INPUT_KINDS, PRECISIONS, ArtifactMeta
from ..errors import EdgesrError
from ..optional import require_extra
from ..scales import check_scales
from .int8 import DEFAULT_FLOAT_LAYERS, DEFAULT_METHOD, FloatLayers, Progress, int8_onnx, run_settings

TARGETS = ("onnx", "tensorrt", "coreml")


@dataclass
class ExportRequest:
    model: str
    target: str
    scale: int
    precision: str = "fp32"
    input_kind: str = "lr"
    calib: str | None = None
    out: Path | None = None
    method: str = DEFAULT_METHOD
    float_layers: str = DEFAULT_FLOAT_LAYERS
    #: None: what the recipe of the model's run folder says (``int8.qad_steps``), else 0
    qad_steps: int | None = None
    #: replace an existing output (else it is an error, as for every edgesr command that writes)
    overwrite: bool = False

    def validate(self) -> None:
        from .quantize import METHODS

        if self.target not in TARGETS:
            raise EdgesrError(f"unsupported target {self.target!r}: use one of {', '.join(TARGETS)}")
        if self.target == "coreml":
            require_extra("coreml", "--target coreml")
        check_scales([self.scale], "--scale")
        for what, value, allowed in (("precision", self.precision, PRECISIONS),
                                     ("input kind", self.input_kind, INPUT_KINDS),
                                     ("calibration method", self.method, METHODS)):
            if value not in allowed:
                raise EdgesrError(f"unsupported {what} {value!r}: use one of {', '.join(allowed)}")
        if self.qad_steps is not None and self.qad_steps < 0:
            raise EdgesrError("--qad-steps must be 0 or more")
        FloatLayers.parse(self.float_layers)

    def default_out(self) -> Path:
        from ..models.zoo import is_zoo_name

        path = Path(self.model)
        stem = self.model if is_zoo_name(self.model) else path.resolve().name if path.is_dir() else path.stem
        base = f"{stem.removesuffix(f'_x{self.scale}')}_x{self.scale}_{self.input_kind}_{self.precision}"
        suffix = {"onnx": ".onnx", "tensorrt": "_tensorrt", "coreml": ".mlpackage"}[self.target]
        return Path(base + suffix)


@dataclass
class ExportResult:
    path: Path
    meta: ArtifactMeta
    notes: list[str] = field(default_factory=list)



def _radius(net, scale: int, input_kind: str) -> int:
    """The artifact's receptive radius in its input's pixels (tiling reads it): the network's,
    or for a bicubic-input network fed LR, its radius in LR pixels plus the bicubic support."""
    if net.input_kind == "bicubic" and input_kind == "lr":
        return -(-net.radius // scale) + 2
    return net.radius


def _own_output(target: str) -> Callable[[str], bool]:
    """The names edgesr writes inside a folder output of ``target`` (what ``--overwrite`` may replace)."""
    if target == "coreml":
        return lambda name: name in ("Manifest.json", "Data")
    from ..artifact import BUNDLE_MODEL
    from .tensorrt import BUNDLE_FILES

    # the bundle, and what its scripts add on the device: the engine and its metadata
    names = {*BUNDLE_FILES, "BENCH.md", *(f"{BUNDLE_MODEL}{s}" for s in (".onnx", ".meta.json", ".engine",
                                                                          ".engine.json", ".engine.tmp"))}
    return names.__contains__


def check_output(req: ExportRequest, out: Path) -> None:
    """Everything about the output that can be refused, refused before any work: an existing
    one without ``--overwrite``, one that is an input (the weights, the calibration folder), a
    folder output holding anything edgesr did not write there, a folder where a file goes."""
    from ..io import check_replaceable, refuse_existing, refuse_inputs
    from ..models.zoo import is_zoo_name, model_path

    refuse_existing([out], req.overwrite)
    if req.target == "onnx":
        if out.is_dir():
            raise EdgesrError(f"{out} is a folder: -o names the .onnx file to write")
    else:
        trt = req.target == "tensorrt"
        check_replaceable(out, _own_output(req.target), "model.meta.json" if trt else "Manifest.json",
                          "TensorRT bundle" if trt else "CoreML package")
    model = None if is_zoo_name(req.model) else Path(model_path(req.model, req.scale))
    calib = Path(req.calib) if req.calib and Path(req.calib).exists() else None
    refuse_inputs([out], [model, Path(req.model) if model else None, calib])


def export_model(req: ExportRequest, progress: Progress = lambda msg: None) -> ExportResult:
    """Run one export; see the module docstring for the failure guarantees."""
    from ..io import atomic_dir, remove_stale
    from .calibration import find_calibration
    from .deploy_net import DeployNet
    from .source import load_source

    req.validate()
    out = Path(req.out) if req.out else req.default_out()
    check_output(req, out)
    remove_stale(out)  # what an earlier export of the same output left when killed while writing
    progress("loading the model")
    source = load_source(req.model, req.scale)
    source.check_scale(req.scale)
    DeployNet(source.net, req.scale, req.input_kind)  # an input kind or scale the network cannot take: now
    int8 = req.precision == "int8" and req.target != "coreml"
    calib = find_calibration(req.calib, source.name) if int8 else None
    extra: dict = {"radius": _radius(source.net, req.scale, req.input_kind)}
    if source.net.arch:
        extra["arch"] = source.net.config()
    meta_kw = dict(scale=req.scale, input_kind=req.input_kind, precision=req.precision, model=source.name,
                   source_sha256=source.sha256, source_path=source.path, source_psnr=source.psnr)

    if req.target == "coreml":
        from .coreml import to_coreml

        extra.update(weights=req.precision, compute="fp32" if req.precision == "fp32" else "fp16")
        meta = ArtifactMeta(**meta_kw, extra=extra)
        progress("converting to CoreML")
        with atomic_dir(out) as tmp:
            to_coreml(DeployNet(source.net, req.scale, req.input_kind), meta, tmp)
        return ExportResult(out, meta)

    from .onnx_export import OPSET, save_onnx, set_metadata, simplification_note, torch_to_onnx

    notes = [n for n in [simplification_note()] if n]
    if int8:
        form = "tensorrt" if req.target == "tensorrt" else "cpu"
        settings = run_settings(source.name, req.method, req.float_layers, req.qad_steps)
        model, made = int8_onnx(source.net, req.scale, req.input_kind, calib, form, settings, progress)
        extra.update(made)
    else:
        progress("exporting to ONNX")
        model = torch_to_onnx(DeployNet(source.net, req.scale, req.input_kind, half=req.precision == "fp16"))
    extra["opset"] = OPSET
    meta = ArtifactMeta(**meta_kw, extra=extra)
    set_metadata(model, meta)
    if req.target == "onnx":
        save_onnx(model, out)
        return ExportResult(out, meta, notes)

    from .tensorrt import write_bundle

    progress("writing the TensorRT bundle")
    with atomic_dir(out) as tmp:
        notes += write_bundle(model, meta, tmp)
    return ExportResult(out, meta, notes)
