#!/usr/bin/env bash
# The whole test suite on a fresh Debian 12 machine: installs every dependency,
# builds with warnings as errors, runs every CTest test, then the unit tests
# again under AddressSanitizer + UBSan, then each libFuzzer target for a short
# bounded time. Exit status is non-zero if anything fails.
#
# Environment: BUILD_DIR (default build), JOBS (default 2),
#              ES_SKIP_ASAN=1 / ES_SKIP_FUZZ=1 to skip those stages locally,
#              ES_FUZZ_SECONDS (default 10 per target).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

JOBS="${JOBS:-2}"
BUILD_DIR="${BUILD_DIR:-build}"
# Let ccache hit across clones at different paths (CI clones afresh).
export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=1
stage() { printf '\n=== %s (%s) ===\n' "$1" "$(date +%T)"; }

stage "install dependencies"
scripts/install_deps.sh

stage "configure + build ($BUILD_DIR)"
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DEXPERTSERVE_WERROR=ON -DEXPERTSERVE_CUDA=AUTO >/dev/null
cmake --build "$BUILD_DIR" -j "$JOBS"

stage "tests"
ctest --test-dir "$BUILD_DIR" --output-on-failure -j "$JOBS" --timeout 600

if [[ "${ES_SKIP_ASAN:-0}" != 1 ]]; then
  stage "unit tests under ASan + UBSan (build-asan)"
  cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug \
    -DEXPERTSERVE_SANITIZE=ON -DEXPERTSERVE_CUDA=OFF -DEXPERTSERVE_BUILD_BENCH=OFF \
    -DEXPERTSERVE_WERROR=ON >/dev/null
  # Build only what the unit tests run, plus the two binaries that tests
  # invoke as subprocesses.
  # (Test names are their executables' target names; fixture steps are not.)
  ninja -C build-asan -t targets all | sed -n 's/^\([^:]*\): phony$/\1/p' \
    > build-asan/all-targets.txt
  mapfile -t asan_targets < <(ctest --test-dir build-asan -L unit --show-only=json-v1 |
    /usr/bin/python3 -c '
import json, sys
targets = set(open("build-asan/all-targets.txt").read().split())
for t in json.load(sys.stdin)["tests"]:
    if t["name"] in targets:
        print(t["name"])')
  cmake --build build-asan -j "$JOBS" --target "${asan_targets[@]}" \
    expertserve expertserve-mkmodel
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --test-dir build-asan --output-on-failure -j "$JOBS" -L unit --timeout 900
fi

if [[ "${ES_SKIP_FUZZ:-0}" != 1 && -x tests/fuzz/run_fuzzers.sh ]]; then
  stage "fuzz targets, ${ES_FUZZ_SECONDS:-10}s each"
  tests/fuzz/run_fuzzers.sh "${ES_FUZZ_SECONDS:-10}"
fi

stage "all stages passed"
