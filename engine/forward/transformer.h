// The forward pass of a decoder-only transformer (every supported
// architecture): embed → layers (attention + dense MLP or MoE) → final norm →
// lm_head for the tokens whose logits the step wants.
#ifndef EXPERTSERVE_ENGINE_FORWARD_TRANSFORMER_H_
#define EXPERTSERVE_ENGINE_FORWARD_TRANSFORMER_H_

#include <filesystem>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "checkpoint/safetensors.h"
#include "common/thread_pool.h"
#include "engine/forward/forward_stats.h"
#include "engine/forward/kv_store.h"
#include "engine/forward/model_weights.h"
#include "engine/forward/rope.h"
#include "engine/forward/step_batch.h"
#include "engine/model/model_config.h"

namespace expertserve::engine {

struct TransformerOptions {
  WeightsOptions weights;
};

// Owns the checkpoint mapping and the weights. Forward is engine thread only
// (thread-compatible); the KV store is passed in so that the KV cache manager
// owns it.
class Transformer {
 public:
  // Loads config.json and the safetensors of a Hugging Face directory.
  static absl::StatusOr<std::unique_ptr<Transformer>> Load(
      const std::filesystem::path& dir, const TransformerOptions& options = {});

  const ModelConfig& config() const { return config_; }
  const ModelWeights& weights() const { return *weights_; }
  ModelWeights& mutable_weights() { return *weights_; }

  // Runs one step. logits: [batch.logit_tokens.size(), vocab_size].
  // kInvalidArgument for a token id outside the vocabulary or a position
  // beyond a sequence's block table. `stats`, when set, is added to.
  absl::Status Forward(const StepBatch& batch, KvStore& kv, ThreadPool& pool,
                       std::vector<float>& logits,
                       ForwardStats* stats = nullptr) const;

 private:
  Transformer(ModelConfig config, std::unique_ptr<checkpoint::Checkpoint> ckpt);

  absl::Status Validate(const StepBatch& batch, const KvStore& kv) const;

  ModelConfig config_;
  std::unique_ptr<checkpoint::Checkpoint> checkpoint_;
  std::unique_ptr<ModelWeights> weights_;
  Rope rope_;
  float softmax_scale_;
};

}  // namespace expertserve::engine

#endif  // EXPERTSERVE_ENGINE_FORWARD_TRANSFORMER_H_
