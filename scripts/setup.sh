#!/usr/bin/env bash
# Installs what flexrt needs to build and test on Debian 12 (the development and CI machines).
# Idempotent: packages already present are skipped, so a second run does no network work.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config
  libboost-dev                     # header-only parts: DLL, Asio
  libboost-program-options-dev     # the command line
  libaio-dev                       # the storage.aio plugin
  libtomlplusplus-dev              # the config loader
  libgtest-dev googletest          # the test suites
  libopenblas-dev                  # CPU GEMMs
  fio                              # the reference beside `flexrt iobench`
  clang libclang-rt-14-dev         # libFuzzer (scripts/fuzz.sh)
  clang-format clang-tidy          # the house style (.clang-format, checked by scripts/check_format.sh); .clang-tidy
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
  echo "setup: all ${#packages[@]} packages present"
  exit 0
fi

echo "setup: installing ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
