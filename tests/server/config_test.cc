#include "server/config/config.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/fixtures/status_matchers.h"

namespace expertserve::server::config {
namespace {

namespace fs = std::filesystem;
using ::expertserve::testing::IsOk;
using ::expertserve::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

// A fresh directory per test, removed afterwards.
class TempDir {
 public:
  TempDir() {
    const ::testing::TestInfo* info =
        ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = fs::path(::testing::TempDir()) /
            absl::StrCat("es_config_", info->test_suite_name(), "_",
                         info->name(), "_", ::getpid());
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }
  void MakeDir(const std::string& rel) { fs::create_directories(path_ / rel); }
  std::string Write(const std::string& rel, const std::string& text) {
    fs::create_directories((path_ / rel).parent_path());
    std::ofstream(path_ / rel) << text;
    return (path_ / rel).string();
  }

 private:
  fs::path path_;
};

constexpr char kGoodConfig[] = R"yaml(version: 1
server:
  listen: ["0.0.0.0:50051", "[::1]:50052", "unix:/tmp/es.sock"]
  reflection: true
  shutdown_grace_period: 10s
  grpc:
    max_receive_message_bytes: 8MiB
    max_send_message_bytes: 2MiB
    max_concurrent_streams: 32
    keepalive_min_time: 500ms
    keepalive_permit_without_calls: true
    max_metadata_bytes: 32KiB
    max_connection_age: 2m
    max_connection_age_grace: 5s
  tls:
    cert_file: tls/server.pem
    key_file: tls/server.key
    client_ca_file: tls/ca.pem
    require_client_cert: true
  auth:
    tokens:
      - name: ops
        token_env: ES_CONFIG_TEST_TOKEN
        permissions: [inference, admin]
      - name: app
        token_file: tls/app.token
        permissions: [inference]
  metrics:
    enabled: true
    listen: 127.0.0.1:9100
models:
  - name: chat
    path: models/chat
    dtype: bfloat16
    max_context_tokens: 4096
    kv_cache_budget: 128MiB
  - name: moe
    path: models/moe
adapters:
  - name: math
    path: adapters/math
    base_model: moe
model_roots: [models]
adapter_roots: [adapters]
router:
  categories:
    - name: chat
      examples: ["hello there", "how are you today?"]
    - name: math
      examples: ["integrate x^2 dx", "solve 2x + 1 = 5"]
  routes:
    chat: chat
    math: {model: moe, adapter: math}
  confidence_threshold: 0.25
  default_target: {model: chat}
memory:
  tiers:
    device: {budget: 1.5GiB}
    host: {budget: 8GB}
  kv_cache_budget: 512MiB
  adapter_slots_per_layer: 8
  prefetch: false
scheduler:
  max_batched_tokens: 1024
  max_num_seqs: 16
  max_waiting_requests: 100
  kv_block_tokens: 32
  prefill_chunk_tokens: 256
  policy: priority
limits:
  max_request_bytes: 64KiB
  max_prompt_tokens: 2048
  max_tokens: 512
  max_stop_strings: 4
  max_logprobs: 5
logging:
  level: debug
  format: json
)yaml";

void MakeGoodTree(TempDir& dir) {
  dir.MakeDir("models/chat");
  dir.MakeDir("models/moe");
  dir.MakeDir("adapters/math");
  dir.Write("tls/server.pem", "cert");
  dir.Write("tls/server.key", "key");
  dir.Write("tls/ca.pem", "ca");
  dir.Write("tls/app.token", "secret");
}

TEST(ConfigTest, GoodFileRoundTripsIntoStructs) {
  TempDir dir;
  MakeGoodTree(dir);
  ::setenv("ES_CONFIG_TEST_TOKEN", "s3cret", 1);
  const std::string file = dir.Write("conf/../server.yaml", kGoodConfig);
  ES_ASSERT_OK_AND_ASSIGN(ServerConfig c, LoadConfigFile(file));
  const std::string base = dir.path().lexically_normal().string();
  auto at = [&](const std::string& rel) {
    return (dir.path() / rel).lexically_normal().string();
  };

  EXPECT_EQ(c.version, 1);
  EXPECT_EQ(c.base_dir, fs::path(base).lexically_normal().string());
  EXPECT_THAT(c.server.listen, ElementsAre("0.0.0.0:50051", "[::1]:50052",
                                           "unix:/tmp/es.sock"));
  EXPECT_TRUE(c.server.reflection);
  EXPECT_EQ(c.server.shutdown_grace_period, absl::Seconds(10));
  EXPECT_EQ(c.server.grpc.max_receive_message_bytes, 8 * kMiB);
  EXPECT_EQ(c.server.grpc.max_send_message_bytes, 2 * kMiB);
  EXPECT_EQ(c.server.grpc.max_concurrent_streams, 32);
  EXPECT_EQ(c.server.grpc.keepalive_min_time, absl::Milliseconds(500));
  EXPECT_TRUE(c.server.grpc.keepalive_permit_without_calls);
  EXPECT_EQ(c.server.grpc.max_metadata_bytes, 32 * kKiB);
  EXPECT_EQ(c.server.grpc.max_connection_age, absl::Minutes(2));
  EXPECT_EQ(c.server.grpc.max_connection_age_grace, absl::Seconds(5));
  ASSERT_TRUE(c.server.tls.has_value());
  EXPECT_EQ(c.server.tls->cert_file, at("tls/server.pem"));
  EXPECT_EQ(c.server.tls->key_file, at("tls/server.key"));
  EXPECT_EQ(c.server.tls->client_ca_file, at("tls/ca.pem"));
  EXPECT_TRUE(c.server.tls->require_client_cert);
  ASSERT_EQ(c.server.auth.tokens.size(), 2u);
  EXPECT_TRUE(c.server.auth.enabled());
  EXPECT_EQ(c.server.auth.tokens[0].name, "ops");
  EXPECT_EQ(c.server.auth.tokens[0].token_env, "ES_CONFIG_TEST_TOKEN");
  EXPECT_EQ(c.server.auth.tokens[0].token_file, "");
  EXPECT_THAT(c.server.auth.tokens[0].permissions,
              ElementsAre(Permission::kInference, Permission::kAdmin));
  EXPECT_EQ(c.server.auth.tokens[1].token_file, at("tls/app.token"));
  EXPECT_THAT(c.server.auth.tokens[1].permissions,
              ElementsAre(Permission::kInference));
  EXPECT_TRUE(c.server.metrics.enabled);
  EXPECT_EQ(c.server.metrics.listen, "127.0.0.1:9100");

  ASSERT_EQ(c.models.size(), 2u);
  EXPECT_EQ(c.models[0].name, "chat");
  EXPECT_EQ(c.models[0].path, at("models/chat"));
  EXPECT_EQ(c.models[0].dtype, DType::kBFloat16);
  EXPECT_EQ(c.models[0].max_context_tokens, 4096);
  EXPECT_EQ(c.models[0].kv_cache_budget_bytes, 128 * kMiB);
  EXPECT_EQ(c.models[1].name, "moe");
  EXPECT_EQ(c.models[1].dtype, DType::kAuto);            // default
  EXPECT_EQ(c.models[1].max_context_tokens, 0);          // default
  EXPECT_FALSE(c.models[1].kv_cache_budget_bytes.has_value());
  ASSERT_EQ(c.adapters.size(), 1u);
  EXPECT_EQ(c.adapters[0].name, "math");
  EXPECT_EQ(c.adapters[0].path, at("adapters/math"));
  EXPECT_EQ(c.adapters[0].base_model, "moe");
  EXPECT_THAT(c.model_roots, ElementsAre(at("models")));
  EXPECT_THAT(c.adapter_roots, ElementsAre(at("adapters")));
  EXPECT_EQ(c.FindModel("moe"), &c.models[1]);
  EXPECT_EQ(c.FindModel("math"), nullptr);
  EXPECT_EQ(c.FindAdapter("math"), &c.adapters[0]);

  ASSERT_EQ(c.router.categories.size(), 2u);
  EXPECT_EQ(c.router.categories[1].name, "math");
  EXPECT_THAT(c.router.categories[1].examples,
              ElementsAre("integrate x^2 dx", "solve 2x + 1 = 5"));
  ASSERT_EQ(c.router.routes.size(), 2u);
  EXPECT_EQ(c.router.routes.at("chat"), (Target{"chat", ""}));
  EXPECT_EQ(c.router.routes.at("math"), (Target{"moe", "math"}));
  EXPECT_DOUBLE_EQ(c.router.confidence_threshold, 0.25);
  ASSERT_TRUE(c.router.default_target.has_value());
  EXPECT_EQ(*c.router.default_target, (Target{"chat", ""}));

  EXPECT_EQ(c.memory.device_budget_bytes, 1536 * kMiB);
  EXPECT_EQ(c.memory.host_budget_bytes, 8000000000ull);
  EXPECT_EQ(c.memory.kv_cache_budget_bytes, 512 * kMiB);
  EXPECT_EQ(c.memory.adapter_slots_per_layer, 8);
  EXPECT_FALSE(c.memory.prefetch);

  EXPECT_EQ(c.scheduler.max_batched_tokens, 1024);
  EXPECT_EQ(c.scheduler.max_num_seqs, 16);
  EXPECT_EQ(c.scheduler.max_waiting_requests, 100);
  EXPECT_EQ(c.scheduler.kv_block_tokens, 32);
  EXPECT_EQ(c.scheduler.prefill_chunk_tokens, 256);
  EXPECT_EQ(c.scheduler.policy, SchedulerPolicy::kPriority);

  EXPECT_EQ(c.limits.max_request_bytes, 64 * kKiB);
  EXPECT_EQ(c.limits.max_prompt_tokens, 2048);
  EXPECT_EQ(c.limits.max_tokens, 512);
  EXPECT_EQ(c.limits.max_stop_strings, 4);
  EXPECT_EQ(c.limits.max_logprobs, 5);
  EXPECT_EQ(c.logging.level, LogLevel::kDebug);
  EXPECT_EQ(c.logging.format, LogFormat::kJson);

  EXPECT_EQ(Summary(c), "2 models, 1 adapter, 2 router categories");
  ::unsetenv("ES_CONFIG_TEST_TOKEN");
}

TEST(ConfigTest, MinimalConfigGetsDocumentedDefaults) {
  ParseOptions opts;
  opts.check_paths = false;
  ES_ASSERT_OK_AND_ASSIGN(
      ServerConfig c,
      ParseConfig("models:\n  - {name: m, path: /ckpt/m}\n", "min.yaml", opts));
  const ServerConfig defaults;
  EXPECT_EQ(c.source, "min.yaml");
  EXPECT_THAT(c.server.listen, ElementsAre("127.0.0.1:50051"));
  EXPECT_TRUE(c.server.reflection);
  EXPECT_EQ(c.server.shutdown_grace_period, absl::Seconds(30));
  EXPECT_EQ(c.server.grpc.max_receive_message_bytes, 4 * kMiB);
  EXPECT_EQ(c.server.grpc.max_connection_age, absl::InfiniteDuration());
  EXPECT_FALSE(c.server.tls.has_value());
  EXPECT_FALSE(c.server.auth.enabled());
  EXPECT_FALSE(c.server.metrics.enabled);
  EXPECT_EQ(c.models[0].path, "/ckpt/m");
  EXPECT_TRUE(c.adapters.empty());
  EXPECT_TRUE(c.router.categories.empty());
  EXPECT_FALSE(c.router.default_target.has_value());
  EXPECT_DOUBLE_EQ(c.router.confidence_threshold, 0.5);
  EXPECT_EQ(c.memory.device_budget_bytes, 4 * kGiB);
  EXPECT_EQ(c.memory.host_budget_bytes, 16 * kGiB);
  EXPECT_EQ(c.memory.kv_cache_budget_bytes, 1 * kGiB);
  EXPECT_FALSE(c.memory.adapter_slots_per_layer.has_value());  // auto
  EXPECT_TRUE(c.memory.prefetch);
  EXPECT_EQ(c.scheduler.max_batched_tokens, 2048);
  EXPECT_EQ(c.scheduler.kv_block_tokens, 16);
  EXPECT_EQ(c.scheduler.policy, SchedulerPolicy::kFcfs);
  EXPECT_EQ(c.limits.max_tokens, 4096);
  EXPECT_EQ(c.logging.level, LogLevel::kInfo);
  EXPECT_EQ(c.logging.format, LogFormat::kText);
  EXPECT_EQ(Summary(c), "1 model, 0 adapters, 0 router categories");
}

TEST(ConfigTest, ShorthandsAndAutoValues) {
  ParseOptions opts;
  opts.check_paths = false;
  ES_ASSERT_OK_AND_ASSIGN(ServerConfig c, ParseConfig(R"yaml(
server:
  listen: "[::]:6000"
  shutdown_grace_period: 0
models: [{name: m, path: rel/m}]
memory: {adapter_slots_per_layer: auto}
router:
  categories: [{name: c, examples: [hi]}]
  default_target: m
)yaml",
                                                     "x.yaml", opts));
  EXPECT_THAT(c.server.listen, ElementsAre("[::]:6000"));
  EXPECT_EQ(c.server.shutdown_grace_period, absl::ZeroDuration());
  EXPECT_EQ(c.models[0].path, "rel/m");  // base_dir "" = current directory
  EXPECT_FALSE(c.memory.adapter_slots_per_layer.has_value());
  EXPECT_EQ(*c.router.default_target, (Target{"m", ""}));
}

