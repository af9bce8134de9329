#include "server/config/config.h"

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/config/diagnostics.h"
#include "server/config/units.h"
#include "server/config/yaml_reader.h"
#include "yaml-cpp/eventhandler.h"
#include "yaml-cpp/yaml.h"

namespace expertserve::server::config {
namespace fs = std::filesystem;
namespace {

// Enum spellings, indexed by the enum's value.
constexpr absl::string_view kDTypeNames[] = {"auto", "float32", "bfloat16",
                                             "float16"};
constexpr absl::string_view kPermissionNames[] = {"inference", "admin"};
constexpr absl::string_view kPolicyNames[] = {"fcfs", "priority"};
constexpr absl::string_view kLogLevelNames[] = {"debug", "info", "warning",
                                                "error"};
constexpr absl::string_view kLogFormatNames[] = {"text", "json"};

constexpr int64_t kMaxTokensBound = int64_t{1} << 31;  // sanity bound
constexpr size_t kMaxNameLength = 128;
constexpr uint64_t kMaxGrpcInt = (uint64_t{1} << 31) - 1;  // gRPC args are int
constexpr uint64_t kMaxConfigFileBytes = 16 * kMiB;

// Names appear in API requests, metrics labels and logs: keep them plain.
bool IsValidName(absl::string_view name) {
  if (name.empty() || name.size() > kMaxNameLength) return false;
  if (!absl::ascii_isalnum(name[0])) return false;
  for (char c : name) {
    if (!absl::ascii_isalnum(c) && c != '.' && c != '_' && c != '-') {
      return false;
    }
  }
  return true;
}

bool IsValidEnvName(absl::string_view name) {
  if (name.empty() || absl::ascii_isdigit(name[0])) return false;
  for (char c : name) {
    if (!absl::ascii_isalnum(c) && c != '_') return false;
  }
  return true;
}

// Returns "" if `addr` is a usable gRPC listen address, else why not.
std::string ListenAddressProblem(absl::string_view addr) {
  if (absl::StartsWith(addr, "unix:") ||
      absl::StartsWith(addr, "unix-abstract:")) {
    return addr.substr(addr.find(':') + 1).empty() ? "empty socket path" : "";
  }
  absl::string_view host, port;
  if (absl::StartsWith(addr, "[")) {
    const size_t close = addr.find(']');
    if (close == absl::string_view::npos || close + 1 >= addr.size() ||
        addr[close + 1] != ':') {
      return "IPv6 addresses are written \"[::1]:50051\"";
    }
    host = addr.substr(1, close - 1);
    port = addr.substr(close + 2);
  } else {
    const size_t colon = addr.rfind(':');
    if (colon == absl::string_view::npos) return "missing \":port\"";
    host = addr.substr(0, colon);
    port = addr.substr(colon + 1);
    if (host.find(':') != absl::string_view::npos) {
      return "IPv6 addresses need brackets, as in \"[::1]:50051\"";
    }
  }
  if (host.empty()) return "missing host (use 0.0.0.0 for every interface)";
  for (char c : host) {
    if (absl::ascii_isspace(c) || c == '/') return "invalid host";
  }
  int port_num = 0;
  if (port.empty() || !std::all_of(port.begin(), port.end(),
                                   [](char c) { return absl::ascii_isdigit(c); }) ||
      port.size() > 5 || !absl::SimpleAtoi(port, &port_num) ||
      port_num > 65535) {
    return "the port must be a number in [0, 65535] (0 picks a free port)";
  }
  return "";
}

// Reads the schema into ServerConfig. Checks that need only one value (types,
// ranges, paths) happen here; cross-references happen in Validate().
class Parser {
 public:
  Parser(Reader& r, const ParseOptions& options, ServerConfig& config)
      : r_(r), options_(options), c_(config) {}

  void Root(const Entry& root) {
    MapReader m(r_, root);
    if (!m.ok()) return;
    if (auto e = m.Get("version")) {
      if (auto v = r_.Int(*e, kConfigVersion, kConfigVersion)) c_.version = *v;
    }
    if (auto e = m.Get("server")) Server(*e);
    if (auto e = m.Require("models", "a list of models")) Models(*e);
    if (auto e = m.Get("adapters")) Adapters(*e);
    if (auto e = m.Get("model_roots")) Roots(*e, c_.model_roots);
    if (auto e = m.Get("adapter_roots")) Roots(*e, c_.adapter_roots);
    if (auto e = m.Get("router")) Router(*e);
    if (auto e = m.Get("memory")) Memory(*e);
    if (auto e = m.Get("scheduler")) Scheduler(*e);
    if (auto e = m.Get("limits")) Limits(*e);
    if (auto e = m.Get("logging")) Logging(*e);
    m.Finish();
  }

