// The threaded Engine (EngineInterface) with the FakeModelRunner: Submit's
// synchronous errors, concurrent submitters, Abort through the queue,
// shutdown with requests in flight, adapters through the resolver.
#include "engine/runtime/engine.h"

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "engine/runtime/engine_group.h"
#include "engine/runtime/fake_model_runner.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/fixtures/status_matchers.h"
#include "tests/runtime/test_sinks.h"

namespace expertserve::engine {
namespace {

using ::expertserve::testing::IsOk;
using ::expertserve::testing::StatusIs;
using ::testing::HasSubstr;

std::unique_ptr<Engine> MakeEngine(EngineOptions eo = {},
                                   std::shared_ptr<AdapterResolverInterface> adapters = nullptr,
                                   FakeModelOptions fo = {}) {
  eo.model_name = "fake";
  return std::make_unique<Engine>(eo, std::make_unique<FakeModelRunner>(fo), nullptr,
                                  std::move(adapters));
}

GenerateRequest Req(const std::string& id, int32_t max_tokens = 4) {
  GenerateRequest r;
  r.request_id = id;
  r.model = "fake";
  r.prompt_token_ids = {1, 2, 3, 4, 5};
  r.sampling.temperature = 0.0f;
  r.sampling.max_tokens = max_tokens;
  return r;
}

class OneAdapter final : public AdapterResolverInterface {
 public:
  absl::StatusOr<ResolvedAdapter> Resolve(std::string_view name) override {
    if (name != "math") return absl::NotFoundError("adapter not loaded");
    auto routing = std::make_shared<AdapterRouting>();
    routing->id = 3;
    std::weak_ptr<const AdapterRouting> w = routing;
    last = w;
    return ResolvedAdapter{routing, 17};
  }
  std::weak_ptr<const AdapterRouting> last;
};

TEST(EngineTest, SubmitErrorsAreSynchronousAndPrecise) {
  auto e = MakeEngine();
  auto sink = std::make_shared<RecordingSink>();
  GenerateRequest wrong_model = Req("a");
  wrong_model.model = "other";
  EXPECT_THAT(e->Submit(wrong_model, sink), StatusIs(absl::StatusCode::kNotFound));
  GenerateRequest adapter = Req("b");
  adapter.adapter = "math";
  EXPECT_THAT(e->Submit(adapter, sink),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("'math'")));
  GenerateRequest bad = Req("c");
  bad.sampling.temperature = -1.0f;
  EXPECT_THAT(e->Submit(bad, sink),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("temperature")));
  GenerateRequest stop = Req("d");
  stop.sampling.stop = {"x"};  // no tokenizer
  EXPECT_THAT(e->Submit(stop, sink), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(e->Submit(Req("e", 5000), sink), StatusIs(absl::StatusCode::kOutOfRange));
  EXPECT_FALSE(sink->finished());  // never called on a synchronous error
}

TEST(EngineTest, FullQueueIsResourceExhausted) {
  EngineOptions eo;
  eo.max_waiting_requests = 0;
  auto e = MakeEngine(eo);
  EXPECT_THAT(e->Submit(Req("a"), std::make_shared<RecordingSink>()),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("retry")));
}

TEST(EngineTest, DuplicateInFlightIdIsRejected) {
  auto e = MakeEngine();
  auto s1 = std::make_shared<RecordingSink>();
  ASSERT_THAT(e->Submit(Req("same", 200), s1), IsOk());
  absl::Status dup = e->Submit(Req("same"), std::make_shared<RecordingSink>());
  // Unless the first already finished (it cannot in 200 steps so fast).
  EXPECT_THAT(dup, StatusIs(absl::StatusCode::kAlreadyExists));
  e->Abort("same");
  e->WaitIdle();
  EXPECT_THAT(e->Submit(Req("same"), std::make_shared<RecordingSink>()), IsOk());
  e->WaitIdle();
}

