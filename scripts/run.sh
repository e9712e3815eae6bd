#!/usr/bin/env bash
# On a fresh machine: installs what flexrt needs, builds it, and runs the main job on the embedded default
# config (OPT-125m-shaped dummy weights, part of them on disk, CPU compute path). Arguments go to flexrt.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
exec build/flexrt "$@"
