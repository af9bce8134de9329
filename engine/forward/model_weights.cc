#include "engine/forward/model_weights.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <map>
#include <set>
#include <string>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "engine/model/weight_manifest.h"

namespace expertserve::engine {
namespace {

using kernels::WeightRef;

// Resolves manifest tensors by name once the checkpoint has been validated.
class TensorResolver {
 public:
  explicit TensorResolver(const checkpoint::Checkpoint& ckpt) : ckpt_(ckpt) {}

  // Missing or mis-shaped tensors (ValidateCheckpointTensors) and tensors the
  // config does not use are both errors: an extra tensor usually means the
  // config.json is not the checkpoint's own (e.g. biases it does not declare).
  absl::Status CheckAll(const ModelConfig& config) {
    ES_ASSIGN_OR_RETURN(std::vector<std::string> unexpected,
                        ValidateCheckpointTensors(config, ckpt_));
    std::vector<std::string> unused;
    for (const std::string& name : unexpected) {
      if (!Ignorable(config, name)) unused.push_back(name);
    }
    if (unused.empty()) return absl::OkStatus();
    const size_t shown = std::min<size_t>(unused.size(), 8);
    return absl::DataLossError(absl::StrCat(
        "checkpoint ", ckpt_.dir().string(), " has ", unused.size(),
        " tensor(s) its config.json does not use (is it the checkpoint's own "
        "config?): ",
        absl::StrJoin(unused.begin(), unused.begin() + shown, ", "),
        unused.size() > shown ? ", ..." : ""));
  }

  WeightRef Get(const std::string& name) const {
    const checkpoint::TensorView view = ckpt_.Find(name);
    if (view.info == nullptr) return WeightRef{};
    return WeightRef{view.data, ToKernelDType(view.info->dtype)};
  }
  std::vector<float> GetF32(const std::string& name) const {
    return checkpoint::TensorToF32(ckpt_.Find(name));
  }

 private:
  static bool Ignorable(const ModelConfig& config, const std::string& name) {
    // Old exports carry precomputed rotary tables; DeepSeek-V3 checkpoints
    // carry multi-token-prediction layers past num_hidden_layers.
    if (absl::EndsWith(name, "rotary_emb.inv_freq")) return true;
    if (config.arch == Architecture::kDeepseekV3 &&
        absl::StartsWith(name, "model.layers.")) {
      const int64_t layer = std::atoll(name.c_str() + 13);
      return layer >= config.num_hidden_layers;
    }
    return false;
  }

