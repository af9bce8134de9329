// What a decode step must read from the weights, for the benchmarks' memory
// rooflines: shared by bench-forward (batch-B rooflines) and bench-adapters
// (mixed-adapter steps against the base's), so both count bytes one way.
#ifndef EXPERTSERVE_BENCH_COMMON_DECODE_BYTES_H_
#define EXPERTSERVE_BENCH_COMMON_DECODE_BYTES_H_

#include <cstddef>
#include <cstdint>

#include "engine/model/model_config.h"

namespace expertserve::bench {

// Parameter counts of a model (value type).
struct ParamCounts {
  double total = 0;
  double active = 0;          // per token
  double expert = 0;          // one routed expert
  double routed_total = 0;    // all routed experts of all layers
  double embedding = 0;       // vocab * hidden (read one row per token)
  int64_t moe_layers = 0;
};

ParamCounts CountParams(const engine::ModelConfig& c);

// Weight parameters one decode step of B tokens reads when its tokens touch
// `routed_per_layer` distinct routed experts per MoE layer: every weight but
// the routed experts and the embedding table, B embedding rows, and those
// experts (the forward pass counts them: engine::ForwardStats).
double DecodeParamsRead(const engine::ModelConfig& c, const ParamCounts& p, size_t B,
                        double routed_per_layer);

}  // namespace expertserve::bench

#endif  // EXPERTSERVE_BENCH_COMMON_DECODE_BYTES_H_
