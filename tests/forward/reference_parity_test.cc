// The forward pass against the independent NumPy reference
// (tests/reference/hf_reference.py) on seeded tiny checkpoints of every
// architecture: per-position prompt logits, and 32 greedy tokens generated with
// chunked prefill and batched decodes over shuffled (non-contiguous) KV
// blocks. Fixtures come from tests/forward/make_fixtures.py (CTest fixture).
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "common/thread_pool.h"
#include "engine/forward/transformer.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/fixtures/npy.h"
#include "tests/fixtures/status_matchers.h"

namespace expertserve::engine {
namespace {

constexpr size_t kBlockTokens = 16;
constexpr size_t kNumBlocks = 64;

std::filesystem::path FixtureDir() {
  const char* bin = std::getenv("ES_BINARY_DIR");
  return std::filesystem::path(bin ? bin : "build") / "test-models" / "forward";
}

struct Reference {
  std::vector<std::vector<TokenId>> prompts;
  std::vector<std::vector<TokenId>> generated;
  std::vector<std::vector<double>> margins;
};

Reference LoadReference(const std::filesystem::path& dir) {
  std::ifstream in(dir / "reference.json");
  EXPECT_TRUE(in.good()) << "missing fixture " << dir;
  const nlohmann::json j = nlohmann::json::parse(in, nullptr, false);
  Reference r;
  if (j.is_discarded()) return r;
  for (const auto& res : j["results"]) {
    r.prompts.push_back(res["prompt"].get<std::vector<TokenId>>());
    r.generated.push_back(res["generated"].get<std::vector<TokenId>>());
    r.margins.push_back(res["margins"].get<std::vector<double>>());
  }
  return r;
}

// Max |got - ref| over max |ref|.
double RelativeDiff(const float* got, const float* ref, size_t n) {
  double diff = 0, scale = 0;
  for (size_t i = 0; i < n; ++i) {
    diff = std::max(diff, std::fabs(double{got[i]} - ref[i]));
    scale = std::max(scale, std::fabs(double{ref[i]}));
  }
  return diff / std::max(scale, 1e-30);
}

// Hands each sequence its own blocks from a shuffled pool, so block tables
// are non-contiguous and interleaved between sequences.
std::vector<std::vector<int32_t>> ShuffledBlockTables(size_t seqs, size_t per_seq) {
  std::vector<int32_t> ids(kNumBlocks);
  std::iota(ids.begin(), ids.end(), 0);
  std::mt19937 rng(7);
  std::shuffle(ids.begin(), ids.end(), rng);
  std::vector<std::vector<int32_t>> tables(seqs);
  size_t next = 0;
  for (size_t b = 0; b < per_seq; ++b) {
    for (size_t s = 0; s < seqs; ++s) tables[s].push_back(ids[next++]);
  }
  return tables;
}

class ReferenceParityTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    dir_ = FixtureDir() / GetParam();
    ASSERT_TRUE(std::filesystem::exists(dir_ / "reference.json"))
        << "fixture missing: run the forward_fixtures test first (" << dir_ << ")";
    ref_ = LoadReference(dir_);
    ASSERT_FALSE(ref_.prompts.empty());
    ES_ASSERT_OK_AND_ASSIGN(model_, Transformer::Load(dir_ / "model"));
  }

  std::filesystem::path dir_;
  Reference ref_;
  std::unique_ptr<Transformer> model_;
  ThreadPool pool_{2};
};

TEST_P(ReferenceParityTest, PromptLogitsMatchInOneMixedBatch) {
  KvStore kv(model_->config(), kNumBlocks, kBlockTokens);
  const auto tables = ShuffledBlockTables(ref_.prompts.size(), 4);
  StepBatch batch;
  std::vector<std::pair<size_t, size_t>> rows;  // prompt -> [first, count)
  for (size_t s = 0; s < ref_.prompts.size(); ++s) {
    batch.sequences.push_back({tables[s], nullptr});
    const size_t first = batch.tokens.size();
    for (size_t i = 0; i < ref_.prompts[s].size(); ++i) {
      batch.AddTokens(static_cast<int32_t>(s), &ref_.prompts[s][i], 1,
                      static_cast<int32_t>(i), true);
    }
    rows.emplace_back(first, ref_.prompts[s].size());
  }
  std::vector<float> logits;
  ES_ASSERT_OK(model_->Forward(batch, kv, pool_, logits));
  const size_t V = static_cast<size_t>(model_->config().vocab_size);
  for (size_t s = 0; s < ref_.prompts.size(); ++s) {
    ES_ASSERT_OK_AND_ASSIGN(
        testing::NpyArray want,
        testing::ReadNpyF32(dir_ / "logits" / ("prompt_" + std::to_string(s) + ".npy")));
    ASSERT_EQ(want.shape, (std::vector<int64_t>{static_cast<int64_t>(rows[s].second),
                                                static_cast<int64_t>(V)}));
    for (size_t p = 0; p < rows[s].second; ++p) {
      const double rel = RelativeDiff(logits.data() + (rows[s].first + p) * V,
                                      want.data.data() + p * V, V);
      EXPECT_LE(rel, 1e-4) << "prompt " << s << " position " << p;
    }
  }
}