  const checkpoint::Checkpoint& ckpt_;
};

// Advisory MADV_DONTNEED on the whole pages inside `bytes`.
void DropPages(std::span<const std::byte> bytes) {
  const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const uintptr_t begin =
      (reinterpret_cast<uintptr_t>(bytes.data()) + page - 1) / page * page;
  const uintptr_t end =
      (reinterpret_cast<uintptr_t>(bytes.data()) + bytes.size()) / page * page;
  if (end > begin) {
    ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
  }
}

MlpWeights LoadMlp(const TensorResolver& r, const std::string& prefix,
                   int64_t intermediate) {
  return MlpWeights{r.Get(prefix + "gate_proj.weight"),
                    r.Get(prefix + "up_proj.weight"),
                    r.Get(prefix + "down_proj.weight"), intermediate};
}

absl::Status LoadAttention(const ModelConfig& c, const TensorResolver& r,
                           const std::string& p, AttentionWeights& a) {
  if (!c.mla) {
    a.q = r.Get(p + "q_proj.weight");
    a.k = r.Get(p + "k_proj.weight");
    a.v = r.Get(p + "v_proj.weight");
    a.o = r.Get(p + "o_proj.weight");
    a.q_bias = r.GetF32(p + "q_proj.bias");
    a.k_bias = r.GetF32(p + "k_proj.bias");
    a.v_bias = r.GetF32(p + "v_proj.bias");
    a.o_bias = r.GetF32(p + "o_proj.bias");
    a.q_norm = r.Get(p + "q_norm.weight");
    a.k_norm = r.Get(p + "k_norm.weight");
    return absl::OkStatus();
  }
  if (c.q_lora_rank) {
    a.q_a = r.Get(p + "q_a_proj.weight");
    a.q_a_norm = r.Get(p + "q_a_layernorm.weight");
    a.q_b = r.Get(p + "q_b_proj.weight");
  } else {
    a.q = r.Get(p + "q_proj.weight");
  }
  a.kv_a = r.Get(p + "kv_a_proj_with_mqa.weight");
  a.kv_a_norm = r.Get(p + "kv_a_layernorm.weight");
  a.kv_b = r.Get(p + "kv_b_proj.weight");
  a.o = r.Get(p + "o_proj.weight");
  // Absorb W_uk into the query: per head h, rows [h*(nope+v), h*(nope+v)+nope)
  // of kv_b_proj are W_uk_h [nope, rank]; keep its transpose [rank, nope].
  const int64_t nh = c.num_attention_heads, nope = c.qk_nope_head_dim,
                v = c.v_head_dim, rank = c.kv_lora_rank;
  // Byte-wise: the transpose keeps kv_b's dtype (and values) exactly.
  const size_t elem = kernels::DTypeSize(a.kv_b.dtype);
  const char* kv_b = static_cast<const char*>(a.kv_b.data);
  a.w_uk_t_dtype = a.kv_b.dtype;
  a.w_uk_t.resize(static_cast<size_t>(nh * rank * nope) * elem);
  for (int64_t h = 0; h < nh; ++h) {
    for (int64_t n = 0; n < nope; ++n) {
      const char* row = kv_b + static_cast<size_t>((h * (nope + v) + n) * rank) * elem;
      for (int64_t k = 0; k < rank; ++k) {
        std::memcpy(a.w_uk_t.data() + static_cast<size_t>((h * rank + k) * nope + n) * elem,
                    row + static_cast<size_t>(k) * elem, elem);
      }
    }
  }
  return absl::OkStatus();
}

absl::Status LoadMoe(const ModelConfig& c, const TensorResolver& r,
                     const checkpoint::Checkpoint& ckpt, int64_t l,
                     const WeightsOptions& options,
                     std::shared_ptr<memory::AddressSpaceInterface> backend,
                     MoeWeights& m) {
  const std::string p = absl::StrCat("model.layers.", l, ".");
  const bool mixtral = c.arch == Architecture::kMixtral;
  m.router = r.Get(p + (mixtral ? "block_sparse_moe.gate.weight"
                                 : "mlp.gate.weight"));
  if (c.topk_method == TopkMethod::kNoauxTc) {
    m.score_correction = r.GetF32(p + "mlp.gate.e_score_correction_bias");
  }
  // All routed experts of a layer share one dtype: the table has one stride.
  std::optional<checkpoint::DType> dtype;
  for (int64_t e = 0; e < c.num_experts; ++e) {
    for (const TensorSpec& spec : RoutedExpertTensors(c, l, e)) {
      const checkpoint::DType d = ckpt.Find(spec.name).info->dtype;
      if (dtype && *dtype != d) {
        return absl::DataLossError(absl::StrCat(
            "tensor ", spec.name, " is ", std::string(checkpoint::DTypeName(d)),
            " but other experts of layer ", l, " are ",
            std::string(checkpoint::DTypeName(*dtype)),
            ": a layer's routed experts must share one dtype"));
      }
      dtype = d;
    }
  }
  m.expert_dtype = ToKernelDType(*dtype);
  memory::ExpertTableLayout layout;
  layout.num_base_experts = static_cast<int>(c.num_experts);
  layout.num_adapter_slots = options.adapter_slots_per_layer;
  layout.intermediate = c.moe_intermediate_size;
  layout.hidden = c.hidden_size;
  layout.element_bytes = checkpoint::DTypeSize(*dtype);
  ES_ASSIGN_OR_RETURN(m.experts, memory::ExpertTable::Create(backend, layout));
  for (int64_t e = 0; e < c.num_experts; ++e) {
    const std::vector<TensorSpec> t = RoutedExpertTensors(c, l, e);
    auto bytes = [&](const TensorSpec& s) {
      const checkpoint::TensorView v = ckpt.Find(s.name);
      return std::span<const std::byte>(v.data, v.size_bytes);
    };
    ES_RETURN_IF_ERROR(m.experts->MapBaseExpert(
        static_cast<ExpertId>(e),
        memory::ExpertWeightsView{bytes(t[0]), bytes(t[1]), bytes(t[2])}));
    // The table holds the copy now: drop the checkpoint's pages of this
    // expert so routed experts are resident once (the mapping is read-only
    // and file-backed, so the pages refault if anything reads them again).
    for (const TensorSpec& s : t) DropPages(bytes(s));
  }
  const std::vector<TensorSpec> shared = SharedExpertTensors(c, l);
  if (!shared.empty()) {
    m.shared = MlpWeights{r.Get(shared[0].name), r.Get(shared[1].name),
                          r.Get(shared[2].name),
                          c.shared_expert_intermediate_size};
  }
  const int shared_slots = options.shared_adapter_slots_per_layer >= 0
                               ? options.shared_adapter_slots_per_layer
                               : options.adapter_slots_per_layer;
  if (!shared.empty() && shared_slots > 0) {
    const checkpoint::DType d = ckpt.Find(shared[0].name).info->dtype;
    m.shared_dtype = ToKernelDType(d);
    memory::ExpertTableLayout sl;
    sl.num_base_experts = 1;  // the base's shared expert: reserved, unmapped
    sl.num_adapter_slots = shared_slots;
    sl.intermediate = c.shared_expert_intermediate_size;
    sl.hidden = c.hidden_size;
    sl.element_bytes = checkpoint::DTypeSize(d);
    ES_ASSIGN_OR_RETURN(m.shared_table, memory::ExpertTable::Create(backend, sl));
  }
  if (c.shared_expert_gate) m.shared_gate = r.Get(p + "mlp.shared_expert_gate.weight");
  return absl::OkStatus();
}

}  // namespace

kernels::DType ToKernelDType(checkpoint::DType dtype) {
  switch (dtype) {
    case checkpoint::DType::kF32: return kernels::DType::kF32;
    case checkpoint::DType::kBF16: return kernels::DType::kBF16;
    case checkpoint::DType::kF16: return kernels::DType::kF16;
  }
  return kernels::DType::kF32;
}

absl::StatusOr<std::unique_ptr<ModelWeights>> ModelWeights::Load(
    const ModelConfig& c, const checkpoint::Checkpoint& ckpt,
    const WeightsOptions& options) {
  TensorResolver r(ckpt);
  ES_RETURN_IF_ERROR(r.CheckAll(c));

  auto w = std::unique_ptr<ModelWeights>(new ModelWeights());
  w->embed = r.Get("model.embed_tokens.weight");
  w->final_norm = r.Get("model.norm.weight");
  w->lm_head = c.tie_word_embeddings ? w->embed : r.Get("lm_head.weight");
  w->expert_backend = options.expert_backend;
  if (c.is_moe() && w->expert_backend == nullptr) {
    ES_ASSIGN_OR_RETURN(w->expert_backend,
                        memory::CreateAddressSpace(memory::BackendKind::kHost));
  }
  w->layers.resize(static_cast<size_t>(c.num_hidden_layers));
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    LayerWeights& lw = w->layers[static_cast<size_t>(l)];
    const std::string p = absl::StrCat("model.layers.", l, ".");
    lw.input_norm = r.Get(p + "input_layernorm.weight");
    lw.post_attention_norm = r.Get(p + "post_attention_layernorm.weight");
    ES_RETURN_IF_ERROR(LoadAttention(c, r, p + "self_attn.", lw.attn));
    lw.is_moe = c.IsMoeLayer(l);
    if (lw.is_moe) {
      ES_RETURN_IF_ERROR(
          LoadMoe(c, r, ckpt, l, options, w->expert_backend, lw.moe));
    } else {
      lw.mlp = LoadMlp(r, p + "mlp.", c.DenseIntermediateSize());
    }
  }
  return w;
}

}  // namespace expertserve::engine
