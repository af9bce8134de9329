// The tensors a Hugging Face checkpoint of a given config must hold: exact
// names and shapes, used to validate checkpoints before loading ("missing or
// mis-shaped tensor X") and by the test-checkpoint generator to write them.
#ifndef EXPERTSERVE_ENGINE_MODEL_WEIGHT_MANIFEST_H_
#define EXPERTSERVE_ENGINE_MODEL_WEIGHT_MANIFEST_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "checkpoint/safetensors.h"
#include "engine/model/model_config.h"

namespace expertserve::engine {

// What a tensor is, so that tools can initialise it sensibly and loaders can
// find the expert tensors without parsing names.
enum class TensorRole : uint8_t {
  kEmbedding,     // model.embed_tokens.weight
  kLmHead,        // lm_head.weight
  kNorm,          // RMSNorm weights (all of them)
  kProjection,    // attention / dense MLP linear weights
  kBias,          // linear biases
  kRouterGate,    // MoE gate (router) weights
  kRouterBias,    // DeepSeek-V3 e_score_correction_bias
  kSharedGate,    // qwen2_moe shared_expert_gate
  kRoutedExpert,  // one routed expert's weight
  kSharedExpert,  // a shared expert's weight
};

struct TensorSpec {
  std::string name;
  std::vector<int64_t> shape;  // HF convention: linear weights are [out, in]
  TensorRole role = TensorRole::kProjection;
  int64_t layer = -1;   // -1 for model-level tensors
  int64_t expert = -1;  // routed expert id for kRoutedExpert, else -1

  int64_t num_elements() const;
};

// Every tensor the checkpoint must hold, in a stable order: embeddings, then
// layer by layer (attention, norms, MLP / MoE), then the final norm and the
// lm_head (absent when tie_word_embeddings).
std::vector<TensorSpec> ExpectedTensors(const ModelConfig& config);

// The tensors of routed expert `expert` of MoE layer `layer` (gate, up, down
// in that order; mixtral w1, w3, w2). Empty when `layer` is not an MoE layer.
std::vector<TensorSpec> RoutedExpertTensors(const ModelConfig& config,
                                            int64_t layer, int64_t expert);
// The shared-expert tensors of MoE layer `layer` (qwen2_moe: shared_expert.*
// without shared_expert_gate; deepseek: shared_experts.*). Empty if none.
std::vector<TensorSpec> SharedExpertTensors(const ModelConfig& config,
                                            int64_t layer);

// Sum of num_elements over ExpectedTensors.
int64_t TotalParameters(const ModelConfig& config);
// Parameters touched per token: everything except the routed experts that a
// token does not select (num_experts - num_experts_per_tok per MoE layer).
int64_t ActiveParameters(const ModelConfig& config);

// Checks that `checkpoint` holds every tensor of ExpectedTensors(config) with
// its exact shape. A missing or mis-shaped tensor is kDataLoss naming the
// tensor, the expected and the found shape (the first few problems are all
// listed). Returns the names of tensors the config does not use (e.g.
// DeepSeek-V3's multi-token-prediction layer), sorted, for the caller to
// report or reject. dtypes are not constrained here: the reader accepts only
// F32/F16/BF16, and real checkpoints mix them (V3 keeps
// e_score_correction_bias in F32).
absl::StatusOr<std::vector<std::string>> ValidateCheckpointTensors(
    const ModelConfig& config, const checkpoint::Checkpoint& checkpoint);

}  // namespace expertserve::engine

#endif  // EXPERTSERVE_ENGINE_MODEL_WEIGHT_MANIFEST_H_