TEST(EngineTest, ConcurrentSubmittersAllComplete) {
  auto e = MakeEngine();
  constexpr int kThreads = 4, kPerThread = 25;
  std::vector<std::shared_ptr<RecordingSink>> sinks(kThreads * kPerThread);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const int k = t * kPerThread + i;
        sinks[static_cast<size_t>(k)] = std::make_shared<RecordingSink>();
        GenerateRequest r = Req("r" + std::to_string(k), 1 + k % 7);
        r.prompt_token_ids.push_back(k % 50);
        EXPECT_THAT(e->Submit(r, sinks[static_cast<size_t>(k)]), IsOk());
      }
    });
  }
  for (auto& t : threads) t.join();
  e->WaitIdle();
  FakeModelRunner ref({});
  for (int k = 0; k < kThreads * kPerThread; ++k) {
    auto& s = *sinks[static_cast<size_t>(k)];
    ASSERT_TRUE(s.finished()) << k;
    std::vector<TokenId> history = {1, 2, 3, 4, 5, k % 50};
    std::vector<TokenId> want;
    for (int i = 0; i < 1 + k % 7; ++i) {
      want.push_back(ref.NextFor(history));
      history.push_back(want.back());
    }
    EXPECT_EQ(s.tokens(), want) << k;
    EXPECT_EQ(s.final_output()->usage.completion_tokens, 1 + k % 7);
  }
  EXPECT_TRUE(e->KvAllFreeWhenIdle());
  const EngineStats st = e->GetStats()[0];
  EXPECT_EQ(st.model, "fake");
  EXPECT_EQ(st.num_running + st.num_waiting, 0);
  EXPECT_GT(st.generation_tokens, 0);
}

TEST(EngineTest, ShutdownFinishesInFlightRequestsAsUnavailable) {
  auto sink = std::make_shared<RecordingSink>();
  {
    auto e = MakeEngine({}, nullptr, FakeModelOptions{.num_kv_blocks = 1024});
    ASSERT_THAT(e->Submit(Req("long", 4000), sink), IsOk());
  }
  ASSERT_TRUE(sink->finished());
  const FinalOutput out = *sink->final_output();
  EXPECT_EQ(out.status.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(out.samples[0].finish_reason, FinishReason::kAbort);
}

TEST(EngineTest, AdapterRoutingIsHeldExactlyWhileInUse) {
  auto adapters = std::make_shared<OneAdapter>();
  auto e = MakeEngine({}, adapters);
  GenerateRequest r = Req("x", 3);
  r.adapter = "math";
  auto sink = std::make_shared<RecordingSink>();
  ASSERT_THAT(e->Submit(r, sink), IsOk());
  e->WaitIdle();
  EXPECT_THAT(sink->final_output()->status, IsOk());
  // The engine dropped its reference when the request finished.
  EXPECT_TRUE(adapters->last.expired());
}

TEST(EngineGroupTest, DispatchesByModelName) {
  EngineGroup group;
  EngineOptions a, b;
  a.model_name = "alpha";
  b.model_name = "beta";
  ASSERT_THAT(group.Add("alpha", std::make_unique<Engine>(a, std::make_unique<FakeModelRunner>(
                                                                 FakeModelOptions{}),
                                                         nullptr)),
              IsOk());
  ASSERT_THAT(group.Add("beta", std::make_unique<Engine>(b, std::make_unique<FakeModelRunner>(
                                                               FakeModelOptions{}),
                                                        nullptr)),
              IsOk());
  EXPECT_THAT(group.Add("beta", nullptr), StatusIs(absl::StatusCode::kAlreadyExists));
  GenerateRequest r = Req("x");
  r.model = "gamma";
  EXPECT_THAT(group.Submit(r, std::make_shared<RecordingSink>()),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("alpha, beta")));
  auto sa = std::make_shared<RecordingSink>(), sb = std::make_shared<RecordingSink>();
  r.model = "alpha";
  ASSERT_THAT(group.Submit(r, sa), IsOk());
  r.model = "beta";
  ASSERT_THAT(group.Submit(r, sb), IsOk());  // same id, other model
  static_cast<Engine*>(group.Find("alpha"))->WaitIdle();
  static_cast<Engine*>(group.Find("beta"))->WaitIdle();
  EXPECT_EQ(sa->tokens(), sb->tokens());
  const auto stats = group.GetStats();
  ASSERT_EQ(stats.size(), 2u);
  EXPECT_EQ(stats[0].model, "alpha");
  EXPECT_EQ(stats[1].model, "beta");
}

}  // namespace
}  // namespace expertserve::engine