// ---- bad configs: each error names file:line:col, key path, expectation ----

std::string Errors(const std::string& yaml, ParseOptions opts = {}) {
  opts.check_paths = opts.check_paths && !opts.base_dir.empty();
  absl::StatusOr<ServerConfig> c = ParseConfig(yaml, "bad.yaml", opts);
  EXPECT_THAT(c, StatusIs(absl::StatusCode::kInvalidArgument)) << yaml;
  return c.ok() ? "" : std::string(c.status().message());
}

int CountErrors(const std::string& message) {
  std::vector<std::string> lines = absl::StrSplit(message, '\n');
  return static_cast<int>(lines.size()) - 1;  // minus the header
}

constexpr char kModels[] = "models:\n  - {name: moe, path: /m}\n";

TEST(ConfigErrorsTest, UnknownKeySuggestsNearMiss) {
  const std::string msg = Errors(
      "models:\n"
      "  - name: a\n"
      "    path: /m\n"
      "    dtyp: float32\n");
  EXPECT_THAT(msg, HasSubstr("bad.yaml:4:5: models[0].dtyp: unknown key "
                             "\"dtyp\" (did you mean \"dtype\"?)"));
  EXPECT_EQ(CountErrors(msg), 1) << msg;
}

TEST(ConfigErrorsTest, UnknownTopLevelKeyAndMissingModels) {
  const std::string msg = Errors("modles:\n  - {name: a, path: /m}\n");
  EXPECT_THAT(msg, HasSubstr("bad.yaml:1:1: modles: unknown key \"modles\" "
                             "(did you mean \"models\"?)"));
  EXPECT_THAT(msg, HasSubstr("bad.yaml:1:1: models: missing required key "
                             "\"models\" (expected a list of models)"));
}

