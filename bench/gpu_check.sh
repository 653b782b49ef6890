#!/usr/bin/env bash
# One prepared check for a CUDA machine (H100/H200), under 6 minutes:
#   1. install the packages the machine's image lacks from the wheels bench/gpu_wheels.sh put in
#      .whl/ (the machine has no network; its python3 holds CUDA torch); deepscope runs from the
#      working tree
#   2. the CUDA tests (tests/*: -k cuda)
#   3. the live benchmark: 2048x2048 -> 5120x5120, bf16/fp16, CUDA graphs on/off, whole frame vs
#      tiled, fps, p50/p99 latency, TFLOP/s against model/inference/cost.py's roofline; the
#      full-resolution (recording) output; the host work per frame with the stand-in network
#   4. a 60 s live soak through LivePipeline with a replayed 2048x2048 camera at 100 fps, then
#      10 s recording every raw frame (to /dev/shm)
#   5. training-step throughput (bench/bench_train.py)
# Results: JSON (and logs) in $OUT (default ./gpu_check_out); summary.json lists every step's
# exit code. A failing step does not stop the others.
#
#   bash bench/gpu_wheels.sh                           # here, once: fills .whl/
#   OUT=/tmp/out bash bench/gpu_check.sh               # on the GPU machine (carry .whl)
#   OUT=/tmp/out bash bench/gpu_check.sh --cpu-smoke   # the same steps, tiny, on a CPU (checks
#                                                      # the script; uses $PYTHON, installs nothing)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu_check_out}
mkdir -p "$OUT"
SMOKE=0
if [ "${1:-}" = "--cpu-smoke" ]; then SMOKE=1; fi
export PYTHONPATH=$PWD
export QT_QPA_PLATFORM=offscreen PYMM_SIGNALS_BACKEND=psygnal
PY=${PYTHON:-python3}

if [ $SMOKE = 0 ]; then
    source bench/gpu_env.sh || exit 1
    DEV=cuda; SIZE=2048; FRAMES=200; SOAK=60; FPS=100; REC=10; SHM=/dev/shm
    TRAIN=(--device cuda --batch 64 256 --threads 1 --steps 20 --warmup 3 --modes fp32 bf16_cl)
else
    DEV=cpu; SIZE=64; FRAMES=3; SOAK=3; FPS=20; REC=1; SHM=${TMPDIR:-/tmp}
    TRAIN=(--device cpu --batch 2 --threads 1 --steps 1 --warmup 0 --patch 20)
fi

declare -A RC
step() {  # step NAME TIMEOUT_S COMMAND...: run, log to $OUT/NAME.log, keep the exit code
    local name=$1 limit=$2; shift 2
    echo "== $name: $*" >&2
    local t0=$SECONDS
    timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
    RC[$name]=$?
    echo "   exit ${RC[$name]} after $((SECONDS - t0)) s" >&2
}

"$PY" - >"$OUT/device.json" <<'EOF'
import json, platform, torch
cuda = torch.cuda.is_available()
print(json.dumps({
    "torch": torch.__version__, "cuda": torch.version.cuda, "python": platform.python_version(),
    "device": torch.cuda.get_device_name(0) if cuda else "cpu",
    "memory_gib": torch.cuda.get_device_properties(0).total_memory / 2**30 if cuda else None,
}, indent=2))
EOF
command -v nvidia-smi >/dev/null && nvidia-smi >"$OUT/nvidia_smi.txt" 2>&1

step tests 150 "$PY" -m pytest tests/test_infer_engine.py tests/test_live_pipeline.py -q -x \
    -k cuda -p no:cacheprovider --junitxml="$OUT/tests.xml"
step live 180 "$PY" bench/bench_live.py --device $DEV --sizes $SIZE --frames $FRAMES \
    --out "$OUT/live.json"
step live_full 60 "$PY" bench/bench_live.py --device $DEV --sizes $SIZE --frames $((FRAMES / 2 + 1)) \
    --output full --precisions bf16 --out "$OUT/live_full.json"
step host 90 "$PY" bench/bench_live.py --host-overhead --device cpu --size $SIZE --frames 5 \
    --warmup 1 --out "$OUT/host.json"
step soak $((SOAK + REC + 90)) "$PY" bench/bench_live.py --device $DEV --soak $SOAK --fps $FPS \
    --size $SIZE --record-seconds $REC --record-dir "$SHM" --out "$OUT/soak.json"
step train 90 "$PY" bench/bench_train.py "${TRAIN[@]}" --out "$OUT/train.json"

{
    echo "{"
    first=1
    for name in tests live live_full host soak train; do
        [ $first = 1 ] || echo ","
        first=0
        printf '  "%s": %s' "$name" "${RC[$name]}"
    done
    echo
    echo "}"
} >"$OUT/summary.json"
cat "$OUT/summary.json"
for name in tests live live_full host soak train; do
    [ "${RC[$name]}" = 0 ] || exit 1
done