 private:
  // Sets `field` from the key if present and valid.
  template <typename T, typename ReadFn>
  void Read(MapReader& m, absl::string_view key, T& field, ReadFn read) {
    if (auto e = m.Get(key)) {
      if (auto v = read(*e)) field = static_cast<T>(*v);
    }
  }
  auto IntIn(int64_t min, int64_t max) {
    return [this, min, max](const Entry& e) { return r_.Int(e, min, max); };
  }
  auto SizeMin(uint64_t min) {
    return [this, min](const Entry& e) { return r_.Size(e, min); };
  }
  auto DurationFn(bool allow_zero) {
    return [this, allow_zero](const Entry& e) {
      return r_.Duration(e, allow_zero);
    };
  }
  auto BoolFn() {
    return [this](const Entry& e) { return r_.Bool(e); };
  }
  template <typename Enum>
  auto ChoiceFn(absl::Span<const absl::string_view> names) {
    return [this, names](const Entry& e) -> std::optional<Enum> {
      auto i = r_.Choice(e, names);
      if (!i) return std::nullopt;
      return static_cast<Enum>(*i);
    };
  }

  std::optional<std::string> Name(const Entry& e) {
    std::optional<std::string> s = r_.String(e);
    if (!s) return std::nullopt;
    if (!IsValidName(*s)) {
      r_.Error(e, absl::StrCat(
                      "expected a name of letters, digits, '.', '_' or '-' "
                      "starting with a letter or digit (at most ",
                      kMaxNameLength, " characters), found ", Quote(*s)));
      return std::nullopt;
    }
    return s;
  }

  std::string Resolve(absl::string_view path) {
    fs::path p{std::string(path)};
    if (p.is_relative()) p = fs::path(options_.base_dir) / p;
    p = p.lexically_normal();
    // "dir/" and "dir" name the same directory; report it one way.
    if (!p.has_filename() && p.has_relative_path()) p = p.parent_path();
    return p.string();
  }
  std::string BaseDirNote() const {
    return absl::StrCat(" (relative paths resolve against the config file's "
                        "directory, ",
                        QuotePath(options_.base_dir.empty() ? "."
                                                        : options_.base_dir),
                        ")");
  }

  // Reads a path and, if options_.check_paths, checks its kind.
  std::optional<std::string> PathValue(const Entry& e, bool want_directory,
                                       absl::string_view what) {
    std::optional<std::string> s = r_.NonEmptyString(e);
    if (!s) return std::nullopt;
    std::string resolved = Resolve(*s);
    if (options_.check_paths) {
      std::error_code ec;
      const fs::file_status st = fs::status(resolved, ec);
      const bool relative = fs::path(*s).is_relative();
      if (!fs::exists(st)) {
        r_.Error(e, absl::StrCat("expected an existing ", what, ", but ",
                                 QuotePath(resolved), " does not exist",
                                 relative ? BaseDirNote() : ""));
      } else if (want_directory && !fs::is_directory(st)) {
        r_.Error(e, absl::StrCat("expected a ", what, ", but ",
                                 QuotePath(resolved), " is not a directory"));
      } else if (!want_directory && !fs::is_regular_file(st)) {
        r_.Error(e, absl::StrCat("expected a ", what, ", but ",
                                 QuotePath(resolved), " is not a regular file"));
      }
    }
    return resolved;
  }

  std::optional<std::string> ListenAddress(const Entry& e) {
    std::optional<std::string> s = r_.String(e);
    if (!s) return std::nullopt;
    std::string problem = ListenAddressProblem(*s);
    if (!problem.empty()) {
      r_.Error(e, absl::StrCat("expected a listen address \"host:port\" such "
                               "as \"0.0.0.0:50051\" (",
                               problem, "), found ", Quote(*s)));
      return std::nullopt;
    }
    return s;
  }

  void Server(const Entry& e) {
    ServerSection& s = c_.server;
    MapReader m(r_, e);
    if (!m.ok()) return;
    if (auto l = m.Get("listen")) {
      // One address may be written as a plain string.
      if (l->node.IsScalar()) {
        if (auto a = ListenAddress(*l)) s.listen = {*a};
      } else {
        std::vector<std::string> addrs;
        absl::flat_hash_set<std::string> seen;
        r_.ForEach(*l, [&](const Entry& item) {
          if (auto a = ListenAddress(item)) {
            if (!seen.insert(*a).second) {
              r_.Error(item, absl::StrCat("duplicate listen address ",
                                          Quote(*a)));
            }
            addrs.push_back(*a);
          }
        });
        if (l->node.IsSequence() && l->node.size() == 0) {
          r_.Error(*l, "expected at least one listen address, found an "
                       "empty list");
        }
        s.listen = std::move(addrs);
      }
    }
    Read(m, "reflection", s.reflection, BoolFn());
    Read(m, "shutdown_grace_period", s.shutdown_grace_period,
         DurationFn(/*allow_zero=*/true));
    if (auto g = m.Get("grpc")) Grpc(*g);
    if (auto t = m.Get("tls")) Tls(*t);
    if (auto a = m.Get("auth")) Auth(*a);
    if (auto x = m.Get("metrics")) Metrics(*x);
    m.Finish();
  }

