// The server's configuration: one YAML file (docs/configuration.md) loaded
// into the plain structs below and validated fully before anything starts.
//
// Loading never throws: yaml-cpp is wrapped inside this library. Every problem
// in a file is reported at once, one per line, as
//   <file>:<line>:<column>: <key.path>: <what was expected>, found <what>
// in the message of a kInvalidArgument status.
//
// Thread-safety: the structs are plain values (thread-compatible); the free
// functions keep no state and are thread-safe.
#ifndef EXPERTSERVE_SERVER_CONFIG_CONFIG_H_
#define EXPERTSERVE_SERVER_CONFIG_CONFIG_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace expertserve::server::config {

inline constexpr int kConfigVersion = 1;
inline constexpr uint64_t kKiB = 1024;
inline constexpr uint64_t kMiB = 1024 * kKiB;
inline constexpr uint64_t kGiB = 1024 * kMiB;

// ---- server ----------------------------------------------------------------

// Transport limits handed to grpc::ServerBuilder.
struct GrpcLimits {
  uint64_t max_receive_message_bytes = 4 * kMiB;
  uint64_t max_send_message_bytes = 4 * kMiB;
  int64_t max_concurrent_streams = 256;  // per HTTP/2 connection
  // Clients may ping no more often than this (GRPC_ARG_HTTP2_MIN_RECV_PING_
  // INTERVAL_WITHOUT_DATA_MS); faster pings get the connection closed.
  absl::Duration keepalive_min_time = absl::Seconds(30);
  bool keepalive_permit_without_calls = false;
  uint64_t max_metadata_bytes = 16 * kKiB;
  // InfiniteDuration = connections are never aged out.
  absl::Duration max_connection_age = absl::InfiniteDuration();
  absl::Duration max_connection_age_grace = absl::Seconds(30);
};

struct TlsConfig {
  std::string cert_file;       // PEM server certificate chain (resolved path)
  std::string key_file;        // PEM private key (resolved path)
  std::string client_ca_file;  // PEM CA bundle for client certs; may be empty
  bool require_client_cert = false;  // mutual TLS; needs client_ca_file
};

enum class Permission { kInference, kAdmin };

// A bearer token. The secret itself is never written in the config: it comes
// from a file (first line, trailing whitespace stripped) or an environment
// variable, read by the auth layer at start-up.
struct AuthToken {
  std::string name;        // for logs and metrics; never the secret
  std::string token_file;  // resolved path, or empty
  std::string token_env;   // environment variable name, or empty
  std::vector<Permission> permissions;  // non-empty, no duplicates
};

struct AuthConfig {
  std::vector<AuthToken> tokens;  // empty = authentication disabled
  bool enabled() const { return !tokens.empty(); }
};

struct MetricsConfig {
  bool enabled = false;
  std::string listen = "127.0.0.1:9090";  // Prometheus scrape address
};

struct ServerSection {
  // gRPC listen addresses: "host:port", "[ipv6]:port" or "unix:/path".
  std::vector<std::string> listen = {"127.0.0.1:50051"};
  bool reflection = true;  // on by default so generic gRPC tools work
  absl::Duration shutdown_grace_period = absl::Seconds(30);
  GrpcLimits grpc;
  std::optional<TlsConfig> tls;  // nullopt = plaintext
  AuthConfig auth;
  MetricsConfig metrics;
};

// ---- models and adapters ----------------------------------------------------

enum class DType { kAuto, kFloat32, kBFloat16, kFloat16 };

struct ModelConfig {
  std::string name;  // [A-Za-z0-9][A-Za-z0-9._-]*, unique across models+adapters
  std::string path;  // Hugging Face checkpoint directory (resolved path)
  DType dtype = DType::kAuto;  // kAuto = the checkpoint's torch_dtype
  // 0 = the checkpoint's max_position_embeddings.
  int64_t max_context_tokens = 0;
  // This model's share of memory.kv_cache_budget; nullopt = shared pool.
  std::optional<uint64_t> kv_cache_budget_bytes;
};

struct AdapterConfig {
  std::string name;        // same rules as ModelConfig::name
  std::string path;        // ESFT adapter directory (resolved path)
  std::string base_model;  // names a ModelConfig
};

// ---- router -----------------------------------------------------------------

// What a request runs on: a model, optionally with one of its ESFT adapters.
struct Target {
  std::string model;
  std::string adapter;  // empty = the base model alone
  bool operator==(const Target&) const = default;
};

