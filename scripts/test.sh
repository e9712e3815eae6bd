#!/usr/bin/env bash
# On a fresh machine: installs what flexrt needs, builds it with its tests, and runs every test (ctest).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/check_format.sh  # first: a formatting slip fails in seconds, not after the build
scripts/build.sh
(cd build && ctest --output-on-failure -j"$(nproc)")
# The plugin SDK as a third party gets it: installed, the examples built against the install, run by name.
scripts/check_sdk.sh build

# Every suite again under AddressSanitizer + UndefinedBehaviorSanitizer (the CPU build: the CUDA kernels are
# checked on the device machine), any finding an error.
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFLEXRT_WITH_CUDA=OFF "-DFLEXRT_SANITIZE=address;undefined"
cmake --build build-asan -j"$(nproc)"
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j"$(nproc)")

# The threaded parts (transfer engine, storage plugins and their engine, the engine under the overlapped
# schedules) again under ThreadSanitizer.
cmake -S . -B build-tsan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFLEXRT_WITH_CUDA=OFF -DFLEXRT_SANITIZE=thread
cmake --build build-tsan -j"$(nproc)" --target core_tests conformance_tests aio_engine_tests models_tests
cd build-tsan
TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
  ctest --output-on-failure -j"$(nproc)" -R "Transfer|DiskDevice|PluginConformance|AioFaults|AioPlugin|PluginLoader|GoldenSchedules|Pipeline|TcpCommunicator"

# The parsers of untrusted input (TOML config, .npy and safetensors headers, JSON, the tokenizer) under
# libFuzzer + AddressSanitizer, 20 s each from the committed seed corpus (fuzz/corpus).
cd ..
scripts/fuzz.sh 20
