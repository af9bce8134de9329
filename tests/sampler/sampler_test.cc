#include "engine/sampler/sampler.h"

#include <cmath>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/sampler/stop_checker.h"
#include "engine/sampler/validate.h"
#include "engine/tokenizer/tokenizer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/fixtures/status_matchers.h"

namespace expertserve::engine {
namespace {

using ::expertserve::testing::IsOk;
using ::expertserve::testing::StatusIs;
using ::testing::HasSubstr;

SamplingParams Greedy() {
  SamplingParams p;
  p.temperature = 0.0f;
  return p;
}

TokenId Sample(const std::vector<float>& logits, const SamplingParams& p,
               uint64_t seed = 1, std::vector<TokenId> prompt = {},
               std::vector<TokenId> output = {}) {
  SamplePrng prng(seed, 0);
  SamplerScratch scratch;
  return SampleToken(logits, p, prompt, output, prng, scratch);
}

// Empirical distribution over `draws` seeds.
std::map<TokenId, double> Histogram(const std::vector<float>& logits,
                                    const SamplingParams& p, int draws = 4000) {
  std::map<TokenId, double> h;
  for (int s = 0; s < draws; ++s) h[Sample(logits, p, static_cast<uint64_t>(s))] += 1.0 / draws;
  return h;
}

std::vector<double> Softmax(const std::vector<float>& l, double t = 1.0) {
  double m = l[0];
  for (float x : l) m = std::max<double>(m, x);
  std::vector<double> p;
  double z = 0;
  for (float x : l) z += std::exp((x - m) / t);
  for (float x : l) p.push_back(std::exp((x - m) / t) / z);
  return p;
}

TEST(SamplerTest, GreedyIsArgmaxTiesToLowestId) {
  EXPECT_EQ(Sample({0.1f, 3.0f, -2.0f, 3.0f}, Greedy()), 1);
}

TEST(SamplerTest, TemperatureMatchesSoftmax) {
  const std::vector<float> l = {1.0f, 0.0f, -1.0f, 0.5f};
  for (float t : {0.5f, 1.0f, 2.0f}) {
    SamplingParams p;
    p.temperature = t;
    auto h = Histogram(l, p);
    auto ref = Softmax(l, t);
    for (size_t i = 0; i < l.size(); ++i) {
      EXPECT_NEAR(h[static_cast<TokenId>(i)], ref[i], 0.03) << "t=" << t << " id=" << i;
    }
  }
}

TEST(SamplerTest, TopKKeepsKMostLikely) {
  SamplingParams p;
  p.top_k = 2;
  auto h = Histogram({1.0f, 3.0f, 2.9f, 0.0f}, p, 2000);
  EXPECT_EQ(h.count(0), 0u);
  EXPECT_EQ(h.count(3), 0u);
  auto ref = Softmax({3.0f, 2.9f});
  EXPECT_NEAR(h[1], ref[0], 0.04);
  p.top_k = 1;
  p.temperature = 5.0f;
  EXPECT_EQ(Histogram({1.0f, 3.0f, 2.9f}, p, 200).size(), 1u);
}

TEST(SamplerTest, TopPKeepsSmallestNucleus) {
  const std::vector<float> l = {std::log(0.5f), std::log(0.3f), std::log(0.2f)};
  SamplingParams p;
  p.top_p = 0.7f;  // 0.5 < 0.7 <= 0.8: tokens 0 and 1
  auto h = Histogram(l, p, 2000);
  EXPECT_EQ(h.count(2), 0u);
  EXPECT_NEAR(h[0], 0.5 / 0.8, 0.04);
  p.top_p = 0.5f;  // exactly the first token's mass
  EXPECT_EQ(Histogram(l, p, 300).size(), 1u);
}

TEST(SamplerTest, MinPDropsUnlikelyTokens) {
  const std::vector<float> l = {std::log(0.5f), std::log(0.3f), std::log(0.2f)};
  SamplingParams p;
  p.min_p = 0.5f;  // keep prob >= 0.25
  auto h = Histogram(l, p, 2000);
  EXPECT_EQ(h.count(2), 0u);
  EXPECT_NEAR(h[1], 0.3 / 0.8, 0.04);
}

TEST(SamplerTest, RepetitionPenaltyOverPromptAndOutput) {
  SamplingParams p = Greedy();
  p.repetition_penalty = 2.0f;
  // 0: 2.0 -> 1.0 (in prompt); 1 wins with 1.9.
  EXPECT_EQ(Sample({2.0f, 1.9f, -1.0f}, p, 1, {0}), 1);
  // Negative logits are multiplied: -1 -> -2, so 2 stays below 1.
  EXPECT_EQ(Sample({-3.0f, -1.5f, -1.0f}, p, 1, {}, {2}), 1);
  p.repetition_penalty = 1.0f;
  EXPECT_EQ(Sample({2.0f, 1.9f, -1.0f}, p, 1, {0}), 0);
}

TEST(SamplerTest, FrequencyAndPresencePenaltiesCountOutputOnly) {
  SamplingParams p = Greedy();
  p.frequency_penalty = 0.3f;
  // Output has token 0 twice: 2.0 - 0.6 = 1.4 < 1.5.
  EXPECT_EQ(Sample({2.0f, 1.5f}, p, 1, {}, {0, 0}), 1);
  EXPECT_EQ(Sample({2.0f, 1.5f}, p, 1, {}, {0}), 0);
  EXPECT_EQ(Sample({2.0f, 1.5f}, p, 1, {0, 0, 0, 0}, {}), 0);  // prompt ignored
  p.frequency_penalty = 0.0f;
  p.presence_penalty = 0.6f;
  EXPECT_EQ(Sample({2.0f, 1.5f}, p, 1, {}, {0}), 1);
}

TEST(SamplerTest, LogitBias) {
  SamplingParams p = Greedy();
  p.logit_bias = {{2, 5.0f}};
  EXPECT_EQ(Sample({1.0f, 2.0f, -2.0f}, p), 2);
  p.logit_bias = {{1, -100.0f}};
  EXPECT_EQ(Sample({1.0f, 2.0f, -2.0f}, p), 0);
}

TEST(SamplerTest, SeedReproducesAndSampleIndexDiffers) {
  SamplingParams p;
  const std::vector<float> l(64, 0.0f);  // uniform: every draw counts
  SamplerScratch scratch;
  auto run = [&](uint64_t seed, uint64_t index) {
    SamplePrng prng(seed, index);
    std::vector<TokenId> out;
    for (int i = 0; i < 20; ++i) out.push_back(SampleToken(l, p, {}, out, prng, scratch));
    return out;
  };
  EXPECT_EQ(run(42, 0), run(42, 0));
  EXPECT_NE(run(42, 0), run(42, 1));
  EXPECT_NE(run(42, 0), run(43, 0));
}

TEST(SamplerTest, GreedyStillAdvancesTheStream) {
  // One draw per token whatever the parameters, so switching a token to
  // greedy does not shift later draws.
  SamplePrng a(7, 0), b(7, 0);
  SamplerScratch scratch;
  (void)SampleToken(std::vector<float>{1, 2}, Greedy(), {}, {}, a, scratch);
  (void)b.NextUniform();
  EXPECT_EQ(a.Next(), b.Next());
}

TEST(LogprobsTest, MatchesReferenceLogSoftmax) {
  const std::vector<float> l = {0.5f, 2.0f, -1.0f, 2.0f, 1.0f};
  auto ref = Softmax(l);
  PositionLogprobs lp = ComputeLogprobs(l, 4, 3);
  EXPECT_EQ(lp.chosen.token, 4);
  EXPECT_NEAR(lp.chosen.logprob, std::log(ref[4]), 1e-5);
  EXPECT_EQ(lp.rank, 3);  // after the two 2.0s
  ASSERT_EQ(lp.top.size(), 3u);
  EXPECT_EQ(lp.top[0].token, 1);  // tie broken by id
  EXPECT_EQ(lp.top[1].token, 3);
  EXPECT_EQ(lp.top[2].token, 4);
  for (const auto& t : lp.top) {
    EXPECT_NEAR(t.logprob, std::log(ref[static_cast<size_t>(t.token)]), 1e-5);
  }
  EXPECT_TRUE(ComputeLogprobs(l, 1, 0).top.empty());
  EXPECT_EQ(ComputeLogprobs(l, 1, 0).rank, 1);
}

struct BadParam {
  std::string name;
  void (*mutate)(SamplingParams&);
};

TEST(ValidateTest, NamesTheBadParameter) {
  const std::vector<BadParam> cases = {
      {"temperature", [](SamplingParams& p) { p.temperature = -0.1f; }},
      {"temperature", [](SamplingParams& p) { p.temperature = NAN; }},
      {"top_k", [](SamplingParams& p) { p.top_k = -2; }},
      {"top_p", [](SamplingParams& p) { p.top_p = 0.0f; }},
      {"top_p", [](SamplingParams& p) { p.top_p = 1.5f; }},
      {"min_p", [](SamplingParams& p) { p.min_p = -0.5f; }},
      {"repetition_penalty", [](SamplingParams& p) { p.repetition_penalty = 0.0f; }},
      {"presence_penalty", [](SamplingParams& p) { p.presence_penalty = 3.0f; }},
      {"frequency_penalty", [](SamplingParams& p) { p.frequency_penalty = -2.5f; }},
      {"logit_bias", [](SamplingParams& p) { p.logit_bias = {{100, 1.0f}}; }},
      {"logit_bias", [](SamplingParams& p) { p.logit_bias = {{1, 101.0f}}; }},
      {"n", [](SamplingParams& p) { p.n = 0; }},
      {"max_tokens", [](SamplingParams& p) { p.max_tokens = 0; }},
      {"stop", [](SamplingParams& p) { p.stop = {""}; }},
      {"stop_token_ids", [](SamplingParams& p) { p.stop_token_ids = {-1}; }},
      {"logprobs", [](SamplingParams& p) { p.logprobs = kMaxLogprobs + 1; }},
      {"prompt_logprobs", [](SamplingParams& p) { p.prompt_logprobs = -1; }},
  };
  EXPECT_THAT(ValidateSamplingParams(SamplingParams(), 100, true), IsOk());
  for (const BadParam& c : cases) {
    SamplingParams p;
    c.mutate(p);
    EXPECT_THAT(ValidateSamplingParams(p, 100, true),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("sampling." + c.name + ":")))
        << c.name;
  }
  SamplingParams p;
  p.stop = {"x"};
  EXPECT_THAT(ValidateSamplingParams(p, 100, false),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("sampling.stop")));
}

