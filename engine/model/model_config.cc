#include "engine/model/model_config.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <fstream>
#include <limits>
#include <set>
#include <span>
#include <sstream>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"

namespace expertserve::engine {
namespace {

using Json = nlohmann::json;

// Debian's Abseil is built without std::string_view aliasing, so its
// string_view is a distinct type: convert explicitly.
absl::string_view Sv(std::string_view s) { return {s.data(), s.size()}; }

struct ArchEntry {
  Architecture arch;
  std::string_view model_type;
  std::string_view class_name;
};

constexpr std::array<ArchEntry, 8> kArchs = {{
    {Architecture::kLlama, "llama", "LlamaForCausalLM"},
    {Architecture::kQwen2, "qwen2", "Qwen2ForCausalLM"},
    {Architecture::kQwen3, "qwen3", "Qwen3ForCausalLM"},
    {Architecture::kMixtral, "mixtral", "MixtralForCausalLM"},
    {Architecture::kQwen2Moe, "qwen2_moe", "Qwen2MoeForCausalLM"},
    {Architecture::kQwen3Moe, "qwen3_moe", "Qwen3MoeForCausalLM"},
    {Architecture::kDeepseekV2, "deepseek_v2", "DeepseekV2ForCausalLM"},
    {Architecture::kDeepseekV3, "deepseek_v3", "DeepseekV3ForCausalLM"},
}};

// Fields that cannot change inference numerics: training-only knobs
// (initializer_range, aux losses, dropout that is zero at inference, expert
// parallel size, multi-token-prediction layers that HF inference drops) and
// bookkeeping. Accepted and ignored for every architecture.
constexpr std::array<std::string_view, 30> kIgnoredFields = {
    "architectures",       "auto_map",
    "transformers_version", "_name_or_path",
    "initializer_range",   "use_cache",
    "attention_dropout",   "pretraining_tp",
    "output_router_logits", "router_aux_loss_coef",
    "router_jitter_noise", "aux_loss_alpha",
    "seq_aux",             "ep_size",
    "num_nextn_predict_layers", "return_dict",
    "output_attentions",   "output_hidden_states",
    "torchscript",         "use_bfloat16",
    "is_encoder_decoder",  "tokenizer_class",
    "id2label",            "label2id",
    "max_length",          "min_length",
    "do_sample",           "temperature",
    "top_p",               "top_k",
};

// Reads fields out of one JSON object and remembers which it consumed, so
// that whatever is left over can be rejected by name. Thread-compatible.
class FieldReader {
 public:
  FieldReader(const Json& obj, std::string prefix)
      : obj_(obj), prefix_(std::move(prefix)) {}

  bool Has(std::string_view key) const {
    return obj_.contains(std::string(key));
  }
  // Present and not null.
  bool HasValue(std::string_view key) const {
    auto it = obj_.find(std::string(key));
    return it != obj_.end() && !it->is_null();
  }
  const Json* Get(std::string_view key) {
    used_.insert(std::string(key));
    auto it = obj_.find(std::string(key));
    if (it == obj_.end()) return nullptr;
    return &*it;
  }
  void MarkUsed(std::string_view key) { used_.insert(std::string(key)); }
  std::string Name(std::string_view key) const {
    return absl::StrCat(prefix_, Sv(key));
  }

  absl::Status TypeError(std::string_view key, std::string_view expected,
                         const Json& value) const {
    return absl::InvalidArgumentError(
        absl::StrCat("config.json field '", Name(key), "' must be ", Sv(expected),
                     ", got ", value.dump()));
  }

  // Integer field; nullopt when absent or null.
  absl::StatusOr<std::optional<int64_t>> OptInt(std::string_view key) {
    const Json* v = Get(key);
    if (v == nullptr || v->is_null()) return std::optional<int64_t>();
    if (v->is_number_integer()) {
      if (v->is_number_unsigned() &&
          v->get<uint64_t>() >
              static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return TypeError(key, "an integer in int64 range", *v);
      }
      return std::optional<int64_t>(v->get<int64_t>());
    }
    return TypeError(key, "an integer", *v);
  }
  absl::StatusOr<int64_t> Int(std::string_view key, int64_t fallback) {
    ES_ASSIGN_OR_RETURN(std::optional<int64_t> v, OptInt(key));
    return v.value_or(fallback);
  }
  absl::StatusOr<int64_t> RequiredInt(std::string_view key) {
    ES_ASSIGN_OR_RETURN(std::optional<int64_t> v, OptInt(key));
    if (!v.has_value()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "config.json is missing required field '", Name(key), "'"));
    }
    return *v;
  }
  absl::StatusOr<std::optional<double>> OptDouble(std::string_view key) {
    const Json* v = Get(key);
    if (v == nullptr || v->is_null()) return std::optional<double>();
    if (!v->is_number()) return TypeError(key, "a number", *v);
    double d = v->get<double>();
    if (!std::isfinite(d)) return TypeError(key, "a finite number", *v);
    return std::optional<double>(d);
  }
  absl::StatusOr<double> Double(std::string_view key, double fallback) {
    ES_ASSIGN_OR_RETURN(std::optional<double> v, OptDouble(key));
    return v.value_or(fallback);
  }
  absl::StatusOr<bool> Bool(std::string_view key, bool fallback) {
    const Json* v = Get(key);
    if (v == nullptr || v->is_null()) return fallback;
    if (!v->is_boolean()) return TypeError(key, "true or false", *v);
    return v->get<bool>();
  }
  absl::StatusOr<std::optional<std::string>> OptString(std::string_view key) {
    const Json* v = Get(key);
    if (v == nullptr || v->is_null()) return std::optional<std::string>();
    if (!v->is_string()) return TypeError(key, "a string", *v);
    return std::optional<std::string>(v->get<std::string>());
  }

