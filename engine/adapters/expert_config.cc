#include "engine/adapters/expert_config.h"

#include <limits>
#include <set>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"

namespace expertserve::engine::adapters {
namespace {

absl::Status Bad(std::string_view source, std::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat("adapter config ", std::string(source), ": ", std::string(what)));
}

// "0", "12": no sign, no leading zeros, no spaces, fits an int32.
bool ParseLayerKey(const std::string& key, int64_t& out) {
  if (key.empty() || key.size() > 9) return false;
  if (key.size() > 1 && key[0] == '0') return false;
  int64_t v = 0;
  for (char c : key) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  out = v;
  return true;
}

absl::Status ReadFlag(const nlohmann::json& j, const char* key,
                      std::string_view source, bool& out) {
  const auto it = j.find(key);
  if (it == j.end()) return absl::OkStatus();  // absent means false
  if (!it->is_boolean()) {
    return Bad(source, absl::StrCat("\"", key, "\" must be true or false, got ",
                                    it->dump()));
  }
  out = it->get<bool>();
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<EsftExpertConfig> ParseExpertConfig(std::string_view json,
                                                   std::string_view source) {
  const nlohmann::json j = nlohmann::json::parse(json, nullptr, false);
  if (j.is_discarded()) return Bad(source, "not valid JSON");
  if (!j.is_object()) return Bad(source, "the top level must be a JSON object");
  EsftExpertConfig cfg;
  const auto experts = j.find("experts");
  if (experts == j.end()) {
    return Bad(source, "missing \"experts\" ({\"<layer>\": [expert ids]})");
  }
  if (!experts->is_object()) {
    return Bad(source, "\"experts\" must be an object {\"<layer>\": [expert ids]}");
  }
  for (const auto& [key, ids] : experts->items()) {
    int64_t layer = 0;
    if (!ParseLayerKey(key, layer)) {
      return Bad(source, absl::StrCat("experts key \"", key,
                                      "\" is not a decimal layer index"));
    }
    if (!ids.is_array()) {
      return Bad(source, absl::StrCat("experts[\"", key,
                                      "\"] must be a list of expert ids"));
    }
    std::vector<ExpertId> list;
    std::set<int64_t> seen;
    for (const nlohmann::json& id : ids) {
      if (!id.is_number_integer() ||
          id.get<int64_t>() < 0 ||
          id.get<int64_t>() > std::numeric_limits<ExpertId>::max()) {
        return Bad(source, absl::StrCat("experts[\"", key, "\"] holds ",
                                        id.dump(),
                                        ", not a non-negative expert id"));
      }
      const int64_t e = id.get<int64_t>();
      if (!seen.insert(e).second) {
        return Bad(source, absl::StrCat("experts[\"", key, "\"] lists expert ",
                                        e, " twice"));
      }
      list.push_back(static_cast<ExpertId>(e));
    }
    cfg.experts[layer] = std::move(list);
  }
  ES_RETURN_IF_ERROR(ReadFlag(j, "shared_experts", source, cfg.shared_experts));
  ES_RETURN_IF_ERROR(
      ReadFlag(j, "non_expert_modules", source, cfg.non_expert_modules));
  for (const auto& [key, value] : j.items()) {
    if (key == "experts" || key == "shared_experts" ||
        key == "non_expert_modules") {
      continue;
    }
    cfg.warnings.push_back(absl::StrCat(std::string(source), ": unknown key \"", key,
                                        "\" ignored"));
  }
  return cfg;
}

}  // namespace expertserve::engine::adapters
