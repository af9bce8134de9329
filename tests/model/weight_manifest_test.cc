#include "engine/model/weight_manifest.h"

#include <cstdlib>
#include <filesystem>
#include <map>
#include <set>
#include <string>

#include "checkpoint/safetensors.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/fixtures/status_matchers.h"

namespace expertserve::engine {
namespace {

using ::expertserve::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

ModelConfig Load(const std::string& name) {
  const char* src = std::getenv("ES_SOURCE_DIR");
  auto c = LoadModelConfig(std::filesystem::path(src ? src : ".") /
                           "tests/model/configs" / name);
  EXPECT_TRUE(c.ok()) << c.status();
  return c.ok() ? *c : ModelConfig{};
}

std::map<std::string, std::vector<int64_t>> ByName(const ModelConfig& c) {
  std::map<std::string, std::vector<int64_t>> out;
  for (const TensorSpec& t : ExpectedTensors(c)) {
    EXPECT_TRUE(out.emplace(t.name, t.shape).second) << "duplicate " << t.name;
  }
  return out;
}

// Published parameter counts are an independent check of every shape at once.
void ExpectParams(const ModelConfig& c, double total_b, double active_b,
                  double tol_b) {
  EXPECT_NEAR(TotalParameters(c) / 1e9, total_b, tol_b);
  EXPECT_NEAR(ActiveParameters(c) / 1e9, active_b, tol_b);
}

TEST(WeightManifestTest, PublishedParameterCounts) {
  ExpectParams(Load("llama_3_1_8b.json"), 8.03, 8.03, 0.01);
  ExpectParams(Load("qwen2_0_5b.json"), 0.494, 0.494, 0.001);
  ExpectParams(Load("qwen3_0_6b.json"), 0.596, 0.596, 0.002);
  ExpectParams(Load("mixtral_8x7b.json"), 46.70, 12.88, 0.02);
  ExpectParams(Load("qwen3_30b_a3b.json"), 30.53, 3.35, 0.02);
  ExpectParams(Load("qwen1_5_moe_a2_7b.json"), 14.32, 2.69, 0.02);
  ExpectParams(Load("deepseek_v2_lite.json"), 15.71, 2.66, 0.02);
  // 671B total / 37B active, counted without the MTP layer (as HF loads it).
  ExpectParams(Load("deepseek_v3.json"), 671.0, 37.5, 1.0);
}

TEST(WeightManifestTest, LlamaNames) {
  ModelConfig c = Load("llama_3_1_8b.json");
  auto t = ByName(c);
  EXPECT_EQ(t.size(), 2u + 32u * 9u + 1u);
  EXPECT_THAT(t["model.embed_tokens.weight"], ElementsAre(128256, 4096));
  EXPECT_THAT(t["model.layers.0.self_attn.q_proj.weight"],
              ElementsAre(4096, 4096));
  EXPECT_THAT(t["model.layers.31.self_attn.k_proj.weight"],
              ElementsAre(1024, 4096));
  EXPECT_THAT(t["model.layers.0.mlp.down_proj.weight"],
              ElementsAre(4096, 14336));
  EXPECT_THAT(t["lm_head.weight"], ElementsAre(128256, 4096));
  EXPECT_EQ(t.count("model.layers.0.self_attn.q_proj.bias"), 0u);
  c.attention_bias = true;
  t = ByName(c);
  EXPECT_THAT(t["model.layers.0.self_attn.o_proj.bias"], ElementsAre(4096));
  EXPECT_THAT(t["model.layers.0.self_attn.k_proj.bias"], ElementsAre(1024));
}

TEST(WeightManifestTest, Qwen2BiasesAndTiedHead) {
  auto t = ByName(Load("qwen2_0_5b.json"));
  EXPECT_THAT(t["model.layers.3.self_attn.q_proj.bias"], ElementsAre(896));
  EXPECT_THAT(t["model.layers.3.self_attn.k_proj.bias"], ElementsAre(128));
  EXPECT_THAT(t["model.layers.3.self_attn.v_proj.bias"], ElementsAre(128));
  EXPECT_EQ(t.count("model.layers.3.self_attn.o_proj.bias"), 0u);
  EXPECT_EQ(t.count("lm_head.weight"), 0u);  // tied
}

TEST(WeightManifestTest, Qwen3QkNorm) {
  auto t = ByName(Load("qwen3_0_6b.json"));
  EXPECT_THAT(t["model.layers.0.self_attn.q_norm.weight"], ElementsAre(128));
  EXPECT_THAT(t["model.layers.0.self_attn.k_norm.weight"], ElementsAre(128));
  EXPECT_THAT(t["model.layers.0.self_attn.q_proj.weight"],
              ElementsAre(2048, 1024));
  EXPECT_THAT(t["model.layers.0.self_attn.o_proj.weight"],
              ElementsAre(1024, 2048));
}

TEST(WeightManifestTest, MixtralExperts) {
  ModelConfig c = Load("mixtral_8x7b.json");
  auto t = ByName(c);
  EXPECT_THAT(t["model.layers.5.block_sparse_moe.gate.weight"],
              ElementsAre(8, 4096));
  EXPECT_THAT(t["model.layers.5.block_sparse_moe.experts.7.w1.weight"],
              ElementsAre(14336, 4096));
  EXPECT_THAT(t["model.layers.5.block_sparse_moe.experts.7.w2.weight"],
              ElementsAre(4096, 14336));
  EXPECT_THAT(t["model.layers.5.block_sparse_moe.experts.7.w3.weight"],
              ElementsAre(14336, 4096));
  EXPECT_EQ(t.count("model.layers.5.mlp.gate_proj.weight"), 0u);
  EXPECT_EQ(RoutedExpertTensors(c, 5, 3).size(), 3u);
  EXPECT_THAT(SharedExpertTensors(c, 5), IsEmpty());
}

TEST(WeightManifestTest, Qwen2MoeSharedExpert) {
  ModelConfig c = Load("qwen1_5_moe_a2_7b.json");
  auto t = ByName(c);
  EXPECT_THAT(t["model.layers.0.mlp.gate.weight"], ElementsAre(60, 2048));
  EXPECT_THAT(t["model.layers.0.mlp.experts.59.up_proj.weight"],
              ElementsAre(1408, 2048));
  EXPECT_THAT(t["model.layers.0.mlp.shared_expert.gate_proj.weight"],
              ElementsAre(5632, 2048));
  EXPECT_THAT(t["model.layers.0.mlp.shared_expert.down_proj.weight"],
              ElementsAre(2048, 5632));
  EXPECT_THAT(t["model.layers.0.mlp.shared_expert_gate.weight"],
              ElementsAre(1, 2048));
  EXPECT_EQ(SharedExpertTensors(c, 0).size(), 3u);
}

TEST(WeightManifestTest, Qwen3MoeMlpOnlyLayerIsDense) {
  ModelConfig c = Load("qwen3_30b_a3b.json");
  c.mlp_only_layers = {2};
  auto t = ByName(c);
  EXPECT_THAT(t["model.layers.2.mlp.gate_proj.weight"], ElementsAre(6144, 2048));
  EXPECT_EQ(t.count("model.layers.2.mlp.gate.weight"), 0u);
  EXPECT_THAT(t["model.layers.1.mlp.gate.weight"], ElementsAre(128, 2048));
  EXPECT_THAT(t["model.layers.1.mlp.experts.127.down_proj.weight"],
              ElementsAre(2048, 768));
  EXPECT_EQ(t.count("model.layers.1.mlp.shared_expert.up_proj.weight"), 0u);
}

TEST(WeightManifestTest, DeepseekV2LiteMla) {
  ModelConfig c = Load("deepseek_v2_lite.json");
  auto t = ByName(c);
  // Layer 0 is dense (first_k_dense_replace = 1).
  EXPECT_THAT(t["model.layers.0.mlp.gate_proj.weight"],
              ElementsAre(10944, 2048));
  EXPECT_EQ(t.count("model.layers.0.mlp.gate.weight"), 0u);
  EXPECT_THAT(t["model.layers.1.mlp.gate.weight"], ElementsAre(64, 2048));
  EXPECT_EQ(t.count("model.layers.1.mlp.gate.e_score_correction_bias"), 0u);
  EXPECT_THAT(t["model.layers.1.mlp.experts.63.gate_proj.weight"],
              ElementsAre(1408, 2048));
  EXPECT_THAT(t["model.layers.1.mlp.shared_experts.up_proj.weight"],
              ElementsAre(2816, 2048));
  EXPECT_THAT(t["model.layers.1.mlp.shared_experts.down_proj.weight"],
              ElementsAre(2048, 2816));
  // q_lora_rank null: plain q_proj.
  EXPECT_THAT(t["model.layers.4.self_attn.q_proj.weight"],
              ElementsAre(16 * 192, 2048));
  EXPECT_EQ(t.count("model.layers.4.self_attn.q_a_proj.weight"), 0u);
  EXPECT_THAT(t["model.layers.4.self_attn.kv_a_proj_with_mqa.weight"],
              ElementsAre(576, 2048));
  EXPECT_THAT(t["model.layers.4.self_attn.kv_a_layernorm.weight"],
              ElementsAre(512));
  EXPECT_THAT(t["model.layers.4.self_attn.kv_b_proj.weight"],
              ElementsAre(16 * 256, 512));
  EXPECT_THAT(t["model.layers.4.self_attn.o_proj.weight"],
              ElementsAre(2048, 16 * 128));
  EXPECT_THAT(RoutedExpertTensors(c, 0, 0), IsEmpty());
  EXPECT_THAT(SharedExpertTensors(c, 0), IsEmpty());
  EXPECT_EQ(RoutedExpertTensors(c, 1, 5)[2].name,
            "model.layers.1.mlp.experts.5.down_proj.weight");
}

TEST(WeightManifestTest, DeepseekV3QLoraAndCorrectionBias) {
  auto t = ByName(Load("deepseek_v3.json"));
  EXPECT_THAT(t["model.layers.0.self_attn.q_a_proj.weight"],
              ElementsAre(1536, 7168));
  EXPECT_THAT(t["model.layers.0.self_attn.q_a_layernorm.weight"],
              ElementsAre(1536));
  EXPECT_THAT(t["model.layers.0.self_attn.q_b_proj.weight"],
              ElementsAre(128 * 192, 1536));
  EXPECT_EQ(t.count("model.layers.0.self_attn.q_proj.weight"), 0u);
  EXPECT_THAT(t["model.layers.3.mlp.gate.e_score_correction_bias"],
              ElementsAre(256));
  EXPECT_EQ(t.count("model.layers.2.mlp.gate.weight"), 0u);
  EXPECT_EQ(t.count("model.layers.61.input_layernorm.weight"), 0u);  // MTP
}

TEST(WeightManifestTest, RolesAreConsistent) {
  ModelConfig c = Load("deepseek_v2_lite.json");
  int routed = 0, gates = 0;
  for (const TensorSpec& t : ExpectedTensors(c)) {
    if (t.role == TensorRole::kRoutedExpert) {
      ++routed;
      EXPECT_GE(t.expert, 0);
      EXPECT_TRUE(c.IsMoeLayer(t.layer));
    }
    if (t.role == TensorRole::kRouterGate) ++gates;
  }
  EXPECT_EQ(routed, 26 * 64 * 3);
  EXPECT_EQ(gates, 26);
}

// Writes `specs` (zeros, F32) with checkpoint::WriteCheckpointTensors.
void WriteZeros(const std::filesystem::path& dir,
                const std::vector<TensorSpec>& specs) {
  std::vector<std::vector<std::byte>> data;
  std::vector<checkpoint::TensorToWrite> tensors;
  data.reserve(specs.size());
  for (const TensorSpec& t : specs) {
    data.emplace_back(t.num_elements() * 4);
    tensors.push_back({t.name, checkpoint::DType::kF32, t.shape, data.back()});
  }
  ASSERT_TRUE(checkpoint::WriteCheckpointTensors(dir, tensors, 1 << 30).ok());
}

TEST(ValidateCheckpointTensorsTest, NamesMissingMisShapedAndExtraTensors) {
  auto c = ParseModelConfig(R"({"model_type": "qwen2_moe", "vocab_size": 32,
      "hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 2,
      "num_attention_heads": 2, "num_key_value_heads": 1, "num_experts": 4,
      "num_experts_per_tok": 2, "moe_intermediate_size": 4,
      "shared_expert_intermediate_size": 8})");
  ASSERT_TRUE(c.ok()) << c.status();
  const char* tmp_env = std::getenv("TEST_TMPDIR");
  std::string tmpl = (std::filesystem::path(tmp_env ? tmp_env : "/tmp") /
                      "manifest_test_XXXXXX").string();
  const std::filesystem::path dir = mkdtemp(tmpl.data());
  std::vector<TensorSpec> specs = ExpectedTensors(*c);

