#include "tools/mkmodel/generator.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <fstream>
#include <limits>
#include <map>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "checkpoint/safetensors.h"
#include "common/status_macros.h"
#include "common/thread_pool.h"
#include "engine/model/weight_manifest.h"
#include "nlohmann/json.hpp"
#include "tools/mkmodel/prng.h"
#include "tools/mkmodel/tokenizer_gen.h"

namespace expertserve::mkmodel {
namespace {

using engine::Architecture;
using engine::ModelConfig;
using engine::TensorRole;
using engine::TensorSpec;
using Json = nlohmann::json;  // sorted keys, as transformers writes them

// Debian's Abseil string_view is not std::string_view.
absl::string_view Sv(std::string_view s) { return {s.data(), s.size()}; }

constexpr char kTransformersVersion[] = "4.51.0";
constexpr uint64_t kDefaultBigShardBytes = 1ull << 30;  // bounds peak memory

// Every size knob of a generated model.
struct Dims {
  int64_t layers = 2, hidden = 64, intermediate = 128, heads = 4, kv_heads = 2;
  std::optional<int64_t> head_dim;  // explicit head_dim field when set
  int64_t vocab = 0;                // 0: the tokenizer's size
  int64_t experts = 8, experts_per_tok = 2, moe_intermediate = 32;
  int64_t shared_intermediate = 64;  // qwen2_moe
  int64_t n_shared_experts = 2, first_k_dense = 1;
  std::optional<int64_t> q_lora_rank;
  int64_t kv_lora_rank = 32, qk_nope = 16, qk_rope = 8, v_head = 16;
  std::vector<int64_t> mlp_only_layers;
  int64_t max_positions = 2048;
  bool tie = false;
};

bool IsDeepseek(Architecture a) {
  return a == Architecture::kDeepseekV2 || a == Architecture::kDeepseekV3;
}

absl::StatusOr<Dims> PresetDims(const std::string& preset, Architecture a) {
  Dims d;
  if (preset == "tiny") {
    switch (a) {
      case Architecture::kQwen3:
        d.head_dim = 32;  // explicit and != hidden / heads, as in Qwen3
        break;
      case Architecture::kQwen3Moe:
        d.layers = 3;
        d.head_dim = 32;
        d.experts = 8;
        d.mlp_only_layers = {1};
        break;
      case Architecture::kMixtral:
        d.intermediate = 96;
        break;
      case Architecture::kQwen2Moe:
        d.experts = 8;
        d.experts_per_tok = 2;
        break;
      case Architecture::kDeepseekV2:
      case Architecture::kDeepseekV3:
        d.layers = 3;
        d.experts = 16;
        d.experts_per_tok = 4;
        d.n_shared_experts = a == Architecture::kDeepseekV2 ? 2 : 1;
        if (a == Architecture::kDeepseekV3) d.q_lora_rank = 48;
        break;
      default:
        break;
    }
    return d;
  }
  if (preset == "bench-moe") {
    // ~1.2B total / ~0.19B active, DeepSeek-V2-Lite's shape scaled down.
    d.layers = 12;
    d.hidden = 1024;
    d.intermediate = 2816;
    d.heads = 16;
    d.kv_heads = 16;
    d.experts = 64;
    d.experts_per_tok = 6;
    d.moe_intermediate = 512;
    d.shared_intermediate = 1024;
    d.n_shared_experts = 2;
    d.first_k_dense = 1;
    d.kv_lora_rank = 256;
    d.qk_nope = 64;
    d.qk_rope = 32;
    d.v_head = 64;
    d.max_positions = 8192;
    return d;
  }
  if (preset == "bench-dense") {
    // ~0.5B, Qwen3-0.6B's shape with a small vocabulary.
    d.layers = 32;
    d.hidden = 1024;
    d.intermediate = 4096;
    d.heads = 16;
    d.kv_heads = 8;
    d.head_dim = 64;
    d.max_positions = 8192;
    return d;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown preset '", preset, "' (supported: tiny, bench-moe, bench-dense)"));
}

struct Resolved {
  Architecture arch;
  Dims dims;
  std::string rope;   // none | linear | llama3 | yarn
  std::string topk;   // deepseek only
};

absl::StatusOr<Resolved> Resolve(const ModelOptions& o) {
  std::string arch = o.arch;
  if (arch.empty()) {
    if (o.preset == "bench-moe") arch = "deepseek_v2";
    else if (o.preset == "bench-dense") arch = "qwen3";
    else {
      return absl::InvalidArgumentError(absl::StrCat(
          "--arch is required (one of: ", engine::SupportedModelTypes(), ")"));
    }
  }
  Resolved r;
  ES_ASSIGN_OR_RETURN(r.arch, engine::ParseArchitecture(arch));
  ES_ASSIGN_OR_RETURN(r.dims, PresetDims(o.preset, r.arch));
  Dims& d = r.dims;
  if (o.layers) d.layers = *o.layers;
  if (o.hidden) d.hidden = *o.hidden;
  if (o.intermediate) d.intermediate = *o.intermediate;
  if (o.heads) d.heads = *o.heads;
  if (o.kv_heads) d.kv_heads = *o.kv_heads;
  if (o.head_dim) d.head_dim = *o.head_dim;
  if (o.vocab) d.vocab = *o.vocab;
  if (o.experts) d.experts = *o.experts;
  if (o.experts_per_tok) d.experts_per_tok = *o.experts_per_tok;
  if (o.moe_intermediate) d.moe_intermediate = *o.moe_intermediate;
  if (o.shared_intermediate) d.shared_intermediate = *o.shared_intermediate;
  if (o.n_shared_experts) d.n_shared_experts = *o.n_shared_experts;
  if (o.first_k_dense) d.first_k_dense = *o.first_k_dense;
  if (o.q_lora_rank) {
    if (*o.q_lora_rank > 0) d.q_lora_rank = *o.q_lora_rank;
    else d.q_lora_rank.reset();
  }
  if (o.kv_lora_rank) d.kv_lora_rank = *o.kv_lora_rank;
  if (o.tie_embeddings) d.tie = *o.tie_embeddings;
  for (int64_t l : d.mlp_only_layers) {
    if (l >= d.layers) {
      d.mlp_only_layers.clear();
      break;
    }
  }
  r.rope = o.rope_scaling.empty() ? (IsDeepseek(r.arch) ? "yarn" : "none")
                                  : o.rope_scaling;
  if (r.rope != "none" && r.rope != "linear" && r.rope != "llama3" &&
      r.rope != "yarn") {
    return absl::InvalidArgumentError(absl::StrCat(
        "unknown --rope-scaling '", r.rope,
        "' (supported: none, linear, llama3, yarn)"));
  }
  if (IsDeepseek(r.arch)) {
    r.topk = o.topk_method.empty()
                 ? (r.arch == Architecture::kDeepseekV3 ? "noaux_tc" : "greedy")
                 : o.topk_method;
  } else if (!o.topk_method.empty()) {
    return absl::InvalidArgumentError(
        "--topk-method applies to deepseek_v2 / deepseek_v3 only");
  }
  return r;
}

Json RopeScalingJson(const Resolved& r) {
  const Dims& d = r.dims;
  const int64_t original = d.max_positions / 4;
  if (r.rope == "linear") return {{"type", "linear"}, {"factor", 2.0}};
  if (r.rope == "llama3") {
    return {{"factor", 8.0},
            {"low_freq_factor", 1.0},
            {"high_freq_factor", 4.0},
            {"original_max_position_embeddings", original},
            {"rope_type", "llama3"}};
  }
  if (r.rope == "yarn") {
    if (IsDeepseek(r.arch)) {  // DeepSeek-V2-Lite's fields
      return {{"beta_fast", 32},        {"beta_slow", 1},
              {"factor", 4.0},          {"mscale", 0.707},
              {"mscale_all_dim", 0.707}, {"original_max_position_embeddings", original},
              {"type", "yarn"}};
    }
    return {{"factor", 4.0},
            {"original_max_position_embeddings", original},
            {"rope_type", "yarn"}};
  }
  return nullptr;
}

Json ConfigJson(const Resolved& r, const GeneratedTokenizer& tok,
                checkpoint::DType dtype) {
  const Dims& d = r.dims;
  const Architecture a = r.arch;
  const int64_t vocab = std::max<int64_t>(d.vocab, tok.size());
  Json j;
  j["architectures"] = {std::string(engine::ArchitectureClassName(a))};
  j["model_type"] = std::string(engine::ArchitectureName(a));
  j["vocab_size"] = vocab;
  j["hidden_size"] = d.hidden;
  j["intermediate_size"] = d.intermediate;
  j["num_hidden_layers"] = d.layers;
  j["num_attention_heads"] = d.heads;
  j["num_key_value_heads"] = IsDeepseek(a) ? d.heads : d.kv_heads;
  j["hidden_act"] = "silu";
  j["max_position_embeddings"] = d.max_positions;
  j["initializer_range"] = 0.02;
  j["rms_norm_eps"] = a == Architecture::kMixtral ? 1e-5 : 1e-6;
  j["rope_theta"] = IsDeepseek(a) || a == Architecture::kLlama ? 10000.0 : 1000000.0;
  j["rope_scaling"] = RopeScalingJson(r);
  j["tie_word_embeddings"] = d.tie;
  j["use_cache"] = true;
  j["attention_dropout"] = 0.0;
  j["bos_token_id"] = tok.endoftext_id;
  j["eos_token_id"] = tok.im_end_id;
  j["torch_dtype"] = dtype == checkpoint::DType::kF32   ? "float32"
                     : dtype == checkpoint::DType::kF16 ? "float16"
                                                        : "bfloat16";
  j["transformers_version"] = kTransformersVersion;
  const bool qwen = a == Architecture::kQwen2 || a == Architecture::kQwen3 ||
                    a == Architecture::kQwen2Moe || a == Architecture::kQwen3Moe;
  const bool qwen3 = a == Architecture::kQwen3 || a == Architecture::kQwen3Moe;
  if (a == Architecture::kLlama) {
    j["attention_bias"] = false;
    j["mlp_bias"] = false;
    j["pretraining_tp"] = 1;
    if (d.head_dim) j["head_dim"] = *d.head_dim;
  }
  if (qwen) {
    j["use_sliding_window"] = false;
    j["sliding_window"] = qwen3 ? Json(nullptr) : Json(d.max_positions);
    j["max_window_layers"] = d.layers;
    if (d.head_dim) j["head_dim"] = *d.head_dim;
  }
  if (qwen3) j["attention_bias"] = false;
  if (a == Architecture::kMixtral) {
    j["num_local_experts"] = d.experts;
    j["num_experts_per_tok"] = d.experts_per_tok;
    j["sliding_window"] = nullptr;
    j["output_router_logits"] = false;
    j["router_aux_loss_coef"] = 0.02;
    j["router_jitter_noise"] = 0.0;
    if (d.head_dim) j["head_dim"] = *d.head_dim;
  }
  if (a == Architecture::kQwen2Moe || a == Architecture::kQwen3Moe) {
    j["num_experts"] = d.experts;
    j["num_experts_per_tok"] = d.experts_per_tok;
    j["moe_intermediate_size"] = d.moe_intermediate;
    j["decoder_sparse_step"] = 1;
    j["mlp_only_layers"] = d.mlp_only_layers;
    j["norm_topk_prob"] = a == Architecture::kQwen3Moe;
    j["output_router_logits"] = false;
    j["router_aux_loss_coef"] = 0.001;
    if (a == Architecture::kQwen2Moe) {
      j["shared_expert_intermediate_size"] = d.shared_intermediate;
    }
  }
  if (IsDeepseek(a)) {
    const bool v3 = a == Architecture::kDeepseekV3;
    const std::string cls = v3 ? "DeepseekV3" : "DeepseekV2";
    j["auto_map"] = {
        {"AutoConfig", "configuration_deepseek." + cls + "Config"},
        {"AutoModel", "modeling_deepseek." + cls + "Model"},
        {"AutoModelForCausalLM", "modeling_deepseek." + cls + "ForCausalLM"}};
    j["attention_bias"] = false;
    j["aux_loss_alpha"] = 0.001;
    j["ep_size"] = 1;
    j["pretraining_tp"] = 1;
    j["seq_aux"] = true;
    j["q_lora_rank"] = d.q_lora_rank ? Json(*d.q_lora_rank) : Json(nullptr);
    j["kv_lora_rank"] = d.kv_lora_rank;
    j["qk_nope_head_dim"] = d.qk_nope;
    j["qk_rope_head_dim"] = d.qk_rope;
    j["v_head_dim"] = d.v_head;
    j["n_routed_experts"] = d.experts;
    j["n_shared_experts"] = d.n_shared_experts;
    j["num_experts_per_tok"] = d.experts_per_tok;
    j["moe_intermediate_size"] = d.moe_intermediate;
    j["first_k_dense_replace"] = d.first_k_dense;
    j["moe_layer_freq"] = 1;
    j["topk_method"] = r.topk;
    const bool grouped = r.topk != "greedy";
    j["n_group"] = grouped ? 4 : 1;
    j["topk_group"] = grouped ? 2 : 1;
    j["scoring_func"] = v3 ? "sigmoid" : "softmax";
    j["norm_topk_prob"] = v3;
    j["routed_scaling_factor"] = v3 ? 2.5 : 1.0;
    if (v3) j["num_nextn_predict_layers"] = 0;
  }
  return j;
}

// Standard deviation and mean of a tensor's initial values, chosen so that
// activations stay O(1) through the layers, routing varies between tokens and
// logits are spread enough that greedy decoding does not collapse.
void InitParams(const TensorSpec& t, int64_t hidden, bool tied, double* mean,
                double* stddev) {
  const double in = t.shape.size() == 2 ? static_cast<double>(t.shape[1]) : 1.0;
  *mean = 0.0;
  switch (t.role) {
    // Tied: the embedding is also the lm_head, and unit-scale rows would
    // make every token predict itself; small rows leave the logits to what
    // the layers computed.
    case TensorRole::kEmbedding:
      *stddev = tied ? 1.0 / std::sqrt(static_cast<double>(hidden)) : 1.0;
      break;
    case TensorRole::kLmHead: *stddev = 2.0 / std::sqrt(in); break;
    case TensorRole::kNorm: *mean = 1.0; *stddev = 0.1; break;
    case TensorRole::kBias: *stddev = 0.1; break;
    case TensorRole::kRouterGate: *stddev = 2.0 / std::sqrt(in); break;
    case TensorRole::kRouterBias: *stddev = 0.1; break;
    case TensorRole::kSharedGate: *stddev = 1.0 / std::sqrt(in); break;
    case TensorRole::kProjection:
    case TensorRole::kRoutedExpert:
    case TensorRole::kSharedExpert: *stddev = 1.0 / std::sqrt(in); break;
  }
}

std::vector<std::byte> GenerateTensor(const TensorSpec& t, uint64_t seed,
                                      const ModelConfig& config,
                                      checkpoint::DType dtype) {
  double mean = 0, stddev = 1;
  InitParams(t, config.hidden_size, config.tie_word_embeddings, &mean, &stddev);
  SplitMix64 rng = StreamFor(seed, t.name);
  const size_t n = static_cast<size_t>(t.num_elements());
  std::vector<float> values(n);
  for (size_t i = 0; i < n; ++i) {
    values[i] = static_cast<float>(mean + stddev * rng.Normal());
  }
  std::vector<std::byte> bytes(n * checkpoint::DTypeSize(dtype));
  checkpoint::FromF32(dtype, values.data(), n, bytes.data());
  return bytes;
}

absl::Status WriteJson(const std::filesystem::path& path, const Json& j) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << j.dump(2) << "\n";
  out.close();
  if (!out) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot write ", path.string()));
  }
  return absl::OkStatus();
}

absl::Status MakeDir(const std::filesystem::path& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec || !std::filesystem::is_directory(dir)) {
    return absl::PermissionDeniedError(absl::StrCat(
        "cannot create output directory ", dir.string(), ": ",
        ec ? ec.message() : "not a directory"));
  }
  // Probe writability now, so the error names the directory.
  const std::filesystem::path probe = dir / ".mkmodel-write-test";
  {
    std::ofstream f(probe);
    if (!f) {
      return absl::PermissionDeniedError(
          absl::StrCat("output directory ", dir.string(), " is not writable"));
    }
  }
  std::filesystem::remove(probe, ec);
  return absl::OkStatus();
}