TEST(ConfigErrorsTest, UnknownKeyWithoutNearMissListsValidKeys) {
  const std::string msg = Errors(std::string(kModels) +
                                 "logging:\n  colour: blue\n");
  EXPECT_THAT(msg, HasSubstr("bad.yaml:4:3: logging.colour: unknown key "
                             "\"colour\"; expected one of: level, format"));
}

TEST(ConfigErrorsTest, WrongTypes) {
  EXPECT_THAT(Errors(std::string(kModels) + "server:\n  reflection: maybe\n"),
              HasSubstr("bad.yaml:4:15: server.reflection: expected true or "
                        "false, found \"maybe\""));
  EXPECT_THAT(Errors("models: {name: a}\n"),
              HasSubstr("bad.yaml:1:9: models: expected a list, found a "
                        "mapping"));
  EXPECT_THAT(Errors(std::string(kModels) + "scheduler:\n  max_num_seqs: "
                                            "[1, 2]\n"),
              HasSubstr("bad.yaml:4:17: scheduler.max_num_seqs: expected an "
                        "integer in [1, 1048576], found a list"));
  EXPECT_THAT(Errors(std::string(kModels) + "scheduler: 5\n"),
              HasSubstr("bad.yaml:3:12: scheduler: expected a mapping, found "
                        "\"5\""));
  EXPECT_THAT(Errors(std::string(kModels) + "limits:\n  max_tokens: lots\n"),
              HasSubstr("bad.yaml:4:15: limits.max_tokens: expected an "
                        "integer in [1, 2147483648], found \"lots\""));
  EXPECT_THAT(Errors("models:\n  - {name: a, path: }\n"),
              HasSubstr("bad.yaml:2:15: models[0].path: expected a non-empty "
                        "string, found nothing (null)"));
}

