#!/usr/bin/env bash
# The GPU benchmark, in one call on the device machine (see ../shared/BENCH.md): checks first (the CUDA op
# tests and the end-to-end GPU tests), then the hardware ceilings and the kernel figures (ops_bench), then
# workload W1 (OPT-6.7B all on the GPU, 128 x 512 prompt tokens, 32 new) under flexrt and under the peer,
# FlexLLMGen, side by side. Prints a table last; logs go to $OUT (or ./bench-out).
#
# Stage first on the build machine: bench/stage_gpu.sh (binaries, libraries, the peer's wheels into .carry/).
# Then: run(carry=[".carry", "build/tests", "build/bench", "build/plugins", "build/test_plugins"]) with
# `bash bench/gpu_bench.sh [--no-peer] [--no-tests] [--no-kernels] [--no-w1] [--no-ccc] [--no-w3] [--w3c] [--w2]
# [--w4] [--ceilings] [--schedule NAME] [--w4-gen=N] [--w4-storage=aio|mmap]`. The default set takes ~9 minutes;
# --w3c adds W3 with the KV cache compressed too, ~5; --w2, OPT-30B with its weights on the host, ~5; --w4,
# OPT-6.7B with its weights on disk, page cache dropped first, ~4 each for flexrt and the peer (--w4-gen=16
# halves that: both generate 16 tokens). The peer's disk reads are buffered and its start-up writes the weights,
# so its reads come from the page cache whatever was dropped before; --w4-storage=mmap reads flexrt's weights
# through the page cache too, for a like-for-like comparison (aio, the default, is O_DIRECT: always cold).
# --ceilings measures PCIe and the disk first (../shared/peer's scripts, ~2), from which W2's and W4's bounds
# follow. Every figure also goes to $OUT/bench.json. The per-call limit is 10 minutes: split the workloads.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/bench-out}
mkdir -p "$OUT"
export LD_LIBRARY_PATH="$PWD/.carry/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
export FLEXRT_PLUGIN_PATH="$PWD/.carry/plugins"
peer=1 tests=1 kernels=1 w1=1 ccc=1 w3=1 w3c=0 w2=0 w4=0 ceilings=0 schedule="" w4_gen=32 w4_storage=aio
for a in "$@"; do
  case $a in
    --no-peer) peer=0 ;;
    --no-tests) tests=0 ;;
    --no-kernels) kernels=0 ;;
    --no-w1) w1=0 ;;
    --no-ccc) ccc=0 ;;
    --no-w3) w3=0 ;;
    --w3c) w3c=1 ;;
    --w2) w2=1 ;;
    --w4) w4=1 ;;
    --ceilings) ceilings=1 ;;
    --schedule=*) schedule=${a#--schedule=} ;;
    --w4-gen=*) w4_gen=${a#--w4-gen=} ;;
    --w4-storage=*) w4_storage=${a#--w4-storage=} ;;
    *) echo "gpu_bench: unknown argument $a" >&2; exit 2 ;;
  esac
done
# --schedule=overlap: overlap_single for the one-batch workloads, overlap_multi for W2's two batches.
SCHED=() SCHED_MULTI=()
if [ "$schedule" = overlap ]; then SCHED=(--set schedule.plugin=overlap_single) SCHED_MULTI=(--set schedule.plugin=overlap_multi)
elif [ -n "$schedule" ]; then SCHED=(--set "schedule.plugin=$schedule") SCHED_MULTI=("${SCHED[@]}"); fi
# A cold page cache for the disk workloads (root only; said in the table when it could not be done).
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null && echo cold || echo warm; }
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

if [ $kernels = 1 ]; then
  timeout 300 "$BUILD"/bench/flexrt_ops_bench >"$OUT/ops_bench.txt" 2>&1 || echo "ops_bench failed: see ops_bench.txt"
fi

