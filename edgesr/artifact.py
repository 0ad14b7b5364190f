"""What an exported artifact says about itself, so bench, upscale and the demo need no side files.

ONNX models carry these as ``metadata_props``; CoreML packages as user-defined metadata;
TensorRT engines (which have no metadata slot) as a JSON file beside the engine
(``model.engine.json``). The keys are the same everywhere. No torch here.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from .errors import EdgesrError

PREFIX = "edgesr."
FORMAT_VERSION = "1"
INPUT_KINDS = ("lr", "bicubic")
PRECISIONS = ("fp32", "fp16", "int8")
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
        if self.input_kind not in INPUT_KINDS:
            raise EdgesrError(f"input kind must be one of {INPUT_KINDS}, got {self.input_kind!r}")
        if self.precision not in PRECISIONS:
            raise EdgesrError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")

    def to_props(self) -> dict[str, str]:
        """String key/values for a model's metadata slot."""
        out = {f"{PREFIX}format": FORMAT_VERSION}
        for k, v in asdict(self).items():
            out[PREFIX + k] = v if isinstance(v, str) else json.dumps(v)
        return out

    @classmethod
    def from_props(cls, props: dict[str, str], source: str = "artifact") -> ArtifactMeta:
        if props.get(f"{PREFIX}format") != FORMAT_VERSION:
            raise EdgesrError(f"{source} was not exported by edgesr (no edgesr metadata)")
        kw = {}
        for name, f in cls.__dataclass_fields__.items():
            raw = props.get(PREFIX + name)
            if raw is None:
                continue
            kw[name] = raw if f.type == "str" else json.loads(raw)
        try:
            return cls(**kw)
        except TypeError as exc:
            raise EdgesrError(f"{source} has incomplete edgesr metadata ({exc})") from None