// Writes `specs` as safetensors into `dir`. Small checkpoints go through
// checkpoint::WriteCheckpointTensors in one piece; big ones are generated and
// written one shard at a time so memory stays bounded.
absl::Status WriteTensors(const std::vector<TensorSpec>& specs, uint64_t seed,
                          const ModelConfig& config, checkpoint::DType dtype,
                          uint64_t max_shard_bytes,
                          uint64_t in_memory_limit_bytes,
                          const std::filesystem::path& dir,
                          const ProgressFn& progress) {
  uint64_t total = 0;
  for (const TensorSpec& t : specs) {
    total += static_cast<uint64_t>(t.num_elements()) * checkpoint::DTypeSize(dtype);
  }
  if (total <= in_memory_limit_bytes) {
    std::vector<std::vector<std::byte>> data;
    data.reserve(specs.size());
    std::vector<checkpoint::TensorToWrite> tensors;
    for (const TensorSpec& t : specs) {
      data.push_back(GenerateTensor(t, seed, config, dtype));
      tensors.push_back({t.name, dtype, t.shape, data.back()});
    }
    return checkpoint::WriteCheckpointTensors(
        dir, tensors,
        max_shard_bytes > 0 ? max_shard_bytes
                            : std::numeric_limits<uint64_t>::max());
  }
  const uint64_t limit = max_shard_bytes > 0 ? max_shard_bytes
                                             : kDefaultBigShardBytes;
  // Same greedy split and names as WriteCheckpointTensors.
  std::vector<std::pair<size_t, size_t>> shards;
  uint64_t current = 0;
  for (size_t i = 0; i < specs.size(); ++i) {
    const uint64_t b = static_cast<uint64_t>(specs[i].num_elements()) *
                       checkpoint::DTypeSize(dtype);
    if (shards.empty() || (current > 0 && current + b > limit)) {
      shards.emplace_back(i, i);
      current = 0;
    }
    shards.back().second = i + 1;
    current += b;
  }
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name == "model.safetensors" || name == "model.safetensors.index.json" ||
        (name.starts_with("model-") && name.ends_with(".safetensors"))) {
      std::filesystem::remove(entry.path(), ec);
    }
  }
  Json weight_map = Json::object();
  uint64_t written = 0;
  ThreadPool pool;
  for (size_t s = 0; s < shards.size(); ++s) {
    const std::string file = absl::StrFormat("model-%05d-of-%05d.safetensors",
                                             s + 1, shards.size());
    const size_t first = shards[s].first;
    const size_t count = shards[s].second - first;
    // Every tensor has its own PRNG stream, so generating them in parallel
    // gives the same bytes.
    std::vector<std::vector<std::byte>> data(count);
    pool.ParallelFor(count, [&](size_t k, size_t) {
      data[k] = GenerateTensor(specs[first + k], seed, config, dtype);
    });
    std::vector<checkpoint::TensorToWrite> tensors;
    for (size_t k = 0; k < count; ++k) {
      const size_t i = first + k;
      tensors.push_back({specs[i].name, dtype, specs[i].shape, data[k]});
      weight_map[specs[i].name] = file;
      const uint64_t before = written;
      written += data[k].size();
      constexpr uint64_t kStep = 256ull << 20;
      if (progress && written / kStep != before / kStep) {
        progress(absl::StrFormat("  generated %.0f / %.0f MiB", written / 1048576.0,
                                 total / 1048576.0));
      }
    }
    ES_RETURN_IF_ERROR(checkpoint::WriteSafetensors(dir / file, tensors));
    if (progress) {
      progress(absl::StrFormat("wrote %s (%d/%d shards, %.1f of %.1f MiB)",
                               file, s + 1, shards.size(), written / 1048576.0,
                               total / 1048576.0));
    }
  }
  Json index = {{"metadata", {{"total_size", total}}},
                {"weight_map", weight_map}};
  return WriteJson(dir / "model.safetensors.index.json", index);
}

}  // namespace

