// DeepSeek multi-head latent attention (MLA) over the latent cache.
#ifndef EXPERTSERVE_ENGINE_FORWARD_LATENT_ATTENTION_H_
#define EXPERTSERVE_ENGINE_FORWARD_LATENT_ATTENTION_H_

#include <cstdint>

#include "engine/forward/layer_context.h"
#include "engine/forward/model_weights.h"

namespace expertserve::engine {

// out[T, H] = MLA(x[T, H]) for layer `layer`; writes the batch's latents into
// the layer's KV store first. Engine thread only.
void LatentAttention(const LayerContext& ctx, int64_t layer,
                     const AttentionWeights& w, const float* x, float* out);

}  // namespace expertserve::engine

#endif  // EXPERTSERVE_ENGINE_FORWARD_LATENT_ATTENTION_H_
