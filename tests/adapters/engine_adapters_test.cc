// ESFT adapters through the continuous-batching Engine (engine/runtime/) with
// the AdapterRegistry as its AdapterResolverInterface: requests for several
// adapters and the base, all with the SAME prompts, run concurrently in shared
// batches with the prefix cache on; each must produce the NumPy reference's
// merged-model greedy tokens (so KV is never shared across adapters). An
// Unload issued while a request of that adapter runs must wait for it, and
// the request must finish undisturbed.
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "engine/adapters/adapter_registry.h"
#include "engine/forward/transformer.h"
#include "engine/runtime/engine.h"
#include "engine/runtime/transformer_runner.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/fixtures/status_matchers.h"

namespace expertserve::engine::adapters {
namespace {

namespace fs = std::filesystem;
using ::expertserve::testing::StatusIs;
using ::testing::HasSubstr;

fs::path FixtureDir() {
  const char* bin = std::getenv("ES_BINARY_DIR");
  return fs::path(bin ? bin : "build") / "test-models" / "adapters";
}

// Thread-safe: the engine thread writes, the test thread reads.
class TokenSink : public OutputSinkInterface {
 public:
  void OnDelta(const OutputDelta& d) override {
    absl::MutexLock l(&mu_);
    tokens_.insert(tokens_.end(), d.token_ids.begin(), d.token_ids.end());
  }
  void OnFinish(const FinalOutput& out) override {
    absl::MutexLock l(&mu_);
    status_ = out.status;
    cached_tokens_ = out.usage.cached_tokens;
    finished_ = true;
  }
  std::vector<TokenId> tokens() {
    absl::MutexLock l(&mu_);
    return tokens_;
  }
  bool finished() {
    absl::MutexLock l(&mu_);
    return finished_;
  }
  absl::Status status() {
    absl::MutexLock l(&mu_);
    return status_;
  }
  int32_t cached_tokens() {
    absl::MutexLock l(&mu_);
    return cached_tokens_;
  }

 private:
  absl::Mutex mu_;
  std::vector<TokenId> tokens_ ABSL_GUARDED_BY(mu_);
  absl::Status status_ ABSL_GUARDED_BY(mu_);
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  int32_t cached_tokens_ ABSL_GUARDED_BY(mu_) = 0;
};

struct Want {
  std::vector<TokenId> tokens;
  std::vector<double> margins;
};

class EngineAdaptersTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    dir_ = FixtureDir() / GetParam();
    ASSERT_TRUE(fs::exists(dir_ / "targets.json"))
        << "fixture missing: run the adapters_fixtures test first";
    std::ifstream pin(dir_ / "prompts.json"), tin(dir_ / "targets.json");
    prompts_ = nlohmann::json::parse(pin).get<std::vector<std::vector<TokenId>>>();
    targets_ = nlohmann::json::parse(tin).get<std::vector<std::string>>();
    for (const std::string& t : targets_) {
      std::ifstream in(dir_ / "ref" / t / "reference.json");
      const nlohmann::json j = nlohmann::json::parse(in);
      for (const auto& res : j["results"]) {
        want_[t].push_back({res["generated"].get<std::vector<TokenId>>(),
                            res["margins"].get<std::vector<double>>()});
      }
    }
    TransformerOptions options;
    options.weights.adapter_slots_per_layer = 24;
    ES_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Transformer> model,
                            Transformer::Load(dir_ / "model", options));
    registry_ = std::make_shared<AdapterRegistry>(model->config(),
                                                  model->mutable_weights());
    for (const std::string& t : targets_) {
      if (t != "base") {
        ES_ASSERT_OK(registry_->Load(t, dir_ / "adapters" / t).status());
      }
    }
    TransformerRunnerOptions runner_options;
    runner_options.num_blocks = 128;
    runner_options.num_threads = 2;
    ES_ASSERT_OK_AND_ASSIGN(auto runner,
                            TransformerRunner::Create(std::move(model), runner_options));
    EngineOptions engine_options;
    engine_options.model_name = GetParam();
    engine_options.max_num_seqs = 16;
    engine_options.max_batched_tokens = 64;  // several steps of chunked prefill
    engine_ = std::make_unique<Engine>(std::move(engine_options), std::move(runner),
                                       nullptr, registry_);
  }

  void TearDown() override {
    if (engine_ != nullptr) engine_->WaitIdle();
    // The registry frees slots in the model's tables: it must let go of its
    // adapters before the engine destroys the model.
    if (registry_ != nullptr) {
      for (const AdapterInfo& a : registry_->List()) ES_EXPECT_OK(registry_->Unload(a.name));
    }
    engine_.reset();
    registry_.reset();
  }

  std::shared_ptr<TokenSink> Submit(const std::string& id, const std::string& target,
                                    size_t prompt) {
    GenerateRequest r;
    r.request_id = id;
    r.model = GetParam();
    r.adapter = target == "base" ? "" : target;
    r.prompt_token_ids = prompts_[prompt];
    r.sampling.temperature = 0;
    r.sampling.max_tokens = 32;
    auto sink = std::make_shared<TokenSink>();
    const absl::Status s = engine_->Submit(std::move(r), sink);
    EXPECT_TRUE(s.ok()) << s;
    return sink;
  }

  void ExpectReference(const std::string& target, size_t prompt,
                       const std::vector<TokenId>& got) {
    const Want& w = want_[target][prompt];
    ASSERT_EQ(got.size(), w.tokens.size()) << target << " prompt " << prompt;
    for (size_t i = 0; i < got.size(); ++i) {
      if (got[i] == w.tokens[i]) continue;
      EXPECT_LT(w.margins[i], 1e-4) << target << " prompt " << prompt << " token " << i
                                    << ": got " << got[i] << ", reference " << w.tokens[i];
      break;
    }
  }

  fs::path dir_;
  std::vector<std::vector<TokenId>> prompts_;
  std::vector<std::string> targets_;
  std::map<std::string, std::vector<Want>> want_;
  std::shared_ptr<AdapterRegistry> registry_;
  std::unique_ptr<Engine> engine_;
};

