#include "engine/model/weight_manifest.h"

#include <set>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace expertserve::engine {
namespace {

std::string LayerPrefix(int64_t layer) {
  return absl::StrCat("model.layers.", layer, ".");
}

void Add(std::vector<TensorSpec>& out, std::string name,
         std::vector<int64_t> shape, TensorRole role, int64_t layer,
         int64_t expert = -1) {
  out.push_back(TensorSpec{std::move(name), std::move(shape), role, layer,
                           expert});
}

// gate/up/down MLP of width `inter` under `prefix` ("...mlp." etc.).
void AddSwiglu(std::vector<TensorSpec>& out, const std::string& prefix,
               int64_t hidden, int64_t inter, TensorRole role, int64_t layer,
               int64_t expert = -1) {
  Add(out, prefix + "gate_proj.weight", {inter, hidden}, role, layer, expert);
  Add(out, prefix + "up_proj.weight", {inter, hidden}, role, layer, expert);
  Add(out, prefix + "down_proj.weight", {hidden, inter}, role, layer, expert);
}

void AddAttention(std::vector<TensorSpec>& out, const ModelConfig& c,
                  int64_t l) {
  const std::string p = LayerPrefix(l) + "self_attn.";
  const int64_t h = c.hidden_size;
  const int64_t nh = c.num_attention_heads;
  if (c.mla) {
    const int64_t qk = c.QkHeadDim();
    if (c.q_lora_rank.has_value()) {
      const int64_t r = *c.q_lora_rank;
      Add(out, p + "q_a_proj.weight", {r, h}, TensorRole::kProjection, l);
      Add(out, p + "q_a_layernorm.weight", {r}, TensorRole::kNorm, l);
      Add(out, p + "q_b_proj.weight", {nh * qk, r}, TensorRole::kProjection, l);
    } else {
      Add(out, p + "q_proj.weight", {nh * qk, h}, TensorRole::kProjection, l);
    }
    Add(out, p + "kv_a_proj_with_mqa.weight",
        {c.kv_lora_rank + c.qk_rope_head_dim, h}, TensorRole::kProjection, l);
    Add(out, p + "kv_a_layernorm.weight", {c.kv_lora_rank}, TensorRole::kNorm,
        l);
    Add(out, p + "kv_b_proj.weight",
        {nh * (c.qk_nope_head_dim + c.v_head_dim), c.kv_lora_rank},
        TensorRole::kProjection, l);
    Add(out, p + "o_proj.weight", {h, nh * c.v_head_dim},
        TensorRole::kProjection, l);
    return;
  }
  const int64_t hd = c.head_dim;
  const int64_t q = nh * hd;
  const int64_t kv = c.num_key_value_heads * hd;
  const bool qkv_bias = c.qkv_bias || c.attention_bias;
  Add(out, p + "q_proj.weight", {q, h}, TensorRole::kProjection, l);
  if (qkv_bias) Add(out, p + "q_proj.bias", {q}, TensorRole::kBias, l);
  Add(out, p + "k_proj.weight", {kv, h}, TensorRole::kProjection, l);
  if (qkv_bias) Add(out, p + "k_proj.bias", {kv}, TensorRole::kBias, l);
  Add(out, p + "v_proj.weight", {kv, h}, TensorRole::kProjection, l);
  if (qkv_bias) Add(out, p + "v_proj.bias", {kv}, TensorRole::kBias, l);
  Add(out, p + "o_proj.weight", {h, q}, TensorRole::kProjection, l);
  if (c.attention_bias) Add(out, p + "o_proj.bias", {h}, TensorRole::kBias, l);
  if (c.qk_norm) {
    Add(out, p + "q_norm.weight", {hd}, TensorRole::kNorm, l);
    Add(out, p + "k_norm.weight", {hd}, TensorRole::kNorm, l);
  }
}

void AddMoe(std::vector<TensorSpec>& out, const ModelConfig& c, int64_t l) {
  const int64_t h = c.hidden_size;
  const std::string p = LayerPrefix(l);
  if (c.arch == Architecture::kMixtral) {
    Add(out, p + "block_sparse_moe.gate.weight", {c.num_experts, h},
        TensorRole::kRouterGate, l);
  } else {
    Add(out, p + "mlp.gate.weight", {c.num_experts, h},
        TensorRole::kRouterGate, l);
    if (c.topk_method == TopkMethod::kNoauxTc) {
      Add(out, p + "mlp.gate.e_score_correction_bias", {c.num_experts},
          TensorRole::kRouterBias, l);
    }
  }
  for (int64_t e = 0; e < c.num_experts; ++e) {
    for (TensorSpec& t : RoutedExpertTensors(c, l, e)) {
      out.push_back(std::move(t));
    }
  }
  for (TensorSpec& t : SharedExpertTensors(c, l)) out.push_back(std::move(t));
  if (c.shared_expert_gate) {
    Add(out, p + "mlp.shared_expert_gate.weight", {1, h},
        TensorRole::kSharedGate, l);
  }
}

}  // namespace

