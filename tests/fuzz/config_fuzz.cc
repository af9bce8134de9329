// Fuzzes the config parser (yaml-cpp + schema + validation) with filesystem
// and environment checks off. Invariants: no crash, no exception escapes,
// every failure is kInvalidArgument; ParseSize and FormatSize round-trip.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "absl/status/status.h"
#include "server/config/config.h"
#include "server/config/units.h"

namespace cfg = expertserve::server::config;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  cfg::ParseOptions options;
  options.check_paths = false;
  options.check_env = false;
  absl::StatusOr<cfg::ServerConfig> config =
      cfg::ParseConfig(text, "fuzz.yaml", options);
  if (!config.ok() &&
      (config.status().code() != absl::StatusCode::kInvalidArgument ||
       config.status().message().empty())) {
    std::abort();
  }
  if (size <= 64) {
    absl::StatusOr<uint64_t> bytes = cfg::ParseSize(text);
    if (bytes.ok()) {
      absl::StatusOr<uint64_t> again = cfg::ParseSize(cfg::FormatSize(*bytes));
      if (!again.ok() || *again != *bytes) std::abort();
    }
    (void)cfg::ParseDuration(text);
  }
  return 0;
}
