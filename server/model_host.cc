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
#ifdef ES_HAVE_ADAPTERS
#include "engine/adapters/adapter_registry.h"
#include "engine/adapters/path_policy.h"
#endif

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
  for (const std::string& r : config.adapter_roots) host->adapter_roots_.emplace_back(r);
  for (const config::ModelConfig& mc : config.models) {
    auto with_name = [&](const absl::Status& s) {
      return absl::Status(s.code(), absl::StrCat("model '", mc.name, "' (", mc.path,
                                                 "): ", s.message()));
    };
    absl::StatusOr<engine::ModelConfig> peek =
        engine::LoadModelConfig(std::filesystem::path(mc.path) / "config.json");
    if (!peek.ok()) return with_name(peek.status());
    engine::TransformerOptions to;
    if (peek->is_moe()) {
      // Adapter slots per MoE layer; "auto" = room for the layer's routed
      // experts once (any one adapter, or several partial ones).
      to.weights.adapter_slots_per_layer = static_cast<int>(
          config.memory.adapter_slots_per_layer.value_or(peek->num_experts));
    }
    absl::StatusOr<std::unique_ptr<engine::Transformer>> model =
        engine::Transformer::Load(mc.path, to);
    if (!model.ok()) return with_name(model.status());
    Loaded loaded;
    ServedModel served;
    if (peek->is_moe()) {
      // The weights stay put on the heap inside the runner.
      loaded.memory = std::make_shared<ExpertMemoryTracker>((*model)->weights());
      served.expert_memory = [tracker = loaded.memory] { return tracker->Stats(); };
    }
#ifdef ES_HAVE_ADAPTERS
    if (peek->is_moe()) {
      engine::Transformer& t = **model;  // heap object: stays put in the runner
      loaded.adapters =
          std::make_shared<engine::adapters::AdapterRegistry>(t.config(), t.mutable_weights());
    }
#endif
    const engine::ModelConfig& cfg = (*model)->config();
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
                                                     std::move(tokenizer), loaded.adapters);
    served.max_context_tokens = loaded.engine->max_model_len();
    served.engine = loaded.engine.get();
    served.text = loaded.text.get();
    catalog->AddModel(std::move(served));
    host->models_.push_back(std::move(loaded));
  }
  for (const config::AdapterConfig& a : config.adapters) {
    // Adapters named in the config are trusted: their own directory is a
    // root for this load.
    std::vector<std::filesystem::path> roots = host->adapter_roots_;
    roots.push_back(std::filesystem::path(a.path).parent_path());
    absl::StatusOr<AdapterLoadResult> r = host->LoadWithRoots(a.name, a.path, a.base_model, roots);
    if (!r.ok()) {
      return absl::Status(r.status().code(), absl::StrCat("adapter '", a.name, "' (", a.path,
                                                          "): ", r.status().message()));
    }
    catalog->AddAdapter(a.base_model, a.name);
  }
  if (config.router.default_target.has_value()) {
    catalog->SetDefaultTarget(config.router.default_target->model,
                              config.router.default_target->adapter);
  }
  if (!config.router.categories.empty()) {
    router::RouterSpec spec;
    for (const config::RouterCategory& c : config.router.categories) {
      spec.categories.push_back({c.name, c.examples});
    }
    for (const auto& [category, t] : config.router.routes) {
      spec.routes[category] = router::Target{t.model, t.adapter};
    }
    spec.confidence_threshold = config.router.confidence_threshold;
    if (config.router.default_target.has_value()) {
      spec.default_target =
          router::Target{config.router.default_target->model, config.router.default_target->adapter};
    }
    absl::StatusOr<std::unique_ptr<router::Router>> r = router::Router::Create(spec);
    if (!r.ok()) return r.status();
    catalog->SetRouter(*std::move(r));
  }
  return host;
}

ModelHost::~ModelHost() {
  // The adapter registry writes into the base model's expert tables, which
  // the engine's runner owns: drop our reference first so the engine holds
  // the last one and destroys the registry before its runner (Engine's
  // members go in reverse order: adapters_ before runner_).
  for (Loaded& l : models_) {
    l.adapters.reset();
    l.engine.reset();
  }
}

ModelHost::Loaded* ModelHost::Find(absl::string_view model) {
  for (Loaded& l : models_) {
    if (l.name == model) return &l;
  }
  return nullptr;
}

absl::StatusOr<AdapterLoadResult> ModelHost::LoadAdapter(absl::string_view name,
                                                         absl::string_view path,
                                                         absl::string_view base_model) {
  return LoadWithRoots(name, path, base_model, adapter_roots_);
}

absl::StatusOr<AdapterLoadResult> ModelHost::LoadWithRoots(
    absl::string_view name, absl::string_view path, absl::string_view base_model,
    const std::vector<std::filesystem::path>& roots) {
#ifdef ES_HAVE_ADAPTERS
  Loaded* base = Find(base_model);
  if (base == nullptr) {
    return absl::NotFoundError(absl::StrCat("base_model: unknown model '", base_model, "'"));
  }
  if (base->adapters == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(
        "base_model: '", base_model, "' is not an MoE model; ESFT adapters need one"));
  }
  if (roots.empty()) {
    return absl::PermissionDeniedError(
        "path: no adapter_roots are configured, so run-time adapter loads are disabled");
  }
  ES_ASSIGN_OR_RETURN(std::filesystem::path dir,
                      engine::adapters::ResolveAdapterDir(roots, std::string(path)));
  auto* registry = static_cast<engine::adapters::AdapterRegistry*>(base->adapters.get());
  ES_ASSIGN_OR_RETURN(engine::adapters::AdapterLoadReport report,
                      registry->Load(std::string(name), dir));
  if (base->memory != nullptr) base->memory->OnAdapterLoaded(report.bytes_copied);
  AdapterLoadResult r;
  r.name = report.name;
  r.base_model = std::string(base_model);
  r.routed_experts_replaced = report.routed_experts_replaced;
  r.bytes_copied = report.bytes_copied;
  r.warnings = report.warnings;
  return r;
#else
  (void)name;
  (void)path;
  (void)base_model;
  (void)roots;
  return absl::UnimplementedError("this build has no ESFT adapter registry (engine/adapters)");
#endif
}

absl::Status ModelHost::UnloadAdapter(absl::string_view name) {
#ifdef ES_HAVE_ADAPTERS
  for (Loaded& l : models_) {
    if (l.adapters == nullptr) continue;
    auto* registry = static_cast<engine::adapters::AdapterRegistry*>(l.adapters.get());
    for (const engine::adapters::AdapterInfo& info : registry->List()) {
      if (info.name == name && !info.draining) return registry->Unload(std::string(name));
    }
  }
  return absl::NotFoundError(absl::StrCat("name: adapter '", name, "' is not loaded"));
#else
  (void)name;
  return absl::UnimplementedError("this build has no ESFT adapter registry (engine/adapters)");
#endif
}

engine::Engine* ModelHost::engine(std::string_view model) const {
  for (const Loaded& l : models_) {
    if (l.name == model) return l.engine.get();
  }
  return nullptr;
}

}  // namespace expertserve::server
