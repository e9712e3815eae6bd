#!/usr/bin/env bash
# The tree is formatted as .clang-format says (clang-format 14, Debian 12's): every tracked C, C++ and CUDA file.
# With --fix, formats them in place instead. Usage: scripts/check_format.sh [--fix]
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t files < <(git ls-files '*.c' '*.h' '*.cpp' '*.hpp' '*.cu' '*.cuh')
if [ "${1:-}" = "--fix" ]; then
  clang-format -i "${files[@]}"
  exit 0
fi
if ! clang-format --dry-run --Werror "${files[@]}" 2>"${TMPDIR:-/tmp}/flexrt-format.log"; then
  grep -o '^[^:]*:[0-9]*' "${TMPDIR:-/tmp}/flexrt-format.log" | sort -u | head -20
  echo "check_format: the files above are not formatted as .clang-format says; run scripts/check_format.sh --fix"
  exit 1
fi
echo "check_format: ${#files[@]} files formatted as .clang-format says"
