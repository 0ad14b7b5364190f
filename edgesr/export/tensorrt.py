"""TensorRT: the deploy bundle always, and the engine itself where TensorRT and a GPU exist.

TensorRT cannot be installed on CPU hosts (PyPI's packages are stubs) and its engines only run
on the GPU and TensorRT version that built them, so the normal product is a *bundle*: the ONNX
model, its metadata, ``deploy/jetson``'s build scripts and the bench commands. The engine build
on a host with TensorRT uses the very script the device runs (``deploy/jetson/build_engine.py``),
so there is one builder, not two.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import onnx

from ..artifact import BUNDLE_MODEL as MODEL
from ..artifact import ArtifactMeta
from ..errors import EdgesrError
from .onnx_export import save_onnx

JETSON_DIR = Path(__file__).resolve().parents[2] / "deploy" / "jetson"
BUNDLE_FILES = ("build_engine.py", "build_engine.sh", "requirements.txt", "README.md")


def tensorrt_available() -> bool:
    """The ``tensorrt`` package imports and can open a builder (i.e. it sees a GPU)."""
    if importlib.util.find_spec("tensorrt") is None:
        return False
    try:
        import tensorrt as trt

        return trt.Builder(trt.Logger(trt.Logger.ERROR)) is not None
    except Exception:  # a stub package, no driver or no GPU: all mean "not here"
        return False


def _bench_text(meta: ArtifactMeta) -> str:
    """The commands to run on the device for this model, with sizes for a 512x512 output."""
    side = 512 // meta.scale if meta.input_kind == "lr" else 512
    return (
        f"# Bench {MODEL}.engine (x{meta.scale}, {meta.precision}, input kind {meta.input_kind})\n\n"
        "```bash\n"
        f"./build_engine.sh {MODEL}.onnx 16 {side} 1024\n"
        f"trtexec --loadEngine={MODEL}.engine --shapes=input:1x1x{side}x{side} --warmUp=500 --iterations=100\n"
        f"edgesr bench {MODEL}.engine --data /path/to/Set5 /path/to/Set14 --scales {meta.scale} --sizes 512\n"
        "```\n\n"
        f"Input {side}x{side} gives an output of about 512x512 (`--sizes` is the output's side).\n"
    )


def write_bundle(model: onnx.ModelProto, meta: ArtifactMeta, folder: Path) -> list[str]:
    """Fill ``folder`` with the bundle; build the engine too where TensorRT can. Returns notes."""
    missing = [f for f in BUNDLE_FILES if not (JETSON_DIR / f).is_file()]
    if missing:
        raise EdgesrError(f"deploy scripts not found in {JETSON_DIR} ({', '.join(missing)}): "
                          "export TensorRT bundles from an edgesr source checkout")
    onnx_path = save_onnx(model, folder / f"{MODEL}.onnx")
    (folder / f"{MODEL}.meta.json").write_text(json.dumps(meta.to_props(), indent=2) + "\n")
    for name in BUNDLE_FILES:
        shutil.copy2(JETSON_DIR / name, folder / name)
    (folder / "BENCH.md").write_text(_bench_text(meta))
    if not tensorrt_available():
        return ["TensorRT is not available here: wrote the deploy bundle; build the engine on the "
                "device with build_engine.sh (see BENCH.md)"]
    spec = importlib.util.spec_from_file_location("edgesr_jetson_build", JETSON_DIR / "build_engine.py")
    builder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(builder)
    if builder.main([str(onnx_path)]) != 0:
        raise EdgesrError(f"TensorRT could not build an engine from {onnx_path}")
    return [f"built {MODEL}.engine with TensorRT here (valid only for this GPU and TensorRT version)"]
