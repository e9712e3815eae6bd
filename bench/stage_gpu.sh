#!/usr/bin/env bash
# Stages what the GPU machine needs into .carry/ (git-ignored): the flexrt binary and plugins, the shared
# libraries that machine lacks, the peer's runner and wheels. Build first (scripts/build.sh with CUDA on).
# The peer: pip download --no-deps -d .whl flexgen (done once; PyPI is reachable here). Its flex_opt needs
# nothing else the GPU machine lacks (pulp is only for its experimental cost model).
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .carry && mkdir -p .carry/lib .carry/plugins .carry/peer .carry/whl
cp build/flexrt .carry/
cp build/plugins/*.so .carry/plugins/
for lib in libaio.so.1 libboost_program_options.so.1.74.0 libtomlplusplus.so.3 libopenblas.so.0 libgfortran.so.5 libquadmath.so.0; do
  cp -L "$(ldconfig -p | awk -v l="$lib" '$1 == l {print $NF; exit}')" .carry/lib/
done
cp ../shared/peer/*.py .carry/peer/
ls .whl/flexgen-*.whl >/dev/null 2>&1 && cp .whl/flexgen-*.whl .carry/whl/ || echo "stage_gpu: no .whl/ (the peer will not run)"
strip .carry/flexrt .carry/plugins/*.so
du -sh .carry
