#include "server/launch_flags.h"

#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"

namespace expertserve::server {
namespace {

constexpr absl::string_view kValueFlags[] = {
    "--config",       "--model",          "--adapter",         "--host",
    "--port",         "--metrics-port",   "--max-tokens",      "--max-prompt-tokens",
    "--max-num-seqs", "--max-waiting-requests", "--kv-cache-mib",
    "--shutdown-grace-seconds", "--log-format"};
constexpr absl::string_view kQuickFlags[] = {
    "--model",        "--adapter",        "--host",          "--port",
    "--metrics-port", "--max-tokens",     "--max-prompt-tokens", "--max-num-seqs",
    "--max-waiting-requests", "--kv-cache-mib", "--shutdown-grace-seconds",
    "--no-reflection", "--log-format"};

std::string FlagName(absl::string_view arg) {
  const size_t eq = arg.find('=');
  return std::string(eq == absl::string_view::npos ? arg : arg.substr(0, eq));
}

absl::Status BadValue(absl::string_view flag, absl::string_view value, absl::string_view want) {
  return absl::InvalidArgumentError(
      absl::StrCat(flag, ": expected ", want, ", found \"", value, "\""));
}

absl::StatusOr<int64_t> Int(absl::string_view flag, const std::string& v, int64_t lo,
                            int64_t hi) {
  int64_t x;
  if (!absl::SimpleAtoi(v, &x) || x < lo || x > hi) {
    return BadValue(flag, v, absl::StrCat("an integer in [", lo, ", ", hi, "]"));
  }
  return x;
}

std::pair<std::string, std::string> NameDir(const std::string& v) {
  const size_t eq = v.find('=');
  if (eq != std::string::npos) return {v.substr(0, eq), v.substr(eq + 1)};
  std::filesystem::path p(v);
  std::string name = p.filename().string();
  if (name.empty()) name = p.parent_path().filename().string();
  return {name, v};
}

}  // namespace

bool UsesQuickStartFlags(const std::vector<std::string>& args) {
  for (const std::string& a : args) {
    const std::string f = FlagName(a);
    for (absl::string_view q : kQuickFlags) {
      if (f == q) return true;
    }
  }
  return false;
}

absl::StatusOr<LaunchFlags> ParseLaunchFlags(const std::vector<std::string>& args) {
  LaunchFlags out;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    const std::string flag = FlagName(a);
    if (flag == "--help" || flag == "-h") {
      out.help = true;
      continue;
    }
    if (flag == "--check") {
      out.check = true;
      continue;
    }
    if (flag == "--no-reflection") {
      out.no_reflection = true;
      continue;
    }
    bool takes_value = false;
    for (absl::string_view v : kValueFlags) takes_value |= flag == v;
    if (!takes_value) {
      return absl::InvalidArgumentError(absl::StrCat("unknown argument \"", a, "\""));
    }
    std::string value;
    if (a.size() > flag.size()) {
      value = a.substr(flag.size() + 1);
    } else if (i + 1 < args.size()) {
      value = args[++i];
    } else {
      return absl::InvalidArgumentError(absl::StrCat(flag, " needs a value"));
    }
    if (flag == "--config") {
      out.config_path = value;
    } else if (flag == "--model") {
      out.models.push_back(NameDir(value));
    } else if (flag == "--adapter") {
      if (value.find('=') == std::string::npos) {
        return BadValue(flag, value, "NAME=DIR");
      }
      out.adapters.push_back(NameDir(value));
    } else if (flag == "--host") {
      out.host = value;
    } else if (flag == "--port") {
      ES_ASSIGN_OR_RETURN(int64_t p, Int(flag, value, 0, 65535));
      out.port = static_cast<int>(p);
    } else if (flag == "--metrics-port") {
      ES_ASSIGN_OR_RETURN(int64_t p, Int(flag, value, 0, 65535));
      out.metrics_port = static_cast<int>(p);
    } else if (flag == "--max-tokens") {
      ES_ASSIGN_OR_RETURN(out.max_tokens, Int(flag, value, 1, 1 << 20));
    } else if (flag == "--max-prompt-tokens") {
      ES_ASSIGN_OR_RETURN(out.max_prompt_tokens, Int(flag, value, 1, 1 << 24));
    } else if (flag == "--max-num-seqs") {
      ES_ASSIGN_OR_RETURN(out.max_num_seqs, Int(flag, value, 1, 1 << 20));
    } else if (flag == "--max-waiting-requests") {
      ES_ASSIGN_OR_RETURN(out.max_waiting_requests, Int(flag, value, 0, 1 << 20));
    } else if (flag == "--kv-cache-mib") {
      ES_ASSIGN_OR_RETURN(out.kv_cache_mib, Int(flag, value, 1, 1 << 24));
    } else if (flag == "--shutdown-grace-seconds") {
      double s;
      if (!absl::SimpleAtod(value, &s) || s < 0 || s > 3600) {
        return BadValue(flag, value, "seconds in [0, 3600]");
      }
      out.shutdown_grace_seconds = s;
    } else if (flag == "--log-format") {
      if (value != "text" && value != "json" && value != "none") {
        return BadValue(flag, value, "text, json or none");
      }
      out.log_format = value;
    }
  }
  if (!out.help && out.config_path.empty() && out.models.empty()) {
    return absl::InvalidArgumentError("give --model [NAME=]DIR or --config FILE");
  }
  return out;
}

