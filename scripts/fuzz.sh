#!/usr/bin/env bash
# Fuzzes the parsers of untrusted input with libFuzzer (clang, under AddressSanitizer) for a bounded time each,
# starting from the committed seed corpus (fuzz/corpus/<target>): the TOML config loader, the .npy and
# safetensors headers, the JSON reader, the tokenizer. A crash leaves its input in build-fuzz/crashes/ and
# fails: make it a regression test. Usage: scripts/fuzz.sh [seconds per target, default 20]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-20}
mkdir -p build-fuzz
cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ -DFLEXRT_WITH_CUDA=OFF \
  -DFLEXRT_BUILD_TESTS=OFF -DFLEXRT_FUZZ=ON -DFLEXRT_SANITIZE=address >build-fuzz/configure.log 2>&1 \
  || { cat build-fuzz/configure.log; exit 1; }
targets=(config npy safetensors json tokenizer)
cmake --build build-fuzz -j"$(nproc)" --target "${targets[@]/#/fuzz_}"
mkdir -p build-fuzz/crashes
for t in "${targets[@]}"; do
  work=$(mktemp -d)
  cp fuzz/corpus/"$t"/* "$work"/
  if ! build-fuzz/fuzz/fuzz_"$t" "$work" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
       -artifact_prefix=build-fuzz/crashes/"$t"- -print_final_stats=1 >build-fuzz/fuzz_"$t".log 2>&1; then
    tail -40 build-fuzz/fuzz_"$t".log
    echo "fuzz $t: FAILED (the input is in build-fuzz/crashes/)"
    exit 1
  fi
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' build-fuzz/fuzz_"$t".log | grep -o '[0-9]*$' || echo "?")
  echo "fuzz $t: $runs inputs in $secs s, no failure"
  rm -rf "$work"
done
