"""What an exported artifact says about itself, so bench, upscale and the demo need no side files.

ONNX models carry these as ``metadata_props``; CoreML packages as user-defined metadata;
TensorRT engines (which have no metadata slot) as a JSON file beside the engine
(``model.engine.json``). The keys are the same everywhere. No torch here.
"""

from __future__ import annotations

import json
from dataclasses import MISSING, asdict, dataclass, field

from .errors import EdgesrError
from .scales import MAX_SCALE, MIN_SCALE
from .untrusted import read_json

PREFIX = "edgesr."
FORMAT_VERSION = "1"
INPUT_KINDS = ("lr", "bicubic")
PRECISIONS = ("fp32", "fp16", "int8")
#: the colour handling every runtime implements (Y of MATLAB's BT.601 YCbCr)
COLORS = ("y-bt601",)
#: the file stem inside a TensorRT bundle folder: ``model.onnx``, ``model.meta.json``, ``model.engine``
BUNDLE_MODEL = "model"


@dataclass(frozen=True)
class ArtifactMeta:
    """Everything needed to run and judge an exported SR model.

    ``input_kind``: ``lr`` = the LR Y image in, HR Y out (bicubic pre-upscaling inside the
    model, the deployable form); ``bicubic`` = the network alone, fed the MATLAB-bicubic
    upscaled Y (the paper's protocol). Tensors are named ``input``/``output``, float32,
    ``1x1xHxW``, Y in [0, 1] (BT.601, MATLAB ``rgb2ycbcr``).
    """

    scale: int
    input_kind: str
    precision: str
    color: str = "y-bt601"
    model: str = ""
    source_sha256: str = ""
    #: the absolute path of the source weights file at export ("" for a zoo model): with
    #: ``source_sha256`` it lets ``edgesr bench --torch`` find the source from any folder
    source_path: str = ""
    #: the source model's measured scores, e.g. ``{"Set5": {"2": 37.65}}``
    source_psnr: dict = field(default_factory=dict)
    #: free-form details (quantization scheme, calibration, opset, ...)
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Every field checked: metadata comes from files anyone can edit."""
        if isinstance(self.scale, bool) or not isinstance(self.scale, int) or not MIN_SCALE <= self.scale <= MAX_SCALE:
            raise EdgesrError(f"scale must be an integer from {MIN_SCALE} to {MAX_SCALE}, got {self.scale!r}")
        for name, allowed in (("input_kind", INPUT_KINDS), ("precision", PRECISIONS), ("color", COLORS)):
            if getattr(self, name) not in allowed:
                raise EdgesrError(f"{name.replace('_', ' ')} must be one of {allowed}, got {getattr(self, name)!r}")
        for name in ("model", "source_sha256"):
            if not isinstance(getattr(self, name), str):
                raise EdgesrError(f"{name} must be a string, got {getattr(self, name)!r}")
        for name in ("source_psnr", "extra"):
            if not isinstance(getattr(self, name), dict):
                raise EdgesrError(f"{name} must be a JSON object, got {getattr(self, name)!r}")

    def to_props(self) -> dict[str, str]:
        """String key/values for a model's metadata slot."""
        fields = {PREFIX + k: v if isinstance(v, str) else json.dumps(v) for k, v in asdict(self).items()}
        return {f"{PREFIX}format": FORMAT_VERSION, **fields}

    @classmethod
    def from_props(cls, props: dict[str, str], source: str = "artifact") -> ArtifactMeta:
        """The metadata of a model file; anything missing, malformed or out of range is a
        one-line error naming ``source``."""
        if props.get(f"{PREFIX}format") != FORMAT_VERSION:
            raise EdgesrError(f"{source} was not exported by edgesr (no edgesr metadata)")
        kw = {}
        for name, f in cls.__dataclass_fields__.items():
            raw = props.get(PREFIX + name)
            if raw is None:
                continue
            try:
                kw[name] = raw if f.type == "str" else read_json(raw)
            except ValueError as exc:  # invalid, or nested beyond reason (RecursionError in json.loads)
                raise EdgesrError(f"{source} has invalid edgesr metadata: {name} is {exc} ({raw[:40]!r})") from None
        missing = [name for name, f in cls.__dataclass_fields__.items()
                   if f.default is MISSING and f.default_factory is MISSING and name not in kw]
        if missing:
            raise EdgesrError(f"{source} has incomplete edgesr metadata (no {', '.join(missing)})")
        try:
            return cls(**kw)
        except EdgesrError as exc:
            raise EdgesrError(f"{source} has invalid edgesr metadata: {exc}") from None
