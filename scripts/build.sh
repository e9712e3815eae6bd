#!/usr/bin/env bash
# Configures and builds flexrt (Release, tests included) into build/. Extra arguments go to cmake.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DFLEXRT_BUILD_TESTS=ON "$@"
cmake --build build -j"$(nproc)"