// A byte-less toy vocabulary: "a" 0, "b" 1, "c" 2, "ab" 3, "<eos>" 4.
std::unique_ptr<Tokenizer> Toy() {
  auto t = Tokenizer::FromJson(
      R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "c": 2, "ab": 3, "<eos>": 4},
          "merges": ["a b"]},
          "added_tokens": [{"id": 4, "content": "<eos>", "special": true}],
          "decoder": {"type": "Fuse"}})");
  EXPECT_THAT(t, IsOk());
  return std::move(*t);
}

struct Collected {
  std::string text;
  std::optional<FinishReason> finish;
  StopChecker::Result last;
};

Collected Feed(StopChecker& c, const std::vector<TokenId>& ids) {
  Collected out;
  for (TokenId id : ids) {
    out.last = c.Append(id);
    out.text += out.last.text;
    if (out.last.finish) {
      out.finish = out.last.finish;
      break;
    }
  }
  return out;
}

TEST(StopCheckerTest, StopStringAcrossTokenBoundaries) {
  auto tok = Toy();
  const std::vector<TokenId> eos = {4};
  SamplingParams p;
  p.max_tokens = 100;
  p.stop = {"bca"};
  StopChecker c(p, eos, tok.get());
  // "c" "ab" "c" "a" ...: text "cabca" contains "bca" across 3 tokens.
  Collected r = Feed(c, {2, 3, 2, 0, 1, 1});
  ASSERT_TRUE(r.finish.has_value());
  EXPECT_EQ(*r.finish, FinishReason::kStop);
  EXPECT_EQ(r.text, "ca");
  EXPECT_EQ(r.last.stop_string, "bca");
  EXPECT_EQ(c.num_generated(), 4);
}

