// The serving command line: the config library's `--config FILE [--check]`
// plus the quick-start flags users know from `vllm serve` / `llama-server`:
//   --model [NAME=]DIR     serve a checkpoint (repeatable; NAME defaults to
//                          the directory's base name)
//   --adapter NAME=DIR     an ESFT adapter on the first --model (repeatable)
//   --host H --port N      gRPC listen address (default 127.0.0.1:50051;
//                          port 0 = any free port, printed at start)
//   --metrics-port N       Prometheus endpoint on the same host (0 = any)
//   --max-tokens N --max-prompt-tokens N --max-num-seqs N
//   --max-waiting-requests N --kv-cache-mib N --shutdown-grace-seconds S
//   --no-reflection --log-format text|json|none
// Without --config the flags alone make the configuration (sane defaults for
// the rest); with --config the file rules and the flags override it.
// Thread-safe (no state).
#ifndef EXPERTSERVE_SERVER_LAUNCH_FLAGS_H_
#define EXPERTSERVE_SERVER_LAUNCH_FLAGS_H_

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/status/statusor.h"
#include "server/config/config.h"

namespace expertserve::server {

struct LaunchFlags {
  std::string config_path;
  bool check = false;
  bool help = false;
  std::vector<std::pair<std::string, std::string>> models;    // (name, dir)
  std::vector<std::pair<std::string, std::string>> adapters;  // (name, dir)
  std::optional<std::string> host;
  std::optional<int> port;
  std::optional<int> metrics_port;
  std::optional<int64_t> max_tokens;
  std::optional<int64_t> max_prompt_tokens;
  std::optional<int64_t> max_num_seqs;
  std::optional<int64_t> max_waiting_requests;
  std::optional<int64_t> kv_cache_mib;
  std::optional<double> shutdown_grace_seconds;
  bool no_reflection = false;
  std::string log_format;  // "" = from the config
};

// True when `args` use any quick-start flag (otherwise main delegates to the
// config library's parser, whose behaviour and messages stay as they are).
bool UsesQuickStartFlags(const std::vector<std::string>& args);

// kInvalidArgument naming the bad argument.
absl::StatusOr<LaunchFlags> ParseLaunchFlags(const std::vector<std::string>& args);

// The configuration: the file (if any) with the flags applied on top.
absl::StatusOr<config::ServerConfig> BuildConfig(const LaunchFlags& flags);

std::string QuickStartUsage();

}  // namespace expertserve::server

#endif  // EXPERTSERVE_SERVER_LAUNCH_FLAGS_H_