TEST(ConfigErrorsTest, MissingRequiredFields) {
  const std::string msg = Errors(
      "models:\n"
      "  - name: a\n"
      "adapters:\n"
      "  - path: /x\n");
  EXPECT_THAT(msg, HasSubstr("bad.yaml:2:5: models[0].path: missing required "
                             "key \"path\" (expected a checkpoint directory)"));
  EXPECT_THAT(msg, HasSubstr("bad.yaml:4:5: adapters[0].name: missing "
                             "required key \"name\""));
  EXPECT_THAT(msg, HasSubstr("bad.yaml:4:5: adapters[0].base_model: missing "
                             "required key \"base_model\" (expected the name "
                             "of a configured model)"));
}

TEST(ConfigErrorsTest, BadSizes) {
  EXPECT_THAT(Errors(std::string(kModels) +
                     "memory:\n  kv_cache_budget: 2 gigs\n"),
              HasSubstr("bad.yaml:4:20: memory.kv_cache_budget: unknown unit "
                        "\"gigs\"; expected a size such as \"512MiB\""));
  EXPECT_THAT(Errors(std::string(kModels) +
                     "limits:\n  max_request_bytes: 1.5B\n"),
              HasSubstr("bad.yaml:4:22: limits.max_request_bytes: not a "
                        "whole number of bytes"));
  EXPECT_THAT(Errors(std::string(kModels) +
                     "memory:\n  tiers:\n    device: {budget: -1GiB}\n"),
              HasSubstr("bad.yaml:5:22: memory.tiers.device.budget: a size "
                        "cannot be negative"));
  EXPECT_THAT(Errors(std::string(kModels) +
                     "memory:\n  kv_cache_budget: 1KiB\n"),
              HasSubstr("memory.kv_cache_budget: expected a size of at least "
                        "1MiB, found \"1KiB\""));
}