TEST_P(EngineAdaptersTest, SamePromptsUnderEveryAdapterAndTheBaseInSharedBatches) {
  std::map<std::pair<std::string, size_t>, std::shared_ptr<TokenSink>> sinks;
  // Twice each, so the second copy may hit the prefix cache of its own
  // adapter (and must never hit another adapter's).
  for (int copy = 0; copy < 2; ++copy) {
    for (size_t p = 0; p < prompts_.size(); ++p) {
      for (const std::string& t : targets_) {
        const std::string id = t + "/" + std::to_string(p) + "/" + std::to_string(copy);
        auto sink = Submit(id, t, p);
        sinks[{copy == 0 ? t : t + "#2", p}] = sink;
      }
    }
  }
  engine_->WaitIdle();
  for (auto& [key, sink] : sinks) {
    ASSERT_TRUE(sink->finished());
    ES_EXPECT_OK(sink->status());
    std::string target = key.first;
    if (target.size() > 2 && target.substr(target.size() - 2) == "#2") {
      target.resize(target.size() - 2);
    }
    ExpectReference(target, key.second, sink->tokens());
  }
}

TEST_P(EngineAdaptersTest, UnloadWaitsForTheRunningRequestWhichFinishesUndisturbed) {
  const std::string adapter = targets_[1];
  auto sink = Submit("long", adapter, 1);
  absl::Status unload;
  std::thread t([&] { unload = registry_->Unload(adapter, absl::Seconds(120)); });
  // While the unload waits, new requests for the adapter are refused.
  for (int i = 0; i < 200 && registry_->Resolve(adapter).ok(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  GenerateRequest late;
  late.request_id = "late";
  late.model = GetParam();
  late.adapter = adapter;
  late.prompt_token_ids = prompts_[0];
  EXPECT_THAT(engine_->Submit(std::move(late), std::make_shared<TokenSink>()),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr(adapter)));
  t.join();
  ES_EXPECT_OK(unload);
  // The engine drops a request's routing after its last token (and just
  // before OnFinish), so when Unload returns every token has been produced.
  EXPECT_EQ(sink->tokens().size(), 32u) << "Unload returned while the request still ran";
  engine_->WaitIdle();
  EXPECT_TRUE(sink->finished());
  ES_EXPECT_OK(sink->status());
  ExpectReference(adapter, 1, sink->tokens());
  EXPECT_EQ(registry_->List().size(), targets_.size() - 2);
}

// One prompt run one request at a time, so a finished request's blocks sit in
// the prefix cache: the same adapter reuses them, another adapter, the base
// and a reload of the same name never do.
TEST_P(EngineAdaptersTest, PrefixCacheIsNeverSharedAcrossAdaptersOrReloads) {
  ASSERT_GE(targets_.size(), 3u);
  const std::string a = targets_[1], b = targets_[2];
  ASSERT_GE(prompts_[1].size(), 16u) << "needs one full KV block";
  int n = 0;
  auto run = [&](const std::string& target) {
    auto sink = Submit("seq" + std::to_string(n++), target, 1);
    engine_->WaitIdle();
    EXPECT_TRUE(sink->finished());
    ES_EXPECT_OK(sink->status());
    ExpectReference(target, 1, sink->tokens());
    return sink->cached_tokens();
  };
  EXPECT_EQ(run("base"), 0);
  EXPECT_EQ(run(a), 0) << "adapter " << a << " reused the base's KV";
  EXPECT_GT(run(a), 0) << "the prefix cache is not active for one adapter";
  EXPECT_EQ(run(b), 0) << "adapter " << b << " reused " << a << "'s KV";
  EXPECT_GT(run("base"), 0);
  ES_ASSERT_OK(registry_->Unload(a));
  ES_ASSERT_OK(registry_->Load(a, dir_ / "adapters" / a).status());
  EXPECT_EQ(run(a), 0) << "a reload of " << a << " reused the old load's KV";
}

INSTANTIATE_TEST_SUITE_P(SharedExpertBases, EngineAdaptersTest,
                         ::testing::Values("deepseek_v2_f32", "qwen2_moe_f32"));

}  // namespace
}  // namespace expertserve::engine::adapters