# One workload under flexrt: name, time limit, flexrt arguments. Output in $OUT/<name>_flexrt.txt.
run_flexrt() {
  local name=$1 limit=$2; shift 2
  timeout "$limit" "$FLEXRT" --progress "$@" >"$OUT/${name}_flexrt.txt" 2>"$OUT/${name}_flexrt.err" \
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
if [ $w1 = 1 ]; then run_flexrt w1 400 --config configs/opt6.7b_gpu.toml "${SCHED[@]}"; fi

# cpu_cache_compute, A/B: OPT-6.7B with the KV cache in (pinned) host memory, attended there or copied up.
if [ $ccc = 1 ]; then
  for c in true false; do
    run_flexrt "ccc_$c" 300 --config configs/opt6.7b_gpu.toml -q --set policy.gpu_batch_size=32 --set run.gen_len=8 \
      --set 'policy.cache={gpu=0,cpu=100}' --set policy.cpu_cache_compute=$c
  done
fi

if [ $ceilings = 1 ]; then
  timeout 200 python3 .carry/peer/ceilings.py >"$OUT/ceilings.txt" 2>&1 || echo "ceilings.py failed: see ceilings.txt"
  mkdir -p /var/tmp/flexrt-disk-bench
  timeout 200 python3 .carry/peer/disk_bench.py /var/tmp/flexrt-disk-bench 8 >"$OUT/disk_bench.txt" 2>&1 || echo "disk_bench.py failed"
  rm -rf /var/tmp/flexrt-disk-bench
fi

# W2: OPT-30B with its weights pinned in host memory; W4: OPT-6.7B with its weights on disk, cold page cache.
if [ $w2 = 1 ]; then run_flexrt w2 500 --config configs/opt30b_host.toml "${SCHED_MULTI[@]}"; fi
if [ $w4 = 1 ]; then drop_caches >"$OUT/w4_cache.txt"; run_flexrt w4 400 --config configs/opt6.7b_disk.toml --set run.gen_len=$w4_gen --set storage.plugin=$w4_storage "${SCHED[@]}"; fi

# W3: OPT-30B, 4-bit weights, all on the GPU; W3c: the KV cache in 4 bits too.
if [ $w3 = 1 ]; then run_flexrt w3 420 --config configs/opt30b_4bit_gpu.toml "${SCHED[@]}"; fi
if [ $w3c = 1 ]; then run_flexrt w3c 420 --config configs/opt30b_4bit_gpu.toml --set policy.compress_cache=true "${SCHED[@]}"; fi

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
  if [ $w2 = 1 ]; then
    run_peer w2 --model facebook/opt-30b --percent 0 100 100 0 100 0 --gpu-batch-size 32 --num-gpu-batches 2
  fi
  if [ $w4 = 1 ]; then
    drop_caches >"$OUT/w4_peer_cache.txt"
    run_peer w4 --model facebook/opt-6.7b --percent 0 0 100 0 100 0 --gpu-batch-size 16 --num-gpu-batches 1 --gen-len $w4_gen
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
        if key == "start-up" and b is None:  # the peer's: its whole call less the benchmark (init, pinning, warm-up)
            wall, total = grab(f"{name}_peer.txt", "benchmark\\)"), grab(f"{name}_peer.txt", "total latency")
            b = wall - total if wall and total else None
        lower_is_better = "latency" in key or "mem" in key or "start-up" in key
        r = "" if a is None or b is None else (f"{b / a:.2f}x" if lower_is_better else f"{a / b:.2f}x")
        fa = "-" if a is None else f"{a:.3f}"
        fb = "-" if b is None else f"{b:.3f}"
        print(f"{label:28s} {fa:>10s} {fb:>11s} {r:>12s}")
workload("W1: OPT-6.7B all on GPU, 128 x (512 + 32)", "w1")
workload("W3: OPT-30B, 4-bit weights, all on GPU, 64 x (512 + 32)", "w3")
workload("W3c: OPT-30B, 4-bit weights and KV cache, all on GPU, 64 x (512 + 32)", "w3c")
workload("W2: OPT-30B, weights on the host, 2 x 32 x (512 + 32)", "w2")
workload("W4: OPT-6.7B, weights on disk, 16 x (512 + 32)", "w4")

# The bounds of W2 and W4 from the ceilings: every step moves the whole model's weights over PCIe (W2) or off
# the disk (W4), so at most N sequences x the link's rate / the weight bytes tokens a second.
def ceiling(name, prefix):
    p = out / name
    if not p.exists(): return None
    vals = [float(l.split()[2]) for l in p.read_text().splitlines() if l.startswith("CEIL " + prefix)]
    return max(vals) if vals else None
bounds = {}
for name, n, link, what in (("w2", 64, ceiling("ceilings.txt", "h2d_pinned"), "pinned H2D"),
                            ("w4", 16, ceiling("disk_bench.txt", "disk_read_odirect"), "disk O_DIRECT read")):
    model_gib, tput = grab(f"{name}_flexrt.txt", "model size"), grab(f"{name}_flexrt.txt", "total throughput")
    if link and model_gib and tput:
        bound = n * link * 1e9 / (model_gib * 2**30)
        bounds[name] = {"bound_tok_s": bound, "link_GBps": link, "link": what, "fraction": tput / bound}
        print(f"-- {name}: bound {bound:.1f} tok/s ({what} {link:.1f} GB/s); flexrt at {tput / bound:.2f} of it")
for name in ("w4",):
    for who in ("", "_peer"):
        c = out / f"{name}{who}_cache.txt"
        if c.exists(): print(f"-- {name}{' peer' if who else ''}: page cache {c.read_text().strip()}")

# Everything above, machine-readable.
import json
keys = {"prefill_latency_s": "prefill latency", "decode_tok_s": "decode throughput", "total_tok_s": "total throughput",
        "peak_gpu_gib": "peak gpu mem", "startup_s": "start-up"}
result = {"gpu": (out / "gpu.txt").read_text().strip() if (out / "gpu.txt").exists() else None, "tests": sys.argv[2],
          "kernels": [l for l in ob.read_text().splitlines() if l.startswith(("ceiling", "decode", "prefill", "dequantize", "30B", "4-bit"))]
                     if ob.exists() else [],
          "workloads": {}}
for name in ("w1", "w2", "w3", "w3c", "w4", "ccc_true", "ccc_false"):
    f = {k: grab(f"{name}_flexrt.txt", v) for k, v in keys.items()}
    p = {k: grab(f"{name}_peer.txt", v) for k, v in keys.items()}
    if all(v is None for v in f.values()): continue
    w = {"flexrt": f, "peer": p}
    if f["total_tok_s"] and p["total_tok_s"]: w["total_ratio"] = f["total_tok_s"] / p["total_tok_s"]
    if name in bounds: w["bound"] = bounds[name]
    result["workloads"][name] = w
(out / "bench.json").write_text(json.dumps(result, indent=1))
print(f"(all figures in {out / 'bench.json'})")
print("(latency and memory ratios: peer / flexrt, so above 1 means flexrt is faster or smaller)")
a, b = grab("ccc_true_flexrt.txt", "decode throughput"), grab("ccc_false_flexrt.txt", "decode throughput")
if a and b:
    print(f"-- cache on host, OPT-6.7B 32 x (512 + 8): decode {a:.1f} tok/s attended on the CPU vs {b:.1f} copied up: {a / b:.2f}x")
PY
