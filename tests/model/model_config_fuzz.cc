// libFuzzer target: config.json parsing, and the tensor manifest of whatever
// parses. Must never crash, hang or throw, whatever the bytes.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "engine/model/model_config.h"
#include "engine/model/weight_manifest.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto config = expertserve::engine::ParseModelConfig(text);
  if (!config.ok()) return 0;
  // Bound the manifest's size (real configs have up to ~100k tensors).
  const int64_t experts = config->num_experts > 0 ? config->num_experts : 1;
  if (config->num_hidden_layers * experts > 200000) return 0;
  int64_t total = 0;
  for (const auto& t : expertserve::engine::ExpectedTensors(*config)) {
    total += t.num_elements();
  }
  (void)config->MoeLayers();
  return total < 0 ? 1 : 0;
}
