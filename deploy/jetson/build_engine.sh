#!/usr/bin/env bash
# Build a TensorRT engine from an edgesr ONNX with trtexec (TensorRT 10 or 11).
#   ./build_engine.sh model.onnx [MIN OPT MAX]      (input sides; default 16 256 1024)
# TensorRT 11 is strongly typed only: no precision flags, the ONNX decides (FP16 or QDQ INT8).
# TensorRT 10: the FP16 ONNX is built --stronglyTyped (same engine); a QDQ ONNX with --int8 --fp16.
# Set TRT_MAJOR=10|11 to skip the version probe, TRTEXEC=/path/to/trtexec to pick the binary.
set -euo pipefail
onnx=${1:?usage: build_engine.sh model.onnx [MIN OPT MAX]}
lo=${2:-16}; opt=${3:-256}; hi=${4:-1024}
meta=${onnx%.onnx}.meta.json
engine=${onnx%.onnx}.engine
TRTEXEC=${TRTEXEC:-$(command -v trtexec || echo /usr/src/tensorrt/bin/trtexec)}
if [[ -z "${TRT_MAJOR:-}" ]]; then
  # trtexec's banner: "[TensorRT v100300]" -> 10
  ver=$("$TRTEXEC" --help 2>&1 | grep -oE 'TensorRT v[0-9]+' | head -1 | tr -dc 0-9)
  TRT_MAJOR=$(( ver / 10000 ))
fi
precision=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['edgesr.precision'])" "$meta")
flags=()
if (( TRT_MAJOR < 11 )); then
  case $precision in
    fp16) flags=(--stronglyTyped) ;;
    int8) flags=(--int8 --fp16) ;;
  esac
fi
"$TRTEXEC" --onnx="$onnx" --saveEngine="$engine" \
  --minShapes=input:1x1x${lo}x${lo} --optShapes=input:1x1x${opt}x${opt} --maxShapes=input:1x1x${hi}x${hi} \
  "${flags[@]}"
cp "$meta" "$engine.json"
echo "wrote $engine and $engine.json"