  void Grpc(const Entry& e) {
    GrpcLimits& g = c_.server.grpc;
    MapReader m(r_, e);
    if (!m.ok()) return;
    auto int_size = [this](uint64_t min) {
      return [this, min](const Entry& x) -> std::optional<uint64_t> {
        auto v = r_.Size(x, min);
        if (v && *v > kMaxGrpcInt) {
          r_.Error(x, absl::StrCat("expected a size below 2GiB (gRPC limits "
                                   "are 32-bit), found ",
                                   Quote(x.node.Scalar())));
          return std::nullopt;
        }
        return v;
      };
    };
    Read(m, "max_receive_message_bytes", g.max_receive_message_bytes,
         int_size(1));
    Read(m, "max_send_message_bytes", g.max_send_message_bytes, int_size(1));
    Read(m, "max_concurrent_streams", g.max_concurrent_streams,
         IntIn(1, INT32_MAX));
    Read(m, "keepalive_min_time", g.keepalive_min_time, DurationFn(true));
    Read(m, "keepalive_permit_without_calls", g.keepalive_permit_without_calls,
         BoolFn());
    Read(m, "max_metadata_bytes", g.max_metadata_bytes, int_size(1024));
    Read(m, "max_connection_age", g.max_connection_age, DurationFn(false));
    Read(m, "max_connection_age_grace", g.max_connection_age_grace,
         DurationFn(true));
    m.Finish();
  }

  void Tls(const Entry& e) {
    MapReader m(r_, e);
    if (!m.ok()) return;
    TlsConfig t;
    if (auto x = m.Require("cert_file", "a PEM certificate file")) {
      if (auto p = PathValue(*x, false, "certificate file")) t.cert_file = *p;
    }
    if (auto x = m.Require("key_file", "a PEM private key file")) {
      if (auto p = PathValue(*x, false, "private key file")) t.key_file = *p;
    }
    if (auto x = m.Get("client_ca_file")) {
      if (auto p = PathValue(*x, false, "CA bundle file")) t.client_ca_file = *p;
    }
    Read(m, "require_client_cert", t.require_client_cert, BoolFn());
    if (t.require_client_cert && !m.Get("client_ca_file")) {
      r_.diag().Add(e.pos, JoinPath(e.path, "client_ca_file"),
                    "missing required key \"client_ca_file\" (expected a CA "
                    "bundle to verify client certificates, because "
                    "require_client_cert is true)");
    }
    m.Finish();
    c_.server.tls = std::move(t);
  }

  void Auth(const Entry& e) {
    MapReader m(r_, e);
    if (!m.ok()) return;
    if (auto tokens = m.Get("tokens")) {
      absl::flat_hash_map<std::string, std::string> names;  // name -> path
      r_.ForEach(*tokens, [&](const Entry& item) { Token(item, names); });
    }
    m.Finish();
  }

  void Token(const Entry& e,
             absl::flat_hash_map<std::string, std::string>& names) {
    MapReader m(r_, e);
    if (!m.ok()) return;
    AuthToken t;
    if (auto x = m.Require("name", "a token name")) {
      if (auto n = Name(*x)) {
        auto [it, inserted] = names.emplace(*n, x->path);
        if (!inserted) {
          r_.Error(*x, absl::StrCat("duplicate token name ", Quote(*n),
                                    " (first used at ", it->second, ")"));
        }
        t.name = *n;
      }
    }
    if (auto x = m.Get("token")) {
      r_.Error(*x, "inline tokens are not allowed (config files get copied "
                   "and logged); put the secret in a file and set token_file, "
                   "or set token_env to an environment variable name");
    }
    auto file = m.Get("token_file");
    auto env = m.Get("token_env");
    if (file && env) {
      r_.Error(*env, "expected exactly one of token_file or token_env, "
                     "found both");
    } else if (!file && !env) {
      r_.diag().Add(e.pos, JoinPath(e.path, "token_file"),
                    "missing required key \"token_file\" or \"token_env\" "
                    "(expected where the token's secret comes from)");
    }
    if (file) {
      if (auto p = PathValue(*file, false, "token file")) t.token_file = *p;
    }
    if (env) {
      if (auto v = r_.NonEmptyString(*env)) {
        if (!IsValidEnvName(*v)) {
          r_.Error(*env, absl::StrCat("expected an environment variable name "
                                      "([A-Za-z_][A-Za-z0-9_]*), found ",
                                      Quote(*v)));
        } else {
          if (options_.check_env && std::getenv(v->c_str()) == nullptr) {
            r_.Error(*env, absl::StrCat("expected environment variable ", *v,
                                        " to be set, but it is not"));
          }
          t.token_env = *v;
        }
      }
    }
    if (auto x = m.Require("permissions", "a list such as [inference]")) {
      absl::flat_hash_set<Permission> seen;
      r_.ForEach(*x, [&](const Entry& item) {
        if (auto i = r_.Choice(item, kPermissionNames)) {
          auto p = static_cast<Permission>(*i);
          if (!seen.insert(p).second) {
            r_.Error(item, absl::StrCat("duplicate permission ",
                                        kPermissionNames[*i]));
          }
          t.permissions.push_back(p);
        }
      });
      if (x->node.IsNull() ||
          (x->node.IsSequence() && x->node.size() == 0)) {
        r_.Error(*x, "expected at least one permission (inference, admin), "
                     "found none");
      }
    }
    m.Finish();
    c_.server.auth.tokens.push_back(std::move(t));
  }

