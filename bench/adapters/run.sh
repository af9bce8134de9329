#!/usr/bin/env bash
# Generates the benchmark base (a mid-size deepseek_v2: the bench-moe preset cut
# to 6 layers x hidden 512, 64 routed experts of width 256, 2 shared, bf16,
# 138M parameters, 276 MB) and 50 ESFT adapters, then runs the adapter
# benchmarks. usage: bench/adapters/run.sh BUILD_DIR [WORK_DIR] [bench args...]
set -euo pipefail
build=${1:?usage: run.sh BUILD_DIR [WORK_DIR] [bench args...]}
work=${2:-/tmp/esft_bench}
shift $(( $# >= 2 ? 2 : 1 ))
mk="$build/bin/expertserve-mkmodel"
if [[ ! -f "$work/model/config.json" ]]; then
  "$mk" --arch deepseek_v2 --preset bench-moe --layers 6 --hidden 512 \
    --intermediate 1408 --heads 8 --kv-heads 8 --moe-intermediate 256 \
    --shared-intermediate 512 --kv-lora-rank 128 --seed 7 --out "$work/model"
fi
for i in $(seq -w 0 49); do
  [[ -f "$work/adapters/a$i/expert_cfg.json" ]] && continue
  "$mk" --adapter-of "$work/model" --seed $((1000 + 10#$i)) --out "$work/adapters/a$i" >/dev/null
done
exec "$build/bin/expertserve-bench-adapters" --model "$work/model" \
  --adapters "$work/adapters" "$@"