  // Every key not consumed and not in `ignored`.
  std::vector<std::string> Leftovers(
      std::span<const std::string_view> ignored) const {
    std::vector<std::string> out;
    for (auto it = obj_.begin(); it != obj_.end(); ++it) {
      if (used_.count(it.key()) > 0) continue;
      if (std::find(ignored.begin(), ignored.end(), it.key()) !=
          ignored.end()) {
        continue;
      }
      out.push_back(it.key());
    }
    return out;
  }

 private:
  const Json& obj_;
  std::string prefix_;
  std::set<std::string> used_;
};

// Far above any real model, low enough that shape products cannot overflow
// int64 and a hostile config cannot make the manifest enumerate billions of
// tensors.
constexpr int64_t kMaxDim = int64_t{1} << 20;
constexpr int64_t kMaxLayers = 4096;
constexpr int64_t kMaxExperts = 16384;

absl::Status Positive(std::string_view name, int64_t v) {
  const int64_t limit = name == "num_hidden_layers" ? kMaxLayers
                        : name == "num_experts"     ? kMaxExperts
                        : name == "max_position_embeddings" ||
                                name == "rope_scaling.original_max_position_embeddings"
                            ? int64_t{1} << 40
                            : kMaxDim;
  if (v > 0 && v <= limit) return absl::OkStatus();
  if (v > limit) {
    return absl::InvalidArgumentError(absl::StrCat(
        "config.json field '", Sv(name), "' is absurdly large (", v,
        " > ", limit, ")"));
  }
  return absl::InvalidArgumentError(
      absl::StrCat("config.json field '", Sv(name), "' must be > 0, got ", v));
}

