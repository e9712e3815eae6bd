#!/usr/bin/env bash
# On a fresh machine: installs what flexrt needs, builds it with its tests, and runs every test (ctest).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
cd build
ctest --output-on-failure -j"$(nproc)"
