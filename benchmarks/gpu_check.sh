#!/usr/bin/env bash
# The GPU check of the `gpu` recipe, prepared to run once on a lent H100/H200 (the `device` tool)
# within 8 minutes: the recipe under a 5-minute budget through benchmarks/table1.py (speed table,
# the run, Set5/Set14 beside the paper's Table 1), JSON and markdown into benchmarks/results/gpu/.
#
#   bash benchmarks/gpu_check.sh [DATA_ROOT]      # default ../shared/data, or $EDGESR_SHARED_DATA
#
# On the device machine ../shared does not exist: copy Set5, Set14 and train291 into a git-ignored
# folder of the checkout (e.g. .device/data), carry it, and pass it as DATA_ROOT. Nothing of the
# CPU acceptance depends on this script.
set -euo pipefail
cd "$(dirname "$0")/.."
data="${1:-${EDGESR_SHARED_DATA:-../shared/data}}"
minutes="${EDGESR_GPU_MINUTES:-5}"
device="${EDGESR_GPU_DEVICE:-cuda}"
py="${PYTHON:-.venv/bin/python}"
[ -x "$py" ] || py=python3
out=benchmarks/results/gpu
mkdir -p "$out"
"$py" - <<'PY' > "$out/device.json"
import json, torch
print(json.dumps({"torch": torch.__version__, "cuda": torch.cuda.is_available(),
                  "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"}))
PY
timeout 470 "$py" benchmarks/table1.py --recipes gpu --budget-minutes "$minutes" --device "$device" \
    --data-root "$data" --runs runs/gpu_check --out "$out"
echo "gpu check: results in $out"
