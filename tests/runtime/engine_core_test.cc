// Step simulations of the engine core with the FakeModelRunner (no
// weights): per step, which sequences run, from which position, how many
// tokens, and which are preempted; plus end-to-end properties (outputs equal
// the fake model's independent expectation, no KV leaks).
#include "engine/runtime/engine_core.h"

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "engine/runtime/fake_model_runner.h"
#include "engine/sampler/sampler.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/fixtures/status_matchers.h"
#include "tests/runtime/test_sinks.h"

namespace expertserve::engine {
namespace {

using ::expertserve::testing::IsOk;
using ::expertserve::testing::StatusIs;
using ::testing::ElementsAreArray;
using Entry = StepRecord::Entry;

GenerateRequest Req(const std::string& id, std::vector<TokenId> prompt, int32_t max_tokens,
                    float temperature = 0.0f) {
  GenerateRequest r;
  r.request_id = id;
  r.model = "fake";
  r.prompt_token_ids = std::move(prompt);
  r.sampling.max_tokens = max_tokens;
  r.sampling.temperature = temperature;
  r.sampling.seed = 1234;
  return r;
}

std::vector<TokenId> Prompt(int n, TokenId base) {
  std::vector<TokenId> p;
  for (int i = 0; i < n; ++i) p.push_back(static_cast<TokenId>(1 + (base + i * 5) % 60));
  return p;
}

// The fake model's output for `prompt`, computed outside the engine:
// sample i of a request with `params` draws from SamplePrng(seed, i).
std::vector<TokenId> Expected(const FakeModelRunner& fake, const std::vector<TokenId>& prompt,
                              const SamplingParams& params, int sample = 0) {
  std::vector<TokenId> history = prompt, out;
  SamplePrng prng(*params.seed, static_cast<uint64_t>(sample));
  SamplerScratch scratch;
  for (int i = 0; i < params.max_tokens; ++i) {
    const std::vector<float> row = fake.LogitsFor(history);
    const TokenId t = SampleToken(row, params, prompt, out, prng, scratch);
    out.push_back(t);
    history.push_back(t);
  }
  return out;
}

struct Harness {
  explicit Harness(FakeModelOptions fo, EngineOptions eo = {})
      : fake(std::move(fo)), core(WithName(std::move(eo)), &fake, nullptr) {}
  static EngineOptions WithName(EngineOptions eo) {
    eo.model_name = "fake";
    return eo;
  }
  std::shared_ptr<RecordingSink> Add(GenerateRequest r) {
    EXPECT_THAT(core.Validate(r), IsOk());
    auto sink = std::make_shared<RecordingSink>();
    core.AddRequest(std::move(r), sink, std::nullopt, absl::Now());
    return sink;
  }
  std::vector<StepRecord> RunToEnd(int max_steps = 1000) {
    std::vector<StepRecord> steps;
    while (core.HasWork() && max_steps-- > 0) {
      steps.push_back(core.Step(absl::Now()));
      EXPECT_THAT(core.kv().CheckInvariants(), IsOk());
    }
    return steps;
  }
  FakeModelRunner fake;
  EngineCore core;
};

TEST(EngineCoreStepTest, ChunkedPrefillThenMixedDecodes) {
  EngineOptions eo;
  eo.max_batched_tokens = 8;
  eo.max_num_seqs = 4;
  Harness h(FakeModelOptions{.num_kv_blocks = 64, .block_tokens = 4}, eo);
  auto a = h.Add(Req("A", Prompt(10, 3), 3));
  auto b = h.Add(Req("B", Prompt(3, 7), 3));
  const std::vector<std::vector<Entry>> expected = {
      {{"A", 0, 0, 8}},                   // A's prompt is chunked; B does not fit
      {{"A", 0, 8, 2}, {"B", 0, 0, 3}},   // A finishes prefill, B admitted
      {{"A", 0, 10, 1}, {"B", 0, 3, 1}},  // decodes
      {{"A", 0, 11, 1}, {"B", 0, 4, 1}},
  };
  std::vector<StepRecord> steps = h.RunToEnd();
  ASSERT_EQ(steps.size(), expected.size());
  for (size_t i = 0; i < steps.size(); ++i) {
    EXPECT_THAT(steps[i].scheduled, ElementsAreArray(expected[i])) << "step " << i;
    EXPECT_TRUE(steps[i].preempted.empty());
  }
  EXPECT_THAT(steps.back().finished, ::testing::UnorderedElementsAre("A", "B"));
  SamplingParams greedy = Req("x", {}, 3).sampling;
  EXPECT_EQ(a->tokens(), Expected(h.fake, Prompt(10, 3), greedy));
  EXPECT_EQ(b->tokens(), Expected(h.fake, Prompt(3, 7), greedy));
  EXPECT_EQ(a->final_output()->samples[0].finish_reason, FinishReason::kLength);
  EXPECT_TRUE(h.core.kv().AllFree());
}

TEST(EngineCoreStepTest, DecodesComeBeforeANewLongPrompt) {
  EngineOptions eo;
  eo.max_batched_tokens = 6;
  Harness h(FakeModelOptions{.num_kv_blocks = 64, .block_tokens = 4}, eo);
  h.Add(Req("A", Prompt(2, 1), 4));
  h.core.Step(absl::Now());  // A prefilled
  h.Add(Req("B", Prompt(20, 9), 2));
  StepRecord s = h.core.Step(absl::Now());
  EXPECT_THAT(s.scheduled, ElementsAreArray(std::vector<Entry>{{"A", 0, 2, 1}, {"B", 0, 0, 5}}));
  s = h.core.Step(absl::Now());
  EXPECT_THAT(s.scheduled, ElementsAreArray(std::vector<Entry>{{"A", 0, 3, 1}, {"B", 0, 5, 5}}));
  h.RunToEnd();
  EXPECT_TRUE(h.core.kv().AllFree());
}

TEST(EngineCoreStepTest, TinyKvPreemptsAndResumesFromPrefixCache) {
  // 4 blocks of 4 tokens; two requests of 4 + 6 tokens need 3 blocks each.
  Harness h(FakeModelOptions{.num_kv_blocks = 4, .block_tokens = 4});
  auto a = h.Add(Req("A", Prompt(4, 2), 6));
  auto b = h.Add(Req("B", Prompt(4, 30), 6));
  std::vector<StepRecord> steps = h.RunToEnd();
  const std::vector<std::vector<Entry>> expected = {
      {{"A", 0, 0, 4}, {"B", 0, 0, 4}},
      {{"A", 0, 4, 1}, {"B", 0, 4, 1}},
      {{"A", 0, 5, 1}, {"B", 0, 5, 1}},
      {{"A", 0, 6, 1}, {"B", 0, 6, 1}},
      {{"A", 0, 7, 1}, {"B", 0, 7, 1}},
      {{"A", 0, 8, 1}},  // A needs a 3rd block: B is preempted
      // B resumes: its first block is still cached (its second was evicted
      // for A), so it recomputes 5 of its 9 tokens.
      {{"B", 0, 4, 5}},
  };
  ASSERT_EQ(steps.size(), expected.size());
  for (size_t i = 0; i < steps.size(); ++i) {
    EXPECT_THAT(steps[i].scheduled, ElementsAreArray(expected[i])) << "step " << i;
  }
  EXPECT_THAT(steps[5].preempted, ElementsAreArray(std::vector<Entry>{{"B", 0, 0, 0}}));
  SamplingParams greedy = Req("x", {}, 6).sampling;
  EXPECT_EQ(a->tokens(), Expected(h.fake, Prompt(4, 2), greedy));
  EXPECT_EQ(b->tokens(), Expected(h.fake, Prompt(4, 30), greedy));
  EXPECT_EQ(h.core.Stats().num_preemptions, 1);
  EXPECT_TRUE(h.core.kv().AllFree());
}

TEST(EngineCoreTest, ManyRequestsUnderPressureAllComplete) {
  EngineOptions eo;
  eo.max_batched_tokens = 16;
  eo.max_num_seqs = 6;
  Harness h(FakeModelOptions{.num_kv_blocks = 10, .block_tokens = 4}, eo);
  std::vector<std::shared_ptr<RecordingSink>> sinks;
  std::vector<GenerateRequest> reqs;
  for (int i = 0; i < 12; ++i) {
    GenerateRequest r = Req("r" + std::to_string(i), Prompt(3 + (i * 7) % 17, i), 4 + i % 9,
                            i % 2 ? 0.8f : 0.0f);
    r.sampling.seed = 100 + i;
    reqs.push_back(r);
    sinks.push_back(h.Add(r));
  }
  auto steps = h.RunToEnd();
  int preemptions = 0;
  for (const auto& s : steps) preemptions += static_cast<int>(s.preempted.size());
  EXPECT_GT(preemptions, 0);
  for (size_t i = 0; i < reqs.size(); ++i) {
    ASSERT_TRUE(sinks[i]->finished()) << i;
    EXPECT_EQ(sinks[i]->tokens(), Expected(h.fake, reqs[i].prompt_token_ids, reqs[i].sampling))
        << reqs[i].request_id;
  }
  EXPECT_TRUE(h.core.kv().AllFree());
}

TEST(EngineCoreTest, SeededSamplingIndependentOfBatchComposition) {
  std::vector<GenerateRequest> reqs;
  for (int i = 0; i < 6; ++i) {
    GenerateRequest r = Req("s" + std::to_string(i), Prompt(2 + i * 3, 11 * i), 5 + i, 1.5f);
    r.sampling.seed = 7 + i;
    r.sampling.top_p = 0.9f;
    reqs.push_back(r);
  }
  std::vector<std::vector<TokenId>> alone, together;
  for (const auto& r : reqs) {
    Harness h(FakeModelOptions{});
    auto s = h.Add(r);
    h.RunToEnd();
    alone.push_back(s->tokens());
  }
  Harness h(FakeModelOptions{});
  std::vector<std::shared_ptr<RecordingSink>> sinks;
  for (const auto& r : reqs) sinks.push_back(h.Add(r));
  h.RunToEnd();
  for (size_t i = 0; i < reqs.size(); ++i) EXPECT_EQ(sinks[i]->tokens(), alone[i]) << i;
}

TEST(EngineCoreTest, NSamplesForkCopyOnWrite) {
  Harness h(FakeModelOptions{.num_kv_blocks = 32, .block_tokens = 4});
  GenerateRequest r = Req("n", Prompt(6, 5), 7, 3.0f);  // partial last block: COW
  r.sampling.n = 3;
  r.sampling.seed = 99;
  auto sink = h.Add(r);
  auto other = h.Add(Req("o", Prompt(5, 40), 9));
  auto steps = h.RunToEnd();
  // One prefill for the prompt, then the three samples decode together.
  EXPECT_EQ(steps[0].scheduled[0].num_tokens, 6);
  EXPECT_EQ(steps[1].scheduled.size(), 4u);
  std::set<std::vector<TokenId>> distinct;
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(sink->tokens(i), Expected(h.fake, r.prompt_token_ids, r.sampling, i)) << i;
    distinct.insert(sink->tokens(i));
  }
  EXPECT_GT(distinct.size(), 1u);
  ASSERT_TRUE(sink->final_output().has_value());
  EXPECT_EQ(sink->final_output()->samples.size(), 3u);
  EXPECT_EQ(sink->final_output()->usage.completion_tokens, 21);
  EXPECT_EQ(other->tokens(), Expected(h.fake, Prompt(5, 40), Req("x", {}, 9).sampling));
  EXPECT_TRUE(h.core.kv().AllFree());
}

TEST(EngineCoreTest, PrefixCacheHitSkipsCachedTokens) {
  Harness h(FakeModelOptions{.num_kv_blocks = 32, .block_tokens = 4});
  auto first = h.Add(Req("a", Prompt(11, 1), 2));
  h.RunToEnd();
  auto second = h.Add(Req("b", Prompt(11, 1), 2));
  StepRecord s = h.core.Step(absl::Now());
  EXPECT_THAT(s.scheduled, ElementsAreArray(std::vector<Entry>{{"b", 0, 8, 3}}));
  h.RunToEnd();
  EXPECT_EQ(second->tokens(), first->tokens());
  EXPECT_EQ(second->final_output()->usage.cached_tokens, 8);
  EXPECT_EQ(first->final_output()->usage.cached_tokens, 0);
  EngineStats st = h.core.Stats();
  EXPECT_EQ(st.prefix_cache_hits, 8);
  EXPECT_EQ(st.prefix_cache_queries, 22);  // every prompt token is looked up
}

// A block-aligned prompt seen before: every block is cached, and only the
// last token is computed, into a copy of the last block (which another
// running request may still be reading, and which stays cached as it was).
TEST(EngineCoreTest, FullyCachedPromptComputesOnlyItsLastToken) {
  Harness h(FakeModelOptions{.num_kv_blocks = 32, .block_tokens = 4});
  auto first = h.Add(Req("a", Prompt(12, 1), 3));
  h.RunToEnd();
  auto second = h.Add(Req("b", Prompt(12, 1), 3));
  StepRecord s = h.core.Step(absl::Now());
  EXPECT_THAT(s.scheduled, ElementsAreArray(std::vector<Entry>{{"b", 0, 11, 1}}));
  // While b runs, c arrives with the same prompt: it shares the cached
  // blocks b also holds.
  auto third = h.Add(Req("c", Prompt(12, 1), 5));
  h.RunToEnd();
  EXPECT_EQ(second->tokens(), first->tokens());
  EXPECT_EQ(second->final_output()->usage.cached_tokens, 11);
  EXPECT_EQ(third->final_output()->usage.cached_tokens, 11);
  const std::vector<TokenId> want = first->tokens();
  const std::vector<TokenId> got = third->tokens();
  ASSERT_GE(got.size(), want.size());
  EXPECT_EQ(std::vector<TokenId>(got.begin(), got.begin() + static_cast<long>(want.size())),
            want);
  // A fourth request still finds all three blocks cached and intact.
  auto fourth = h.Add(Req("d", Prompt(12, 1), 3));
  h.RunToEnd();
  EXPECT_EQ(fourth->tokens(), first->tokens());
  EXPECT_TRUE(h.core.kv().AllFree());
}

TEST(EngineCoreTest, AbortFreesBlocksWithinTheStep) {
  Harness h(FakeModelOptions{.num_kv_blocks = 32, .block_tokens = 4});
  auto a = h.Add(Req("a", Prompt(9, 1), 50));
  auto b = h.Add(Req("b", Prompt(5, 2), 5));
  h.core.Step(absl::Now());
  h.core.Step(absl::Now());
  const int32_t free_before = h.core.kv().NumFreeBlocks();
  EXPECT_TRUE(h.core.Abort("a", absl::CancelledError("client")));
  EXPECT_GT(h.core.kv().NumFreeBlocks(), free_before);
  EXPECT_FALSE(h.core.Abort("a", absl::CancelledError("again")));
  ASSERT_TRUE(a->finished());
  EXPECT_EQ(a->final_output()->status.code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(a->final_output()->samples[0].finish_reason, FinishReason::kAbort);
  EXPECT_EQ(a->tokens().size(), 2u);
  h.RunToEnd();
  EXPECT_EQ(b->tokens(), Expected(h.fake, Prompt(5, 2), Req("x", {}, 5).sampling));
  EXPECT_EQ(a->calls_after_finish(), 0);
  EXPECT_TRUE(h.core.kv().AllFree());
}

TEST(EngineCoreTest, DeadlineAbortsWithDeadlineExceeded) {
  Harness h(FakeModelOptions{});
  GenerateRequest r = Req("d", Prompt(3, 1), 100);
  r.deadline = absl::Now() + absl::Hours(1);
  auto sink = h.Add(r);
  h.core.Step(absl::Now());
  h.core.Step(absl::Now() + absl::Hours(2));
  ASSERT_TRUE(sink->finished());
  EXPECT_EQ(sink->final_output()->status.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(sink->final_output()->samples[0].finish_reason, FinishReason::kAbort);
  EXPECT_TRUE(h.core.kv().AllFree());
}

TEST(EngineCoreTest, PriorityPolicyAdmitsUrgentFirst) {
  EngineOptions eo;
  eo.policy = PriorityPolicy{};
  eo.max_num_seqs = 1;
  Harness h(FakeModelOptions{}, eo);
  GenerateRequest lo = Req("lo", Prompt(3, 1), 2);
  lo.priority = 5;
  GenerateRequest hi = Req("hi", Prompt(3, 2), 2);
  hi.priority = -1;
  h.Add(lo);
  h.Add(hi);
  StepRecord s = h.core.Step(absl::Now());
  ASSERT_EQ(s.scheduled.size(), 1u);
  EXPECT_EQ(s.scheduled[0].request_id, "hi");
  h.RunToEnd();
}

TEST(EngineCoreTest, StopTokenEosAndIgnoreEos) {
  // Script: always emit token 9, which is EOS.
  FakeModelOptions fo;
  fo.next = [](uint64_t, int32_t) { return TokenId{9}; };
  EngineOptions eo;
  eo.eos_token_ids = {9};
  Harness h(fo, eo);
  auto stop = h.Add(Req("eos", Prompt(3, 1), 10));
  GenerateRequest ig = Req("ignore", Prompt(3, 1), 4);
  ig.sampling.ignore_eos = true;
  auto ignore = h.Add(ig);
  h.RunToEnd();
  EXPECT_EQ(stop->tokens(), std::vector<TokenId>{9});
  EXPECT_EQ(stop->final_output()->samples[0].finish_reason, FinishReason::kStop);
  EXPECT_EQ(stop->final_output()->samples[0].stop_token, 9);
  EXPECT_EQ(ignore->tokens(), std::vector<TokenId>(4, 9));
  EXPECT_EQ(ignore->final_output()->samples[0].finish_reason, FinishReason::kLength);
}

TEST(EngineCoreTest, LogprobsAndPromptLogprobs) {
  Harness h(FakeModelOptions{.num_kv_blocks = 32, .block_tokens = 4});
  h.Add(Req("warm", Prompt(9, 1), 1));  // fills the prefix cache
  h.RunToEnd();
  GenerateRequest r = Req("lp", Prompt(9, 1), 3);
  r.sampling.logprobs = 2;
  r.sampling.prompt_logprobs = 1;
  auto sink = h.Add(r);
  h.RunToEnd();
  RecordingSink::Sample s = sink->sample();
  ASSERT_EQ(s.logprobs.size(), 3u);
  std::vector<TokenId> history = r.prompt_token_ids;
  for (size_t i = 0; i < 3; ++i) {
    const PositionLogprobs ref = ComputeLogprobs(h.fake.LogitsFor(history), s.tokens[i], 2);
    EXPECT_EQ(s.logprobs[i].chosen.token, s.tokens[i]);
    EXPECT_FLOAT_EQ(s.logprobs[i].chosen.logprob, ref.chosen.logprob);
    EXPECT_EQ(s.logprobs[i].top.size(), 2u);
    EXPECT_EQ(s.logprobs[i].rank, 1);  // greedy
    history.push_back(s.tokens[i]);
  }
  // Prompt logprobs: the whole prompt is computed (no cache use).
  EXPECT_EQ(sink->final_output()->usage.cached_tokens, 0);
  EXPECT_EQ(sink->prompt_logprobs_calls(), 1);
  std::vector<PositionLogprobs> p = sink->prompt_logprobs();
  ASSERT_EQ(p.size(), 9u);
  EXPECT_TRUE(p[0].top.empty());
  for (size_t i = 1; i < 9; ++i) {
    std::vector<TokenId> prefix(r.prompt_token_ids.begin(), r.prompt_token_ids.begin() + static_cast<long>(i));
    const PositionLogprobs ref = ComputeLogprobs(h.fake.LogitsFor(prefix), r.prompt_token_ids[i], 1);
    EXPECT_EQ(p[i].chosen.token, r.prompt_token_ids[i]);
    EXPECT_FLOAT_EQ(p[i].chosen.logprob, ref.chosen.logprob) << i;
    EXPECT_EQ(p[i].rank, ref.rank);
  }
}

TEST(EngineCoreTest, ValidationErrors) {
  Harness h(FakeModelOptions{.vocab_size = 64, .max_model_len = 100, .num_kv_blocks = 8,
                             .block_tokens = 4});
  EXPECT_THAT(h.core.Validate(Req("", Prompt(3, 1), 2)),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(h.core.Validate(Req("e", {}, 2)), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(h.core.Validate(Req("v", {1, 64}, 2)),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::HasSubstr("prompt_token_ids[1]")));
  GenerateRequest bad = Req("t", Prompt(3, 1), 2);
  bad.sampling.top_p = 2.0f;
  EXPECT_THAT(h.core.Validate(bad), StatusIs(absl::StatusCode::kInvalidArgument,
                                             ::testing::HasSubstr("top_p")));
  EXPECT_THAT(h.core.Validate(Req("ctx", Prompt(90, 1), 20)),
              StatusIs(absl::StatusCode::kOutOfRange, ::testing::HasSubstr("context of 100")));
  EXPECT_THAT(h.core.Validate(Req("kv", Prompt(20, 1), 20)),
              StatusIs(absl::StatusCode::kOutOfRange, ::testing::HasSubstr("KV cache capacity")));
  EXPECT_THAT(h.core.Validate(Req("ok", Prompt(20, 1), 12)), IsOk());
}

}  // namespace
}  // namespace expertserve::engine
