// expertserve-mkmodel: writes small deterministic Hugging Face checkpoints,
// ESFT adapters and the demo set. See Usage() for the options.
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "checkpoint/dtype.h"
#include "engine/model/model_config.h"
#include "tools/mkmodel/generator.h"

namespace {

using expertserve::checkpoint::DType;
namespace mk = expertserve::mkmodel;

constexpr char kUsage[] = R"(usage:
  expertserve-mkmodel --arch ARCH --out DIR [options]   a checkpoint
  expertserve-mkmodel --adapter-of BASE_DIR --out DIR [--seed N] [--shared-experts]
                                                        an ESFT adapter
  expertserve-mkmodel --demo OUT_DIR [--dtype D]        the demo set

ARCH: llama, qwen2, qwen3, mixtral, qwen2_moe, qwen3_moe, deepseek_v2, deepseek_v3
options:
  --preset tiny|bench-moe|bench-dense   sizes (default tiny; bench-moe is a
                         ~1.2B/0.19B-active deepseek_v2, bench-dense a ~0.5B qwen3)
  --dtype f32|bf16|f16   weight dtype (default f32; bench presets bf16)
  --seed N               PRNG seed (default 1): same seed, same bytes
  --max-shard-bytes N    shard model.safetensors above N bytes (+ index)
  --rope-scaling none|linear|llama3|yarn
  --topk-method greedy|group_limited_greedy|noaux_tc   (deepseek)
  --q-lora-rank N        deepseek q_lora_rank (0 = null: plain q_proj)
  --tie-embeddings / --untie-embeddings
  --layers N --hidden N --intermediate N --heads N --kv-heads N --head-dim N
  --vocab N --experts N --experts-per-tok N --moe-intermediate N
  --shared-intermediate N --n-shared-experts N --first-k-dense N --kv-lora-rank N
)";

int Fail(const std::string& msg) {
  std::fprintf(stderr, "expertserve-mkmodel: %s\n", msg.c_str());
  return 2;
}

std::optional<int64_t> ParseInt(std::string_view s) {
  int64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || v < 0) return std::nullopt;
  return v;
}

std::optional<DType> ParseDtype(std::string_view s) {
  if (s == "f32" || s == "float32") return DType::kF32;
  if (s == "bf16" || s == "bfloat16") return DType::kBF16;
  if (s == "f16" || s == "float16") return DType::kF16;
  return std::nullopt;
}

}  // namespace

int main(int argc, char** argv) {
  std::map<std::string, std::string> values;
  std::map<std::string, bool> flags;
  const std::vector<std::string> kFlags = {"--shared-experts", "--tie-embeddings",
                                           "--untie-embeddings", "--help", "-h"};
  const std::vector<std::string> kValued = {
      "--arch", "--out", "--preset", "--dtype", "--seed", "--max-shard-bytes",
      "--rope-scaling", "--topk-method", "--q-lora-rank", "--layers", "--hidden",
      "--intermediate", "--heads", "--kv-heads", "--head-dim", "--vocab",
      "--experts", "--experts-per-tok", "--moe-intermediate",
      "--shared-intermediate", "--n-shared-experts", "--first-k-dense",
      "--kv-lora-rank", "--adapter-of", "--demo"};
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    std::string value;
    bool has_value = false;
    if (auto eq = arg.find('='); eq != std::string::npos && arg.starts_with("--")) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
      has_value = true;
    }
    if (std::find(kFlags.begin(), kFlags.end(), arg) != kFlags.end()) {
      flags[arg] = true;
      continue;
    }
    if (std::find(kValued.begin(), kValued.end(), arg) == kValued.end()) {
      return Fail("unknown option '" + arg + "'\n" + kUsage);
    }
    if (!has_value) {
      if (i + 1 >= argc) return Fail(arg + " needs a value");
      value = argv[++i];
    }
    values[arg] = value;
  }
  if (flags["--help"] || flags["-h"] || argc == 1) {
    std::fputs(kUsage, argc == 1 ? stderr : stdout);
    return argc == 1 ? 2 : 0;
  }
  auto progress = [](const std::string& line) {
    std::fprintf(stderr, "%s\n", line.c_str());
  };

  std::optional<DType> dtype;
  if (values.count("--dtype")) {
    dtype = ParseDtype(values["--dtype"]);
    if (!dtype) return Fail("unknown --dtype '" + values["--dtype"] + "' (f32, bf16, f16)");
  }
  uint64_t seed = 1;
  if (values.count("--seed")) {
    auto v = ParseInt(values["--seed"]);
    if (!v) return Fail("--seed needs a non-negative integer");
    seed = static_cast<uint64_t>(*v);
  }
  uint64_t max_shard = 0;
  if (values.count("--max-shard-bytes")) {
    auto v = ParseInt(values["--max-shard-bytes"]);
    if (!v) return Fail("--max-shard-bytes needs a non-negative integer");
    max_shard = static_cast<uint64_t>(*v);
  }

  if (values.count("--demo")) {
    absl::Status s = mk::WriteDemo(values["--demo"], dtype.value_or(DType::kBF16),
                                   progress);
    if (!s.ok()) return Fail(std::string(s.message()));
    return 0;
  }
  if (!values.count("--out")) return Fail(std::string("--out DIR is required\n") + kUsage);

  if (values.count("--adapter-of")) {
    mk::AdapterOptions o;
    o.seed = seed;
    o.shared_experts = flags["--shared-experts"];
    o.max_shard_bytes = max_shard;
    absl::Status s = mk::WriteAdapter(values["--adapter-of"], o, values["--out"]);
    if (!s.ok()) return Fail(std::string(s.message()));
    std::fprintf(stderr, "adapter written to %s\n", values["--out"].c_str());
    return 0;
  }
  if (flags["--shared-experts"]) {
    return Fail("--shared-experts is an adapter option (use --n-shared-experts N for a model)");
  }

  mk::ModelOptions o;
  o.arch = values["--arch"];
  if (values.count("--preset")) o.preset = values["--preset"];
  o.dtype = dtype.value_or(o.preset == "tiny" ? DType::kF32 : DType::kBF16);
  o.seed = seed;
  o.max_shard_bytes = max_shard;
  o.rope_scaling = values["--rope-scaling"];
  o.topk_method = values["--topk-method"];
  if (flags["--tie-embeddings"]) o.tie_embeddings = true;
  if (flags["--untie-embeddings"]) o.tie_embeddings = false;
  const std::vector<std::pair<const char*, std::optional<int64_t>*>> ints = {
      {"--layers", &o.layers}, {"--hidden", &o.hidden},
      {"--intermediate", &o.intermediate}, {"--heads", &o.heads},
      {"--kv-heads", &o.kv_heads}, {"--head-dim", &o.head_dim},
      {"--vocab", &o.vocab}, {"--experts", &o.experts},
      {"--experts-per-tok", &o.experts_per_tok},
      {"--moe-intermediate", &o.moe_intermediate},
      {"--shared-intermediate", &o.shared_intermediate},
      {"--n-shared-experts", &o.n_shared_experts},
      {"--first-k-dense", &o.first_k_dense}, {"--q-lora-rank", &o.q_lora_rank},
      {"--kv-lora-rank", &o.kv_lora_rank}};
  for (const auto& [name, field] : ints) {
    if (!values.count(name)) continue;
    auto v = ParseInt(values[name]);
    if (!v) return Fail(std::string(name) + " needs a non-negative integer");
    *field = *v;
  }
  absl::Status s = mk::WriteModel(o, values["--out"], progress);
  if (!s.ok()) return Fail(std::string(s.message()));
  return 0;
}