  void Metrics(const Entry& e) {
    MapReader m(r_, e);
    if (!m.ok()) return;
    Read(m, "enabled", c_.server.metrics.enabled, BoolFn());
    if (auto x = m.Get("listen")) {
      if (auto a = ListenAddress(*x)) c_.server.metrics.listen = *a;
    }
    m.Finish();
  }

  void Models(const Entry& e) {
    r_.ForEach(e, [&](const Entry& item) {
      // A placeholder keeps c_.models[i] aligned with models[i] for the
      // cross-checks; its empty name is skipped there.
      MapReader m(r_, item);
      if (!m.ok()) return c_.models.push_back({});
      ModelConfig mc;
      if (auto x = m.Require("name", "a model name")) {
        if (auto n = Name(*x)) mc.name = *n;
      }
      if (auto x = m.Require("path", "a checkpoint directory")) {
        if (auto p = PathValue(*x, true, "checkpoint directory")) mc.path = *p;
      }
      Read(m, "dtype", mc.dtype, ChoiceFn<DType>(kDTypeNames));
      Read(m, "max_context_tokens", mc.max_context_tokens,
           IntIn(1, kMaxTokensBound));
      if (auto x = m.Get("kv_cache_budget")) {
        if (auto v = r_.Size(*x, 1)) mc.kv_cache_budget_bytes = *v;
      }
      m.Finish();
      c_.models.push_back(std::move(mc));
    });
    if (e.node.IsNull() || (e.node.IsSequence() && e.node.size() == 0)) {
      r_.Error(e, "expected at least one model, found none");
    }
  }

  void Adapters(const Entry& e) {
    r_.ForEach(e, [&](const Entry& item) {
      MapReader m(r_, item);
      if (!m.ok()) return c_.adapters.push_back({});
      AdapterConfig a;
      if (auto x = m.Require("name", "an adapter name")) {
        if (auto n = Name(*x)) a.name = *n;
      }
      if (auto x = m.Require("path", "an ESFT adapter directory")) {
        if (auto p = PathValue(*x, true, "adapter directory")) a.path = *p;
      }
      if (auto x = m.Require("base_model", "the name of a configured model")) {
        if (auto n = r_.NonEmptyString(*x)) a.base_model = *n;
      }
      m.Finish();
      c_.adapters.push_back(std::move(a));
    });
  }

  void Roots(const Entry& e, std::vector<std::string>& out) {
    r_.ForEach(e, [&](const Entry& item) {
      if (auto p = PathValue(item, true, "directory")) out.push_back(*p);
    });
  }

  std::optional<Target> ParseTarget(const Entry& e) {
    // Shorthand: a plain string names a model alone.
    if (e.node.IsScalar()) {
      if (auto n = r_.NonEmptyString(e)) return Target{*n, ""};
      return std::nullopt;
    }
    if (!e.node.IsMap()) {
      r_.Error(e, absl::StrCat("expected a target {model: NAME, adapter: "
                               "NAME} or a model name, found ",
                               Describe(e.node)));
      return std::nullopt;
    }
    MapReader m(r_, e);
    Target t;
    bool ok = true;
    if (auto x = m.Require("model", "a model name")) {
      if (auto n = r_.NonEmptyString(*x)) t.model = *n; else ok = false;
    } else {
      ok = false;
    }
    if (auto x = m.Get("adapter")) {
      if (auto n = r_.NonEmptyString(*x)) t.adapter = *n; else ok = false;
    }
    m.Finish();
    if (!ok) return std::nullopt;
    return t;
  }

