// The engine on real generated checkpoints (tiny presets, CTest fixture
// runtime_models): greedy outputs match the independent NumPy reference
// while batched with other requests; outputs are identical one-by-one vs
// concurrently and under a KV budget so small that sequences are preempted;
// aborts and completions leave the block manager all-free.
//
// Batch composition changes the GEMM path (and so float rounding), so where
// two outputs differ the divergence must sit at a numerical near-tie
// (top-2 logprob gap < kTieGap in the run it is compared against).
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "engine/runtime/engine_loader.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/fixtures/status_matchers.h"
#include "tests/runtime/test_sinks.h"

namespace expertserve::engine {
namespace {

using ::expertserve::testing::IsOk;

constexpr double kTieGap = 1e-3;

std::filesystem::path VariantDir(const std::string& name) {
  const char* b = std::getenv("ES_BINARY_DIR");
  return std::filesystem::path(b ? b : "build") / "test-models/runtime" / name;
}

struct Output {
  std::vector<TokenId> tokens;
  std::vector<double> gaps;  // top-1 minus top-2 logprob per position
};

Output ToOutput(RecordingSink& sink) {
  Output o;
  RecordingSink::Sample s = sink.sample();
  o.tokens = s.tokens;
  for (const auto& lp : s.logprobs) {
    o.gaps.push_back(lp.top.size() >= 2 ? lp.top[0].logprob - lp.top[1].logprob : 1e9);
  }
  return o;
}

// Equal up to the first position where `ref` had a near-tie.
void ExpectSameUpToTie(const Output& got, const Output& ref, const std::string& what) {
  ASSERT_EQ(got.tokens.size(), ref.tokens.size()) << what;
  for (size_t i = 0; i < ref.tokens.size(); ++i) {
    if (got.tokens[i] != ref.tokens[i]) {
      EXPECT_LT(ref.gaps[i], kTieGap) << what << ": token " << i << " differs (" << got.tokens[i]
                                      << " vs " << ref.tokens[i] << ") with no tie";
      return;
    }
  }
}

struct Job {
  std::vector<TokenId> prompt;
  int32_t max_tokens;
};

class RealModelTest : public ::testing::TestWithParam<std::string> {
 protected:
  std::unique_ptr<Engine> Load(int32_t num_blocks = 0, int32_t max_batched_tokens = 64) {
    EngineOptions eo;
    eo.model_name = "m";
    eo.max_batched_tokens = max_batched_tokens;
    TransformerRunnerOptions ro;
    ro.block_tokens = 4;
    ro.num_blocks = num_blocks > 0 ? num_blocks : 256;
    ro.num_threads = 2;
    auto e = LoadEngine(VariantDir(GetParam()) / "model", eo, ro);
    EXPECT_THAT(e, IsOk());
    return e.ok() ? std::move(*e) : nullptr;
  }

  static GenerateRequest Greedy(const std::string& id, const Job& j) {
    GenerateRequest r;
    r.request_id = id;
    r.prompt_token_ids = j.prompt;
    r.sampling.temperature = 0.0f;
    r.sampling.max_tokens = j.max_tokens;
    r.sampling.ignore_eos = true;
    r.sampling.logprobs = 2;
    return r;
  }

  // Mixed prompt and output lengths, some prompts sharing a prefix.
  std::vector<Job> Jobs(int32_t vocab) {
    std::mt19937 rng(5);
    std::vector<Job> jobs;
    const int lens[] = {1, 13, 30, 7, 22, 5};
    const int outs[] = {12, 5, 16, 9, 3, 14};
    for (int i = 0; i < 6; ++i) {
      Job j;
      for (int k = 0; k < lens[i]; ++k) j.prompt.push_back(static_cast<TokenId>(rng() % vocab));
      j.max_tokens = outs[i];
      jobs.push_back(j);
    }
    jobs[4].prompt.insert(jobs[4].prompt.begin(), jobs[2].prompt.begin(),
                          jobs[2].prompt.begin() + 12);  // shared 12-token prefix
    return jobs;
  }