absl::Status ParseRopeScaling(const Json& j, int64_t max_position_embeddings,
                              RopeScaling* out) {
  if (j.is_null()) return absl::OkStatus();
  if (!j.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "config.json field 'rope_scaling' must be an object or null, got ",
        j.dump()));
  }
  FieldReader r(j, "rope_scaling.");
  ES_ASSIGN_OR_RETURN(std::optional<std::string> type, r.OptString("rope_type"));
  ES_ASSIGN_OR_RETURN(std::optional<std::string> legacy, r.OptString("type"));
  if (type.has_value() && legacy.has_value() && *type != *legacy) {
    return absl::InvalidArgumentError(absl::StrCat(
        "config.json rope_scaling has both rope_type '", *type,
        "' and type '", *legacy, "'"));
  }
  if (!type.has_value()) type = legacy;
  if (!type.has_value()) {
    return absl::InvalidArgumentError(
        "config.json rope_scaling has neither 'rope_type' nor 'type'");
  }
  if (*type == "default") {
    out->type = RopeType::kDefault;
  } else if (*type == "linear") {
    out->type = RopeType::kLinear;
  } else if (*type == "llama3") {
    out->type = RopeType::kLlama3;
  } else if (*type == "yarn") {
    out->type = RopeType::kYarn;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "config.json rope_scaling type '", *type,
        "' is not supported (supported: default, linear, llama3, yarn)"));
  }
  if (out->type != RopeType::kDefault) {
    ES_ASSIGN_OR_RETURN(std::optional<double> factor, r.OptDouble("factor"));
    if (!factor.has_value()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "config.json rope_scaling (", *type, ") is missing 'factor'"));
    }
    if (*factor <= 0 || (out->type != RopeType::kLinear && *factor < 1.0)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "config.json rope_scaling.factor must be ",
          out->type == RopeType::kLinear ? "> 0" : ">= 1", ", got ", *factor));
    }
    out->factor = *factor;
  }
  if (out->type == RopeType::kLlama3 || out->type == RopeType::kYarn) {
    ES_ASSIGN_OR_RETURN(out->original_max_position_embeddings,
                        r.OptInt("original_max_position_embeddings"));
    if (out->original_max_position_embeddings.has_value()) {
      ES_RETURN_IF_ERROR(
          Positive("rope_scaling.original_max_position_embeddings",
                   *out->original_max_position_embeddings));
    }
  }
  if (out->type == RopeType::kLlama3) {
    if (!out->original_max_position_embeddings.has_value() ||
        !r.HasValue("low_freq_factor") || !r.HasValue("high_freq_factor")) {
      return absl::InvalidArgumentError(
          "config.json rope_scaling (llama3) needs factor, low_freq_factor, "
          "high_freq_factor and original_max_position_embeddings");
    }
    ES_ASSIGN_OR_RETURN(out->low_freq_factor, r.Double("low_freq_factor", 1));
    ES_ASSIGN_OR_RETURN(out->high_freq_factor,
                        r.Double("high_freq_factor", 4));
    if (out->low_freq_factor <= 0 ||
        out->high_freq_factor <= out->low_freq_factor) {
      return absl::InvalidArgumentError(absl::StrCat(
          "config.json rope_scaling needs 0 < low_freq_factor < "
          "high_freq_factor, got ",
          out->low_freq_factor, " and ", out->high_freq_factor));
    }
  }
  if (out->type == RopeType::kYarn) {
    ES_ASSIGN_OR_RETURN(out->beta_fast, r.Double("beta_fast", 32));
    ES_ASSIGN_OR_RETURN(out->beta_slow, r.Double("beta_slow", 1));
    ES_ASSIGN_OR_RETURN(out->mscale, r.OptDouble("mscale"));
    ES_ASSIGN_OR_RETURN(out->mscale_all_dim, r.OptDouble("mscale_all_dim"));
    ES_ASSIGN_OR_RETURN(out->attention_factor,
                        r.OptDouble("attention_factor"));
    ES_ASSIGN_OR_RETURN(out->truncate, r.Bool("truncate", true));
    if (out->beta_fast <= out->beta_slow) {
      return absl::InvalidArgumentError(absl::StrCat(
          "config.json rope_scaling needs beta_fast > beta_slow, got ",
          out->beta_fast, " and ", out->beta_slow));
    }
    if (!out->original_max_position_embeddings.has_value()) {
      out->original_max_position_embeddings = max_position_embeddings;
    }
  }
  std::vector<std::string> left = r.Leftovers({});
  if (!left.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "config.json rope_scaling (", *type, ") has unsupported field(s): ",
        absl::StrJoin(left, ", ")));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<int64_t>> ParseEos(const Json* v) {
  std::vector<int64_t> out;
  if (v == nullptr || v->is_null()) return out;
  if (v->is_number_integer()) {
    out.push_back(v->get<int64_t>());
    return out;
  }
  if (v->is_array()) {
    for (const Json& e : *v) {
      if (!e.is_number_integer()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "config.json field 'eos_token_id' must be an integer or a list "
            "of integers, got ",
            v->dump()));
      }
      out.push_back(e.get<int64_t>());
    }
    return out;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "config.json field 'eos_token_id' must be an integer or a list of "
      "integers, got ",
      v->dump()));
}

bool IsQwen(Architecture a) {
  return a == Architecture::kQwen2 || a == Architecture::kQwen3 ||
         a == Architecture::kQwen2Moe || a == Architecture::kQwen3Moe;
}
bool IsDeepseek(Architecture a) {
  return a == Architecture::kDeepseekV2 || a == Architecture::kDeepseekV3;
}

// Sliding-window attention fields of the Qwen family and Mixtral. Windowed
// attention is not implemented, so only configs that switch it off pass.
absl::Status ParseSlidingWindow(Architecture arch, FieldReader& r) {
  if (arch == Architecture::kMixtral) {
    // MixtralConfig has no switch: a non-null sliding_window is applied.
    const Json* w = r.Get("sliding_window");
    if (w != nullptr && !w->is_null()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "config.json field 'sliding_window' is ", w->dump(),
          ": sliding-window attention is not supported (only null)"));
    }
    return absl::OkStatus();
  }
  if (!IsQwen(arch)) return absl::OkStatus();
  ES_ASSIGN_OR_RETURN(bool use, r.Bool("use_sliding_window", false));
  if (use) {
    return absl::InvalidArgumentError(
        "config.json field 'use_sliding_window' is true: sliding-window "
        "attention is not supported");
  }
  // Only consulted when use_sliding_window is true.
  const Json* w = r.Get("sliding_window");
  if (w != nullptr && !w->is_null() && !w->is_number_integer()) {
    return r.TypeError("sliding_window", "an integer or null", *w);
  }
  ES_ASSIGN_OR_RETURN(std::optional<int64_t> mwl,
                      r.OptInt("max_window_layers"));
  (void)mwl;
  const Json* types = r.Get("layer_types");
  if (types != nullptr && !types->is_null()) {
    if (!types->is_array()) {
      return r.TypeError("layer_types", "a list", *types);
    }
    for (const Json& t : *types) {
      if (!t.is_string() || t.get<std::string>() != "full_attention") {
        return absl::InvalidArgumentError(absl::StrCat(
            "config.json field 'layer_types' contains ", t.dump(),
            ": only \"full_attention\" layers are supported"));
      }
    }
  }
  return absl::OkStatus();
}

