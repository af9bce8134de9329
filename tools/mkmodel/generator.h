// Writes small deterministic Hugging Face checkpoints (config.json,
// model.safetensors [+ shards and index], generation_config.json, tokenizer
// files) for every architecture the engine supports, and ESFT adapters
// (expert_cfg.json + replacement experts) on MoE checkpoints.
#ifndef EXPERTSERVE_TOOLS_MKMODEL_GENERATOR_H_
#define EXPERTSERVE_TOOLS_MKMODEL_GENERATOR_H_

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "checkpoint/dtype.h"
#include "engine/model/model_config.h"

namespace expertserve::mkmodel {

struct ModelOptions {
  // model_type; empty = the preset's (tiny: required; bench-moe:
  // deepseek_v2; bench-dense: qwen3).
  std::string arch;
  std::string preset = "tiny";  // tiny | bench-moe | bench-dense
  checkpoint::DType dtype = checkpoint::DType::kF32;
  uint64_t seed = 1;
  // Overrides of the preset (unset = preset value).
  std::optional<int64_t> layers, hidden, intermediate, heads, kv_heads,
      head_dim, vocab, experts, experts_per_tok, moe_intermediate,
      shared_intermediate, n_shared_experts, first_k_dense, q_lora_rank,
      kv_lora_rank;
  std::optional<bool> tie_embeddings;
  // none | linear | llama3 | yarn; empty = the preset's (yarn for deepseek,
  // as DeepSeek-V2-Lite ships; none otherwise).
  std::string rope_scaling;
  // deepseek: greedy | group_limited_greedy (v2), noaux_tc (v3).
  std::string topk_method;
  // > 0: shard the safetensors at this many bytes (exercises the index).
  uint64_t max_shard_bytes = 0;
  // Checkpoints above this are generated shard by shard (1 GiB shards unless
  // max_shard_bytes), in parallel, to bound memory. Tests lower it.
  uint64_t in_memory_limit_bytes = 512ull << 20;
};

// Progress lines ("layer 3/12 ..."); may be empty.
using ProgressFn = std::function<void(const std::string&)>;

// The config.json this generator would write (exact HF field names), without
// writing anything. Fails on a bad arch/preset/override combination.
absl::StatusOr<std::string> BuildConfigJson(const ModelOptions& options);

// Writes a full checkpoint into `out_dir` (created if missing). Existing
// model*.safetensors / index files there are replaced.
absl::Status WriteModel(const ModelOptions& options,
                        const std::filesystem::path& out_dir,
                        const ProgressFn& progress = nullptr);

struct AdapterOptions {
  uint64_t seed = 1;
  bool shared_experts = false;  // also replace the shared experts
  uint64_t max_shard_bytes = 0;
};

// Writes an ESFT adapter for the MoE checkpoint in `base_dir`: expert_cfg.json
// ({"experts": {"<layer>": [ids]}, "shared_experts", "non_expert_modules":
// false}) and the replacement experts under the base's tensor names, in the
// base's dtype. Every MoE layer has a key; lists are unsorted, 0-6 long.
absl::Status WriteAdapter(const std::filesystem::path& base_dir,
                          const AdapterOptions& options,
                          const std::filesystem::path& out_dir);

// The demo set: models/{chat (qwen3), code (llama), moe (deepseek_v2)} and
// adapters/{math, law} on models/moe.
absl::Status WriteDemo(const std::filesystem::path& out_dir,
                       checkpoint::DType dtype,
                       const ProgressFn& progress = nullptr);

}  // namespace expertserve::mkmodel

#endif  // EXPERTSERVE_TOOLS_MKMODEL_GENERATOR_H_
