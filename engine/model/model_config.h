// A Hugging Face `config.json`, parsed into a plain struct for the eight
// architectures the engine runs (llama, qwen2, qwen3, mixtral, qwen2_moe,
// qwen3_moe, deepseek_v2, deepseek_v3).
//
// Policy: nothing is silently ignored. Every field a real config of these
// architectures carries is either honoured (it lands in ModelConfig) or is on
// an explicit allowlist of fields that cannot change inference numerics
// (training knobs such as initializer_range, router_aux_loss_coef, ep_size;
// bookkeeping such as transformers_version, auto_map). Any other field, and
// any honoured field with a value the engine does not implement (e.g.
// hidden_act "gelu", rope_scaling "dynamic", use_sliding_window true,
// quantization_config), is a kInvalidArgument error naming the field.
//
// Field names and defaults follow the transformers configuration classes
// (LlamaConfig, Qwen2Config, Qwen3Config, MixtralConfig, Qwen2MoeConfig,
// Qwen3MoeConfig) and DeepSeek's own configuration_deepseek.py for
// deepseek_v2 / deepseek_v3. Fields that real checkpoints always carry and
// whose defaults differ between library versions (sizes, expert counts) are
// required instead of defaulted.
#ifndef EXPERTSERVE_ENGINE_MODEL_MODEL_CONFIG_H_
#define EXPERTSERVE_ENGINE_MODEL_MODEL_CONFIG_H_

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace expertserve::engine {

enum class Architecture : uint8_t {
  kLlama,
  kQwen2,
  kQwen3,
  kMixtral,
  kQwen2Moe,
  kQwen3Moe,
  kDeepseekV2,
  kDeepseekV3,
};

// The config.json `model_type` string ("qwen2_moe", ...).
std::string_view ArchitectureName(Architecture arch);
// The `architectures` entry transformers writes ("Qwen2MoeForCausalLM", ...).
std::string_view ArchitectureClassName(Architecture arch);
absl::StatusOr<Architecture> ParseArchitecture(std::string_view model_type);
// Every supported model_type, comma separated, for error messages.
std::string SupportedModelTypes();

enum class RopeType : uint8_t { kDefault, kLinear, kLlama3, kYarn };
std::string_view RopeTypeName(RopeType type);

// `rope_scaling` (transformers' modeling_rope_utils). Accepts both the
// legacy "type" and the current "rope_type" key. "dynamic", "longrope" and
// anything else are rejected: their numerics are not implemented.
struct RopeScaling {
  RopeType type = RopeType::kDefault;
  double factor = 1.0;  // linear, llama3, yarn
  // llama3 (required) and yarn (optional: transformers then uses
  // max_position_embeddings).
  std::optional<int64_t> original_max_position_embeddings;
  // llama3 only.
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  // yarn only. beta_fast/beta_slow default to 32/1 as in transformers and
  // DeepSeek. mscale/mscale_all_dim are DeepSeek's fields (absent = unset);
  // attention_factor is transformers' explicit override (absent = derived).
  double beta_fast = 32.0;
  double beta_slow = 1.0;
  std::optional<double> mscale;
  std::optional<double> mscale_all_dim;
  std::optional<double> attention_factor;
  // transformers >= 4.56 yarn "truncate" (default true: floor/ceil the
  // correction range, as DeepSeek's code does).
  bool truncate = true;
};

// DeepSeek MoE gate: how the top-k experts are chosen.
enum class TopkMethod : uint8_t {
  kGreedy,               // plain top-k over all experts
  kGroupLimitedGreedy,   // V2: top-k within the topk_group best groups (max)
  kNoauxTc,              // V3: sigmoid + e_score_correction_bias, group top-2
};
std::string_view TopkMethodName(TopkMethod method);
enum class ScoringFunc : uint8_t { kSoftmax, kSigmoid };
std::string_view ScoringFuncName(ScoringFunc func);

// A parsed config.json. Plain value type; thread-compatible.
struct ModelConfig {
  Architecture arch = Architecture::kLlama;

  // ---- core transformer ----------------------------------------------------
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;  // dense MLP width (also DeepSeek dense layers)
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;  // defaults to num_attention_heads
  // Explicit `head_dim` when present, else hidden_size / num_attention_heads
  // (Qwen3 configs default to 128, as Qwen3Config does). Unused by MLA.
  int64_t head_dim = 0;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;  // type kDefault when absent or null
  int64_t max_position_embeddings = 0;
  bool tie_word_embeddings = false;
  // q/k/v/o projection biases (llama, qwen3, qwen3_moe `attention_bias`).
  bool attention_bias = false;
  // q/k/v (not o) biases: always on for qwen2 and qwen2_moe.
  bool qkv_bias = false;
  // Per-head RMSNorm of q and k before RoPE (qwen3, qwen3_moe).
  bool qk_norm = false;

  // ---- MoE (num_experts == 0 for dense models) ------------------------------
  // num_experts (qwen*_moe) / num_local_experts (mixtral) / n_routed_experts.
  int64_t num_experts = 0;
  int64_t num_experts_per_tok = 0;
  int64_t moe_intermediate_size = 0;  // per routed expert (mixtral: intermediate_size)
  // Shared expert MLP width; 0 = none. qwen2_moe: shared_expert_intermediate_size
  // (plus a sigmoid shared_expert_gate); deepseek: moe_intermediate_size *
  // n_shared_experts.
  int64_t shared_expert_intermediate_size = 0;
  int64_t n_shared_experts = 0;  // deepseek only
  bool shared_expert_gate = false;  // qwen2_moe
  // Renormalise the top-k weights to sum 1 (mixtral always does).
  bool norm_topk_prob = false;
  // qwen*_moe: layer l is MoE iff l not in mlp_only_layers and
  // (l + 1) % decoder_sparse_step == 0.
  int64_t decoder_sparse_step = 1;
  std::vector<int64_t> mlp_only_layers;
  // deepseek: layer l is MoE iff l >= first_k_dense_replace and
  // l % moe_layer_freq == 0.
  int64_t first_k_dense_replace = 0;
  int64_t moe_layer_freq = 1;
  double routed_scaling_factor = 1.0;
  TopkMethod topk_method = TopkMethod::kGreedy;
  int64_t n_group = 1;
  int64_t topk_group = 1;
  ScoringFunc scoring_func = ScoringFunc::kSoftmax;

  // ---- Multi-head Latent Attention (deepseek) ------------------------------
  bool mla = false;
  std::optional<int64_t> q_lora_rank;  // nullopt: plain q_proj
  int64_t kv_lora_rank = 0;
  int64_t qk_nope_head_dim = 0;
  int64_t qk_rope_head_dim = 0;
  int64_t v_head_dim = 0;
  // DeepSeek applies RoPE to de-interleaved pairs (rope_interleave in
  // transformers' DeepseekV3Config; DeepSeek's own code always does).
  bool rope_interleave = true;

  // ---- tokens and dtype -----------------------------------------------------
  std::optional<int64_t> bos_token_id;
  std::vector<int64_t> eos_token_ids;  // int or list in the file
  std::optional<int64_t> pad_token_id;
  std::string torch_dtype;  // "bfloat16", ... ("" when absent)

  // ---- derived helpers ------------------------------------------------------
  bool is_moe() const { return num_experts > 0; }
  bool IsMoeLayer(int64_t layer) const;
  // Number of MoE layers, and their indices in order.
  std::vector<int64_t> MoeLayers() const;
  // Width of the dense MLP of a non-MoE layer.
  int64_t DenseIntermediateSize() const { return intermediate_size; }
  // Query/key head width: qk_nope + qk_rope for MLA, head_dim otherwise.
  int64_t QkHeadDim() const;
  // Value head width: v_head_dim for MLA, head_dim otherwise.
  int64_t VHeadDim() const;
  // Width of the rotary part of each head.
  int64_t RotaryDim() const { return mla ? qk_rope_head_dim : head_dim; }
};

// Parses config.json text. Errors are kInvalidArgument and name the field.
absl::StatusOr<ModelConfig> ParseModelConfig(std::string_view json_text);
// Reads and parses `path` (a config.json or a directory holding one). A
// missing file is kNotFound; parse errors are prefixed with the path.
absl::StatusOr<ModelConfig> LoadModelConfig(const std::filesystem::path& path);

}  // namespace expertserve::engine

#endif  // EXPERTSERVE_ENGINE_MODEL_MODEL_CONFIG_H_
