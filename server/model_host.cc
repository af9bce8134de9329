#include "server/model_host.h"

#include <fstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "engine/forward/transformer.h"
#include "engine/model/model_config.h"
#include "engine/runtime/transformer_runner.h"
#include "engine/tokenizer/tokenizer.h"
#include "nlohmann/json.hpp"

namespace expertserve::server {
namespace {

// generation_config.json's eos_token_id (int or list), if present; it
// overrides config.json's as in transformers' generate().
std::vector<TokenId> GenerationEos(const std::filesystem::path& dir,
                                   const std::vector<int64_t>& config_eos) {
  std::vector<TokenId> out;
  std::ifstream in(dir / "generation_config.json");
  if (in) {
    nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
    if (j.is_object() && j.contains("eos_token_id")) {
      const auto& e = j["eos_token_id"];
      if (e.is_number_integer()) out.push_back(e.get<TokenId>());
      if (e.is_array()) {
        for (const auto& v : e) {
          if (v.is_number_integer()) out.push_back(v.get<TokenId>());
        }
      }
    }
  }
  if (out.empty()) {
    for (int64_t id : config_eos) out.push_back(static_cast<TokenId>(id));
  }
  return out;
}

engine::SchedulingPolicy Policy(config::SchedulerPolicy p) {
  if (p == config::SchedulerPolicy::kPriority) return engine::PriorityPolicy{};
  return engine::FcfsPolicy{};
}

}  // namespace

absl::StatusOr<std::unique_ptr<ModelHost>> ModelHost::Load(
    const config::ServerConfig& config, ModelCatalog* catalog) {
  auto host = std::unique_ptr<ModelHost>(new ModelHost());
  for (const config::ModelConfig& mc : config.models) {
    auto with_name = [&](const absl::Status& s) {
      return absl::Status(s.code(), absl::StrCat("model '", mc.name, "' (", mc.path,
                                                 "): ", s.message()));
    };
    absl::StatusOr<std::unique_ptr<engine::Transformer>> model =
        engine::Transformer::Load(mc.path);
    if (!model.ok()) return with_name(model.status());
    const engine::ModelConfig& cfg = (*model)->config();
    ServedModel served;
    served.name = mc.name;
    served.architecture = std::string(engine::ArchitectureName(cfg.arch));
    served.vocab_size = static_cast<int32_t>(cfg.vocab_size);
    engine::EngineOptions eo;
    eo.model_name = mc.name;
    eo.max_batched_tokens = static_cast<int32_t>(config.scheduler.max_batched_tokens);
    eo.max_num_seqs = static_cast<int32_t>(config.scheduler.max_num_seqs);
    eo.max_waiting_requests = static_cast<int32_t>(config.scheduler.max_waiting_requests);
    eo.policy = Policy(config.scheduler.policy);
    eo.max_model_len = static_cast<int32_t>(mc.max_context_tokens);
    eo.eos_token_ids = GenerationEos(mc.path, cfg.eos_token_ids);

    engine::TransformerRunnerOptions ro;
    const uint64_t budget = mc.kv_cache_budget_bytes.value_or(
        config.memory.kv_cache_budget_bytes / std::max<size_t>(1, config.models.size()));
    ro.kv_budget_bytes = budget;
    ro.block_tokens = static_cast<int32_t>(config.scheduler.kv_block_tokens);
    absl::StatusOr<std::unique_ptr<engine::TransformerRunner>> runner =
        engine::TransformerRunner::Create(*std::move(model), ro);
    if (!runner.ok()) return with_name(runner.status());

    Loaded loaded;
    loaded.name = mc.name;
    std::unique_ptr<engine::Tokenizer> tokenizer;
    if (std::filesystem::exists(std::filesystem::path(mc.path) / "tokenizer.json")) {
      absl::StatusOr<std::unique_ptr<engine::TextProcessor>> text =
          engine::TextProcessor::Load(mc.path);
      if (!text.ok()) return with_name(text.status());
      loaded.text = *std::move(text);
      absl::StatusOr<std::unique_ptr<engine::Tokenizer>> tok =
          engine::Tokenizer::FromDirectory(mc.path);
      if (!tok.ok()) return with_name(tok.status());
      tokenizer = *std::move(tok);
    }
    loaded.engine = std::make_unique<engine::Engine>(std::move(eo), *std::move(runner),
                                                     std::move(tokenizer));
    served.max_context_tokens = loaded.engine->max_model_len();
    served.engine = loaded.engine.get();
    served.text = loaded.text.get();
    catalog->AddModel(std::move(served));
    host->models_.push_back(std::move(loaded));
  }
  for (const config::AdapterConfig& a : config.adapters) {
    // Adapters are listed but not served until the ESFT adapter registry is
    // wired (see docs/api.md); requests naming them get NOT_FOUND from the
    // engine's resolver.
    (void)a;
  }
  if (config.router.default_target.has_value()) {
    catalog->SetDefaultTarget(config.router.default_target->model,
                              config.router.default_target->adapter);
  }
  return host;
}

ModelHost::~ModelHost() = default;

engine::Engine* ModelHost::engine(std::string_view model) const {
  for (const Loaded& l : models_) {
    if (l.name == model) return l.engine.get();
  }
  return nullptr;
}

}  // namespace expertserve::server