  std::vector<Output> RunConcurrently(Engine& e, const std::vector<Job>& jobs) {
    std::vector<std::shared_ptr<RecordingSink>> sinks;
    for (size_t i = 0; i < jobs.size(); ++i) {
      sinks.push_back(std::make_shared<RecordingSink>());
      EXPECT_THAT(e.Submit(Greedy("c" + std::to_string(i), jobs[i]), sinks.back()), IsOk());
    }
    e.WaitIdle();
    std::vector<Output> out;
    for (auto& s : sinks) {
      EXPECT_TRUE(s->finished());
      EXPECT_THAT(s->final_output()->status, IsOk());
      out.push_back(ToOutput(*s));
    }
    return out;
  }

  std::vector<Output> RunOneByOne(Engine& e, const std::vector<Job>& jobs) {
    std::vector<Output> out;
    for (size_t i = 0; i < jobs.size(); ++i) {
      auto sink = std::make_shared<RecordingSink>();
      EXPECT_THAT(e.Submit(Greedy("s" + std::to_string(i), jobs[i]), sink), IsOk());
      e.WaitIdle();
      out.push_back(ToOutput(*sink));
    }
    return out;
  }
};

TEST_P(RealModelTest, GreedyMatchesNumpyReferenceWhileBatched) {
  std::ifstream pf(VariantDir(GetParam()) / "prompts.json");
  std::ifstream rf(VariantDir(GetParam()) / "reference.json");
  ASSERT_TRUE(pf && rf) << "fixture missing: " << VariantDir(GetParam());
  const auto prompts = nlohmann::json::parse(pf);
  const auto ref = nlohmann::json::parse(rf)["results"];
  auto engine = Load();
  ASSERT_NE(engine, nullptr);
  std::vector<Job> jobs;
  for (size_t i = 0; i < prompts.size(); ++i) {
    jobs.push_back({prompts[i].get<std::vector<TokenId>>(),
                    static_cast<int32_t>(ref[i]["generated"].size())});
  }
  // Batch them with unrelated traffic.
  for (const Job& j : Jobs(200)) jobs.push_back(j);
  std::vector<Output> out = RunConcurrently(*engine, jobs);
  for (size_t i = 0; i < prompts.size(); ++i) {
    Output want;
    want.tokens = ref[i]["generated"].get<std::vector<TokenId>>();
    want.gaps = ref[i]["margins"].get<std::vector<double>>();
    ExpectSameUpToTie(out[i], want, "reference prompt " + std::to_string(i));
  }
  EXPECT_TRUE(engine->KvAllFreeWhenIdle());
}

TEST_P(RealModelTest, OneByOneEqualsConcurrentEqualsPreempted) {
  auto engine = Load();
  ASSERT_NE(engine, nullptr);
  const std::vector<Job> jobs = Jobs(200);
  const std::vector<Output> serial = RunOneByOne(*engine, jobs);
  const std::vector<Output> together = RunConcurrently(*engine, jobs);
  for (size_t i = 0; i < jobs.size(); ++i) {
    ExpectSameUpToTie(together[i], serial[i], "concurrent job " + std::to_string(i));
  }
  EXPECT_TRUE(engine->KvAllFreeWhenIdle());

  // 12 blocks of 4 tokens = 48 tokens: the largest job (42 + 3) fits alone,
  // but the mix cannot run together without preemption.
  auto tiny = Load(/*num_blocks=*/12, /*max_batched_tokens=*/16);
  ASSERT_NE(tiny, nullptr);
  const std::vector<Output> preempted = RunConcurrently(*tiny, jobs);
  for (size_t i = 0; i < jobs.size(); ++i) {
    ExpectSameUpToTie(preempted[i], serial[i], "tiny-KV job " + std::to_string(i));
  }
  EXPECT_GT(tiny->GetStats()[0].num_preemptions, 0);
  EXPECT_TRUE(tiny->KvAllFreeWhenIdle());
}

TEST_P(RealModelTest, AbortsAndCompletionLeaveKvAllFree) {
  auto engine = Load(/*num_blocks=*/64);
  ASSERT_NE(engine, nullptr);
  std::vector<std::shared_ptr<RecordingSink>> sinks;
  const std::vector<Job> jobs = Jobs(200);
  for (size_t i = 0; i < jobs.size(); ++i) {
    Job j = jobs[i];
    j.max_tokens = 40;
    sinks.push_back(std::make_shared<RecordingSink>());
    ASSERT_THAT(engine->Submit(Greedy("a" + std::to_string(i), j), sinks.back()), IsOk());
  }
  // Abort half of them at different points.
  engine->Abort("a0");
  while (sinks[1]->tokens().size() < 3 && !sinks[1]->finished()) absl::SleepFor(absl::Milliseconds(1));
  engine->Abort("a1");
  engine->Abort("a3");
  engine->Abort("unknown");
  engine->WaitIdle();
  for (size_t i : {0, 1, 3}) {
    ASSERT_TRUE(sinks[i]->finished());
    const FinalOutput out = *sinks[i]->final_output();
    if (!out.status.ok()) {
      EXPECT_EQ(out.status.code(), absl::StatusCode::kCancelled);
      EXPECT_EQ(out.samples[0].finish_reason, FinishReason::kAbort);
    }
  }
  for (size_t i : {2, 4, 5}) {
    EXPECT_THAT(sinks[i]->final_output()->status, IsOk());
    EXPECT_EQ(sinks[i]->tokens().size(), 40u);
  }
  EXPECT_TRUE(engine->KvAllFreeWhenIdle());
  const EngineStats st = engine->GetStats()[0];
  EXPECT_EQ(st.num_running, 0);
  EXPECT_EQ(st.num_waiting, 0);
  EXPECT_EQ(st.kv_usage, 0.0);
}

TEST_P(RealModelTest, StreamedTextAndStopStringsUseTheTokenizer) {
  auto engine = Load();
  ASSERT_NE(engine, nullptr);
  ASSERT_NE(engine->tokenizer(), nullptr);
  Job j = Jobs(200)[2];
  j.max_tokens = 20;
  auto plain = std::make_shared<RecordingSink>();
  ASSERT_THAT(engine->Submit(Greedy("plain", j), plain), IsOk());
  engine->WaitIdle();
  const RecordingSink::Sample full = plain->sample();
  auto decoded = engine->tokenizer()->Decode(full.tokens, /*skip_special_tokens=*/true);
  ASSERT_THAT(decoded, IsOk());
  EXPECT_EQ(full.text, *decoded);  // deltas concatenate to the full decode
  // Stop at a 3-byte string starting at the text of token k, for the first k
  // where that string does not occur earlier (random weights repeat a lot).
  std::string head, stop;
  for (size_t k = 2; k + 3 < full.tokens.size() && stop.empty(); ++k) {
    auto h = engine->tokenizer()->Decode(
        std::vector<TokenId>(full.tokens.begin(), full.tokens.begin() + static_cast<long>(k)),
        true);
    ASSERT_THAT(h, IsOk());
    if (full.text.compare(0, h->size(), *h) != 0 || full.text.size() < h->size() + 3) continue;
    const std::string cand = full.text.substr(h->size(), 3);
    if (full.text.find(cand) == h->size()) {
      head = *h;
      stop = cand;
    }
  }
  if (stop.empty()) GTEST_SKIP() << "no unique 3-byte stop string in the generated text";
  GenerateRequest r = Greedy("stop", j);
  r.sampling.stop = {stop};
  auto stopped = std::make_shared<RecordingSink>();
  ASSERT_THAT(engine->Submit(r, stopped), IsOk());
  engine->WaitIdle();
  const FinalOutput out = *stopped->final_output();
  EXPECT_EQ(out.samples[0].finish_reason, FinishReason::kStop);
  EXPECT_EQ(out.samples[0].stop_string, stop);
  EXPECT_EQ(stopped->sample().text, head);
  EXPECT_LT(stopped->tokens().size(), full.tokens.size());
  EXPECT_TRUE(engine->KvAllFreeWhenIdle());
}

INSTANTIATE_TEST_SUITE_P(Models, RealModelTest,
                         ::testing::Values("qwen3_f32", "deepseek_v2_f32_greedy"));

}  // namespace
}  // namespace expertserve::engine
