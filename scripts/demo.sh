#!/usr/bin/env bash
# The demo on a fresh Debian 12 machine: installs every dependency, builds,
# generates the demo checkpoints (two dense expert models, one MoE base and two
# ESFT adapters; tiny, seeded) and starts the server on configs/demo.yaml.
# Extra arguments go to the server.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
JOBS="${JOBS:-2}"
export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=1

scripts/install_deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$JOBS" --target expertserve expertserve-mkmodel
if [[ ! -f build/demo/.complete ]]; then
  build/bin/expertserve-mkmodel --demo build/demo
  touch build/demo/.complete
fi
exec build/bin/expertserve --config configs/demo.yaml "$@"