  void Router(const Entry& e) {
    RouterConfig& rc = c_.router;
    MapReader m(r_, e);
    if (!m.ok()) return;
    if (auto x = m.Get("categories")) {
      r_.ForEach(*x, [&](const Entry& item) {
        MapReader cm(r_, item);
        if (!cm.ok()) return rc.categories.push_back({});
        RouterCategory cat;
        if (auto n = cm.Require("name", "a category name")) {
          if (auto v = Name(*n)) cat.name = *v;
        }
        if (auto ex = cm.Require("examples", "a list of example utterances")) {
          r_.ForEach(*ex, [&](const Entry& u) {
            if (auto s = r_.NonEmptyString(u)) cat.examples.push_back(*s);
          });
          if (ex->node.IsNull() ||
              (ex->node.IsSequence() && ex->node.size() == 0)) {
            r_.Error(*ex, "expected at least one example utterance, found "
                          "none");
          }
        }
        cm.Finish();
        rc.categories.push_back(std::move(cat));
      });
    }
    if (auto x = m.Get("routes")) {
      MapReader rm(r_, *x);
      if (rm.ok()) {
        for (auto& [category, target] : rm.Items()) {
          if (auto t = ParseTarget(target)) rc.routes[category] = *t;
        }
      }
      rm.Finish();
    }
    Read(m, "confidence_threshold", rc.confidence_threshold,
         [this](const Entry& x) { return r_.Double(x, 0.0, 1.0); });
    if (auto x = m.Get("default_target")) {
      rc.default_target = ParseTarget(*x);
    }
    m.Finish();
  }

  void Memory(const Entry& e) {
    MemoryConfig& mc = c_.memory;
    MapReader m(r_, e);
    if (!m.ok()) return;
    if (auto tiers = m.Get("tiers")) {
      MapReader tm(r_, *tiers);
      auto tier = [&](absl::string_view name, uint64_t& budget) {
        if (auto t = tm.Get(name)) {
          MapReader bm(r_, *t);
          if (bm.ok()) Read(bm, "budget", budget, SizeMin(1 * kMiB));
          bm.Finish();
        }
      };
      tier("device", mc.device_budget_bytes);
      tier("host", mc.host_budget_bytes);
      tm.Finish();
    }
    Read(m, "kv_cache_budget", mc.kv_cache_budget_bytes, SizeMin(1 * kMiB));
    if (auto x = m.Get("adapter_slots_per_layer")) {
      if (x->node.IsScalar() && x->node.Scalar() == "auto") {
        mc.adapter_slots_per_layer.reset();
      } else if (x->node.IsScalar()) {
        int64_t v = 0;
        if (!absl::SimpleAtoi(x->node.Scalar(), &v) || v < 0 || v > 4096) {
          r_.Error(*x, absl::StrCat("expected \"auto\" or an integer in "
                                    "[0, 4096], found ",
                                    Quote(x->node.Scalar())));
        } else {
          mc.adapter_slots_per_layer = v;
        }
      } else {
        r_.Error(*x, absl::StrCat("expected \"auto\" or an integer in "
                                  "[0, 4096], found ",
                                  Describe(x->node)));
      }
    }
    Read(m, "prefetch", mc.prefetch, BoolFn());
    m.Finish();
  }

  void Scheduler(const Entry& e) {
    SchedulerConfig& s = c_.scheduler;
    MapReader m(r_, e);
    if (!m.ok()) return;
    Read(m, "max_batched_tokens", s.max_batched_tokens,
         IntIn(1, kMaxTokensBound));
    Read(m, "max_num_seqs", s.max_num_seqs, IntIn(1, 1 << 20));
    Read(m, "max_waiting_requests", s.max_waiting_requests,
         IntIn(0, 1 << 24));
    if (auto x = m.Get("kv_block_tokens")) {
      if (auto v = r_.Int(*x, 1, 1024)) {
        if ((*v & (*v - 1)) != 0) {
          r_.Error(*x, absl::StrCat("expected a power of two in [1, 1024], "
                                    "found ",
                                    *v));
        } else {
          s.kv_block_tokens = *v;
        }
      }
    }
    Read(m, "prefill_chunk_tokens", s.prefill_chunk_tokens,
         IntIn(1, kMaxTokensBound));
    Read(m, "policy", s.policy, ChoiceFn<SchedulerPolicy>(kPolicyNames));
    m.Finish();
  }

  void Limits(const Entry& e) {
    LimitsConfig& l = c_.limits;
    MapReader m(r_, e);
    if (!m.ok()) return;
    Read(m, "max_request_bytes", l.max_request_bytes, SizeMin(1));
    Read(m, "max_prompt_tokens", l.max_prompt_tokens,
         IntIn(1, kMaxTokensBound));
    Read(m, "max_tokens", l.max_tokens, IntIn(1, kMaxTokensBound));
    Read(m, "max_stop_strings", l.max_stop_strings, IntIn(0, 1024));
    Read(m, "max_logprobs", l.max_logprobs, IntIn(0, 1024));
    Read(m, "max_stream_buffer_bytes", l.max_stream_buffer_bytes, SizeMin(64 * kKiB));
    m.Finish();
  }

