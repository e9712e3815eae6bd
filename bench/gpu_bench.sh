#!/usr/bin/env bash
# The GPU benchmark, in one call on the device machine (see ../shared/BENCH.md): checks first (the CUDA op
# tests and the end-to-end GPU tests), then the hardware ceilings and the kernel figures (ops_bench), then
# workload W1 (OPT-6.7B all on the GPU, 128 x 512 prompt tokens, 32 new) under flexrt and under the peer,
# FlexLLMGen, side by side. Prints a table last; logs go to $OUT (or ./bench-out).
#
# Stage first on the build machine: bench/stage_gpu.sh (binaries, libraries, the peer's wheels into .carry/).
# Then: run(carry=[".carry", "build/tests", "build/bench", "build/plugins", "build/test_plugins"]) with
# `bash bench/gpu_bench.sh [--no-peer] [--no-tests] [--no-w1] [--no-ccc] [--no-w3] [--w3c]` (all of it takes ~9
# minutes; --w3c adds W3 with the KV cache compressed too, under both, ~5 minutes more).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/bench-out}
mkdir -p "$OUT"
export LD_LIBRARY_PATH="$PWD/.carry/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
export FLEXRT_PLUGIN_PATH="$PWD/.carry/plugins"
peer=1 tests=1 w1=1 ccc=1 w3=1 w3c=0
for a in "$@"; do
  case $a in
    --no-peer) peer=0 ;;
    --no-tests) tests=0 ;;
    --no-w1) w1=0 ;;
    --no-ccc) ccc=0 ;;
    --no-w3) w3=0 ;;
    --w3c) w3c=1 ;;
    *) echo "gpu_bench: unknown argument $a" >&2; exit 2 ;;
  esac
done
FLEXRT=.carry/flexrt
BUILD=${BUILD:-build}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"

status_tests="skipped"
if [ $tests = 1 ]; then
  "$BUILD"/tests/ops_cuda_tests >"$OUT/ops_cuda_tests.log" 2>&1; a=$?
  "$BUILD"/tests/models_tests --gtest_filter='*Cuda*:*GoldenRealShape*:*Compressed*:*Schedules*' >"$OUT/models_cuda_tests.log" 2>&1; b=$?
  "$BUILD"/tests/core_tests --gtest_filter='*Gpu*:*Cuda*:*Pinned*' >"$OUT/core_gpu_tests.log" 2>&1; c=$?
  status_tests="ops $a, models $b, core $c (0 = passed)"
  for f in ops_cuda_tests models_cuda_tests core_gpu_tests; do tail -n 3 "$OUT/$f.log"; done
fi

timeout 300 "$BUILD"/bench/flexrt_ops_bench >"$OUT/ops_bench.txt" 2>&1 || echo "ops_bench failed: see ops_bench.txt"

# One workload under flexrt: name, time limit, flexrt arguments. Output in $OUT/<name>_flexrt.txt.
run_flexrt() {
  local name=$1 limit=$2; shift 2
  timeout "$limit" "$FLEXRT" "$@" >"$OUT/${name}_flexrt.txt" 2>"$OUT/${name}_flexrt.err" \
    || { echo "flexrt $name failed:"; tail -5 "$OUT/${name}_flexrt.err"; }
}
# The same workload under the peer: name, FlexLLMGen arguments. Output in $OUT/<name>_peer.txt.
run_peer() {
  local name=$1; shift
  PYTHONPATH=/tmp/site timeout 300 python3 .carry/peer/run_peer.py --path _DUMMY_ --prompt-len 512 --gen-len 32 \
    --offload-dir /var/tmp/peer-offload "$@" >"$OUT/${name}_peer.txt" 2>&1 \
    || { echo "peer $name failed:"; tail -5 "$OUT/${name}_peer.txt"; }
}

# W1: OPT-6.7B all on the GPU.
if [ $w1 = 1 ]; then run_flexrt w1 400 --config configs/opt6.7b_gpu.toml; fi