absl::StatusOr<std::string> BuildConfigJson(const ModelOptions& options) {
  ES_ASSIGN_OR_RETURN(Resolved r, Resolve(options));
  const GeneratedTokenizer tok = BuildTokenizer();
  Json j = ConfigJson(r, tok, options.dtype);
  std::string text = j.dump(2);
  // Validate through the engine's own parser: a combination of overrides it
  // rejects must not be written.
  absl::StatusOr<ModelConfig> parsed = engine::ParseModelConfig(text);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "these options give an invalid ", Sv(engine::ArchitectureName(r.arch)),
        " config: ", parsed.status().message()));
  }
  return text;
}

absl::Status WriteModel(const ModelOptions& options,
                        const std::filesystem::path& out_dir,
                        const ProgressFn& progress) {
  ES_ASSIGN_OR_RETURN(std::string config_text, BuildConfigJson(options));
  ES_ASSIGN_OR_RETURN(ModelConfig config,
                      engine::ParseModelConfig(config_text));
  ES_RETURN_IF_ERROR(MakeDir(out_dir));
  const GeneratedTokenizer tok = BuildTokenizer();
  {
    std::ofstream out(out_dir / "config.json", std::ios::binary | std::ios::trunc);
    out << config_text << "\n";
    out.close();
    if (!out) {
      return absl::PermissionDeniedError(
          absl::StrCat("cannot write ", (out_dir / "config.json").string()));
    }
  }
  Json gen = {{"bos_token_id", tok.endoftext_id},
              {"do_sample", false},
              {"eos_token_id", {tok.im_end_id, tok.endoftext_id}},
              {"pad_token_id", tok.endoftext_id},
              {"transformers_version", kTransformersVersion}};
  ES_RETURN_IF_ERROR(WriteJson(out_dir / "generation_config.json", gen));
  ES_RETURN_IF_ERROR(WriteTokenizerFiles(tok, out_dir));
  if (progress) {
    progress(absl::StrFormat(
        "%s (%s): %.2fM parameters, %.2fM active, writing to %s",
        Sv(engine::ArchitectureName(config.arch)), options.preset,
        engine::TotalParameters(config) / 1e6,
        engine::ActiveParameters(config) / 1e6, out_dir.string()));
  }
  return WriteTensors(engine::ExpectedTensors(config), options.seed, config,
                      options.dtype,
                      options.max_shard_bytes, options.in_memory_limit_bytes,
                      out_dir, progress);
}

