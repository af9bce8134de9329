#include "bench/common/decode_bytes.h"

#include "engine/model/weight_manifest.h"

namespace expertserve::bench {

ParamCounts CountParams(const engine::ModelConfig& c) {
  ParamCounts p;
  p.total = static_cast<double>(engine::TotalParameters(c));
  p.active = static_cast<double>(engine::ActiveParameters(c));
  p.embedding = static_cast<double>(c.vocab_size * c.hidden_size);
  if (c.is_moe()) {
    p.moe_layers = static_cast<int64_t>(c.MoeLayers().size());
    p.expert = 3.0 * static_cast<double>(c.moe_intermediate_size * c.hidden_size);
    p.routed_total = p.expert * static_cast<double>(c.num_experts * p.moe_layers);
  }
  return p;
}

double DecodeParamsRead(const engine::ModelConfig& c, const ParamCounts& p, size_t B,
                        double routed_per_layer) {
  double read = p.total - p.routed_total - p.embedding +
                static_cast<double>(B) * static_cast<double>(c.hidden_size);
  if (c.tie_word_embeddings) read += p.embedding;  // the lm_head is the embedding
  if (c.is_moe()) read += routed_per_layer * p.expert * static_cast<double>(p.moe_layers);
  return read;
}

}  // namespace expertserve::bench