absl::StatusOr<config::ServerConfig> BuildConfig(const LaunchFlags& flags) {
  config::ServerConfig cfg;
  if (!flags.config_path.empty()) {
    ES_ASSIGN_OR_RETURN(cfg, config::LoadConfigFile(flags.config_path));
  }
  if (!flags.models.empty()) {
    // The quick-start models go through the config library's validation
    // (names, paths) by rendering them as a config document.
    nlohmann::json doc = {{"version", 1}};
    nlohmann::json models = nlohmann::json::array();
    for (const auto& [name, dir] : flags.models) {
      models.push_back({{"name", name},
                        {"path", std::filesystem::absolute(dir).string()}});
    }
    doc["models"] = models;
    if (!flags.adapters.empty()) {
      nlohmann::json adapters = nlohmann::json::array();
      for (const auto& [name, dir] : flags.adapters) {
        adapters.push_back({{"name", name},
                            {"path", std::filesystem::absolute(dir).string()},
                            {"base_model", flags.models.front().first}});
      }
      doc["adapters"] = adapters;
    }
    // JSON is YAML.
    ES_ASSIGN_OR_RETURN(config::ServerConfig quick,
                        config::ParseConfig(doc.dump(), "command line"));
    if (flags.config_path.empty()) {
      cfg = std::move(quick);
      cfg.server.reflection = true;  // generic tools work out of the box
    } else {
      for (config::ModelConfig& m : quick.models) cfg.models.push_back(std::move(m));
      for (config::AdapterConfig& a : quick.adapters) cfg.adapters.push_back(std::move(a));
    }
  }
  std::string host = "127.0.0.1";
  if (!cfg.server.listen.empty()) {
    const std::string& l = cfg.server.listen.front();
    const size_t colon = l.rfind(':');
    if (colon != std::string::npos && !absl::StartsWith(l, "unix:")) host = l.substr(0, colon);
  }
  if (flags.host.has_value()) host = *flags.host;
  if (flags.port.has_value() || flags.host.has_value()) {
    int port = 50051;
    if (flags.port.has_value()) port = *flags.port;
    cfg.server.listen = {absl::StrCat(host, ":", port)};
  }
  if (flags.metrics_port.has_value()) {
    cfg.server.metrics.enabled = true;
    cfg.server.metrics.listen = absl::StrCat(host, ":", *flags.metrics_port);
  }
  if (flags.max_tokens) cfg.limits.max_tokens = *flags.max_tokens;
  if (flags.max_prompt_tokens) cfg.limits.max_prompt_tokens = *flags.max_prompt_tokens;
  if (flags.max_num_seqs) cfg.scheduler.max_num_seqs = *flags.max_num_seqs;
  if (flags.max_waiting_requests) {
    cfg.scheduler.max_waiting_requests = *flags.max_waiting_requests;
  }
  if (flags.kv_cache_mib) cfg.memory.kv_cache_budget_bytes = *flags.kv_cache_mib * config::kMiB;
  if (flags.shutdown_grace_seconds) {
    cfg.server.shutdown_grace_period = absl::Seconds(*flags.shutdown_grace_seconds);
  }
  if (flags.no_reflection) cfg.server.reflection = false;
  return cfg;
}

std::string QuickStartUsage() {
  return R"(
Quick start (no config file), or overrides on top of --config:
  --model [NAME=]DIR        serve a Hugging Face checkpoint (repeatable)
  --adapter NAME=DIR        an ESFT adapter on the first --model (repeatable)
  --host HOST               listen host (default 127.0.0.1)
  --port N                  gRPC port (default 50051; 0 = any free port)
  --metrics-port N          Prometheus /metrics port on HOST (0 = any)
  --max-tokens N            limit on generated tokens per request
  --max-prompt-tokens N     limit on prompt tokens
  --max-num-seqs N          sequences per engine step
  --max-waiting-requests N  admission queue bound (beyond: RESOURCE_EXHAUSTED)
  --kv-cache-mib N          KV cache budget, shared by the models
  --shutdown-grace-seconds S  in-flight requests get S seconds at SIGTERM
  --no-reflection           disable gRPC server reflection
  --log-format FMT          request log lines: text, json or none
)";
}

}  // namespace expertserve::server
