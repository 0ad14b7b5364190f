"""The INT8 path of ``edgesr export``, both forms: calibrate, choose the float convs, optionally
distill, quantize. Every INT8 default lives here, with the measurement that chose it."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import EdgesrError

#: chosen by measurement (benchmarks/export_quality.py): the best drop of the methods
DEFAULT_METHOD = "percentile"
#: convs kept in float for INT8: ``auto:K`` keeps the K whose quantization alone costs most
#: (:func:`edgesr.export.quantize.sensitivity`), or fixed indices (0 = head, -1 = tail).
#: ``auto`` is the form's K below, the fewest whose worst drop on held-out validation crops is
#: within 0.01 dB (benchmarks/export_quality.py) on the quick student: symmetric int8 needs two
#: more float convs than the CPU form's asymmetric uint8 activations
DEFAULT_FLOAT_LAYERS = "auto"
AUTO_FLOAT = {"tensorrt": 4, "cpu": 2}
#: calibration patches per export
CALIB_SAMPLES = 64
#: QAD learning rate, chosen on the validation split (benchmarks/export_quality.py)
QAD_LR = 1e-4

Progress = Callable[[str], None]


@dataclass(frozen=True)
class FloatLayers:
    """Which convs stay float in INT8: the ``auto`` most sensitive by measurement, or ``fixed``."""

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


@dataclass(frozen=True)
class Int8Settings:
    """How one INT8 model is made; the defaults are ``edgesr export``'s."""

    method: str = DEFAULT_METHOD
    float_layers: str = DEFAULT_FLOAT_LAYERS
    qad_steps: int = 0
    qad_lr: float = QAD_LR
    #: cross-layer range equalization (:mod:`.equalize`): 0 off, 1 every channel stretched to its tensor's range
    equalize: float = 0.0
    samples: int = CALIB_SAMPLES
    #: LR side of the calibration patches; None: the HR patch of :mod:`.calibration` divided by the scale
    lr_patch: int | None = None


def run_settings(model: str, method: str, float_layers: str, qad_steps: int | None) -> Int8Settings:
    """The settings of one export: the flags given, and for what the flags leave open (QAD),
    what the recipe of the run the model file sits in asks for (``int8``), else the defaults."""
    from .calibration import run_recipe

    path = Path(model)
    recipe = run_recipe(path.parent) if path.is_file() else None
    own = recipe.int8 if recipe is not None else None
    steps = qad_steps if qad_steps is not None else own.qad_steps if own else 0
    lr = own.qad_lr if own and own.qad_lr is not None else QAD_LR
    return Int8Settings(method, float_layers, steps, lr)


def int8_onnx(net, scale: int, input_kind: str, calib, form: str, settings: Int8Settings,
              progress: Progress = lambda msg: None):
    """The QDQ model of ``net`` in ``form`` and what the artifact records about how it was made."""
    from ..models.reparam import folded
    from .calibration import lr_samples, model_inputs
    from .deploy_net import DeployNet
    from .onnx_export import torch_to_onnx
    from .qad import distill_quantized
    from .quantize import calibrate, conv_input_ranges, conv_layers, quantize, sensitivity

    progress(f"calibration samples ({calib.kind})")
    lr = lr_samples(calib, scale, settings.samples, lr_patch=settings.lr_patch)
    inputs = model_inputs(lr, scale, input_kind)
    if settings.equalize:
        from .equalize import equalized

        progress("equalizing channel ranges")
        net = equalized(net, model_inputs(lr, scale, net.input_kind), settings.equalize)
    with tempfile.TemporaryDirectory(prefix="edgesr-export-") as tmp:
        progress("exporting the float graph")
        fp32 = torch_to_onnx(DeployNet(net, scale, input_kind))
        progress(f"calibrating ({settings.method})")
        ranges = calibrate(fp32, inputs, settings.method, Path(tmp) / "ranges.json", form)
        floats = FloatLayers.parse(settings.float_layers, form)
        costs = None
        if floats.auto:
            costs = sensitivity(fp32, ranges, form, inputs,
                                lambda i, n: progress(f"per-layer sensitivity: conv {i}/{n}"))
        float_idx = floats.indices(len(net.convs()), costs)
        if settings.qad_steps:
            progress(f"quantization-aware distillation ({settings.qad_steps} steps)")
            pool = {scale: lr_samples(calib, scale, 8 * settings.samples, seed=1, lr_patch=settings.lr_patch)}
            net = distill_quantized(folded(net), pool, conv_input_ranges(fp32, ranges), float_idx, form,
                                    settings.qad_steps, lr=settings.qad_lr)
            fp32 = torch_to_onnx(DeployNet(net, scale, input_kind))
            ranges = calibrate(fp32, inputs, settings.method, Path(tmp) / "ranges_qad.json", form)
        names = conv_layers(fp32).net
        model = quantize(fp32, ranges, form, [names[i] for i in float_idx])
    extra = {"int8_form": form, "calibration": calib.describe(), "calibration_method": settings.method,
             "calibration_patch": int(lr.shape[-1]), "float_layers": float_idx, "qad_steps": settings.qad_steps,
             "equalize": settings.equalize}
    if settings.qad_steps:
        extra["qad_lr"] = settings.qad_lr
    if costs is not None:
        extra["layer_sensitivity_mse"] = [float(f"{c:.3g}") for c in costs]
    return model, extra