absl::Status ParseMoe(FieldReader& r, ModelConfig& c) {
  const Architecture a = c.arch;
  if (a == Architecture::kMixtral) {
    ES_ASSIGN_OR_RETURN(c.num_experts, r.RequiredInt("num_local_experts"));
    ES_ASSIGN_OR_RETURN(c.num_experts_per_tok,
                        r.RequiredInt("num_experts_per_tok"));
    c.moe_intermediate_size = c.intermediate_size;
    c.norm_topk_prob = true;  // MixtralSparseMoeBlock always renormalises
  } else if (a == Architecture::kQwen2Moe || a == Architecture::kQwen3Moe) {
    ES_ASSIGN_OR_RETURN(c.num_experts, r.RequiredInt("num_experts"));
    ES_ASSIGN_OR_RETURN(c.num_experts_per_tok,
                        r.RequiredInt("num_experts_per_tok"));
    ES_ASSIGN_OR_RETURN(c.moe_intermediate_size,
                        r.RequiredInt("moe_intermediate_size"));
    ES_ASSIGN_OR_RETURN(c.norm_topk_prob, r.Bool("norm_topk_prob", false));
    ES_ASSIGN_OR_RETURN(c.decoder_sparse_step,
                        r.Int("decoder_sparse_step", 1));
    ES_RETURN_IF_ERROR(Positive("decoder_sparse_step", c.decoder_sparse_step));
    const Json* mlp_only = r.Get("mlp_only_layers");
    if (mlp_only != nullptr && !mlp_only->is_null()) {
      if (!mlp_only->is_array()) {
        return r.TypeError("mlp_only_layers", "a list of layer indices",
                           *mlp_only);
      }
      for (const Json& e : *mlp_only) {
        if (!e.is_number_integer() || e.get<int64_t>() < 0 ||
            e.get<int64_t>() >= c.num_hidden_layers) {
          return absl::InvalidArgumentError(absl::StrCat(
              "config.json field 'mlp_only_layers' entry ", e.dump(),
              " is not a layer index in [0, ", c.num_hidden_layers, ")"));
        }
        c.mlp_only_layers.push_back(e.get<int64_t>());
      }
    }
    if (a == Architecture::kQwen2Moe) {
      ES_ASSIGN_OR_RETURN(c.shared_expert_intermediate_size,
                          r.RequiredInt("shared_expert_intermediate_size"));
      ES_RETURN_IF_ERROR(Positive("shared_expert_intermediate_size",
                                  c.shared_expert_intermediate_size));
      c.shared_expert_gate = true;
    }
  } else if (IsDeepseek(a)) {
    // DeepSeek's code treats n_routed_experts null as a dense model.
    ES_ASSIGN_OR_RETURN(std::optional<int64_t> routed,
                        r.OptInt("n_routed_experts"));
    c.num_experts = routed.value_or(0);
    if (c.num_experts == 0) {
      // Consume the MoE fields a dense DeepSeek config may still carry.
      for (std::string_view k :
           {"num_experts_per_tok", "moe_intermediate_size", "n_shared_experts",
            "norm_topk_prob", "first_k_dense_replace", "moe_layer_freq",
            "routed_scaling_factor", "topk_method", "n_group", "topk_group",
            "scoring_func"}) {
        r.MarkUsed(k);
      }
      return absl::OkStatus();
    }
    ES_ASSIGN_OR_RETURN(c.num_experts_per_tok,
                        r.RequiredInt("num_experts_per_tok"));
    ES_ASSIGN_OR_RETURN(c.moe_intermediate_size,
                        r.RequiredInt("moe_intermediate_size"));
    ES_ASSIGN_OR_RETURN(c.n_shared_experts, r.Int("n_shared_experts", 0));
    if (c.n_shared_experts < 0 || c.n_shared_experts > kMaxExperts) {
      return absl::InvalidArgumentError(absl::StrCat(
          "config.json field 'n_shared_experts' must be in [0, 16384], got ",
          c.n_shared_experts));
    }
    c.shared_expert_intermediate_size =
        c.moe_intermediate_size * c.n_shared_experts;
    ES_ASSIGN_OR_RETURN(c.norm_topk_prob, r.Bool("norm_topk_prob", false));
    ES_ASSIGN_OR_RETURN(c.first_k_dense_replace,
                        r.Int("first_k_dense_replace", 0));
    if (c.first_k_dense_replace < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "config.json field 'first_k_dense_replace' must be >= 0, got ",
          c.first_k_dense_replace));
    }
    ES_ASSIGN_OR_RETURN(c.moe_layer_freq, r.Int("moe_layer_freq", 1));
    ES_RETURN_IF_ERROR(Positive("moe_layer_freq", c.moe_layer_freq));
    ES_ASSIGN_OR_RETURN(c.routed_scaling_factor,
                        r.Double("routed_scaling_factor", 1.0));
    if (c.routed_scaling_factor <= 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "config.json field 'routed_scaling_factor' must be > 0, got ",
          c.routed_scaling_factor));
    }
    ES_ASSIGN_OR_RETURN(std::optional<std::string> topk,
                        r.OptString("topk_method"));
    // Defaults follow DeepSeek's configuration_deepseek.py per version.
    std::string method = topk.value_or(
        a == Architecture::kDeepseekV3 ? "noaux_tc" : "greedy");
    if (method == "greedy") {
      c.topk_method = TopkMethod::kGreedy;
    } else if (method == "group_limited_greedy") {
      c.topk_method = TopkMethod::kGroupLimitedGreedy;
    } else if (method == "noaux_tc") {
      c.topk_method = TopkMethod::kNoauxTc;
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "config.json field 'topk_method' is '", method,
          "' (supported: greedy, group_limited_greedy, noaux_tc)"));
    }
    ES_ASSIGN_OR_RETURN(std::optional<std::string> scoring,
                        r.OptString("scoring_func"));
    std::string func = scoring.value_or(
        a == Architecture::kDeepseekV3 ? "sigmoid" : "softmax");
    if (func == "softmax") {
      c.scoring_func = ScoringFunc::kSoftmax;
    } else if (func == "sigmoid") {
      c.scoring_func = ScoringFunc::kSigmoid;
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "config.json field 'scoring_func' is '", func,
          "' (supported: softmax, sigmoid)"));
    }
    // DeepSeek-V2's MoEGate implements softmax with greedy or
    // group_limited_greedy; V3's implements only noaux_tc.
    if (a == Architecture::kDeepseekV2) {
      if (c.topk_method == TopkMethod::kNoauxTc) {
        return absl::InvalidArgumentError(
            "config.json: topk_method 'noaux_tc' is a deepseek_v3 gate; "
            "deepseek_v2 supports greedy and group_limited_greedy");
      }
      if (c.scoring_func != ScoringFunc::kSoftmax) {
        return absl::InvalidArgumentError(
            "config.json: scoring_func 'sigmoid' is not implemented by the "
            "deepseek_v2 gate (only softmax)");
      }
    } else if (c.topk_method != TopkMethod::kNoauxTc) {
      return absl::InvalidArgumentError(absl::StrCat(
          "config.json: deepseek_v3 supports only topk_method 'noaux_tc', "
          "got '",
          method, "'"));
    }
    ES_ASSIGN_OR_RETURN(std::optional<int64_t> n_group, r.OptInt("n_group"));
    ES_ASSIGN_OR_RETURN(std::optional<int64_t> topk_group,
                        r.OptInt("topk_group"));
    c.n_group = n_group.value_or(1);
    c.topk_group = topk_group.value_or(1);
    ES_RETURN_IF_ERROR(Positive("n_group", c.n_group));
    ES_RETURN_IF_ERROR(Positive("topk_group", c.topk_group));
    if (c.topk_method != TopkMethod::kGreedy) {
      if (c.num_experts % c.n_group != 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            "config.json: n_routed_experts (", c.num_experts,
            ") is not divisible by n_group (", c.n_group, ")"));
      }
      if (c.topk_group > c.n_group) {
        return absl::InvalidArgumentError(absl::StrCat(
            "config.json: topk_group (", c.topk_group, ") exceeds n_group (",
            c.n_group, ")"));
      }
      if (c.num_experts_per_tok > c.topk_group * (c.num_experts / c.n_group)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "config.json: num_experts_per_tok (", c.num_experts_per_tok,
            ") exceeds the experts in topk_group groups (",
            c.topk_group * (c.num_experts / c.n_group), ")"));
      }
      if (c.topk_method == TopkMethod::kNoauxTc &&
          c.num_experts / c.n_group < 2) {
        return absl::InvalidArgumentError(
            "config.json: noaux_tc scores each group by its top-2 experts; "
            "needs >= 2 experts per group");
      }
    }
  }
  ES_RETURN_IF_ERROR(Positive("num_experts", c.num_experts));
  ES_RETURN_IF_ERROR(Positive("num_experts_per_tok", c.num_experts_per_tok));
  ES_RETURN_IF_ERROR(Positive("moe_intermediate_size", c.moe_intermediate_size));
  if (c.num_experts_per_tok > c.num_experts) {
    return absl::InvalidArgumentError(absl::StrCat(
        "config.json: num_experts_per_tok (", c.num_experts_per_tok,
        ") exceeds the number of experts (", c.num_experts, ")"));
  }
  return absl::OkStatus();
}

