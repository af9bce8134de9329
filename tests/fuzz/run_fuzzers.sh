#!/usr/bin/env bash
# Builds every libFuzzer target (name ending in _fuzzer) with clang-14 in a
# separate build dir and runs each for SECONDS on a scratch copy of its seed
# corpus. Exits non-zero if any target crashes, leaks or fails to build.
#
#   tests/fuzz/run_fuzzers.sh [SECONDS]          (default 60)
#   ES_FUZZ_BUILD_DIR=/path  overrides the build dir (default <repo>/build-fuzz)
#   ES_FUZZ_JOBS=N           ninja parallelism (default 2)
set -euo pipefail

seconds="${1:-60}"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="${ES_FUZZ_BUILD_DIR:-${repo}/build-fuzz}"
jobs="${ES_FUZZ_JOBS:-2}"

mkdir -p "${build}"
# Warnings-as-errors is the GCC build's job (scripts/test.sh); this build
# exists to fuzz, so clang-only warnings do not stop it.
CC=clang-14 CXX=clang++-14 cmake -S "${repo}" -B "${build}" -G Ninja \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DEXPERTSERVE_FUZZ=ON -DEXPERTSERVE_CUDA=OFF -DEXPERTSERVE_BUILD_TESTS=ON \
  -DEXPERTSERVE_WERROR=OFF >"${build}/configure.log" 2>&1 || {
  cat "${build}/configure.log"; exit 1; }

mapfile -t targets < <(ninja -C "${build}" -t targets all |
  sed -n 's/^\([A-Za-z0-9_]*_fuzzer\): phony$/\1/p' |
  grep -v '^cmake_' | sort -u)
if [[ ${#targets[@]} -eq 0 ]]; then
  echo "run_fuzzers: no *_fuzzer targets (is clang-14 installed?)" >&2
  exit 1
fi
ninja -C "${build}" -j "${jobs}" "${targets[@]}"

# Corpus of target NAME_fuzzer: tests/fuzz/corpus/NAME (may be absent).
work="$(mktemp -d "${TMPDIR:-/tmp}/es_fuzz.XXXXXX")"
trap 'rm -rf "${work}"' EXIT
failed=()
for t in "${targets[@]}"; do
  name="${t%_fuzzer}"
  bin="$(find "${build}" -type f -name "${t}" -perm -u+x | head -n 1)"
  corpus="${work}/${name}/corpus"
  artifacts="${work}/${name}/artifacts"
  mkdir -p "${corpus}" "${artifacts}"
  if [[ -d "${repo}/tests/fuzz/corpus/${name}" ]]; then
    cp -r "${repo}/tests/fuzz/corpus/${name}/." "${corpus}/"
  fi
  echo "=== ${t}: ${seconds}s on a copy of tests/fuzz/corpus/${name}"
  # Leaks are the ASan unit-test stage's job: LeakSanitizer inside libFuzzer
  # has hung in this container. A hard timeout bounds every target.
  if ! timeout -s KILL "$((seconds + 120))" \
        "${bin}" -max_total_time="${seconds}" -print_final_stats=1 -detect_leaks=0 \
        -artifact_prefix="${artifacts}/" "${corpus}" \
        >"${work}/${name}/log" 2>&1; then
    failed+=("${t}")
    tail -n 60 "${work}/${name}/log"
    mkdir -p "${build}/fuzz-artifacts/${name}"
    cp -r "${artifacts}/." "${build}/fuzz-artifacts/${name}/" || true
    echo "=== ${t}: FAILED (reproducer kept in ${build}/fuzz-artifacts/${name})"
  else
    grep -E "^(stat::number_of_executed_units|stat::new_units_added|Done)" \
      "${work}/${name}/log" || true
    echo "=== ${t}: ok ($(ls "${corpus}" | wc -l) corpus entries after the run)"
  fi
done

if [[ ${#failed[@]} -gt 0 ]]; then
  echo "run_fuzzers: FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "run_fuzzers: all ${#targets[@]} fuzz targets ran ${seconds}s without a crash"