  void Logging(const Entry& e) {
    MapReader m(r_, e);
    if (!m.ok()) return;
    Read(m, "level", c_.logging.level, ChoiceFn<LogLevel>(kLogLevelNames));
    Read(m, "format", c_.logging.format, ChoiceFn<LogFormat>(kLogFormatNames));
    m.Finish();
  }

  Reader& r_;
  const ParseOptions& options_;
  ServerConfig& c_;
};

std::string KnownList(absl::Span<const absl::string_view> names) {
  return names.empty() ? "none are configured" : absl::StrJoin(names, ", ");
}

// Cross-references between sections. Positions come from what the parser
// recorded; values that failed to parse are empty and skipped.
class Validator {
 public:
  Validator(const ServerConfig& c, Diagnostics& d) : c_(c), d_(d) {}

  void Run() {
    Names();
    AdapterBases();
    Router();
    Memory();
    Scheduler();
    Limits();
    Server();
  }

 private:
  void Names() {
    // Models and adapters share one namespace: a request's target name must
    // be unambiguous.
    absl::flat_hash_map<std::string, std::string> seen;  // name -> path
    auto check = [&](const std::string& name, const std::string& path) {
      if (name.empty()) return;
      auto [it, inserted] = seen.emplace(name, path);
      if (!inserted) {
        d_.AddAt(path, absl::StrCat("duplicate name ", Quote(name),
                                    " (already used by ", it->second,
                                    "; model and adapter names must all "
                                    "differ)"));
      }
    };
    for (size_t i = 0; i < c_.models.size(); ++i) {
      model_names_.push_back(c_.models[i].name);
      check(c_.models[i].name, absl::StrCat("models[", i, "].name"));
    }
    for (size_t i = 0; i < c_.adapters.size(); ++i) {
      adapter_names_.push_back(c_.adapters[i].name);
      check(c_.adapters[i].name, absl::StrCat("adapters[", i, "].name"));
    }
  }

  void UnknownName(const std::string& path, absl::string_view kind,
                   const std::string& name,
                   const std::vector<absl::string_view>& known) {
    std::string msg = absl::StrCat("unknown ", kind, " ", Quote(name));
    absl::string_view hint = d_.full() ? "" : Suggest(name, known);
    if (!hint.empty()) absl::StrAppend(&msg, " (did you mean \"", hint, "\"?)");
    absl::StrAppend(&msg, "; expected one of the configured ", kind, "s: ",
                    KnownList(known));
    d_.AddAt(path, msg);
  }

  void AdapterBases() {
    for (size_t i = 0; i < c_.adapters.size(); ++i) {
      const AdapterConfig& a = c_.adapters[i];
      if (!a.base_model.empty() && c_.FindModel(a.base_model) == nullptr) {
        UnknownName(absl::StrCat("adapters[", i, "].base_model"), "model",
                    a.base_model, model_names_);
      }
    }
  }

  void CheckTarget(const Target& t, const std::string& path) {
    if (c_.FindModel(t.model) == nullptr) {
      UnknownName(JoinPath(path, "model"), "model", t.model, model_names_);
    }
    if (t.adapter.empty()) return;
    const AdapterConfig* a = c_.FindAdapter(t.adapter);
    if (a == nullptr) {
      UnknownName(JoinPath(path, "adapter"), "adapter", t.adapter,
                  adapter_names_);
    } else if (a->base_model != t.model) {
      d_.AddAt(JoinPath(path, "adapter"),
               absl::StrCat("adapter ", Quote(t.adapter), " has base model ",
                            Quote(a->base_model), ", but the target's model is ",
                            Quote(t.model), "; expected model: ",
                            a->base_model));
    }
  }

  void Router() {
    const RouterConfig& r = c_.router;
    std::vector<absl::string_view> categories;
    absl::flat_hash_map<std::string, std::string> names;     // -> path
    absl::flat_hash_map<std::string, std::string> examples;  // -> path
    for (size_t i = 0; i < r.categories.size(); ++i) {
      const RouterCategory& cat = r.categories[i];
      const std::string path = absl::StrCat("router.categories[", i, "]");
      if (!cat.name.empty()) {
        categories.push_back(cat.name);
        auto [it, inserted] = names.emplace(cat.name, path + ".name");
        if (!inserted) {
          d_.AddAt(path + ".name",
                   absl::StrCat("duplicate category ", Quote(cat.name),
                                " (already defined at ", it->second, ")"));
        }
      }
      for (size_t j = 0; j < cat.examples.size(); ++j) {
        const std::string ex_path = absl::StrCat(path, ".examples[", j, "]");
        auto [it, inserted] = examples.emplace(cat.examples[j], ex_path);
        if (!inserted) {
          d_.AddAt(ex_path,
                   absl::StrCat("duplicate example ", Quote(cat.examples[j]),
                                " (also at ", it->second, ")"));
        }
      }
    }
    for (const auto& [category, target] : r.routes) {
      const std::string path = absl::StrCat("router.routes.", category);
      if (!names.contains(category)) {
        UnknownName(path, "category", category, categories);
      }
      CheckTarget(target, path);
    }
    if (r.default_target) {
      CheckTarget(*r.default_target, "router.default_target");
    } else if (!r.categories.empty() && !d_.Has("router.default_target")) {
      d_.AddAt("router.default_target",
               "missing required key \"default_target\" (expected the target "
               "for requests below confidence_threshold, because router."
               "categories is set)");
    }
  }

