#!/usr/bin/env bash
# Check and time lpir's CUDA backend on a GPU machine in one or two calls of the device tool.
#
#   1. Here (needs PyPI), once:   bash benchmarks/gpu_session.sh fetch
#      downloads the pure-Python wheels the GPU image lacks (lark, filecheck) into .whl/
#      (ignored by git) — carry it with the call.
#   2. On the GPU machine:        bash benchmarks/gpu_session.sh [device|tests|bench|quick|all]
#      e.g. device run: command="bash benchmarks/gpu_session.sh device", carry=[".whl"]
#
#   device everything in one call of the device tool (~5-6 min): the whole test suite on all
#          cores (pytest-xdist), then both benchmarks in full, sweeping 2 to 16 pipeline
#          stages (each winner timed again with its tiles in registers) and the split-K GEMV
#          at 2, 4 and 8 splits; SUITE="-m gpu" runs only the GPU tests, STAGES=2,4 sweeps
#          fewer depths, SPLITS=4 fewer splits
#   tests  the CUDA tests: GPU launches (every example, every cast, device arrays, both
#          compilers, PTX), nvcc compiles, host emulation, FileCheck          (~3-5 min)
#   bench  benchmarks/gpu_gemv.py and benchmarks/gpu_matmul.py, full tables   (~4-6 min)
#   quick  the tests, then both benchmarks with --quick                       (~5-7 min)
#   all    tests and full benchmarks (may exceed one 10-minute call: prefer two calls)
#   stages gpu_gemv.py at 8192 x 8192 for u4 and u3 with 2, 3 and 4 pipeline stages (~3 min)
#   attention  benchmarks/gpu_attention.py beside torch's scaled_dot_product_attention (~2 min)
#   mx     benchmarks/gpu_gemv_mx.py: MXFP4/6/8 and NVFP4 GEMVs beside cuBLAS f16 (~2-3 min)
#   targets the GPU tests, then only what issue #5's targets are judged on: gpu_gemv.py at
#          28672 x 8192 for u4, u3, u5 and u6 (gemv_tc and gemv_wq at 2, 4 and 8 stages, beside
#          cuBLAS f16) (~2-3 min: for a short device session)
#
# Logs go to $OUT (the device tool's folder that comes back; ./gpu-session elsewhere):
# environment.log, tests.log, gemv.log, gemv.json, matmul.log, matmul.json, stages.log,
# stages.json, targets.log, targets.json, attention.log, attention.json, mx.log, summary.txt.
set -uo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
MODE=${1:-quick}
OUT=${OUT:-$REPO/gpu-session}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1

if [ "$MODE" = fetch ]; then
    grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
    exec "$PY" -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 -d .whl lark==1.3.1 filecheck==1.0.6
fi

summary() { echo "$*" | tee -a "$OUT/summary.txt"; }
: > "$OUT/summary.txt"

# ---- environment ------------------------------------------------------------------------------
{
    date -u
    nvidia-smi || echo "nvidia-smi failed"
    command -v nvcc && nvcc --version
    "$PY" --version
    "$PY" -m pip list 2>/dev/null | grep -i -E '^(torch|cuda-|numpy|ml.dtypes|llvmlite|lark|filecheck|pytest) '
} > "$OUT/environment.log" 2>&1

# ---- install: wheels the image lacks, then lpir itself (no network on the GPU machine) ------------
if ! "$PY" -c "import lark, filecheck" 2>/dev/null; then
    if [ -d .whl ]; then
        "$PY" -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl \
            && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
    else
        summary "lark/filecheck missing and no .whl/ carried: run 'bash benchmarks/gpu_session.sh fetch' here first"
    fi