  WriteZeros(dir, specs);
  auto ckpt = checkpoint::Checkpoint::Open(dir);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  auto extra = ValidateCheckpointTensors(*c, **ckpt);
  ASSERT_TRUE(extra.ok()) << extra.status();
  EXPECT_THAT(*extra, IsEmpty());

  // An extra tensor is reported, not fatal.
  std::vector<TensorSpec> more = specs;
  more.push_back({"model.layers.9.mtp.weight", {2}});
  WriteZeros(dir, more);
  ckpt = checkpoint::Checkpoint::Open(dir);
  ASSERT_TRUE(ckpt.ok());
  extra = ValidateCheckpointTensors(*c, **ckpt);
  ASSERT_TRUE(extra.ok());
  EXPECT_THAT(*extra, ElementsAre("model.layers.9.mtp.weight"));

  // Missing and mis-shaped tensors are named.
  std::vector<TensorSpec> broken;
  for (TensorSpec t : specs) {
    if (t.name == "model.layers.1.mlp.experts.3.up_proj.weight") continue;
    if (t.name == "model.layers.0.self_attn.k_proj.bias") t.shape = {8};
    broken.push_back(t);
  }
  WriteZeros(dir, broken);
  ckpt = checkpoint::Checkpoint::Open(dir);
  ASSERT_TRUE(ckpt.ok());
  EXPECT_THAT(
      ValidateCheckpointTensors(*c, **ckpt).status(),
      StatusIs(absl::StatusCode::kDataLoss,
               ::testing::AllOf(
                   HasSubstr("tensor model.layers.0.self_attn.k_proj.bias has "
                             "shape [8], the config needs [4]"),
                   HasSubstr("missing tensor "
                             "model.layers.1.mlp.experts.3.up_proj.weight [4, 8]"))));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace expertserve::engine
