// ESFT adapters served over one shared base vs the independent NumPy
// reference evaluated on the *merged* model (the base checkpoint with the
// adapter's experts written in; tests/reference/hf_reference.py --adapter).
// For every MoE architecture (and one bf16 base), each adapter alone and all
// adapters mixed with the base in one StepBatch: per-position prompt logits
// and 32 greedy tokens (chunked prefill, batched decode, shuffled KV blocks).
// Fixtures come from tests/adapters/make_fixtures.py (CTest fixture).
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "common/thread_pool.h"
#include "engine/adapters/adapter_registry.h"
#include "engine/forward/transformer.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/fixtures/npy.h"
#include "tests/fixtures/status_matchers.h"

namespace expertserve::engine::adapters {
namespace {

constexpr size_t kBlockTokens = 16;
constexpr size_t kNumBlocks = 256;
constexpr int kAdapterSlots = 24;  // >= 3 adapters x up to 6 experts a layer

std::filesystem::path FixtureDir() {
  const char* bin = std::getenv("ES_BINARY_DIR");
  return std::filesystem::path(bin ? bin : "build") / "test-models" / "adapters";
}

struct Reference {
  std::vector<std::vector<TokenId>> generated;  // [prompt][32]
  std::vector<std::vector<double>> margins;     // [prompt][32]
  std::vector<testing::NpyArray> logits;        // [prompt] of [len, V]
};

double RelativeDiff(const float* got, const float* ref, size_t n) {
  double diff = 0, scale = 0;
  for (size_t i = 0; i < n; ++i) {
    diff = std::max(diff, std::fabs(double{got[i]} - ref[i]));
    scale = std::max(scale, std::fabs(double{ref[i]}));
  }
  return diff / std::max(scale, 1e-30);
}

// One sequence of a test batch: a prompt run under a target (base or adapter).
struct Job {
  size_t prompt = 0;
  std::string target;
};

class AdapterParityTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    dir_ = FixtureDir() / GetParam();
    ASSERT_TRUE(std::filesystem::exists(dir_ / "targets.json"))
        << "fixture missing: run the adapters_fixtures test first (" << dir_ << ")";
    {
      std::ifstream in(dir_ / "prompts.json");
      prompts_ = nlohmann::json::parse(in).get<std::vector<std::vector<TokenId>>>();
      std::ifstream tin(dir_ / "targets.json");
      targets_ = nlohmann::json::parse(tin).get<std::vector<std::string>>();
    }
    for (const std::string& t : targets_) LoadReference(t);
    TransformerOptions options;
    options.weights.adapter_slots_per_layer = kAdapterSlots;
    ES_ASSERT_OK_AND_ASSIGN(model_, Transformer::Load(dir_ / "model", options));
    registry_ = std::make_unique<AdapterRegistry>(model_->config(),
                                                  model_->mutable_weights());
    for (const std::string& t : targets_) {
      if (t == "base") continue;
      ES_ASSERT_OK_AND_ASSIGN(AdapterLoadReport report,
                              registry_->Load(t, dir_ / "adapters" / t));
      EXPECT_GT(report.routed_experts_replaced + report.shared_experts_replaced, 0);
      EXPECT_TRUE(report.warnings.empty()) << report.warnings.front();
      ES_ASSERT_OK_AND_ASSIGN(ResolvedAdapter r, registry_->Resolve(t));
      routing_[t] = r.routing;
    }
  }

  void LoadReference(const std::string& target) {
    const std::filesystem::path d = dir_ / "ref" / target;
    std::ifstream in(d / "reference.json");
    ASSERT_TRUE(in.good()) << d;
    const nlohmann::json j = nlohmann::json::parse(in);
    Reference& r = ref_[target];
    for (const auto& res : j["results"]) {
      r.generated.push_back(res["generated"].get<std::vector<TokenId>>());
      r.margins.push_back(res["margins"].get<std::vector<double>>());
    }
    for (size_t p = 0; p < prompts_.size(); ++p) {
      ES_ASSERT_OK_AND_ASSIGN(
          testing::NpyArray a,
          testing::ReadNpyF32(d / "logits" / ("prompt_" + std::to_string(p) + ".npy")));
      r.logits.push_back(std::move(a));
    }
  }

  const AdapterRouting* RoutingOf(const std::string& target) const {
    return target == "base" ? nullptr : routing_.at(target).get();
  }

  std::vector<Job> AllJobs() const {
    std::vector<Job> jobs;
    for (size_t p = 0; p < prompts_.size(); ++p) {
      for (const std::string& t : targets_) jobs.push_back({p, t});
    }
    return jobs;
  }

