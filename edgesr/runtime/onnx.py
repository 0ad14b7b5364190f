"""ONNX artifacts on onnxruntime: CPU everywhere, CUDA and TensorRT execution providers where
the installed onnxruntime build has them (``onnxruntime-gpu`` on a Jetson or a GPU host)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..artifact import ArtifactMeta
from ..errors import EdgesrError
from ..optional import require
from .base import Upscaler

#: fastest first; the first ones the installed build offers are used unless the user picks
PREFERRED_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
#: short names accepted on the command line
PROVIDER_ALIASES = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider",
                    "tensorrt": "TensorrtExecutionProvider", "trt": "TensorrtExecutionProvider"}


def resolve_providers(requested: Sequence[str] | None, available: Sequence[str]) -> list[str]:
    """The providers to ask onnxruntime for; an unavailable request is a one-line error.

    Asking onnxruntime itself for a missing provider only logs a warning and falls back to
    the CPU, which would make a benchmark silently measure the wrong thing.
    """
    if not requested:
        return [p for p in PREFERRED_PROVIDERS if p in available]
    chosen = [PROVIDER_ALIASES.get(p.lower(), p) for p in requested]
    missing = [p for p in chosen if p not in available]
    if missing:
        raise EdgesrError(f"execution provider(s) {', '.join(missing)} not in this onnxruntime build "
                          f"(available: {', '.join(available)})")
    return chosen


class OnnxUpscaler(Upscaler):
    backend = "onnxruntime"

    def __init__(self, path: Path, threads: int | None = None, providers: Sequence[str] | None = None) -> None:
        ort = require("onnxruntime", None, f"{path.name} (an ONNX model)")
        opts = ort.SessionOptions()
        opts.log_severity_level = 3  # our one-line errors, not ORT's warnings on stderr
        if threads:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        chosen = resolve_providers(providers, ort.get_available_providers())
        #: shared by every run, so that :meth:`cancel` reaches the runs in progress
        self._run_options = ort.RunOptions()
        try:
            self.session = ort.InferenceSession(str(path), sess_options=opts, providers=chosen)
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise EdgesrError(f"cannot load {path} as an ONNX model: {first[:200]}") from None
        props = self.session.get_modelmeta().custom_metadata_map
        super().__init__(path, ArtifactMeta.from_props(props, source=str(path)))
        names = [i.name for i in self.session.get_inputs()]
        if names != ["input"]:
            raise EdgesrError(f"{path} has inputs {names}; an edgesr artifact has one named 'input'")

    @property
    def device(self) -> str:
        return self.session.get_providers()[0].removesuffix("ExecutionProvider")

    def cancel(self) -> None:
        super().cancel()
        self._run_options.terminate = True  # onnxruntime checks it between nodes

    @property
    def providers(self) -> list[str]:
        """The execution providers the session runs on, in order (what bench records)."""
        return list(self.session.get_providers())

    def _run(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {"input": x}, self._run_options)[0]