TEST(StopCheckerTest, IncludeStopString) {
  auto tok = Toy();
  const std::vector<TokenId> eos = {4};
  SamplingParams p;
  p.stop = {"bc"};
  p.include_stop_str_in_output = true;
  StopChecker c(p, eos, tok.get());
  EXPECT_EQ(Feed(c, {3, 2, 0}).text, "abc");
}

TEST(StopCheckerTest, EosStopTokenMaxTokensAndIgnoreEos) {
  auto tok = Toy();
  const std::vector<TokenId> eos = {4};
  SamplingParams p;
  p.max_tokens = 3;
  {
    StopChecker c(p, eos, tok.get());
    Collected r = Feed(c, {0, 4, 1});
    EXPECT_EQ(*r.finish, FinishReason::kStop);
    EXPECT_EQ(r.last.stop_token, 4);
    EXPECT_EQ(r.text, "a");  // special token skipped
  }
  {
    p.ignore_eos = true;
    StopChecker c(p, eos, tok.get());
    Collected r = Feed(c, {0, 4, 1, 1});
    EXPECT_EQ(*r.finish, FinishReason::kLength);
    EXPECT_EQ(c.num_generated(), 3);
    EXPECT_EQ(r.text, "ab");
  }
  {
    p.stop_token_ids = {2};
    StopChecker c(p, eos, tok.get());
    Collected r = Feed(c, {0, 2, 1});
    EXPECT_EQ(*r.finish, FinishReason::kStop);
    EXPECT_EQ(r.last.stop_token, 2);
    EXPECT_EQ(r.text, "ac");
  }
}

TEST(StopCheckerTest, HeldBackTextIsReleasedAtLength) {
  auto tok = Toy();
  const std::vector<TokenId> eos = {4};
  SamplingParams p;
  p.max_tokens = 2;
  p.stop = {"cc"};
  StopChecker c(p, eos, tok.get());
  StopChecker::Result r1 = c.Append(0);
  EXPECT_EQ(r1.text, "a");
  StopChecker::Result r2 = c.Append(2);  // "c" may start "cc": held, then flushed
  EXPECT_EQ(*r2.finish, FinishReason::kLength);
  EXPECT_EQ(r2.text, "c");
}

TEST(StopCheckerTest, NoTokenizerMeansNoText) {
  const std::vector<TokenId> eos = {4};
  SamplingParams p;
  p.max_tokens = 2;
  StopChecker c(p, eos, nullptr);
  Collected r = Feed(c, {0, 1});
  EXPECT_EQ(r.text, "");
  EXPECT_EQ(*r.finish, FinishReason::kLength);
}

}  // namespace
}  // namespace expertserve::engine