TEST(ConfigErrorsTest, BadDurations) {
  EXPECT_THAT(Errors(std::string(kModels) +
                     "server:\n  shutdown_grace_period: 30\n"),
              HasSubstr("bad.yaml:4:26: server.shutdown_grace_period: "
                        "expected a duration such as \"30s\", \"500ms\""));
  EXPECT_THAT(Errors(std::string(kModels) +
                     "server:\n  grpc:\n    keepalive_min_time: -5s\n"),
              HasSubstr("bad.yaml:5:25: server.grpc.keepalive_min_time: "
                        "expected a duration"));
  EXPECT_THAT(Errors(std::string(kModels) +
                     "server:\n  grpc: {max_connection_age: 0s}\n"),
              HasSubstr("server.grpc.max_connection_age: expected a duration "
                        "greater than zero, found \"0s\""));
}

TEST(ConfigErrorsTest, NonPositiveAndOutOfRangeNumbers) {
  const std::string msg = Errors(std::string(kModels) +
                                 "scheduler:\n"
                                 "  max_batched_tokens: 0\n"
                                 "  max_num_seqs: -1\n"
                                 "  kv_block_tokens: 24\n"
                                 "router:\n"
                                 "  confidence_threshold: 1.5\n");
  EXPECT_THAT(msg, HasSubstr("bad.yaml:4:23: scheduler.max_batched_tokens: "
                             "expected an integer in [1, 2147483648], found "
                             "0"));
  EXPECT_THAT(msg, HasSubstr("bad.yaml:5:17: scheduler.max_num_seqs: "
                             "expected an integer in [1, 1048576], found -1"));
  EXPECT_THAT(msg, HasSubstr("bad.yaml:6:20: scheduler.kv_block_tokens: "
                             "expected a power of two in [1, 1024], found "
                             "24"));
  EXPECT_THAT(msg, HasSubstr("bad.yaml:8:25: router.confidence_threshold: "
                             "expected a number in [0, 1], found 1.5"));
  EXPECT_THAT(Errors("models:\n  - {name: a, path: /m, max_context_tokens: "
                     "0}\n"),
              HasSubstr("models[0].max_context_tokens: expected an integer "
                        "in [1, 2147483648], found 0"));
}

TEST(ConfigErrorsTest, EnumTypoSuggestsValue) {
  EXPECT_THAT(Errors("models:\n  - {name: a, path: /m, dtype: bfloat}\n"),
              HasSubstr("bad.yaml:2:32: models[0].dtype: expected one of "
                        "auto, float32, bfloat16, float16, found \"bfloat\" "
                        "(did you mean \"bfloat16\"?)"));
  EXPECT_THAT(Errors(std::string(kModels) + "scheduler: {policy: lifo}\n"),
              HasSubstr("scheduler.policy: expected one of fcfs, priority, "
                        "found \"lifo\""));
}

TEST(ConfigErrorsTest, DuplicateNames) {
  const std::string msg = Errors(
      "models:\n"
      "  - {name: a, path: /m}\n"
      "  - {name: a, path: /n}\n"
      "adapters:\n"
      "  - {name: a, path: /x, base_model: a}\n");
  EXPECT_THAT(msg, HasSubstr("bad.yaml:3:12: models[1].name: duplicate name "
                             "\"a\" (already used by models[0].name"));
  EXPECT_THAT(msg, HasSubstr("bad.yaml:5:12: adapters[0].name: duplicate "
                             "name \"a\""));
  EXPECT_THAT(Errors("models:\n  - {name: 'bad name!', path: /m}\n"),
              HasSubstr("models[0].name: expected a name of letters, digits"));
}

TEST(ConfigErrorsTest, DuplicateYamlKey) {
  EXPECT_THAT(Errors(std::string(kModels) +
                     "logging:\n  level: info\n  level: debug\n"),
              HasSubstr("bad.yaml:5:3: logging.level: duplicate key (first "
                        "set at line 4)"));
}