absl::Status ParseMla(FieldReader& r, ModelConfig& c) {
  c.mla = true;
  ES_ASSIGN_OR_RETURN(c.q_lora_rank, r.OptInt("q_lora_rank"));
  if (c.q_lora_rank.has_value()) {
    ES_RETURN_IF_ERROR(Positive("q_lora_rank", *c.q_lora_rank));
  }
  ES_ASSIGN_OR_RETURN(c.kv_lora_rank, r.RequiredInt("kv_lora_rank"));
  ES_ASSIGN_OR_RETURN(c.qk_nope_head_dim, r.RequiredInt("qk_nope_head_dim"));
  ES_ASSIGN_OR_RETURN(c.qk_rope_head_dim, r.RequiredInt("qk_rope_head_dim"));
  ES_ASSIGN_OR_RETURN(c.v_head_dim, r.RequiredInt("v_head_dim"));
  ES_RETURN_IF_ERROR(Positive("kv_lora_rank", c.kv_lora_rank));
  ES_RETURN_IF_ERROR(Positive("qk_nope_head_dim", c.qk_nope_head_dim));
  ES_RETURN_IF_ERROR(Positive("qk_rope_head_dim", c.qk_rope_head_dim));
  ES_RETURN_IF_ERROR(Positive("v_head_dim", c.v_head_dim));
  if (c.qk_rope_head_dim % 2 != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "config.json field 'qk_rope_head_dim' must be even, got ",
        c.qk_rope_head_dim));
  }
  ES_ASSIGN_OR_RETURN(c.rope_interleave, r.Bool("rope_interleave", true));
  if (!c.rope_interleave) {
    return absl::InvalidArgumentError(
        "config.json field 'rope_interleave' is false: only DeepSeek's "
        "interleaved rope layout is supported");
  }
  // transformers' DeepseekV3Config stores head_dim = qk_rope_head_dim.
  ES_ASSIGN_OR_RETURN(std::optional<int64_t> head_dim, r.OptInt("head_dim"));
  if (head_dim.has_value() && *head_dim != c.qk_rope_head_dim) {
    return absl::InvalidArgumentError(absl::StrCat(
        "config.json field 'head_dim' (", *head_dim,
        ") must equal qk_rope_head_dim (", c.qk_rope_head_dim,
        ") for MLA models"));
  }
  // Attention layout of MLA does not use these; accept them as written.
  ES_ASSIGN_OR_RETURN(bool attention_bias, r.Bool("attention_bias", false));
  if (attention_bias) {
    return absl::InvalidArgumentError(
        "config.json field 'attention_bias' is true: MLA projection biases "
        "are not supported");
  }
  return absl::OkStatus();
}

}  // namespace