  void Memory() {
    const MemoryConfig& m = c_.memory;
    if (m.kv_cache_budget_bytes > m.device_budget_bytes) {
      d_.AddAt("memory.kv_cache_budget",
               absl::StrCat("expected at most memory.tiers.device.budget (",
                            FormatSize(m.device_budget_bytes),
                            ") because the KV cache lives on the device tier, "
                            "found ",
                            FormatSize(m.kv_cache_budget_bytes)));
    }
    uint64_t sum = 0;
    for (const ModelConfig& model : c_.models) {
      sum += model.kv_cache_budget_bytes.value_or(0);
    }
    if (sum > m.kv_cache_budget_bytes) {
      for (size_t i = 0; i < c_.models.size(); ++i) {
        if (!c_.models[i].kv_cache_budget_bytes) continue;
        d_.AddAt(absl::StrCat("models[", i, "].kv_cache_budget"),
                 absl::StrCat("per-model KV budgets add up to ",
                              FormatSize(sum),
                              "; expected at most memory.kv_cache_budget (",
                              FormatSize(m.kv_cache_budget_bytes), ")"));
        break;
      }
    }
  }

  void Scheduler() {
    const SchedulerConfig& s = c_.scheduler;
    if (s.prefill_chunk_tokens > s.max_batched_tokens) {
      d_.AddAt("scheduler.prefill_chunk_tokens",
               absl::StrCat("expected at most scheduler.max_batched_tokens (",
                            s.max_batched_tokens, "), found ",
                            s.prefill_chunk_tokens));
    }
    if (s.max_num_seqs > s.max_batched_tokens) {
      d_.AddAt("scheduler.max_num_seqs",
               absl::StrCat("expected at most scheduler.max_batched_tokens (",
                            s.max_batched_tokens,
                            ") since every running sequence needs a token per "
                            "step, found ",
                            s.max_num_seqs));
    }
  }

  void Limits() {
    const LimitsConfig& l = c_.limits;
    if (l.max_request_bytes > c_.server.grpc.max_receive_message_bytes) {
      d_.AddAt("limits.max_request_bytes",
               absl::StrCat("expected at most server.grpc."
                            "max_receive_message_bytes (",
                            FormatSize(c_.server.grpc.max_receive_message_bytes),
                            "), found ", FormatSize(l.max_request_bytes)));
    }
    // The backlog is sent as one message: it must fit a gRPC message.
    if (l.max_stream_buffer_bytes > c_.server.grpc.max_send_message_bytes / 2) {
      d_.AddAt("limits.max_stream_buffer_bytes",
               absl::StrCat("expected at most half of server.grpc.max_send_message_bytes (",
                            FormatSize(c_.server.grpc.max_send_message_bytes / 2),
                            "), found ", FormatSize(l.max_stream_buffer_bytes)));
    }
  }

  void Server() {
    const ServerSection& s = c_.server;
    if (!s.metrics.enabled) return;
    for (const std::string& addr : s.listen) {
      if (addr == s.metrics.listen) {
        d_.AddAt("server.metrics.listen",
                 absl::StrCat("expected an address different from the gRPC "
                              "listen address ",
                              Quote(addr), ", found the same"));
      }
    }
  }

  const ServerConfig& c_;
  Diagnostics& d_;
  std::vector<absl::string_view> model_names_;
  std::vector<absl::string_view> adapter_names_;
};

// Counts documents without building them, stopping at the second: yaml-cpp
// 0.7's LoadAll loops forever, allocating, on inputs such as "," (upstream
// jbeder/yaml-cpp#1040, fixed after 0.8 by #1319).
class DocumentCounter : public YAML::EventHandler {
 public:
  void OnDocumentStart(const YAML::Mark& mark) override {
    if (++count_ == 2) second_ = mark;
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}

  int count() const { return count_; }
  const YAML::Mark& second() const { return second_; }