TEST(ConfigErrorsTest, UnknownBaseModel) {
  EXPECT_THAT(Errors(std::string(kModels) +
                     "adapters:\n  - {name: x, path: /a, base_model: mo}\n"),
              HasSubstr("bad.yaml:4:37: adapters[0].base_model: unknown "
                        "model \"mo\" (did you mean \"moe\"?); expected one "
                        "of the configured models: moe"));
}

constexpr char kRouterBase[] = R"yaml(models:
  - {name: chat, path: /c}
  - {name: moe, path: /m}
adapters:
  - {name: math, path: /a, base_model: moe}
router:
  categories:
    - {name: math, examples: [sum]}
    - {name: chat, examples: [hi]}
  default_target: {model: chat}
  routes:
)yaml";

TEST(ConfigErrorsTest, RouteToUnknownModelOrAdapter) {
  const std::string msg = Errors(std::string(kRouterBase) +
                                 "    chat: {model: chatt}\n"
                                 "    math: {model: moe, adapter: maths}\n");
  EXPECT_THAT(msg, HasSubstr("bad.yaml:12:19: router.routes.chat.model: "
                             "unknown model \"chatt\" (did you mean "
                             "\"chat\"?); expected one of the configured "
                             "models: chat, moe"));
  EXPECT_THAT(msg, HasSubstr("bad.yaml:13:33: router.routes.math.adapter: "
                             "unknown adapter \"maths\" (did you mean "
                             "\"math\"?)"));
}

TEST(ConfigErrorsTest, AdapterBaseMustMatchRouteModel) {
  EXPECT_THAT(Errors(std::string(kRouterBase) +
                     "    math: {model: chat, adapter: math}\n"),
              HasSubstr("bad.yaml:12:34: router.routes.math.adapter: adapter "
                        "\"math\" has base model \"moe\", but the target's "
                        "model is \"chat\"; expected model: moe"));
}

TEST(ConfigErrorsTest, RouteForUnknownCategory) {
  EXPECT_THAT(Errors(std::string(kRouterBase) + "    maths: moe\n"),
              HasSubstr("bad.yaml:12:12: router.routes.maths: unknown "
                        "category \"maths\" (did you mean \"math\"?)"));
}

TEST(ConfigErrorsTest, DefaultTargetRequiredWithCategoriesAndChecked) {
  EXPECT_THAT(Errors(std::string(kModels) +
                     "router:\n  categories: [{name: a, examples: [x]}]\n"),
              HasSubstr("bad.yaml:4:3: router.default_target: missing "
                        "required key \"default_target\""));
  EXPECT_THAT(Errors(std::string(kModels) +
                     "router:\n  default_target: {model: nope}\n"),
              HasSubstr("bad.yaml:4:27: router.default_target.model: unknown "
                        "model \"nope\""));
  EXPECT_THAT(Errors(std::string(kModels) +
                     "router:\n  categories: [{name: a, examples: []}]\n"
                     "  default_target: moe\n"),
              HasSubstr("router.categories[0].examples: expected at least "
                        "one example utterance"));
}

TEST(ConfigErrorsTest, NonexistentPathsResolveAgainstConfigDirectory) {
  TempDir dir;
  dir.MakeDir("models/real");
  dir.Write("models/file", "not a directory");
  const std::string file = dir.Write("conf/server.yaml",
                                     "models:\n"
                                     "  - {name: a, path: ../models/real}\n"
                                     "  - {name: b, path: ../models/nope}\n"
                                     "  - {name: c, path: ../models/file}\n");
  absl::StatusOr<ServerConfig> c = LoadConfigFile(file);
  ASSERT_THAT(c, StatusIs(absl::StatusCode::kInvalidArgument));
  const std::string msg(c.status().message());
  const std::string nope = (dir.path() / "models/nope").string();
  const std::string conf_dir = (dir.path() / "conf").string();
  EXPECT_THAT(msg, HasSubstr(absl::StrCat(
                       file, ":3:21: models[1].path: expected an existing "
                             "checkpoint directory, but \"",
                       nope, "\" does not exist (relative paths resolve "
                             "against the config file's directory, \"",
                       conf_dir, "\")")));
  EXPECT_THAT(msg, HasSubstr(absl::StrCat(
                       file, ":4:21: models[2].path: expected a checkpoint "
                             "directory, but \"",
                       (dir.path() / "models/file").string(),
                       "\" is not a directory")));
  EXPECT_THAT(msg, Not(HasSubstr("models[0]")));
  EXPECT_EQ(CountErrors(msg), 2) << msg;
}

