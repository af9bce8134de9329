#!/usr/bin/env bash
# Installs every build and test dependency of expertserve from Debian packages
# (and the npm packages the tokenizer parity tests use). Idempotent: when
# everything is present it only checks and returns within seconds.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config git
  libgrpc++-dev libgrpc-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev prometheus-cpp-dev libyaml-cpp-dev nlohmann-json3-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libhwy-dev libdnnl-dev libpcre2-dev libicu-dev
  clang-14 libclang-rt-14-dev prometheus openssl
  python3 python3-numpy python3-grpcio python3-protobuf python3-yaml
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

# Node.js + npm run the reference tokenizer and Jinja implementations in the
# parity tests. Keep a newer Node if the machine has one.
if ! command -v npm >/dev/null 2>&1; then missing+=(nodejs npm); fi

if ((${#missing[@]})); then
  echo "install_deps: installing ${missing[*]}" >&2
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then SUDO=sudo; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "install_deps: all Debian packages present" >&2
fi

# Reference tokenizers (real tokenizer.json files and Hugging Face's Rust
# tokenizers binding) and Hugging Face's Jinja for the parity tests.
PARITY_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/tests/parity"
stamp="$PARITY_DIR/node_modules/.package-lock.json"
if [[ ! -f "$stamp" || "$PARITY_DIR/package-lock.json" -nt "$stamp" ]]; then
  echo "install_deps: npm ci in tests/parity" >&2
  (cd "$PARITY_DIR" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi
