#!/usr/bin/env python3
"""Build a TensorRT engine from an edgesr ONNX file, on the device that will run it.

Engines are tied to the GPU and the TensorRT version, so they are built where they run.
Works with TensorRT 10 (JetPack 6, Python 3.10) and TensorRT 11 (JetPack 7):

* TensorRT 11 networks are always strongly typed: the precision is the ONNX file's own
  (FP16 ONNX -> FP16 engine, QDQ ONNX -> INT8 engine); there are no precision flags.
* TensorRT 10: the FP16 ONNX is built strongly typed too (same engine as 11); a QDQ (INT8)
  ONNX is built with the INT8 and FP16 flags, so its float layers may run in FP16.

Needs only the ``tensorrt`` package that JetPack installs. The edgesr metadata written beside
the ONNX (``<model>.meta.json``) is copied to ``<engine>.json``, where edgesr's runtime
looks for it.

    python3 build_engine.py model.onnx [--min 16 --opt 256 --max 1024]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path


def onnx_precision(meta_path: Path) -> str:
    return json.loads(meta_path.read_text())["edgesr.precision"]


def build(onnx_path: Path, engine_path: Path, precision: str, sides: tuple[int, int, int],
          workspace_mib: int = 1024) -> Path:
    import tensorrt as trt

    major = int(trt.__version__.split(".")[0])
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if major < 11 and precision == "fp16":
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise SystemExit(f"error: TensorRT cannot parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mib << 20)
    if major < 11 and precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)
        config.set_flag(trt.BuilderFlag.FP16)
    lo, opt, hi = sides
    profile = builder.create_optimization_profile()
    profile.set_shape("input", (1, 1, lo, lo), (1, 1, opt, opt), (1, 1, hi, hi))
    config.add_optimization_profile(profile)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise SystemExit(f"error: TensorRT could not build an engine from {onnx_path}")
    tmp = engine_path.with_name(engine_path.name + ".tmp")
    tmp.write_bytes(bytes(plan))
    tmp.replace(engine_path)
    return engine_path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("onnx", type=Path)
    ap.add_argument("--engine", type=Path, help="default: the ONNX path with .engine")
    ap.add_argument("--min", type=int, default=16, help="smallest input side of the profile")
    ap.add_argument("--opt", type=int, default=256, help="input side TensorRT tunes for")
    ap.add_argument("--max", type=int, default=1024, help="largest input side of the profile")
    args = ap.parse_args(argv)
    meta = args.onnx.with_suffix(".meta.json")
    if not meta.is_file():
        print(f"error: {meta} not found (it comes with the edgesr bundle)", file=sys.stderr)
        return 1
    engine = args.engine or args.onnx.with_suffix(".engine")
    build(args.onnx, engine, onnx_precision(meta), (args.min, args.opt, args.max))
    shutil.copyfile(meta, engine.with_name(engine.name + ".json"))
    print(f"wrote {engine} and {engine.name}.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