// The longest prompt in two chunks, the second (a long run starting mid-
// context: MLA computes it in the expanded form, other architectures through
// prefill GEMM attention) in one batch with a whole short prompt (MLA: the
// absorbed form).
TEST_P(ReferenceParityTest, PromptLogitsMatchWithALongChunkMidContext) {
  ASSERT_EQ(ref_.prompts.size(), 3u);
  const std::vector<TokenId>& longest = ref_.prompts[2];
  constexpr size_t kFirst = 5;
  ASSERT_GE(longest.size(), kFirst + 32);
  KvStore kv(model_->config(), kNumBlocks, kBlockTokens);
  const auto tables = ShuffledBlockTables(2, 4);
  StepBatch first;
  first.sequences.push_back({tables[0], nullptr});
  first.AddTokens(0, longest.data(), kFirst, 0, false);
  std::vector<float> logits;
  ES_ASSERT_OK(model_->Forward(first, kv, pool_, logits));
  StepBatch second;
  second.sequences.push_back({tables[0], nullptr});
  second.sequences.push_back({tables[1], nullptr});
  for (size_t i = kFirst; i < longest.size(); ++i) {
    second.AddTokens(0, &longest[i], 1, static_cast<int32_t>(i), true);
  }
  const std::vector<TokenId>& shorter = ref_.prompts[1];
  for (size_t i = 0; i < shorter.size(); ++i) {
    second.AddTokens(1, &shorter[i], 1, static_cast<int32_t>(i), true);
  }
  ES_ASSERT_OK(model_->Forward(second, kv, pool_, logits));
  const size_t V = static_cast<size_t>(model_->config().vocab_size);
  ES_ASSERT_OK_AND_ASSIGN(testing::NpyArray want_long,
                          testing::ReadNpyF32(dir_ / "logits" / "prompt_2.npy"));
  ES_ASSERT_OK_AND_ASSIGN(testing::NpyArray want_short,
                          testing::ReadNpyF32(dir_ / "logits" / "prompt_1.npy"));
  size_t row = 0;
  for (size_t p = kFirst; p < longest.size(); ++p, ++row) {
    EXPECT_LE(RelativeDiff(logits.data() + row * V, want_long.data.data() + p * V, V), 1e-4)
        << "long prompt position " << p;
  }
  for (size_t p = 0; p < shorter.size(); ++p, ++row) {
    EXPECT_LE(RelativeDiff(logits.data() + row * V, want_short.data.data() + p * V, V), 1e-4)
        << "short prompt position " << p;
  }
}

// The longest prompt in two chunks of 16-31 tokens: prefill GEMM attention
// (MLA: its absorbed form, V aliasing the latent) and, with BF16 weights, the
// split-BF16 GEMMs, which need M >= 16.
TEST_P(ReferenceParityTest, PromptLogitsMatchInMediumChunks) {
  const std::vector<TokenId>& longest = ref_.prompts[2];
  constexpr size_t kFirst = 20;
  ASSERT_GE(longest.size(), kFirst + 16);
  ASSERT_LT(longest.size(), kFirst + 32);
  KvStore kv(model_->config(), kNumBlocks, kBlockTokens);
  const auto tables = ShuffledBlockTables(1, 4);
  ES_ASSERT_OK_AND_ASSIGN(testing::NpyArray want,
                          testing::ReadNpyF32(dir_ / "logits" / "prompt_2.npy"));
  const size_t V = static_cast<size_t>(model_->config().vocab_size);
  for (const auto& [start, end] : {std::pair<size_t, size_t>{0, kFirst},
                                   std::pair<size_t, size_t>{kFirst, longest.size()}}) {
    StepBatch batch;
    batch.sequences.push_back({tables[0], nullptr});
    for (size_t i = start; i < end; ++i) {
      batch.AddTokens(0, &longest[i], 1, static_cast<int32_t>(i), true);
    }
    std::vector<float> logits;
    ES_ASSERT_OK(model_->Forward(batch, kv, pool_, logits));
    for (size_t p = start; p < end; ++p) {
      EXPECT_LE(RelativeDiff(logits.data() + (p - start) * V, want.data.data() + p * V, V),
                1e-4)
          << "position " << p;
    }
  }
}