  // Shuffled, interleaved block tables: [jobs][per_seq].
  static std::vector<std::vector<int32_t>> BlockTables(size_t seqs, size_t per_seq) {
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

  // Every prompt position of every job in one step; compares all logits.
  void CheckPromptLogits(const std::vector<Job>& jobs) {
    KvStore kv(model_->config(), kNumBlocks, kBlockTokens);
    const auto tables = BlockTables(jobs.size(), 3);
    StepBatch batch;
    std::vector<size_t> first;
    for (size_t s = 0; s < jobs.size(); ++s) {
      batch.sequences.push_back({tables[s], RoutingOf(jobs[s].target)});
      first.push_back(batch.logit_tokens.size());
      const auto& prompt = prompts_[jobs[s].prompt];
      for (size_t i = 0; i < prompt.size(); ++i) {
        batch.AddTokens(static_cast<int32_t>(s), &prompt[i], 1,
                        static_cast<int32_t>(i), true);
      }
    }
    std::vector<float> logits;
    ES_ASSERT_OK(model_->Forward(batch, kv, pool_, logits));
    const size_t V = static_cast<size_t>(model_->config().vocab_size);
    for (size_t s = 0; s < jobs.size(); ++s) {
      const testing::NpyArray& want = ref_[jobs[s].target].logits[jobs[s].prompt];
      const size_t len = prompts_[jobs[s].prompt].size();
      ASSERT_EQ(want.data.size(), len * V);
      for (size_t p = 0; p < len; ++p) {
        EXPECT_LE(RelativeDiff(logits.data() + (first[s] + p) * V,
                               want.data.data() + p * V, V),
                  1e-4)
            << jobs[s].target << " prompt " << jobs[s].prompt << " position " << p;
      }
    }
  }

  // Greedy decoding of every job together: prefill in chunks of 7, then one
  // token per step per job; compares the 32 tokens with the reference.
  void CheckGreedy(const std::vector<Job>& jobs) {
    const size_t S = jobs.size();
    KvStore kv(model_->config(), kNumBlocks, kBlockTokens);
    const auto tables = BlockTables(S, 4);
    std::vector<std::vector<TokenId>> seq(S);
    for (size_t s = 0; s < S; ++s) seq[s] = prompts_[jobs[s].prompt];
    std::vector<size_t> done(S, 0);
    std::vector<std::vector<TokenId>> generated(S);
    constexpr size_t kChunk = 7;
    const size_t want = ref_.begin()->second.generated[0].size();
    for (int step = 0; step < 200; ++step) {
      StepBatch batch;
      std::vector<size_t> owner;
      for (size_t s = 0; s < S; ++s) {
        batch.sequences.push_back({tables[s], RoutingOf(jobs[s].target)});
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
        const TokenId next = static_cast<TokenId>(std::max_element(row, row + V) - row);
        generated[owner[i]].push_back(next);
        seq[owner[i]].push_back(next);
      }
    }
    for (size_t s = 0; s < S; ++s) {
      const Reference& r = ref_[jobs[s].target];
      const auto& want_tokens = r.generated[jobs[s].prompt];
      ASSERT_EQ(generated[s].size(), want_tokens.size());
      for (size_t i = 0; i < want_tokens.size(); ++i) {
        if (generated[s][i] == want_tokens[i]) continue;
        // A different argmax is only acceptable at a numerical tie.
        EXPECT_LT(r.margins[jobs[s].prompt][i], 1e-4)
            << jobs[s].target << " prompt " << jobs[s].prompt << " token " << i
            << ": got " << generated[s][i] << ", reference " << want_tokens[i];
        break;
      }
    }
  }

  std::filesystem::path dir_;
  std::vector<std::vector<TokenId>> prompts_;
  std::vector<std::string> targets_;
  std::map<std::string, Reference> ref_;
  std::unique_ptr<Transformer> model_;
  std::unique_ptr<AdapterRegistry> registry_;
  std::map<std::string, std::shared_ptr<const AdapterRouting>> routing_;
  ThreadPool pool_{2};
};

// Otherwise the parity checks could pass with the adapters ignored.
TEST_P(AdapterParityTest, EveryAdapterChangesTheReferenceOutput) {
  const Reference& base = ref_.at("base");
  for (const std::string& t : targets_) {
    if (t == "base") continue;
    double max_rel = 0;
    for (size_t p = 0; p < prompts_.size(); ++p) {
      const auto& a = ref_.at(t).logits[p].data;
      max_rel = std::max(max_rel, RelativeDiff(a.data(), base.logits[p].data.data(),
                                               a.size()));
    }
    EXPECT_GT(max_rel, 1e-3) << "adapter " << t << " does not change the merged model";
  }
}

TEST_P(AdapterParityTest, PromptLogitsOfEachTargetAlone) {
  for (const std::string& t : targets_) {
    std::vector<Job> jobs;
    for (size_t p = 0; p < prompts_.size(); ++p) jobs.push_back({p, t});
    SCOPED_TRACE(t);
    CheckPromptLogits(jobs);
  }
}

TEST_P(AdapterParityTest, PromptLogitsWithAdaptersAndBaseMixedInOneBatch) {
  CheckPromptLogits(AllJobs());
}

TEST_P(AdapterParityTest, GreedyTokensOfEachTargetAlone) {
  for (const std::string& t : targets_) {
    std::vector<Job> jobs;
    for (size_t p = 0; p < prompts_.size(); ++p) jobs.push_back({p, t});
    SCOPED_TRACE(t);
    CheckGreedy(jobs);
  }
}

TEST_P(AdapterParityTest, GreedyTokensWithAdaptersAndBaseMixedInOneBatch) {
  CheckGreedy(AllJobs());
}

// ForwardStats counts each expert slot a step ran once per layer, whoever
// chose it, and its bytes (benchmarks derive step bytes from it).
TEST_P(AdapterParityTest, ForwardStatsCountDistinctExpertSlots) {
  const ModelConfig& c = model_->config();
  const uint64_t k = static_cast<uint64_t>(c.num_experts_per_tok);
  uint64_t moe_layers = 0, shared_bytes = 0, routed_bytes = 0;
  std::vector<uint64_t> layer_shared_bytes;  // per layer, 0 for dense ones
  for (const LayerWeights& l : model_->weights().layers) {
    layer_shared_bytes.push_back(0);
    if (!l.is_moe) continue;
    ++moe_layers;
    const uint64_t r = 3 * c.hidden_size * c.moe_intermediate_size *
                       kernels::DTypeSize(l.moe.expert_dtype);
    if (routed_bytes != 0) {
      ASSERT_EQ(r, routed_bytes) << "mixed expert sizes";
    }
    routed_bytes = r;
    if (l.moe.shared.gate.data != nullptr) {
      layer_shared_bytes.back() = 3 * c.hidden_size * l.moe.shared.intermediate *
                                  kernels::DTypeSize(l.moe.shared.gate.dtype);
      shared_bytes += layer_shared_bytes.back();
    }
  }
  ASSERT_GT(moe_layers, 0u);
  // Reroute tables that replace nothing.
  AdapterRouting identity;
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    identity.per_layer.push_back(memory::RerouteTable::Identity(
        c.IsMoeLayer(l) ? static_cast<int>(c.num_experts) : 0));
  }
  const auto run = [&](std::vector<const AdapterRouting*> seqs) {
    KvStore kv(c, kNumBlocks, kBlockTokens);
    StepBatch batch;
    const TokenId token = prompts_[0][0];
    for (size_t s = 0; s < seqs.size(); ++s) {
      batch.sequences.push_back({{static_cast<int32_t>(s)}, seqs[s]});
      batch.AddTokens(static_cast<int32_t>(s), &token, 1, 0, true);
    }
    std::vector<float> logits;
    ForwardStats stats;
    EXPECT_TRUE(model_->Forward(batch, kv, pool_, logits, &stats).ok());
    return stats;
  };
  const ForwardStats one = run({nullptr});
  EXPECT_EQ(one.routed_slots, k * moe_layers);
  EXPECT_EQ(one.expert_weight_bytes, one.routed_slots * routed_bytes + shared_bytes);
  // The same token twice (same choices): the slots run once.
  const ForwardStats twice = run({nullptr, nullptr});
  EXPECT_EQ(twice.routed_slots, one.routed_slots);
  EXPECT_EQ(twice.expert_weight_bytes, one.expert_weight_bytes);
  EXPECT_EQ(run({nullptr, &identity}).routed_slots, one.routed_slots);
  // Next to the base, an adapter's token reads its replacements on top: at
  // most k more slots per layer, and more for at least one fixture adapter.
  uint64_t most = 0;
  for (const auto& [name, routing] : routing_) {
    const ForwardStats mixed = run({nullptr, routing.get()});
    EXPECT_GE(mixed.routed_slots, one.routed_slots) << name;
    EXPECT_LE(mixed.routed_slots, 2 * one.routed_slots) << name;
    // The base's shared experts, plus the adapter's replacements where it has
    // them (same shape as the base's).
    uint64_t want_shared = shared_bytes;
    for (size_t l = 0; l < routing->shared_expert_slot.size(); ++l) {
      if (routing->shared_expert_slot[l] >= 0) want_shared += layer_shared_bytes[l];
    }
    EXPECT_EQ(mixed.expert_weight_bytes - mixed.routed_slots * routed_bytes, want_shared)
        << name;
    most = std::max(most, mixed.routed_slots);
  }
  EXPECT_GT(most, one.routed_slots);
}

// Must list exactly the variants of make_fixtures.py.
INSTANTIATE_TEST_SUITE_P(MoeArchitectures, AdapterParityTest,
                         ::testing::Values("mixtral_f32", "qwen2_moe_f32",
                                           "qwen3_moe_f32", "deepseek_v2_f32",
                                           "deepseek_v3_f32", "deepseek_v2_bf16"));

TEST(AdapterParityFixtures, VariantListMatchesGenerator) {
  std::ifstream in(FixtureDir() / "variants.json");
  ASSERT_TRUE(in.good());
  const auto names = nlohmann::json::parse(in).get<std::vector<std::string>>();
  EXPECT_EQ(names.size(), 6u);
}

}  // namespace
}  // namespace expertserve::engine::adapters