# cpu_cache_compute, A/B: OPT-6.7B with the KV cache in (pinned) host memory, attended there or copied up.
if [ $ccc = 1 ]; then
  for c in true false; do
    run_flexrt "ccc_$c" 300 --config configs/opt6.7b_gpu.toml -q --set policy.gpu_batch_size=32 --set run.gen_len=8 \
      --set 'policy.cache={gpu=0,cpu=100}' --set policy.cpu_cache_compute=$c
  done
fi

# W3: OPT-30B, 4-bit weights, all on the GPU; W3c: the KV cache in 4 bits too.
if [ $w3 = 1 ]; then run_flexrt w3 420 --config configs/opt30b_4bit_gpu.toml; fi
if [ $w3c = 1 ]; then run_flexrt w3c 420 --config configs/opt30b_4bit_gpu.toml --set policy.compress_cache=true; fi

if [ $peer = 1 ]; then
  if [ ! -d /tmp/site/flexgen ]; then
    pip install --no-deps --no-index --target /tmp/site .carry/whl/*.whl >"$OUT/pip.log" 2>&1 || echo "peer install failed"
  fi
  if [ $w1 = 1 ]; then
    run_peer w1 --model facebook/opt-6.7b --percent 100 0 100 0 100 0 --gpu-batch-size 128 --num-gpu-batches 1
  fi
  if [ $w3 = 1 ]; then
    run_peer w3 --model facebook/opt-30b --percent 100 0 100 0 100 0 --gpu-batch-size 64 --num-gpu-batches 1 --compress-weight
  fi
  if [ $w3c = 1 ]; then
    run_peer w3c --model facebook/opt-30b --percent 100 0 100 0 100 0 --gpu-batch-size 64 --num-gpu-batches 1 --compress-weight \
      --compress-cache
  fi
fi

# The table.
python3 - "$OUT" "$status_tests" <<'PY'
import re, sys, pathlib
out = pathlib.Path(sys.argv[1])
def grab(name, key):
    p = out / name
    if not p.exists(): return None
    m = re.findall(key + r":\s*([0-9.]+)", p.read_text())
    return float(m[-1]) if m else None
print("\n== flexrt GPU bench ==")
print("tests:", sys.argv[2])
ob = (out / "ops_bench.txt")
if ob.exists():
    print("-- kernels vs ceilings (ops_bench) --")
    for line in ob.read_text().splitlines():
        if line.startswith(("CEIL", "OP", "|", "ratio", "copy", "gemm", "decode", "prefill", "layer", "dequantize", "4-bit", "30B")): print(line)
rows = [("prefill latency (s)", "prefill latency"), ("decode throughput (tok/s)", "decode throughput"),
        ("total throughput (tok/s)", "total throughput"), ("peak GPU memory (GB)", "peak gpu mem"),
        ("start-up (s)", "start-up")]
def workload(title, name):
    print(f"-- {title} --")
    print(f"{'figure':28s} {'flexrt':>10s} {'FlexLLMGen':>11s} {'flexrt/peer':>12s}")
    for label, key in rows:
        a, b = grab(f"{name}_flexrt.txt", key), grab(f"{name}_peer.txt", key)
        lower_is_better = "latency" in key or "mem" in key or "start-up" in key
        r = "" if a is None or b is None else (f"{b / a:.2f}x" if lower_is_better else f"{a / b:.2f}x")
        fa = "-" if a is None else f"{a:.3f}"
        fb = "-" if b is None else f"{b:.3f}"
        print(f"{label:28s} {fa:>10s} {fb:>11s} {r:>12s}")
workload("W1: OPT-6.7B all on GPU, 128 x (512 + 32)", "w1")
workload("W3: OPT-30B, 4-bit weights, all on GPU, 64 x (512 + 32)", "w3")
workload("W3c: OPT-30B, 4-bit weights and KV cache, all on GPU, 64 x (512 + 32)", "w3c")
print("(latency and memory ratios: peer / flexrt, so above 1 means flexrt is faster or smaller)")
a, b = grab("ccc_true_flexrt.txt", "decode throughput"), grab("ccc_false_flexrt.txt", "decode throughput")
if a and b:
    print(f"-- cache on host, OPT-6.7B 32 x (512 + 8): decode {a:.1f} tok/s attended on the CPU vs {b:.1f} copied up: {a / b:.2f}x")
PY
