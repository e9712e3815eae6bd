#!/usr/bin/env bash
# The plugin SDK from the outside, as a third party uses it: installs flexrt into a scratch prefix, builds each
# examples/ plugin against that install (find_package(flexrt); the source tree is not on its include path),
# runs `flexrt plugin-test` on each library, and loads each by name from the config and runs it end to end
# (what each must show: below). Usage: scripts/check_sdk.sh [build dir]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$BUILD" --prefix "$tmp/prefix" >"$tmp/install.log"
[ -f "$tmp/prefix/lib/cmake/flexrt/flexrtConfig.cmake" ] || { echo "check_sdk: no CMake package installed"; exit 1; }
for ex in examples/*/; do
  name=$(basename "$ex")
  cmake -S "$ex" -B "$tmp/build-$name" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$tmp/prefix" >"$tmp/configure-$name.log" \
    || { cat "$tmp/configure-$name.log"; exit 1; }
  cmake --build "$tmp/build-$name" >"$tmp/build-$name.log" || { cat "$tmp/build-$name.log"; exit 1; }
done
# Each example passes the conformance suite of its kind, run by name of its library.
for so in "$tmp"/build-*/libflexrt-*.so; do
  "$BUILD/flexrt" plugin-test "$so" >"$tmp/plugin-test.log" || { cat "$tmp/plugin-test.log"; echo "check_sdk: $so fails plugin-test"; exit 1; }
done
first() { grep "first sequence" || true; }
common=(--quiet --set run.gen_len=3 --set run.prompt_len=16 --set "storage.offload_dir=\"$tmp/offload\"")
run() { "$BUILD/flexrt" "${common[@]}" "$@" | first; }
path_of() { echo "runtime.plugin_path=[\"$tmp/build-$1\"]"; }
same() {  # same <what> <reference tokens> <tokens>
  [ -n "$2" ] && [ "$2" = "$3" ] || { echo "check_sdk: $1 gave '$3', expected '$2'"; exit 1; }
}

# schedule.logged: the normal schedule's tokens, and a log holding every step.
ref=$(run)
same "schedule.logged" "$ref" "$(run --set schedule.plugin=logged --set "$(path_of schedule_logged)" --set "schedule.options.log=\"$tmp/order.log\"")"
for step in 0 1 2; do
  grep -q "^compute_layer $step " "$tmp/order.log" && grep -q "^end_step $step$" "$tmp/order.log" \
    || { echo "check_sdk: schedule.logged's log lacks step $step"; exit 1; }
done

# storage.crc32c: the weights on disk (a quarter of them, in the default policy) through it, the same tokens
# as storage.mmap; and a flipped byte on disk caught.
same "storage.crc32c" "$ref" "$(run --set storage.plugin=crc32c --set "$(path_of storage_crc32c)")"
mkdir -p "$tmp/corrupt"
"$tmp/build-storage_crc32c/crc32c_corruption_test" "$tmp/build-storage_crc32c/libflexrt-storage-crc32c.so" "$tmp/corrupt" >/dev/null

# compress.group4_mse: with search_steps = 0 it is min/max, flexrt's group4 byte for byte, so the tokens are
# group4's; with its least-squares search it runs end to end on flexrt's kernels.
mse=(--set policy.compress_weights=true --set compress.plugin=group4_mse --set "$(path_of compress_group4_mse)")
same "compress.group4_mse (search_steps = 0)" "$(run --set policy.compress_weights=true)" "$(run "${mse[@]}" --set compress.options.search_steps=0)"
[ -n "$(run "${mse[@]}")" ] || { echo "check_sdk: compress.group4_mse did not run to the end"; exit 1; }

echo "check_sdk: SDK installed; $(ls -d examples/*/ | wc -l) examples built out of tree against it, each passing plugin-test;" \
     "schedule.logged and storage.crc32c gave the in-tree tokens, compress.group4_mse group4's; a flipped byte was caught"