std::string_view ArchitectureName(Architecture arch) {
  for (const ArchEntry& e : kArchs) {
    if (e.arch == arch) return e.model_type;
  }
  return "unknown";
}

std::string_view ArchitectureClassName(Architecture arch) {
  for (const ArchEntry& e : kArchs) {
    if (e.arch == arch) return e.class_name;
  }
  return "unknown";
}

std::string SupportedModelTypes() {
  std::vector<std::string> names;
  for (const ArchEntry& e : kArchs) names.emplace_back(e.model_type);
  return absl::StrJoin(names, ", ");
}

absl::StatusOr<Architecture> ParseArchitecture(std::string_view model_type) {
  for (const ArchEntry& e : kArchs) {
    if (e.model_type == model_type) return e.arch;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unsupported model_type '", Sv(model_type),
                   "' (supported: ", SupportedModelTypes(), ")"));
}

std::string_view RopeTypeName(RopeType type) {
  switch (type) {
    case RopeType::kDefault: return "default";
    case RopeType::kLinear: return "linear";
    case RopeType::kLlama3: return "llama3";
    case RopeType::kYarn: return "yarn";
  }
  return "unknown";
}

std::string_view TopkMethodName(TopkMethod method) {
  switch (method) {
    case TopkMethod::kGreedy: return "greedy";
    case TopkMethod::kGroupLimitedGreedy: return "group_limited_greedy";
    case TopkMethod::kNoauxTc: return "noaux_tc";
  }
  return "unknown";
}

std::string_view ScoringFuncName(ScoringFunc func) {
  return func == ScoringFunc::kSoftmax ? "softmax" : "sigmoid";
}

bool ModelConfig::IsMoeLayer(int64_t layer) const {
  if (!is_moe() || layer < 0 || layer >= num_hidden_layers) return false;
  switch (arch) {
    case Architecture::kMixtral:
      return true;
    case Architecture::kQwen2Moe:
    case Architecture::kQwen3Moe:
      if (std::find(mlp_only_layers.begin(), mlp_only_layers.end(), layer) !=
          mlp_only_layers.end()) {
        return false;
      }
      return (layer + 1) % decoder_sparse_step == 0;
    case Architecture::kDeepseekV2:
    case Architecture::kDeepseekV3:
      return layer >= first_k_dense_replace && layer % moe_layer_freq == 0;
    default:
      return false;
  }
}