 private:
  int count_ = 0;
  YAML::Mark second_;
};

// Where a second document starts, if there is one. Throws like YAML::Load.
std::optional<Position> SecondDocument(const std::string& text) {
  std::istringstream in(text);
  YAML::Parser parser(in);
  DocumentCounter counter;
  while (counter.count() < 2 && parser.HandleNextDocument(counter)) {
  }
  if (counter.count() < 2) return std::nullopt;
  const YAML::Mark& m = counter.second();
  return Position{m.line + 1, m.column + 1};
}

void ParseInto(std::string_view yaml_text, const ParseOptions& options,
               Diagnostics& diag, ServerConfig& config) {
  // yaml-cpp throws; nothing may escape this library.
  try {
    const std::string text(yaml_text);
    const YAML::Node doc = YAML::Load(text);
    if (doc.IsNull()) {
      diag.Add({}, "",
               "the file is empty; expected a mapping with at least a "
               "\"models\" list");
      return;
    }
    if (std::optional<Position> second = SecondDocument(text)) {
      diag.Add(*second, "",
               "expected one YAML document, found a second one (remove the "
               "\"---\" separator)");
    }
    Reader reader(diag);
    Entry root{doc, "", PositionOf(doc, {1, 1})};
    Parser(reader, options, config).Root(root);
    Validator(config, diag).Run();
  } catch (const YAML::Exception& e) {
    // ParserException (syntax, too-deep nesting) carries yaml-cpp's mark.
    Position pos;
    if (!e.mark.is_null()) pos = {e.mark.line + 1, e.mark.column + 1};
    diag.Add(pos, "", absl::StrCat("invalid YAML: ", e.msg));
  } catch (const std::exception& e) {
    diag.Add({}, "", absl::StrCat("could not read the config: ", e.what()));
  } catch (...) {
    diag.Add({}, "", "could not read the config: unknown error");
  }
}

std::string_view ToStd(absl::string_view s) { return {s.data(), s.size()}; }

}  // namespace

const ModelConfig* ServerConfig::FindModel(std::string_view name) const {
  for (const ModelConfig& m : models) {
    if (m.name == name) return &m;
  }
  return nullptr;
}

const AdapterConfig* ServerConfig::FindAdapter(std::string_view name) const {
  for (const AdapterConfig& a : adapters) {
    if (a.name == name) return &a;
  }
  return nullptr;
}

absl::StatusOr<ServerConfig> ParseConfig(std::string_view yaml_text,
                                         std::string_view source_name,
                                         const ParseOptions& options) {
  Diagnostics diag{std::string(source_name)};
  ServerConfig config;
  config.source = std::string(source_name);
  config.base_dir = options.base_dir;
  ParseInto(yaml_text, options, diag, config);
  if (!diag.empty()) return diag.ToStatus();
  return config;
}

absl::StatusOr<ServerConfig> LoadConfigFile(const std::string& path) {
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (!fs::exists(st)) {
    return absl::NotFoundError(
        absl::StrCat("config file ", QuotePath(path), " does not exist"));
  }
  if (!fs::is_regular_file(st)) {
    return absl::InvalidArgumentError(
        absl::StrCat("config file ", QuotePath(path), " is not a regular file"));
  }
  const uintmax_t size = fs::file_size(path, ec);
  if (!ec && size > kMaxConfigFileBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "config file ", QuotePath(path), " is ", FormatSize(size),
        "; expected at most ", FormatSize(kMaxConfigFileBytes)));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int err = errno;
    return absl::PermissionDeniedError(absl::StrCat(
        "cannot read config file ", QuotePath(path), ": ", std::strerror(err)));
  }
  std::stringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) {
    return absl::DataLossError(
        absl::StrCat("error while reading config file ", QuotePath(path)));
  }
  ParseOptions options;
  fs::path absolute = fs::absolute(path, ec);
  if (ec) absolute = fs::path(path);
  options.base_dir = absolute.lexically_normal().parent_path().string();
  return ParseConfig(buffer.str(), path, options);
}

std::string Summary(const ServerConfig& config) {
  auto count = [](size_t n, absl::string_view one, absl::string_view many) {
    return absl::StrCat(n, " ", n == 1 ? one : many);
  };
  return absl::StrCat(
      count(config.models.size(), "model", "models"), ", ",
      count(config.adapters.size(), "adapter", "adapters"), ", ",
      count(config.router.categories.size(), "router category",
            "router categories"));
}

std::string_view DTypeName(DType dtype) {
  return ToStd(kDTypeNames[static_cast<size_t>(dtype)]);
}
std::string_view PermissionName(Permission permission) {
  return ToStd(kPermissionNames[static_cast<size_t>(permission)]);
}
std::string_view SchedulerPolicyName(SchedulerPolicy policy) {
  return ToStd(kPolicyNames[static_cast<size_t>(policy)]);
}
std::string_view LogLevelName(LogLevel level) {
  return ToStd(kLogLevelNames[static_cast<size_t>(level)]);
}
std::string_view LogFormatName(LogFormat format) {
  return ToStd(kLogFormatNames[static_cast<size_t>(format)]);
}

}  // namespace expertserve::server::config
