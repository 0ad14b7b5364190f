"""``edgesr export``: one request in, one artifact out (an ONNX file, a bundle or a package).

Everything that can fail because of the user's input (target, scale, weights, calibration
folder) is checked before any slow work, and every output is written through a temporary
path, so a failed export leaves nothing behind.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..artifact import INPUT_KINDS, PRECISIONS, ArtifactMeta
from ..errors import EdgesrError
from ..optional import require_extra
from ..scales import check_scales

TARGETS = ("onnx", "tensorrt", "coreml")
#: chosen by measurement (benchmarks/export_quality.py): the best drop of the methods
DEFAULT_METHOD = "percentile"
#: VDSR convs kept in float for INT8: ``auto:K`` keeps the K whose quantization alone costs
#: most (:func:`edgesr.export.quantize.sensitivity`), or fixed indices (0 = head, -1 = tail).
#: ``auto`` is the form's K below, the fewest whose worst drop on held-out validation crops is
#: within 0.01 dB (benchmarks/export_quality.py) on the quick student: symmetric int8 needs two
#: more float convs than the CPU form's asymmetric uint8 activations
DEFAULT_FLOAT_LAYERS = "auto"
AUTO_FLOAT = {"tensorrt": 4, "cpu": 2}
#: calibration patches per export (LR 24/16/12 for x2/x3/x4)
CALIB_SAMPLES = 64
#: QAD learning rate, chosen on the validation split (benchmarks/export_quality.py)
QAD_LR = 1e-4


@dataclass(frozen=True)
class FloatLayers:
    """Which VDSR convs stay float in INT8: the ``auto`` most sensitive by measurement, or ``fixed``."""

    auto: int = 0
    fixed: tuple[int, ...] = ()

    @classmethod
    def parse(cls, text: str, form: str = "tensorrt") -> FloatLayers:
        """``auto`` (the form's measured K) / ``auto:K`` / ``0,-1`` / ``none``; one clear error otherwise."""
        text = text.strip().lower()
        try:
            if text == "none":
                return cls()
            if text == "auto" or text.startswith("auto:"):
                count = int(text[5:]) if ":" in text else AUTO_FLOAT[form]
                if count < 0:
                    raise ValueError
                return cls(auto=count)
            return cls(fixed=tuple(int(v) for v in text.split(",") if v.strip()))
        except ValueError:
            raise EdgesrError(f"--float-layers takes auto, auto:K, none or comma-separated indices, "
                              f"got {text!r}") from None

    def indices(self, n_layers: int, costs: list[float] | None) -> list[int]:
        from .quantize import most_sensitive

        if self.auto:
            return most_sensitive(costs or [], self.auto)
        bad = [i for i in self.fixed if not -n_layers <= i < n_layers]
        if bad:
            raise EdgesrError(f"--float-layers {bad[0]}: the model has {n_layers} convs (0..{n_layers - 1})")
        return sorted({i % n_layers for i in self.fixed})


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
    qad_steps: int = 0
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
        if self.qad_steps < 0:
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


Progress = Callable[[str], None]


def _int8_onnx(req: ExportRequest, net, calib, form: str, progress: Progress, extra: dict):
    """Calibrate, choose the float layers, optionally distill, then quantize: the one INT8 path
    for both forms."""
    from ..models.reparam import folded
    from .calibration import lr_samples, model_inputs
    from .deploy_net import DeployNet
    from .onnx_export import torch_to_onnx
    from .qad import distill_quantized
    from .quantize import calibrate, conv_input_ranges, conv_layers, quantize, sensitivity

    progress(f"calibration samples ({calib.kind})")
    inputs = model_inputs(lr_samples(calib, req.scale, CALIB_SAMPLES), req.scale, req.input_kind)
    with tempfile.TemporaryDirectory(prefix="edgesr-export-") as tmp:
        progress("exporting the float graph")
        fp32 = torch_to_onnx(DeployNet(net, req.scale, req.input_kind))
        progress(f"calibrating ({req.method})")
        ranges = calibrate(fp32, inputs, req.method, Path(tmp) / "ranges.json", form)
        floats = FloatLayers.parse(req.float_layers, form)
        costs = None
        if floats.auto:
            costs = sensitivity(fp32, ranges, form, inputs,
                                lambda i, n: progress(f"per-layer sensitivity: conv {i}/{n}"))
        float_idx = floats.indices(len(net.convs()), costs)
        if req.qad_steps:
            progress(f"quantization-aware distillation ({req.qad_steps} steps)")
            pool = {req.scale: lr_samples(calib, req.scale, 8 * CALIB_SAMPLES, seed=1)}
            net = distill_quantized(folded(net), pool, conv_input_ranges(fp32, ranges), float_idx, form,
                                    req.qad_steps, lr=QAD_LR)
            fp32 = torch_to_onnx(DeployNet(net, req.scale, req.input_kind))
            ranges = calibrate(fp32, inputs, req.method, Path(tmp) / "ranges_qad.json", form)
        names = conv_layers(fp32).net
        model = quantize(fp32, ranges, form, [names[i] for i in float_idx])
    extra.update({"int8_form": form, "calibration": calib.describe(), "calibration_method": req.method,
                  "float_layers": float_idx, "qad_steps": req.qad_steps})
    if costs is not None:
        extra["layer_sensitivity_mse"] = [float(f"{c:.3g}") for c in costs]
    return model


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
    int8_onnx = req.precision == "int8" and req.target != "coreml"
    calib = find_calibration(req.calib, source.name) if int8_onnx else None
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
    if int8_onnx:
        form = "tensorrt" if req.target == "tensorrt" else "cpu"
        model = _int8_onnx(req, source.net, calib, form, progress, extra)
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