TEST_P(ReferenceParityTest, GreedyTokensMatchWithChunkedPrefillAndBatchedDecode) {
  const size_t S = ref_.prompts.size();
  KvStore kv(model_->config(), kNumBlocks, kBlockTokens);
  const auto tables = ShuffledBlockTables(S, 6);
  std::vector<std::vector<TokenId>> seq(ref_.prompts);  // prompt + generated
  std::vector<size_t> done(S, 0);  // tokens already in the KV cache
  std::vector<std::vector<TokenId>> generated(S);
  constexpr size_t kChunk = 7;
  const size_t want = ref_.generated[0].size();
  for (int step = 0; step < 200; ++step) {
    StepBatch batch;
    std::vector<size_t> owner;  // logits row -> sequence
    for (size_t s = 0; s < S; ++s) {
      batch.sequences.push_back({tables[s], nullptr});
      if (generated[s].size() >= want) continue;
      const size_t n = std::min(kChunk, seq[s].size() - done[s]);
      const bool last = done[s] + n == seq[s].size();
      batch.AddTokens(static_cast<int32_t>(s), seq[s].data() + done[s],
                      static_cast<int32_t>(n), static_cast<int32_t>(done[s]), last);
      if (last) owner.push_back(s);
      done[s] += n;
    }
    if (batch.num_tokens() == 0) break;
    std::vector<float> logits;
    ES_ASSERT_OK(model_->Forward(batch, kv, pool_, logits));
    const size_t V = static_cast<size_t>(model_->config().vocab_size);
    for (size_t i = 0; i < owner.size(); ++i) {
      const float* row = logits.data() + i * V;
      const TokenId next =
          static_cast<TokenId>(std::max_element(row, row + V) - row);
      generated[owner[i]].push_back(next);
      seq[owner[i]].push_back(next);
    }
  }
  for (size_t s = 0; s < S; ++s) {
    ASSERT_EQ(generated[s].size(), ref_.generated[s].size()) << "prompt " << s;
    for (size_t i = 0; i < generated[s].size(); ++i) {
      if (generated[s][i] == ref_.generated[s][i]) continue;
      // A different argmax is only acceptable at a numerical tie.
      EXPECT_LT(ref_.margins[s][i], 1e-4)
          << "prompt " << s << " token " << i << ": got " << generated[s][i]
          << ", reference " << ref_.generated[s][i] << " (margin "
          << ref_.margins[s][i] << ")";
      break;  // the continuations legitimately differ after a tie
    }
  }
}

// Must list exactly the variants of make_fixtures.py.
INSTANTIATE_TEST_SUITE_P(
    AllArchitectures, ReferenceParityTest,
    ::testing::Values("llama_f32", "llama_bf16_llama3rope", "llama_f16_linear_tied",
                      "qwen2_f32", "qwen2_bf16_sharded", "qwen3_f32",
                      "qwen3_bf16_yarn", "mixtral_f32", "mixtral_bf16",
                      "qwen2_moe_f32", "qwen2_moe_bf16", "qwen3_moe_f32",
                      "qwen3_moe_bf16", "deepseek_v2_f32_greedy",
                      "deepseek_v2_f32_group_qlora_yarn", "deepseek_v2_bf16",
                      "deepseek_v3_f32", "deepseek_v3_bf16"));

TEST(ReferenceParityFixtures, VariantListMatchesGenerator) {
  std::ifstream in(FixtureDir() / "variants.json");
  ASSERT_TRUE(in.good());
  const auto names = nlohmann::json::parse(in).get<std::vector<std::string>>();
  EXPECT_EQ(names.size(), 18u);
}

}  // namespace
}  // namespace expertserve::engine