struct RouterCategory {
  std::string name;
  std::vector<std::string> examples;  // example utterances, non-empty
};

struct RouterConfig {
  std::vector<RouterCategory> categories;  // empty = explicit targets only
  std::map<std::string, Target> routes;    // category name -> target
  // Below this classifier confidence a request goes to default_target.
  double confidence_threshold = 0.5;
  // Required when categories is non-empty; also used for unrouted categories.
  std::optional<Target> default_target;
};

// ---- memory, scheduler, limits, logging -------------------------------------

struct MemoryConfig {
  uint64_t device_budget_bytes = 4 * kGiB;  // memory.tiers.device.budget
  uint64_t host_budget_bytes = 16 * kGiB;   // memory.tiers.host.budget
  uint64_t kv_cache_budget_bytes = 1 * kGiB;  // on the device tier
  std::optional<int64_t> adapter_slots_per_layer;  // nullopt = "auto"
  bool prefetch = true;  // route-ahead prefetch to the device tier
};

enum class SchedulerPolicy { kFcfs, kPriority };

struct SchedulerConfig {
  int64_t max_batched_tokens = 2048;  // tokens per engine step
  int64_t max_num_seqs = 64;          // sequences per engine step
  int64_t max_waiting_requests = 1024;  // queue bound; beyond = kUnavailable
  int64_t kv_block_tokens = 16;       // paged-KV block size, power of two
  int64_t prefill_chunk_tokens = 512;
  SchedulerPolicy policy = SchedulerPolicy::kFcfs;
};

struct LimitsConfig {
  uint64_t max_request_bytes = 1 * kMiB;
  int64_t max_prompt_tokens = 8192;
  int64_t max_tokens = 4096;  // generated tokens per request
  int64_t max_stop_strings = 16;
  int64_t max_logprobs = 20;
  // Unsent output a GenerateStream may hold for a client that stops reading.
  uint64_t max_stream_buffer_bytes = 1 * kMiB;
};

enum class LogLevel { kDebug, kInfo, kWarning, kError };
enum class LogFormat { kText, kJson };

struct LoggingConfig {
  LogLevel level = LogLevel::kInfo;
  LogFormat format = LogFormat::kText;
};

// ---- the whole file -----------------------------------------------------------

struct ServerConfig {
  int version = kConfigVersion;
  ServerSection server;
  std::vector<ModelConfig> models;      // non-empty, in file order
  std::vector<AdapterConfig> adapters;  // in file order
  // Directories that models/adapters loaded at run time must lie under.
  std::vector<std::string> model_roots;    // resolved paths
  std::vector<std::string> adapter_roots;  // resolved paths
  RouterConfig router;
  MemoryConfig memory;
  SchedulerConfig scheduler;
  LimitsConfig limits;
  LoggingConfig logging;

  std::string source;    // the file name (or ParseConfig's source_name)
  std::string base_dir;  // relative paths were resolved against this

  const ModelConfig* FindModel(std::string_view name) const;
  const AdapterConfig* FindAdapter(std::string_view name) const;
};

struct ParseOptions {
  // Relative paths resolve against this directory; empty = the current
  // directory. LoadConfigFile sets it to the config file's directory.
  std::string base_dir;
  // Check that every path exists with the right kind (directory / file).
  // Tests and the fuzzer turn this off.
  bool check_paths = true;
  // Check that every auth.tokens[].token_env variable is set.
  bool check_env = true;
};

// Parses and validates YAML text. `source_name` prefixes every error.
// Errors: kInvalidArgument listing every problem, one per line.
absl::StatusOr<ServerConfig> ParseConfig(std::string_view yaml_text,
                                         std::string_view source_name,
                                         const ParseOptions& options = {});

// Reads `path` and parses it with base_dir = the file's directory.
// Errors: kNotFound / kPermissionDenied if the file cannot be read,
// kInvalidArgument for any problem inside it.
absl::StatusOr<ServerConfig> LoadConfigFile(const std::string& path);

// "3 models, 2 adapters, 4 router categories".
std::string Summary(const ServerConfig& config);

std::string_view DTypeName(DType dtype);
std::string_view PermissionName(Permission permission);
std::string_view SchedulerPolicyName(SchedulerPolicy policy);
std::string_view LogLevelName(LogLevel level);
std::string_view LogFormatName(LogFormat format);

}  // namespace expertserve::server::config

#endif  // EXPERTSERVE_SERVER_CONFIG_CONFIG_H_