absl::Status WriteAdapter(const std::filesystem::path& base_dir,
                          const AdapterOptions& options,
                          const std::filesystem::path& out_dir) {
  ES_ASSIGN_OR_RETURN(ModelConfig config, engine::LoadModelConfig(base_dir));
  if (!config.is_moe()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--adapter-of ", base_dir.string(), ": ",
        Sv(engine::ArchitectureName(config.arch)),
        " is not an MoE model; ESFT adapters replace routed experts"));
  }
  ES_ASSIGN_OR_RETURN(auto base, checkpoint::Checkpoint::Open(base_dir));
  const std::vector<int64_t> moe_layers = config.MoeLayers();
  if (moe_layers.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--adapter-of ", base_dir.string(), ": the model has no MoE layers"));
  }
  // The base's own dtype, read from its first routed expert tensor.
  const TensorSpec probe = engine::RoutedExpertTensors(config, moe_layers[0], 0)[0];
  checkpoint::TensorView view = base->Find(probe.name);
  if (view.info == nullptr) {
    return absl::DataLossError(absl::StrCat(
        "base checkpoint ", base_dir.string(), " has no tensor ", probe.name));
  }
  if (view.info->shape != probe.shape) {
    return absl::DataLossError(absl::StrCat(
        "base tensor ", probe.name, " has the wrong shape for its config"));
  }
  const checkpoint::DType dtype = view.info->dtype;
  const uint64_t seed = options.seed ^ 0x45534654ull;  // "ESFT"

  // Pick 0-6 experts per MoE layer (at least one in total), unsorted.
  SplitMix64 pick(StreamFor(seed, "expert_cfg").Next());
  std::map<int64_t, std::vector<int64_t>> chosen;
  size_t total_chosen = 0;
  for (int64_t l : moe_layers) {
    const int64_t k = std::min<int64_t>(static_cast<int64_t>(pick.Below(7)),
                                        config.num_experts);
    std::vector<int64_t> ids(config.num_experts);
    for (int64_t e = 0; e < config.num_experts; ++e) ids[e] = e;
    for (int64_t i = 0; i < k; ++i) {  // partial Fisher-Yates
      const int64_t j = i + static_cast<int64_t>(pick.Below(config.num_experts - i));
      std::swap(ids[i], ids[j]);
    }
    ids.resize(k);
    total_chosen += ids.size();
    chosen[l] = std::move(ids);
  }
  if (total_chosen == 0) {
    chosen[moe_layers[0]] = {static_cast<int64_t>(pick.Below(config.num_experts))};
  }

  std::vector<TensorSpec> specs;
  for (const auto& [layer, ids] : chosen) {
    for (int64_t e : ids) {
      for (TensorSpec& t : engine::RoutedExpertTensors(config, layer, e)) {
        specs.push_back(std::move(t));
      }
    }
  }
  if (options.shared_experts) {
    if (config.shared_expert_intermediate_size == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--shared-experts: ", Sv(engine::ArchitectureName(config.arch)),
          " base ", base_dir.string(), " has no shared experts"));
    }
    for (int64_t l : moe_layers) {
      for (TensorSpec& t : engine::SharedExpertTensors(config, l)) {
        specs.push_back(std::move(t));
      }
    }
  }

  ES_RETURN_IF_ERROR(MakeDir(out_dir));
  Json experts = Json::object();
  for (const auto& [layer, ids] : chosen) experts[std::to_string(layer)] = ids;
  Json cfg = {{"experts", experts},
              {"shared_experts", options.shared_experts},
              {"non_expert_modules", false}};
  ES_RETURN_IF_ERROR(WriteJson(out_dir / "expert_cfg.json", cfg));
  return WriteTensors(specs, seed, config, dtype,
                      options.max_shard_bytes,
                      std::numeric_limits<uint64_t>::max(), out_dir, nullptr);
}