int64_t TensorSpec::num_elements() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::vector<TensorSpec> RoutedExpertTensors(const ModelConfig& c, int64_t l,
                                            int64_t e) {
  std::vector<TensorSpec> out;
  if (!c.IsMoeLayer(l) || e < 0 || e >= c.num_experts) return out;
  const int64_t h = c.hidden_size;
  const int64_t i = c.moe_intermediate_size;
  if (c.arch == Architecture::kMixtral) {
    const std::string p =
        absl::StrCat(LayerPrefix(l), "block_sparse_moe.experts.", e, ".");
    Add(out, p + "w1.weight", {i, h}, TensorRole::kRoutedExpert, l, e);
    Add(out, p + "w3.weight", {i, h}, TensorRole::kRoutedExpert, l, e);
    Add(out, p + "w2.weight", {h, i}, TensorRole::kRoutedExpert, l, e);
    return out;
  }
  AddSwiglu(out, absl::StrCat(LayerPrefix(l), "mlp.experts.", e, "."), h, i,
            TensorRole::kRoutedExpert, l, e);
  return out;
}

std::vector<TensorSpec> SharedExpertTensors(const ModelConfig& c, int64_t l) {
  std::vector<TensorSpec> out;
  if (!c.IsMoeLayer(l) || c.shared_expert_intermediate_size == 0) return out;
  const char* name = c.arch == Architecture::kQwen2Moe ? "mlp.shared_expert."
                                                        : "mlp.shared_experts.";
  AddSwiglu(out, LayerPrefix(l) + name, c.hidden_size,
            c.shared_expert_intermediate_size, TensorRole::kSharedExpert, l);
  return out;
}

std::vector<TensorSpec> ExpectedTensors(const ModelConfig& c) {
  std::vector<TensorSpec> out;
  const int64_t h = c.hidden_size;
  Add(out, "model.embed_tokens.weight", {c.vocab_size, h},
      TensorRole::kEmbedding, -1);
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const std::string p = LayerPrefix(l);
    Add(out, p + "input_layernorm.weight", {h}, TensorRole::kNorm, l);
    AddAttention(out, c, l);
    Add(out, p + "post_attention_layernorm.weight", {h}, TensorRole::kNorm, l);
    if (c.IsMoeLayer(l)) {
      AddMoe(out, c, l);
    } else {
      AddSwiglu(out, p + "mlp.", h, c.intermediate_size,
                TensorRole::kProjection, l);
    }
  }
  Add(out, "model.norm.weight", {h}, TensorRole::kNorm, -1);
  if (!c.tie_word_embeddings) {
    Add(out, "lm_head.weight", {c.vocab_size, h}, TensorRole::kLmHead, -1);
  }
  return out;
}

int64_t TotalParameters(const ModelConfig& c) {
  int64_t n = 0;
  for (const TensorSpec& t : ExpectedTensors(c)) n += t.num_elements();
  return n;
}

int64_t ActiveParameters(const ModelConfig& c) {
  int64_t n = TotalParameters(c);
  for (int64_t l : c.MoeLayers()) {
    int64_t per_expert = 0;
    for (const TensorSpec& t : RoutedExpertTensors(c, l, 0)) {
      per_expert += t.num_elements();
    }
    n -= per_expert * (c.num_experts - c.num_experts_per_tok);
  }
  return n;
}

absl::StatusOr<std::vector<std::string>> ValidateCheckpointTensors(
    const ModelConfig& config, const checkpoint::Checkpoint& checkpoint) {
  constexpr size_t kMaxListed = 8;
  std::vector<std::string> problems;
  size_t num_problems = 0;
  std::set<std::string> expected;
  for (const TensorSpec& t : ExpectedTensors(config)) {
    expected.insert(t.name);
    checkpoint::TensorView v = checkpoint.Find(t.name);
    std::string problem;
    if (v.info == nullptr) {
      problem = absl::StrCat("missing tensor ", t.name, " [",
                             absl::StrJoin(t.shape, ", "), "]");
    } else if (v.info->shape != t.shape) {
      problem = absl::StrCat("tensor ", t.name, " has shape [",
                             absl::StrJoin(v.info->shape, ", "),
                             "], the config needs [",
                             absl::StrJoin(t.shape, ", "), "]");
    }
    if (!problem.empty()) {
      if (problems.size() < kMaxListed) problems.push_back(std::move(problem));
      ++num_problems;
    }
  }
  if (num_problems > 0) {
    std::string more =
        num_problems > problems.size()
            ? absl::StrCat("; and ", num_problems - problems.size(), " more")
            : "";
    return absl::DataLossError(absl::StrCat(
        "checkpoint ", checkpoint.dir().string(), " does not match its ",
        "config.json: ", absl::StrJoin(problems, "; "), more));
  }
  std::vector<std::string> unexpected;
  for (const std::string& name : checkpoint.TensorNames()) {
    if (expected.count(name) == 0) unexpected.push_back(name);
  }
  return unexpected;
}

}  // namespace expertserve::engine
