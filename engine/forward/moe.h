// The MoE block of one layer: gate → top-k (each architecture's scoring,
// grouping, normalisation and scaling) → per-sequence adapter reroute →
// tokens grouped by expert slot → one SwiGLU GEMM chain per active slot →
// weighted combine, plus shared experts. Work scales with the active experts.
#ifndef EXPERTSERVE_ENGINE_FORWARD_MOE_H_
#define EXPERTSERVE_ENGINE_FORWARD_MOE_H_

#include <cstdint>
#include <span>
#include <vector>

#include "common/ids.h"
#include "engine/forward/layer_context.h"
#include "engine/forward/model_weights.h"

namespace expertserve::engine {

// The gate's choice for one token: experts (as the gate numbers them) and
// their combine weights, both [num_experts_per_tok].
struct ExpertChoice {
  std::vector<ExpertId> experts;
  std::vector<float> weights;
};

// Top-k selection from router logits [E] (f32) as the architecture's
// modeling code does it. `score_correction` is [E] for noaux_tc, else empty.
ExpertChoice SelectExperts(const ModelConfig& config,
                           std::span<const float> router_logits,
                           std::span<const float> score_correction);

// out[T, H] = moe(x[T, H]) for layer `layer`. Engine thread only.
void MoeForward(const LayerContext& ctx, int64_t layer, const MoeWeights& w,
                const float* x, float* out);

// out[T, H] = down(silu(gate(x)) * up(x)).
void MlpForward(const MlpWeights& w, const float* x, size_t T, size_t hidden,
                float* out, ThreadPool& pool);

}  // namespace expertserve::engine

#endif  // EXPERTSERVE_ENGINE_FORWARD_MOE_H_
