// A model's weights resolved from a checkpoint: every tensor the config needs
// is found, shape- and dtype-checked against the manifest, and referenced in
// place from the mmapped files. Routed experts are placed in one expert table
// per MoE layer (memory/), indexed by slot id.
#ifndef EXPERTSERVE_ENGINE_FORWARD_MODEL_WEIGHTS_H_
#define EXPERTSERVE_ENGINE_FORWARD_MODEL_WEIGHTS_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "checkpoint/safetensors.h"
#include "engine/kernels/dtype.h"
#include "engine/model/model_config.h"
#include "memory/address_space.h"
#include "memory/expert_table.h"

namespace expertserve::engine {

struct MlpWeights {  // SwiGLU: down(silu(gate(x)) * up(x))
  kernels::WeightRef gate;  // [I, H]
  kernels::WeightRef up;    // [I, H]
  kernels::WeightRef down;  // [H, I]
  int64_t intermediate = 0;
};

struct AttentionWeights {
  // Standard (GQA) attention.
  kernels::WeightRef q, k, v, o;  // [nh*hd, H], [nkv*hd, H] x2, [H, nh*hd]
  std::vector<float> q_bias, k_bias, v_bias, o_bias;  // empty when absent
  kernels::WeightRef q_norm, k_norm;  // [hd]; data null when absent
  // Multi-head latent attention (DeepSeek).
  kernels::WeightRef q_a, q_a_norm, q_b;  // with q_lora_rank
  kernels::WeightRef kv_a, kv_a_norm, kv_b;  // [rank+rope, H], [rank], [nh*(nope+v), rank]
  // W_uk^T per head, absorbed into the query: [nh, rank, nope], in kv_b's
  // dtype (a transpose is exact; BF16 then runs on the bf16 GEMM path).
  std::vector<char> w_uk_t;
  kernels::DType w_uk_t_dtype = kernels::DType::kF32;
};

struct MoeWeights {
  kernels::WeightRef router;            // [E, H]
  std::vector<float> score_correction;  // [E] (noaux_tc) or empty
  std::unique_ptr<memory::ExpertTable> experts;  // routed experts by slot
  kernels::DType expert_dtype = kernels::DType::kF32;
  MlpWeights shared;                   // gate.data null when none
  // ESFT adapters' replacement shared experts (adapters with
  // "shared_experts": true): slot 0 stands for the base's shared expert (it
  // stays in `shared` and is never mapped here), slots [1, 1 + S) hold the
  // replacements. Null when the layer has no shared expert or S is 0.
  std::unique_ptr<memory::ExpertTable> shared_table;
  kernels::DType shared_dtype = kernels::DType::kF32;
  kernels::WeightRef shared_gate;      // qwen2_moe [1, H]; null when none
};

struct LayerWeights {
  kernels::WeightRef input_norm;  // [H]
  kernels::WeightRef post_attention_norm;  // [H]
  AttentionWeights attn;
  bool is_moe = false;
  MlpWeights mlp;  // dense layers
  MoeWeights moe;  // MoE layers
};

struct WeightsOptions {
  // Adapter slots reserved per MoE layer's expert table (ESFT).
  int adapter_slots_per_layer = 0;
  // Replacement shared-expert slots per MoE layer with a shared expert;
  // -1 means adapter_slots_per_layer. Only reserved address space until an
  // adapter with "shared_experts": true is loaded.
  int shared_adapter_slots_per_layer = -1;
  // Backend of the expert tables; null creates a host backend.
  std::shared_ptr<memory::AddressSpaceInterface> expert_backend;
};

// Immutable after Load except the expert tables' adapter slots (see
// memory::ExpertTable for their thread-safety contract).
class ModelWeights {
 public:
  // Checks every manifest tensor (kDataLoss naming the tensor when it is
  // missing, mis-shaped or of another dtype than its siblings; unexpected
  // tensors are reported too) and builds the expert tables. `checkpoint`
  // must outlive the result.
  static absl::StatusOr<std::unique_ptr<ModelWeights>> Load(
      const ModelConfig& config, const checkpoint::Checkpoint& checkpoint,
      const WeightsOptions& options = {});

  kernels::WeightRef embed;    // [vocab, H]
  kernels::WeightRef final_norm;  // [H]
  kernels::WeightRef lm_head;  // [vocab, H] (the embedding when tied)
  std::vector<LayerWeights> layers;
  std::shared_ptr<memory::AddressSpaceInterface> expert_backend;
};

kernels::DType ToKernelDType(checkpoint::DType dtype);

}  // namespace expertserve::engine

#endif  // EXPERTSERVE_ENGINE_FORWARD_MODEL_WEIGHTS_H_