std::vector<int64_t> ModelConfig::MoeLayers() const {
  std::vector<int64_t> out;
  for (int64_t l = 0; l < num_hidden_layers; ++l) {
    if (IsMoeLayer(l)) out.push_back(l);
  }
  return out;
}

int64_t ModelConfig::QkHeadDim() const {
  return mla ? qk_nope_head_dim + qk_rope_head_dim : head_dim;
}

int64_t ModelConfig::VHeadDim() const { return mla ? v_head_dim : head_dim; }

absl::StatusOr<ModelConfig> ParseModelConfig(std::string_view json_text) {
  Json j = Json::parse(json_text.begin(), json_text.end(), nullptr,
                       /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    return absl::InvalidArgumentError("config.json is not valid JSON");
  }
  if (!j.is_object()) {
    return absl::InvalidArgumentError("config.json must be a JSON object");
  }
  FieldReader r(j, "");
  ModelConfig c;
  ES_ASSIGN_OR_RETURN(std::optional<std::string> model_type,
                      r.OptString("model_type"));
  if (!model_type.has_value()) {
    return absl::InvalidArgumentError(
        absl::StrCat("config.json has no 'model_type' (supported: ",
                     SupportedModelTypes(), ")"));
  }
  ES_ASSIGN_OR_RETURN(c.arch, ParseArchitecture(*model_type));
  const Architecture a = c.arch;

  if (r.Has("quantization_config")) {
    return absl::InvalidArgumentError(
        "config.json has 'quantization_config': quantized checkpoints are not "
        "supported (F32, F16 and BF16 weights only)");
  }

  ES_ASSIGN_OR_RETURN(c.vocab_size, r.RequiredInt("vocab_size"));
  ES_ASSIGN_OR_RETURN(c.hidden_size, r.RequiredInt("hidden_size"));
  ES_ASSIGN_OR_RETURN(c.intermediate_size, r.RequiredInt("intermediate_size"));
  ES_ASSIGN_OR_RETURN(c.num_hidden_layers, r.RequiredInt("num_hidden_layers"));
  ES_ASSIGN_OR_RETURN(c.num_attention_heads,
                      r.RequiredInt("num_attention_heads"));
  ES_ASSIGN_OR_RETURN(c.num_key_value_heads,
                      r.Int("num_key_value_heads", c.num_attention_heads));
  ES_RETURN_IF_ERROR(Positive("vocab_size", c.vocab_size));
  ES_RETURN_IF_ERROR(Positive("hidden_size", c.hidden_size));
  ES_RETURN_IF_ERROR(Positive("intermediate_size", c.intermediate_size));
  ES_RETURN_IF_ERROR(Positive("num_hidden_layers", c.num_hidden_layers));
  ES_RETURN_IF_ERROR(Positive("num_attention_heads", c.num_attention_heads));
  ES_RETURN_IF_ERROR(Positive("num_key_value_heads", c.num_key_value_heads));
  if (c.num_attention_heads % c.num_key_value_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "config.json: num_attention_heads (", c.num_attention_heads,
        ") is not a multiple of num_key_value_heads (", c.num_key_value_heads,
        ")"));
  }

  ES_ASSIGN_OR_RETURN(std::optional<std::string> act, r.OptString("hidden_act"));
  if (act.has_value() && *act != "silu") {
    return absl::InvalidArgumentError(
        absl::StrCat("config.json field 'hidden_act' is '", *act,
                     "': only 'silu' is supported"));
  }

  const bool mixtral_like = a == Architecture::kMixtral;
  const bool qwen3_like =
      a == Architecture::kQwen3 || a == Architecture::kQwen3Moe;
  ES_ASSIGN_OR_RETURN(c.rms_norm_eps,
                      r.Double("rms_norm_eps", mixtral_like ? 1e-5 : 1e-6));
  if (c.rms_norm_eps <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("config.json field 'rms_norm_eps' must be > 0, got ",
                     c.rms_norm_eps));
  }
  ES_ASSIGN_OR_RETURN(c.rope_theta,
                      r.Double("rope_theta", mixtral_like ? 1e6 : 10000.0));
  if (c.rope_theta <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "config.json field 'rope_theta' must be > 0, got ", c.rope_theta));
  }
  ES_ASSIGN_OR_RETURN(c.max_position_embeddings,
                      r.Int("max_position_embeddings", 2048));
  ES_RETURN_IF_ERROR(
      Positive("max_position_embeddings", c.max_position_embeddings));
  if (const Json* rs = r.Get("rope_scaling"); rs != nullptr) {
    ES_RETURN_IF_ERROR(
        ParseRopeScaling(*rs, c.max_position_embeddings, &c.rope_scaling));
  }
  ES_ASSIGN_OR_RETURN(c.tie_word_embeddings,
                      r.Bool("tie_word_embeddings", false));

  // Token ids and dtype.
  ES_ASSIGN_OR_RETURN(c.bos_token_id, r.OptInt("bos_token_id"));
  ES_ASSIGN_OR_RETURN(c.pad_token_id, r.OptInt("pad_token_id"));
  ES_ASSIGN_OR_RETURN(c.eos_token_ids, ParseEos(r.Get("eos_token_id")));
  auto check_id = [&](std::string_view name, int64_t id) -> absl::Status {
    if (id >= 0 && id < c.vocab_size) return absl::OkStatus();
    return absl::InvalidArgumentError(
        absl::StrCat("config.json field '", Sv(name), "' (", id,
                     ") is outside the vocabulary [0, ", c.vocab_size, ")"));
  };
  if (c.bos_token_id) ES_RETURN_IF_ERROR(check_id("bos_token_id", *c.bos_token_id));
  if (c.pad_token_id) ES_RETURN_IF_ERROR(check_id("pad_token_id", *c.pad_token_id));
  for (int64_t id : c.eos_token_ids) ES_RETURN_IF_ERROR(check_id("eos_token_id", id));
  {
    ES_ASSIGN_OR_RETURN(std::optional<std::string> td,
                        r.OptString("torch_dtype"));
    ES_ASSIGN_OR_RETURN(std::optional<std::string> d, r.OptString("dtype"));
    c.torch_dtype = td.value_or(d.value_or(""));
    if (!c.torch_dtype.empty() && c.torch_dtype != "float32" &&
        c.torch_dtype != "float16" && c.torch_dtype != "bfloat16") {
      return absl::InvalidArgumentError(
          absl::StrCat("config.json field 'torch_dtype' is '", c.torch_dtype,
                       "' (supported: float32, float16, bfloat16)"));
    }
  }

  // Attention layout.
  if (IsDeepseek(a)) {
    ES_RETURN_IF_ERROR(ParseMla(r, c));
    ES_ASSIGN_OR_RETURN(bool mlp_bias, r.Bool("mlp_bias", false));
    if (mlp_bias) {
      return absl::InvalidArgumentError(
          "config.json field 'mlp_bias' is true: MLP biases are not supported");
    }
  } else {
    ES_ASSIGN_OR_RETURN(std::optional<int64_t> head_dim, r.OptInt("head_dim"));
    if (head_dim.has_value()) {
      c.head_dim = *head_dim;
    } else if (qwen3_like) {
      c.head_dim = 128;  // Qwen3Config's default
    } else {
      if (c.hidden_size % c.num_attention_heads != 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            "config.json: hidden_size (", c.hidden_size,
            ") is not divisible by num_attention_heads (",
            c.num_attention_heads, ") and no head_dim is given"));
      }
      c.head_dim = c.hidden_size / c.num_attention_heads;
    }
    ES_RETURN_IF_ERROR(Positive("head_dim", c.head_dim));
    if (c.head_dim % 2 != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "config.json: head_dim must be even for RoPE, got ", c.head_dim));
    }
    if (a == Architecture::kLlama || qwen3_like) {
      ES_ASSIGN_OR_RETURN(c.attention_bias, r.Bool("attention_bias", false));
    }
    if (a == Architecture::kLlama) {
      ES_ASSIGN_OR_RETURN(bool mlp_bias, r.Bool("mlp_bias", false));
      if (mlp_bias) {
        return absl::InvalidArgumentError(
            "config.json field 'mlp_bias' is true: MLP biases are not "
            "supported");
      }
    }
    c.qkv_bias = a == Architecture::kQwen2 || a == Architecture::kQwen2Moe;
    if (a == Architecture::kQwen2Moe) {
      // Recent transformers' Qwen2MoeConfig makes the q/k/v bias a field.
      ES_ASSIGN_OR_RETURN(c.qkv_bias, r.Bool("qkv_bias", true));
    }
    c.qk_norm = qwen3_like;
  }
  ES_RETURN_IF_ERROR(ParseSlidingWindow(a, r));

  if (a == Architecture::kMixtral || a == Architecture::kQwen2Moe ||
      a == Architecture::kQwen3Moe || IsDeepseek(a)) {
    ES_RETURN_IF_ERROR(ParseMoe(r, c));
  }

  std::vector<std::string> left = r.Leftovers(kIgnoredFields);
  if (!left.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "config.json has field(s) not supported for model_type '", *model_type,
        "' that may change the model's numerics: ", absl::StrJoin(left, ", ")));
  }
  return c;
}

absl::StatusOr<ModelConfig> LoadModelConfig(const std::filesystem::path& path) {
  std::filesystem::path file = path;
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) file = path / "config.json";
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(
        absl::StrCat("cannot open model config ", file.string()));
  }
  std::stringstream ss;
  ss << in.rdbuf();
  absl::StatusOr<ModelConfig> c = ParseModelConfig(ss.str());
  if (!c.ok()) {
    return absl::Status(c.status().code(),
                        absl::StrCat(file.string(), ": ", c.status().message()));
  }
  return c;
}

}  // namespace expertserve::engine