TEST(ConfigErrorsTest, TlsAndAuthRules) {
  TempDir dir;
  ParseOptions opts;
  opts.base_dir = dir.path().string();
  ::unsetenv("ES_CONFIG_TEST_UNSET");
  const std::string msg = Errors(std::string(kModels) +
                                 "server:\n"
                                 "  tls:\n"
                                 "    cert_file: missing.pem\n"
                                 "    require_client_cert: true\n"
                                 "  auth:\n"
                                 "    tokens:\n"
                                 "      - name: inline\n"
                                 "        token: hunter2\n"
                                 "        permissions: [inference]\n"
                                 "      - name: env\n"
                                 "        token_env: ES_CONFIG_TEST_UNSET\n"
                                 "        permissions: [inference, root]\n",
                                 opts);
  EXPECT_THAT(msg, HasSubstr("bad.yaml:5:16: server.tls.cert_file: expected "
                             "an existing certificate file"));
  EXPECT_THAT(msg, HasSubstr("bad.yaml:5:5: server.tls.key_file: missing "
                             "required key \"key_file\""));
  EXPECT_THAT(msg, HasSubstr("server.tls.client_ca_file: missing required "
                             "key \"client_ca_file\""));
  EXPECT_THAT(msg, HasSubstr("bad.yaml:10:16: server.auth.tokens[0].token: "
                             "inline tokens are not allowed"));
  EXPECT_THAT(msg, HasSubstr("server.auth.tokens[0].token_file: missing "
                             "required key \"token_file\" or \"token_env\""));
  EXPECT_THAT(msg, HasSubstr("bad.yaml:13:20: server.auth.tokens[1].token_env: "
                             "expected environment variable "
                             "ES_CONFIG_TEST_UNSET to be set"));
  EXPECT_THAT(msg, HasSubstr("bad.yaml:14:34: "
                             "server.auth.tokens[1].permissions[1]: expected "
                             "one of inference, admin, found \"root\""));
}

TEST(ConfigErrorsTest, BadListenAddresses) {
  const std::string msg = Errors(std::string(kModels) +
                                 "server:\n"
                                 "  listen: [\"localhost\", \"::1:5\", "
                                 "\"h:99999\", \"h:1\", \"h:1\"]\n");
  EXPECT_THAT(msg, HasSubstr("bad.yaml:4:12: server.listen[0]: expected a "
                             "listen address \"host:port\" such as "
                             "\"0.0.0.0:50051\" (missing \":port\"), found "
                             "\"localhost\""));
  EXPECT_THAT(msg, HasSubstr("server.listen[1]: expected a listen address "
                             "\"host:port\" such as \"0.0.0.0:50051\" (IPv6 "
                             "addresses need brackets"));
  EXPECT_THAT(msg, HasSubstr("server.listen[2]: expected a listen address "
                             "\"host:port\" such as \"0.0.0.0:50051\" (the "
                             "port must be a number in [0, 65535]"));
  EXPECT_THAT(msg, HasSubstr("server.listen[4]: duplicate listen address "
                             "\"h:1\""));
}

TEST(ConfigErrorsTest, CrossSectionBudgetsAndScheduler) {
  const std::string msg =
      Errors("models:\n"
             "  - {name: a, path: /m, kv_cache_budget: 600MiB}\n"
             "  - {name: b, path: /n, kv_cache_budget: 600MiB}\n"
             "memory:\n"
             "  tiers: {device: {budget: 512MiB}}\n"
             "  kv_cache_budget: 1GiB\n"
             "scheduler:\n"
             "  max_batched_tokens: 128\n"
             "  prefill_chunk_tokens: 256\n"
             "limits:\n"
             "  max_request_bytes: 10MiB\n");
  EXPECT_THAT(msg, HasSubstr("bad.yaml:6:20: memory.kv_cache_budget: "
                             "expected at most memory.tiers.device.budget "
                             "(512MiB)"));
  EXPECT_THAT(msg, HasSubstr("bad.yaml:2:42: models[0].kv_cache_budget: "
                             "per-model KV budgets add up to 1200MiB; "
                             "expected at most memory.kv_cache_budget "
                             "(1GiB)"));
  EXPECT_THAT(msg, HasSubstr("bad.yaml:9:25: scheduler.prefill_chunk_tokens: "
                             "expected at most scheduler.max_batched_tokens "
                             "(128), found 256"));
  EXPECT_THAT(msg, HasSubstr("bad.yaml:11:22: limits.max_request_bytes: "
                             "expected at most server.grpc."
                             "max_receive_message_bytes (4MiB), found "
                             "10MiB"));
}

