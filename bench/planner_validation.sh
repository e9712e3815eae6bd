#!/usr/bin/env bash
# Issue 9's validation, on the GPU machine (staged by bench/stage_gpu.sh): `flexrt calibrate`, then for policies
# spanning the tiers the planner's prediction (`flexrt plan --predict`) beside a measured run of the same
# config, throughput and peak GPU memory; then the planner's own policy for OPT-30B (prompt 512, gen 32) run
# against W2's hand-made one (weights on the host, 2 x 32 sequences), its block capped at 256 sequences to bound
# the run's time. Prints one table; JSON per run in $OUT.
# Usage: bash bench/planner_validation.sh [--quick]   (--quick: shorter runs, for a smoke test)
set -uo pipefail
cd "$(dirname "$0")/.."
export LD_LIBRARY_PATH=$PWD/.carry/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-} FLEXRT_PLUGIN_PATH=$PWD/.carry/plugins
BIN=${FLEXRT_BIN:-$PWD/.carry/flexrt}
OUT=${OUT:-/tmp/planner-validation}
mkdir -p "$OUT"
export FLEXRT_PROFILE=$OUT/hardware-profile.toml
OFF=/tmp/flexrt-offload
mkdir -p "$OFF"
common=(--set "storage.offload_dir=\"$OFF\"" --set 'storage.plugin="aio"')
gen=32
[ "${1:-}" = "--quick" ] && gen=8

"$BIN" calibrate --compute cuda "${common[@]}" --disk-mib 4096 | tee "$OUT/calibrate.txt" || exit 1

# name | config | overrides (the schedule: overlapped wherever the policy has transfers to hide)
cases=(
  "W1 6.7B all on GPU, 128x1|configs/opt6.7b_gpu.toml|--set run.gen_len=$gen"
  "W2 30B weights on host, 32x2|configs/opt30b_host.toml|--set run.gen_len=$gen --set schedule.plugin=\"overlap_multi\""
  "W3 30B 4-bit on GPU, 64x1|configs/opt30b_4bit_gpu.toml|--set run.gen_len=$gen"
  "30B weights 50/50 GPU/host, 16x2|configs/opt30b_host.toml|--set run.gen_len=$gen --set policy.weights.gpu=50 --set policy.weights.cpu=50 --set policy.gpu_batch_size=16 --set schedule.plugin=\"overlap_multi\""
  "13B cache on host, attended there, 64x2|configs/opt30b_host.toml|--set run.gen_len=$gen --set model.name=\"opt-13b\" --set policy.weights.gpu=100 --set policy.weights.cpu=0 --set policy.cache.gpu=0 --set policy.cache.cpu=100 --set policy.cpu_cache_compute=true --set policy.gpu_batch_size=64 --set schedule.plugin=\"overlap_multi\""
  "6.7B weights on disk, 16x1|configs/opt6.7b_disk.toml|--set run.gen_len=4 --set schedule.plugin=\"overlap_single\""
)
ratio() { python3 -c "import sys; a, b = float(sys.argv[1] or 0), float(sys.argv[2] or 0); print(a / b if b else float('nan'))" "$1" "$2"; }
printf "%-44s %12s %12s %7s %12s %12s %7s\n" policy "pred tok/s" "meas tok/s" ratio "pred GPU GiB" "meas GPU GiB" ratio | tee "$OUT/table.txt"
w2_measured=""
for c in "${cases[@]}"; do
  IFS='|' read -r name config sets <<<"$c"
  eval "extra=($sets)"
  pred=$("$BIN" plan --predict --quiet --config "$config" "${common[@]}" "${extra[@]}" 2>&1)
  ptok=$(echo "$pred" | sed -n 's/^predicted total throughput: \([0-9.]*\).*/\1/p')
  pgpu=$(echo "$pred" | sed -n 's/^predicted memory: compute \([0-9.]*\).*/\1/p')
  json="$OUT/$(echo "$name" | tr -c 'A-Za-z0-9' '_').json"
  "$BIN" --quiet --config "$config" "${common[@]}" "${extra[@]}" --json "$json" >"$json.log" 2>&1 || { echo "$name: run failed"; tail -3 "$json.log"; continue; }
  read -r mtok mgpu < <(python3 -c "import json,sys; d=json.load(open('$json')); print(d['figures']['total_tok_s'], d['memory_gib']['peak']['gpu'])")
  [ "${name:0:2}" = W2 ] && w2_measured=$mtok
  printf "%-44s %12.2f %12.2f %7.3f %12.3f %12.3f %7.3f\n" "$name" "$ptok" "$mtok" "$(ratio "$ptok" "$mtok")" "$pgpu" "$mgpu" \
    "$(ratio "$pgpu" "$mgpu")" | tee -a "$OUT/table.txt"
done

# The planner's policy for OPT-30B against W2's hand-made one.
"$BIN" plan --model opt-30b --prompt-len 512 --gen-len "$gen" --max-block 256 --quiet "${common[@]}" | tee "$OUT/plan-opt30b.txt"
{
  printf '[model]\nname = "opt-30b"\n[run]\nprompt_len = 512\ngen_len = %s\n' "$gen"
  sed -n '/^\[policy\]/,/^plugin = /p' "$OUT/plan-opt30b.txt"
  printf '[runtime]\ncompute = "cuda"\n'
} >"$OUT/planned-opt30b.toml"
"$BIN" --quiet --config "$OUT/planned-opt30b.toml" "${common[@]}" --json "$OUT/planned.json" >"$OUT/planned.log" 2>&1 || tail -3 "$OUT/planned.log"
planned=$(python3 -c "import json; print(json.load(open('$OUT/planned.json'))['figures']['total_tok_s'])" 2>/dev/null || echo 0)
echo "planner's OPT-30B policy: $planned token/s measured; W2's hand-made policy: ${w2_measured:-?} token/s; ratio $(ratio "$planned" "${w2_measured:-0}")" | tee -a "$OUT/table.txt"