absl::Status WriteDemo(const std::filesystem::path& out_dir,
                       checkpoint::DType dtype, const ProgressFn& progress) {
  struct Demo {
    const char* name;
    const char* arch;
    uint64_t seed;
  };
  for (const Demo& d : {Demo{"chat", "qwen3", 101}, Demo{"code", "llama", 102},
                        Demo{"moe", "deepseek_v2", 103}}) {
    ModelOptions o;
    o.arch = d.arch;
    o.dtype = dtype;
    o.seed = d.seed;
    const std::filesystem::path dir = out_dir / "models" / d.name;
    ES_RETURN_IF_ERROR(WriteModel(o, dir, progress));
  }
  const std::filesystem::path base = out_dir / "models" / "moe";
  ES_RETURN_IF_ERROR(WriteAdapter(base, {.seed = 201, .shared_experts = false},
                                  out_dir / "adapters" / "math"));
  ES_RETURN_IF_ERROR(WriteAdapter(base, {.seed = 202, .shared_experts = true},
                                  out_dir / "adapters" / "law"));
  if (progress) {
    progress(absl::StrCat("demo written to ", out_dir.string(),
                          ": models/{chat,code,moe}, adapters/{math,law}"));
  }
  return absl::OkStatus();
}

}  // namespace expertserve::mkmodel