TEST(ConfigErrorsTest, YamlSyntaxErrorReportsYamlCppPosition) {
  const std::string msg = Errors("models:\n  - {name: a, path: /m\nserver: 1\n");
  EXPECT_THAT(msg, HasSubstr("bad.yaml:"));
  EXPECT_THAT(msg, HasSubstr(": invalid YAML: "));
  EXPECT_EQ(CountErrors(msg), 1) << msg;
  EXPECT_THAT(Errors("a: [1, 2\n"), HasSubstr("bad.yaml:2:1: invalid YAML: "
                                              "end of sequence flow not "
                                              "found"));
  // yaml-cpp 0.7's LoadAll never returns on this input (upstream #1040).
  EXPECT_THAT(Errors(","), HasSubstr("bad.yaml"));
  EXPECT_THAT(Errors("a: b: c\n"),
              HasSubstr("bad.yaml:1:5: invalid YAML: illegal map value"));
}

TEST(ConfigErrorsTest, EmptyAndMultiDocumentFiles) {
  EXPECT_THAT(Errors(""), HasSubstr("bad.yaml: the file is empty"));
  EXPECT_THAT(Errors("# only a comment\n"),
              HasSubstr("bad.yaml: the file is empty"));
  EXPECT_THAT(Errors(std::string(kModels) + "---\nmodels: []\n"),
              HasSubstr("bad.yaml:3:1: expected one YAML document, found a "
                        "second one"));
  EXPECT_THAT(Errors("- a\n- b\n"),
              HasSubstr("bad.yaml:1:1: expected a mapping, found a list"));
  EXPECT_THAT(Errors(std::string(kModels) + "version: 2\n"),
              HasSubstr("bad.yaml:3:10: version: expected an integer in "
                        "[1, 1], found 2"));
}

TEST(ConfigErrorsTest, ReportsManyErrorsAtOnceInFileOrder) {
  const std::string msg = Errors(
      "models:\n"                              // 1
      "  - {name: a, path: /m, dtype: f32}\n"  // 2: bad enum
      "adapters:\n"                            // 3
      "  - {name: x, path: /a, base_model: z}\n"  // 4: unknown model
      "scheduler:\n"                           // 5
      "  max_num_seqs: 0\n"                    // 6: out of range
      "  polcy: fcfs\n"                        // 7: unknown key
      "memory:\n"                              // 8
      "  kv_cache_budget: lots\n");            // 9: bad size
  EXPECT_THAT(msg, HasSubstr("invalid config bad.yaml: 5 errors"));
  EXPECT_EQ(CountErrors(msg), 5) << msg;
  std::vector<std::string> lines = absl::StrSplit(msg, '\n');
  ASSERT_EQ(lines.size(), 6u);
  EXPECT_THAT(lines[1], HasSubstr("bad.yaml:2:"));
  EXPECT_THAT(lines[2], HasSubstr("bad.yaml:4:"));
  EXPECT_THAT(lines[3], HasSubstr("bad.yaml:6:"));
  EXPECT_THAT(lines[4], HasSubstr("bad.yaml:7:"));
  EXPECT_THAT(lines[4], HasSubstr("(did you mean \"policy\"?)"));
  EXPECT_THAT(lines[5], HasSubstr("bad.yaml:9:"));
}

TEST(ConfigErrorsTest, ErrorCountIsCapped) {
  std::string yaml = "models:\n";
  for (int i = 0; i < 300; ++i) {
    absl::StrAppend(&yaml, "  - {name: m", i, ", path: /m, bogus: 1}\n");
  }
  const std::string msg = Errors(yaml);
  EXPECT_THAT(msg, HasSubstr("invalid config bad.yaml: 300 errors"));
  EXPECT_THAT(msg, HasSubstr("... and 200 more errors"));
}

TEST(LoadConfigFileTest, MissingFileIsNotFound) {
  EXPECT_THAT(LoadConfigFile("/nonexistent/expertserve.yaml"),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr("config file \"/nonexistent/expertserve.yaml"
                                 "\" does not exist")));
}

TEST(LoadConfigFileTest, DemoConfigParsesWithoutCheckpoints) {
  // The demo's checkpoints are generated later; check its schema only.
  const char* src = std::getenv("ES_SOURCE_DIR");
  const fs::path root = src ? fs::path(src) : fs::current_path();
  for (const char* name : {"configs/demo.yaml", "configs/full-example.yaml"}) {
    std::ifstream in(root / name);
    ASSERT_TRUE(in.good()) << (root / name);
    std::stringstream text;
    text << in.rdbuf();
    ParseOptions opts;
    opts.check_paths = false;
    opts.check_env = false;
    opts.base_dir = (root / "configs").string();
    absl::StatusOr<ServerConfig> c = ParseConfig(text.str(), name, opts);
    EXPECT_THAT(c, IsOk()) << name;
  }
}

}  // namespace
}  // namespace expertserve::server::config
