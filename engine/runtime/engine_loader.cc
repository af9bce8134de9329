#include "engine/runtime/engine_loader.h"

#include <cstdio>
#include <fstream>
#include <sstream>

#include "common/status_macros.h"
#include "nlohmann/json.hpp"

namespace expertserve::engine {
namespace {

// eos_token_id of generation_config.json (int or list); empty if absent.
std::vector<TokenId> GenerationConfigEos(const std::filesystem::path& dir) {
  std::ifstream f(dir / "generation_config.json");
  if (!f) return {};
  std::stringstream ss;
  ss << f.rdbuf();
  nlohmann::json j = nlohmann::json::parse(ss.str(), nullptr, /*allow_exceptions=*/false);
  std::vector<TokenId> out;
  if (!j.is_object() || !j.contains("eos_token_id")) return out;
  const auto& e = j["eos_token_id"];
  if (e.is_number_integer()) out.push_back(e.get<TokenId>());
  if (e.is_array()) {
    for (const auto& x : e) {
      if (x.is_number_integer()) out.push_back(x.get<TokenId>());
    }
  }
  return out;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Engine>> LoadEngine(
    const std::filesystem::path& dir, EngineOptions options,
    const TransformerRunnerOptions& runner_options,
    std::shared_ptr<AdapterResolverInterface> adapters) {
  ES_ASSIGN_OR_RETURN(std::unique_ptr<Transformer> model, Transformer::Load(dir));
  std::unique_ptr<Tokenizer> tokenizer;
  if (std::filesystem::exists(dir / "tokenizer.json")) {
    ES_ASSIGN_OR_RETURN(tokenizer, Tokenizer::FromDirectory(dir));
  }
  if (options.eos_token_ids.empty()) options.eos_token_ids = GenerationConfigEos(dir);
  if (options.eos_token_ids.empty()) {
    for (int64_t id : model->config().eos_token_ids) {
      options.eos_token_ids.push_back(static_cast<TokenId>(id));
    }
  }
  if (options.eos_token_ids.empty() && tokenizer && tokenizer->eos_id()) {
    options.eos_token_ids.push_back(*tokenizer->eos_id());
  }
  if (options.model_name.empty()) options.model_name = dir.filename().string();
  ES_ASSIGN_OR_RETURN(std::unique_ptr<TransformerRunner> runner,
                      TransformerRunner::Create(std::move(model), runner_options));
  auto engine = std::make_unique<Engine>(std::move(options), std::move(runner),
                                         std::move(tokenizer), std::move(adapters));
  std::fprintf(stderr, "%s: KV cache %s\n", engine->model_name().c_str(),
               engine->KvCapacityString().c_str());
  return engine;
}

}  // namespace expertserve::engine
