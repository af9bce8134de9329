// The attention block of one layer: projections, RoPE, KV write and paged
// attention, for standard GQA attention and DeepSeek's multi-head latent
// attention (latent_attention.h).
#ifndef EXPERTSERVE_ENGINE_FORWARD_ATTENTION_H_
#define EXPERTSERVE_ENGINE_FORWARD_ATTENTION_H_

#include <cstdint>

#include "engine/forward/layer_context.h"
#include "engine/forward/model_weights.h"

namespace expertserve::engine {

// out[T, H] = attention(x[T, H]) for layer `layer`. Writes the batch's K/V
// (or latents) into the layer's KV store first. Engine thread only.
void AttentionForward(const LayerContext& ctx, int64_t layer,
                      const AttentionWeights& w, const float* x, float* out);

}  // namespace expertserve::engine

#endif  // EXPERTSERVE_ENGINE_FORWARD_ATTENTION_H_
