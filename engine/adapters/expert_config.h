// expert_cfg.json of an ESFT adapter (the format DeepSeek published with ESFT):
//   {"experts": {"<layer>": [expert ids, ...], ...},
//    "shared_experts": <bool>, "non_expert_modules": <bool>}
// Layer keys are decimal MoE layer indices; lists are unsorted and of any
// length (possibly empty). Parsing checks the syntax only; whether a layer is
// an MoE layer and an id is below E is checked against the base at load time.
#ifndef EXPERTSERVE_ENGINE_ADAPTERS_EXPERT_CONFIG_H_
#define EXPERTSERVE_ENGINE_ADAPTERS_EXPERT_CONFIG_H_

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/ids.h"

namespace expertserve::engine::adapters {

// A plain value: thread-compatible.
struct EsftExpertConfig {
  // layer index -> replaced routed expert ids, in the file's order.
  std::map<int64_t, std::vector<ExpertId>> experts;
  bool shared_experts = false;
  bool non_expert_modules = false;
  // Things that do not stop loading but must not pass silently (unknown
  // top-level keys).
  std::vector<std::string> warnings;
};

// kInvalidArgument naming `source` and the offending key: not JSON, not an
// object, "experts" missing or not an object, a layer key that is not a
// plain decimal integer, an id that is not a non-negative integer, an id
// listed twice for one layer, a flag that is not a boolean.
absl::StatusOr<EsftExpertConfig> ParseExpertConfig(std::string_view json,
                                                   std::string_view source);

}  // namespace expertserve::engine::adapters

#endif  // EXPERTSERVE_ENGINE_ADAPTERS_EXPERT_CONFIG_H_
