// What the engine loop needs from a model: run a step batch over the paged
// KV cache and return next-token logits. Production wraps the Transformer
// (TransformerRunner); tests use FakeModelRunner (no weights).
#ifndef EXPERTSERVE_ENGINE_RUNTIME_MODEL_RUNNER_H_
#define EXPERTSERVE_ENGINE_RUNTIME_MODEL_RUNNER_H_

#include <cstdint>
#include <span>
#include <vector>

#include "absl/status/status.h"
#include "engine/forward/forward_stats.h"
#include "engine/forward/step_batch.h"
#include "engine/kv_cache/block_manager.h"

namespace expertserve::engine {

// Engine thread only (thread-compatible). The runner owns the KV memory for
// `num_kv_blocks()` blocks of `block_tokens()` tokens; the engine's
// BlockManager hands out those block ids.
class ModelRunnerInterface {
 public:
  virtual ~ModelRunnerInterface() = default;
  virtual int32_t vocab_size() const = 0;
  virtual int32_t max_model_len() const = 0;
  virtual int32_t num_kv_blocks() const = 0;
  virtual int32_t block_tokens() const = 0;
  // Copies whole blocks (all layers) before a step: copy-on-write.
  virtual void CopyBlocks(std::span<const BlockCopy> copies) = 0;
  // logits: [batch.logit_tokens.size(), vocab_size()].
  virtual absl::Status Run(const StepBatch& batch, std::vector<float>& logits) = 0;
  // What the steps so far read from their experts (cumulative); zero for
  // runners without experts.
  virtual ForwardStats forward_stats() const { return {}; }
};

}  // namespace expertserve::engine

#endif  // EXPERTSERVE_ENGINE_RUNTIME_MODEL_RUNNER_H_