fi
if ! "$PY" -c "import lpir.backends.cuda" 2>/dev/null; then
    if ! "$PY" -m pip install -q --no-deps --no-build-isolation -e . >> "$OUT/environment.log" 2>&1; then
        # No writable site-packages: a package tree of links (lpir/, lpir/passes, lpir/backends).
        rm -rf /tmp/lpir-shim && mkdir -p /tmp/lpir-shim/lpir
        for entry in "$REPO"/lpir/*; do ln -s "$entry" /tmp/lpir-shim/lpir/; done
        ln -s "$REPO/passes" /tmp/lpir-shim/lpir/passes
        ln -s "$REPO/backends" /tmp/lpir-shim/lpir/backends
        export PYTHONPATH=/tmp/lpir-shim${PYTHONPATH:+:$PYTHONPATH}
        printf '#!/bin/sh\nexec %s -m lpir "$@"\n' "$PY" > /tmp/lpir-shim/lpir-cli
        mkdir -p /tmp/lpir-shim/bin && mv /tmp/lpir-shim/lpir-cli /tmp/lpir-shim/bin/lpir
        chmod +x /tmp/lpir-shim/bin/lpir && export PATH=/tmp/lpir-shim/bin:$PATH
    fi
fi
"$PY" - >> "$OUT/environment.log" 2>&1 <<'EOF'
import lpir
from lpir.backends.cuda import compiler, device
print("lpir from", lpir.__file__)
print("gpu available:", device.gpu_available())
if device.gpu_available():
    print("arch:", device.device_arch())
print("nvrtc usable:", compiler.nvrtc_usable(), compiler.cuda_include_directories())
print("nvcc:", compiler.find_nvcc())
EOF
summary "$(grep -E 'gpu available|arch:|nvrtc usable' "$OUT/environment.log" | tr '\n' ' ')"

# ---- tests ---------------------------------------------------------------------------------------
run_tests() {
    timeout 420 "$PY" -m pytest -q -p no:cacheprovider -rs \
        tests/test_cuda_launch.py tests/test_cuda_compile.py tests/test_cuda_emit.py \
        tests/test_cuda_emulation.py tests/test_cuda_dequantize.py tests/test_matrix_loads.py \
        tests/filecheck/cuda 2>&1 | tee "$OUT/tests.log" | tail -n 25
    summary "tests: $(tail -n 1 "$OUT/tests.log")"
}

# The whole suite, GPU tests included, spread over the machine's cores when pytest-xdist is there.
run_suite() {
    local parallel=()
    "$PY" -c "import xdist" 2>/dev/null && parallel=(-n "$(nproc)")
    # shellcheck disable=SC2086  # SUITE: pytest's paths and options, split on purpose
    timeout 150 "$PY" -m pytest -q -p no:cacheprovider -rfEs "${parallel[@]}" ${SUITE:-} \
        --junitxml "$OUT/junit.xml" 2>&1 | tee "$OUT/tests.log" | tail -n 40
    summary "suite: $(tail -n 1 "$OUT/tests.log")"
}

# ---- benchmarks ----------------------------------------------------------------------------------
run_benchmarks() {
    local quick=${1:-}
    timeout 330 "$PY" benchmarks/gpu_gemv.py $quick --json "$OUT/gemv.json" 2>&1 | tee "$OUT/gemv.log"
    summary "gemv: exit ${PIPESTATUS[0]}"
    timeout 200 "$PY" benchmarks/gpu_matmul.py $quick --json "$OUT/matmul.json" 2>&1 | tee "$OUT/matmul.log"
    summary "matmul: exit ${PIPESTATUS[0]}"
}

run_stages() {
    timeout 300 "$PY" benchmarks/gpu_gemv.py --quick --weights u4,u3 --stages 2,3,4 \
        --json "$OUT/stages.json" 2>&1 | tee "$OUT/stages.log"
    summary "stages: exit ${PIPESTATUS[0]}"
}

case "$MODE" in
    device)
        run_suite
        timeout 30 "$PY" benchmarks/launch_overhead.py --gpu 2>&1 | tee -a "$OUT/summary.txt"
        # staged pipelines (cp.async) cost no registers per stage: deep ones are worth trying
        timeout 270 "$PY" benchmarks/gpu_gemv.py --stages "${STAGES:-2,4,8,16}" \
            --tensor-core-stages 2 --splits "${SPLITS:-2,4,8}" --json "$OUT/gemv.json" 2>&1 \
            | tee "$OUT/gemv.log"
        summary "gemv: exit ${PIPESTATUS[0]}"
        timeout 130 "$PY" benchmarks/gpu_matmul.py --stages 2,3,4 --json "$OUT/matmul.json" 2>&1 \
            | tee "$OUT/matmul.log"
        summary "matmul: exit ${PIPESTATUS[0]}"
        ;;
    targets)
        SUITE="-m gpu" run_suite
        timeout 240 "$PY" benchmarks/gpu_gemv.py --shapes 28672x8192 --weights u4,u3,u5,u6 \
            --stages 2,4,8 --no-tensor-cores --no-registers --json "$OUT/targets.json" 2>&1 \
            | tee "$OUT/targets.log"
        summary "targets: exit ${PIPESTATUS[0]}"
        ;;
    attention)
        timeout 300 "$PY" benchmarks/gpu_attention.py --json "$OUT/attention.json" 2>&1 \
            | tee "$OUT/attention.log"
        summary "attention: exit ${PIPESTATUS[0]}"
        ;;
    mx)
        timeout 400 "$PY" benchmarks/gpu_gemv_mx.py 2>&1 | tee "$OUT/mx.log"
        summary "mx: exit ${PIPESTATUS[0]}"
        ;;
    run) shift; "$@" ;;  # any command, after the set-up above (wheels, lpir importable)
    tests) run_tests ;;
    stages) run_stages ;;
    bench) run_benchmarks ;;
    quick) run_tests; run_benchmarks --quick ;;
    all) run_tests; run_benchmarks ;;
    *) echo "usage: $0 [fetch|device|targets|tests|bench|quick|all|stages|attention|mx|run COMMAND...]" >&2; exit 2 ;;
esac
echo
cat "$OUT/summary.txt"
