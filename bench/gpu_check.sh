#!/usr/bin/env bash
# The GPU checks in one go, for a GPU machine without network (the device tool of issue #24):
# installs the wheels carried in .whl/ (if any), then runs what `make test-gpu` runs and
# bench/gpu_bench.py and the step profile on the GPU, writing their logs and tables to $OUT
# (default bench/results). GPU_PYTHON: the interpreter that has torch with CUDA (python3).
set -uo pipefail
out=${OUT:-bench/results}
py=${GPU_PYTHON:-python3}
mkdir -p "$out"
if ls .whl/*.whl >/dev/null 2>&1; then
  $py -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD:${PYTHONPATH:-}
$py -c "import wandb" 2>/dev/null || export PYTHONPATH=$PYTHONPATH:$PWD/bench/gpu_stubs
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu.txt"
$py -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" | tee -a "$out/gpu.txt"
devices=$($py bench/cuda_devices.py) || exit 1
echo "== make test-gpu (LIFELONG_TEST_DEVICES=$devices)"
# the files that hold device tests (collecting every test file would import the service's
# web stack, which a GPU machine need not have)
files=$(grep -l "pytest.mark.device\|pytest.mark.gpu" tests/test_*.py tests/gpu/test_*.py)
LIFELONG_TEST_DEVICES=$devices timeout "${TEST_SECONDS:-240}" $py -m pytest -q -p no:cacheprovider \
  -o addopts=-ra -m "device or gpu" $files 2>&1 | tee "$out/test-gpu.log"
echo "== bench/gpu_bench.py"
timeout "${BENCH_SECONDS:-240}" $py bench/gpu_bench.py --out "$out" ${BENCH_ARGS:-} 2>&1 \
  | tee "$out/gpu-bench.log"
echo "== bench/step_bench.py --device cuda"
timeout 90 $py bench/step_bench.py --device cuda --calls 100 2>&1 | tail -25 | tee "$out/step-gpu.log"
