#!/usr/bin/env bash
# The plugin SDK from the outside, as a third party uses it: installs flexrt into a scratch prefix, builds each
# examples/ plugin against that install (find_package(flexrt); the source tree is not on its include path),
# loads the example schedule by name from the config and runs it end to end. Its tokens must equal the
# in-tree normal schedule's and its log must hold every step. Usage: scripts/check_sdk.sh [build dir]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$BUILD" --prefix "$tmp/prefix" >"$tmp/install.log"
[ -f "$tmp/prefix/lib/cmake/flexrt/flexrtConfig.cmake" ] || { echo "check_sdk: no CMake package installed"; exit 1; }
for ex in examples/*/; do
  name=$(basename "$ex")
  cmake -S "$ex" -B "$tmp/build-$name" -G Ninja -DCMAKE_PREFIX_PATH="$tmp/prefix" >"$tmp/configure-$name.log" \
    || { cat "$tmp/configure-$name.log"; exit 1; }
  cmake --build "$tmp/build-$name" >"$tmp/build-$name.log" || { cat "$tmp/build-$name.log"; exit 1; }
done
common=(--quiet --set run.gen_len=3 --set run.prompt_len=16 --set "storage.offload_dir=\"$tmp/offload\"")
ref=$("$BUILD/flexrt" "${common[@]}" | grep "first sequence")
got=$("$BUILD/flexrt" "${common[@]}" --set schedule.plugin=logged --set "runtime.plugin_path=[\"$tmp/build-schedule_logged\"]" \
        --set "schedule.options.log=\"$tmp/order.log\"" | grep "first sequence")
[ "$ref" = "$got" ] || { echo "check_sdk: schedule.logged gave '$got', the normal schedule '$ref'"; exit 1; }
for step in 0 1 2; do
  grep -q "^compute_layer $step " "$tmp/order.log" && grep -q "^end_step $step$" "$tmp/order.log" \
    || { echo "check_sdk: schedule.logged's log lacks step $step"; exit 1; }
done
echo "check_sdk: SDK installed, $(ls -d examples/*/ | wc -l) example(s) built out of tree against it; schedule.logged ran" \
     "($(wc -l <"$tmp/order.log") primitives logged) with the normal schedule's tokens"
