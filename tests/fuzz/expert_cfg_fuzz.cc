// Fuzzes ParseExpertConfig (expert_cfg.json of ESFT adapters): never crashes,
// every accepted config satisfies the documented invariants (decimal layer
// keys, non-negative ids, no id twice in a layer), and re-serialising an
// accepted config parses back to the same value.
#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>

#include "common/check.h"
#include "engine/adapters/expert_config.h"
#include "nlohmann/json.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace adapters = expertserve::engine::adapters;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto cfg = adapters::ParseExpertConfig(text, "fuzz/expert_cfg.json");
  if (!cfg.ok()) {
    ES_CHECK(cfg.status().code() == absl::StatusCode::kInvalidArgument);
    return 0;
  }
  nlohmann::json experts = nlohmann::json::object();
  for (const auto& [layer, ids] : cfg->experts) {
    ES_CHECK(layer >= 0);
    std::set<expertserve::ExpertId> seen;
    for (expertserve::ExpertId e : ids) {
      ES_CHECK(e >= 0);
      ES_CHECK(seen.insert(e).second);
    }
    experts[std::to_string(layer)] = ids;
  }
  const nlohmann::json again = {{"experts", experts},
                                {"shared_experts", cfg->shared_experts},
                                {"non_expert_modules", cfg->non_expert_modules}};
  auto back = adapters::ParseExpertConfig(again.dump(), "roundtrip");
  ES_CHECK(back.ok());
  ES_CHECK(back->experts == cfg->experts);
  ES_CHECK(back->shared_experts == cfg->shared_experts);
  ES_CHECK(back->non_expert_modules == cfg->non_expert_modules);
  ES_CHECK(back->warnings.empty());
  return 0;
}
