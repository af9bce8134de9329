#include "engine/model/model_config.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/fixtures/status_matchers.h"

namespace expertserve::engine {
namespace {

using ::expertserve::testing::IsOk;
using ::expertserve::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using Json = nlohmann::json;

std::filesystem::path ConfigDir() {
  const char* src = std::getenv("ES_SOURCE_DIR");
  return std::filesystem::path(src ? src : ".") / "tests/model/configs";
}

Json Fixture(const std::string& name) {
  std::ifstream in(ConfigDir() / name);
  EXPECT_TRUE(in.good()) << "missing fixture " << name;
  std::stringstream ss;
  ss << in.rdbuf();
  return Json::parse(ss.str());
}

absl::StatusOr<ModelConfig> Parse(const Json& j) {
  return ParseModelConfig(j.dump());
}

// ---- the real configs --------------------------------------------------------

TEST(ModelConfigTest, DeepseekV2Lite) {
  ES_ASSERT_OK_AND_ASSIGN(ModelConfig c,
                          LoadModelConfig(ConfigDir() / "deepseek_v2_lite.json"));
  EXPECT_EQ(c.arch, Architecture::kDeepseekV2);
  EXPECT_EQ(c.vocab_size, 102400);
  EXPECT_EQ(c.hidden_size, 2048);
  EXPECT_EQ(c.intermediate_size, 10944);
  EXPECT_EQ(c.num_hidden_layers, 27);
  EXPECT_EQ(c.num_attention_heads, 16);
  EXPECT_TRUE(c.mla);
  EXPECT_FALSE(c.q_lora_rank.has_value());
  EXPECT_EQ(c.kv_lora_rank, 512);
  EXPECT_EQ(c.qk_nope_head_dim, 128);
  EXPECT_EQ(c.qk_rope_head_dim, 64);
  EXPECT_EQ(c.v_head_dim, 128);
  EXPECT_EQ(c.QkHeadDim(), 192);
  EXPECT_EQ(c.RotaryDim(), 64);
  EXPECT_EQ(c.num_experts, 64);
  EXPECT_EQ(c.num_experts_per_tok, 6);
  EXPECT_EQ(c.moe_intermediate_size, 1408);
  EXPECT_EQ(c.n_shared_experts, 2);
  EXPECT_EQ(c.shared_expert_intermediate_size, 2816);
  EXPECT_FALSE(c.norm_topk_prob);
  EXPECT_EQ(c.first_k_dense_replace, 1);
  EXPECT_EQ(c.topk_method, TopkMethod::kGreedy);
  EXPECT_EQ(c.scoring_func, ScoringFunc::kSoftmax);
  EXPECT_DOUBLE_EQ(c.routed_scaling_factor, 1.0);
  EXPECT_FALSE(c.IsMoeLayer(0));
  EXPECT_TRUE(c.IsMoeLayer(1));
  EXPECT_TRUE(c.IsMoeLayer(26));
  EXPECT_FALSE(c.IsMoeLayer(27));
  EXPECT_EQ(c.MoeLayers().size(), 26u);
  EXPECT_EQ(c.rope_scaling.type, RopeType::kYarn);
  EXPECT_DOUBLE_EQ(c.rope_scaling.factor, 40);
  EXPECT_EQ(c.rope_scaling.original_max_position_embeddings, 4096);
  EXPECT_DOUBLE_EQ(c.rope_scaling.beta_fast, 32);
  EXPECT_DOUBLE_EQ(c.rope_scaling.beta_slow, 1);
  EXPECT_DOUBLE_EQ(c.rope_scaling.mscale.value_or(0), 0.707);
  EXPECT_DOUBLE_EQ(c.rope_scaling.mscale_all_dim.value_or(0), 0.707);
  EXPECT_FALSE(c.rope_scaling.attention_factor.has_value());
  EXPECT_DOUBLE_EQ(c.rope_theta, 10000);
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-6);
  EXPECT_EQ(c.max_position_embeddings, 163840);
  EXPECT_EQ(c.bos_token_id, 100000);
  EXPECT_THAT(c.eos_token_ids, ElementsAre(100001));
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_EQ(c.torch_dtype, "bfloat16");
}

TEST(ModelConfigTest, DeepseekV3) {
  ES_ASSERT_OK_AND_ASSIGN(ModelConfig c, Parse(Fixture("deepseek_v3.json")));
  EXPECT_EQ(c.arch, Architecture::kDeepseekV3);
  EXPECT_EQ(c.q_lora_rank, 1536);
  EXPECT_EQ(c.topk_method, TopkMethod::kNoauxTc);
  EXPECT_EQ(c.scoring_func, ScoringFunc::kSigmoid);
  EXPECT_EQ(c.n_group, 8);
  EXPECT_EQ(c.topk_group, 4);
  EXPECT_EQ(c.num_experts, 256);
  EXPECT_EQ(c.n_shared_experts, 1);
  EXPECT_EQ(c.shared_expert_intermediate_size, 2048);
  EXPECT_TRUE(c.norm_topk_prob);
  EXPECT_DOUBLE_EQ(c.routed_scaling_factor, 2.5);
  EXPECT_EQ(c.first_k_dense_replace, 3);
  EXPECT_FALSE(c.IsMoeLayer(2));
  EXPECT_TRUE(c.IsMoeLayer(3));
  EXPECT_EQ(c.MoeLayers().size(), 58u);
  EXPECT_DOUBLE_EQ(c.rope_scaling.mscale.value_or(0), 1.0);
  EXPECT_EQ(c.bos_token_id, 0);
  EXPECT_THAT(c.eos_token_ids, ElementsAre(1));
}

TEST(ModelConfigTest, Qwen3Dense) {
  ES_ASSERT_OK_AND_ASSIGN(ModelConfig c, Parse(Fixture("qwen3_0_6b.json")));
  EXPECT_EQ(c.arch, Architecture::kQwen3);
  EXPECT_EQ(c.hidden_size, 1024);
  EXPECT_EQ(c.head_dim, 128);  // explicit, != 1024 / 16
  EXPECT_EQ(c.num_key_value_heads, 8);
  EXPECT_TRUE(c.qk_norm);
  EXPECT_FALSE(c.qkv_bias);
  EXPECT_FALSE(c.attention_bias);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.rope_scaling.type, RopeType::kDefault);
  EXPECT_DOUBLE_EQ(c.rope_theta, 1e6);
  EXPECT_FALSE(c.is_moe());
  EXPECT_FALSE(c.IsMoeLayer(0));
  EXPECT_THAT(c.eos_token_ids, ElementsAre(151645));
}

TEST(ModelConfigTest, Qwen3Moe) {
  ES_ASSERT_OK_AND_ASSIGN(ModelConfig c, Parse(Fixture("qwen3_30b_a3b.json")));
  EXPECT_EQ(c.arch, Architecture::kQwen3Moe);
  EXPECT_EQ(c.num_experts, 128);
  EXPECT_EQ(c.num_experts_per_tok, 8);
  EXPECT_EQ(c.moe_intermediate_size, 768);
  EXPECT_EQ(c.shared_expert_intermediate_size, 0);
  EXPECT_TRUE(c.norm_topk_prob);
  EXPECT_EQ(c.MoeLayers().size(), 48u);
  EXPECT_EQ(c.num_key_value_heads, 4);
  EXPECT_TRUE(c.qk_norm);
}

TEST(ModelConfigTest, Qwen2Dense) {
  ES_ASSERT_OK_AND_ASSIGN(ModelConfig c, Parse(Fixture("qwen2_0_5b.json")));
  EXPECT_EQ(c.arch, Architecture::kQwen2);
  EXPECT_EQ(c.head_dim, 64);  // 896 / 14
  EXPECT_TRUE(c.qkv_bias);
  EXPECT_FALSE(c.attention_bias);
  EXPECT_FALSE(c.qk_norm);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.num_key_value_heads, 2);
}

TEST(ModelConfigTest, Qwen2Moe) {
  ES_ASSERT_OK_AND_ASSIGN(ModelConfig c,
                          Parse(Fixture("qwen1_5_moe_a2_7b.json")));
  EXPECT_EQ(c.arch, Architecture::kQwen2Moe);
  EXPECT_EQ(c.num_experts, 60);
  EXPECT_EQ(c.num_experts_per_tok, 4);
  EXPECT_EQ(c.moe_intermediate_size, 1408);
  EXPECT_EQ(c.shared_expert_intermediate_size, 5632);
  EXPECT_TRUE(c.shared_expert_gate);
  EXPECT_FALSE(c.norm_topk_prob);
  EXPECT_TRUE(c.qkv_bias);
  EXPECT_EQ(c.MoeLayers().size(), 24u);
}

TEST(ModelConfigTest, Qwen2MoeQkvBiasField) {
  Json j = Fixture("qwen1_5_moe_a2_7b.json");
  j["qkv_bias"] = false;
  ES_ASSERT_OK_AND_ASSIGN(ModelConfig c, Parse(j));
  EXPECT_FALSE(c.qkv_bias);
  Json dense = Fixture("qwen2_0_5b.json");
  dense["qkv_bias"] = false;  // not a Qwen2Config field
  EXPECT_THAT(Parse(dense), StatusIs(absl::StatusCode::kInvalidArgument,
                                     HasSubstr("qkv_bias")));
}

TEST(ModelConfigTest, Mixtral) {
  ES_ASSERT_OK_AND_ASSIGN(ModelConfig c, Parse(Fixture("mixtral_8x7b.json")));
  EXPECT_EQ(c.arch, Architecture::kMixtral);
  EXPECT_EQ(c.num_experts, 8);
  EXPECT_EQ(c.num_experts_per_tok, 2);
  EXPECT_EQ(c.moe_intermediate_size, 14336);
  EXPECT_TRUE(c.norm_topk_prob);
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-5);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.MoeLayers().size(), 32u);
}

TEST(ModelConfigTest, Llama31) {
  ES_ASSERT_OK_AND_ASSIGN(ModelConfig c, Parse(Fixture("llama_3_1_8b.json")));
  EXPECT_EQ(c.arch, Architecture::kLlama);
  EXPECT_EQ(c.rope_scaling.type, RopeType::kLlama3);
  EXPECT_DOUBLE_EQ(c.rope_scaling.factor, 8.0);
  EXPECT_DOUBLE_EQ(c.rope_scaling.low_freq_factor, 1.0);
  EXPECT_DOUBLE_EQ(c.rope_scaling.high_freq_factor, 4.0);
  EXPECT_EQ(c.rope_scaling.original_max_position_embeddings, 8192);
  EXPECT_DOUBLE_EQ(c.rope_theta, 500000.0);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_FALSE(c.attention_bias);
  EXPECT_FALSE(c.qkv_bias);
  EXPECT_EQ(c.bos_token_id, 128000);
}

TEST(ModelConfigTest, EosMayBeAList) {
  Json j = Fixture("llama_3_1_8b.json");
  j["eos_token_id"] = {128001, 128008, 128009};
  ES_ASSERT_OK_AND_ASSIGN(ModelConfig c, Parse(j));
  EXPECT_THAT(c.eos_token_ids, ElementsAre(128001, 128008, 128009));
}

TEST(ModelConfigTest, LinearRopeAndRopeTypeKey) {
  Json j = Fixture("qwen2_0_5b.json");
  j["rope_scaling"] = {{"type", "linear"}, {"factor", 2.0}};
  ES_ASSERT_OK_AND_ASSIGN(ModelConfig c, Parse(j));
  EXPECT_EQ(c.rope_scaling.type, RopeType::kLinear);
  EXPECT_DOUBLE_EQ(c.rope_scaling.factor, 2.0);
  j["rope_scaling"] = {{"rope_type", "default"}};
  ES_ASSERT_OK_AND_ASSIGN(c, Parse(j));
  EXPECT_EQ(c.rope_scaling.type, RopeType::kDefault);
}

TEST(ModelConfigTest, YarnDefaultsOriginalContextToMaxPositions) {
  Json j = Fixture("qwen3_0_6b.json");
  j["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}};
  ES_ASSERT_OK_AND_ASSIGN(ModelConfig c, Parse(j));
  EXPECT_EQ(c.rope_scaling.type, RopeType::kYarn);
  EXPECT_EQ(c.rope_scaling.original_max_position_embeddings, 40960);
  EXPECT_FALSE(c.rope_scaling.mscale.has_value());
}

TEST(ModelConfigTest, Qwen3HeadDimDefaultsTo128) {
  Json j = Fixture("qwen3_0_6b.json");
  j.erase("head_dim");
  j["hidden_size"] = 512;
  ES_ASSERT_OK_AND_ASSIGN(ModelConfig c, Parse(j));
  EXPECT_EQ(c.head_dim, 128);
}

TEST(ModelConfigTest, QwenMoeSparseStepAndMlpOnlyLayers) {
  Json j = Fixture("qwen3_30b_a3b.json");
  j["num_hidden_layers"] = 6;
  j["decoder_sparse_step"] = 2;
  j["mlp_only_layers"] = {3};
  ES_ASSERT_OK_AND_ASSIGN(ModelConfig c, Parse(j));
  EXPECT_THAT(c.MoeLayers(), ElementsAre(1, 5));
}

TEST(ModelConfigTest, DeepseekMoeLayerFreq) {
  Json j = Fixture("deepseek_v2_lite.json");
  j["num_hidden_layers"] = 7;
  j["first_k_dense_replace"] = 2;
  j["moe_layer_freq"] = 2;
  ES_ASSERT_OK_AND_ASSIGN(ModelConfig c, Parse(j));
  EXPECT_THAT(c.MoeLayers(), ElementsAre(2, 4, 6));
}

TEST(ModelConfigTest, DeepseekGroupLimitedGreedy) {
  Json j = Fixture("deepseek_v2_lite.json");
  j["topk_method"] = "group_limited_greedy";
  j["n_group"] = 8;
  j["topk_group"] = 3;
  ES_ASSERT_OK_AND_ASSIGN(ModelConfig c, Parse(j));
  EXPECT_EQ(c.topk_method, TopkMethod::kGroupLimitedGreedy);
  EXPECT_EQ(c.n_group, 8);
  EXPECT_EQ(c.topk_group, 3);
}

TEST(ModelConfigTest, LoadFromDirectoryAndMissingFile) {
  EXPECT_THAT(LoadModelConfig("/nonexistent/dir/config.json"),
              StatusIs(absl::StatusCode::kNotFound));
}

// ---- bad configs ---------------------------------------------------------------

struct BadCase {
  std::string name;
  std::string fixture;
  std::function<void(Json&)> mutate;
  std::string message;  // substring of the error
};

class BadConfigTest : public ::testing::TestWithParam<BadCase> {};

TEST_P(BadConfigTest, RejectedWithClearError) {
  const BadCase& bc = GetParam();
  Json j = Fixture(bc.fixture);
  bc.mutate(j);
  EXPECT_THAT(Parse(j), StatusIs(absl::StatusCode::kInvalidArgument,
                                 HasSubstr(bc.message)));
}

INSTANTIATE_TEST_SUITE_P(
    Cases, BadConfigTest,
    ::testing::Values(
        BadCase{"UnsupportedModelType", "llama_3_1_8b.json",
                [](Json& j) { j["model_type"] = "gpt2"; },
                "unsupported model_type 'gpt2' (supported: llama, qwen2"},
        BadCase{"MissingModelType", "llama_3_1_8b.json",
                [](Json& j) { j.erase("model_type"); }, "no 'model_type'"},
        BadCase{"GeluActivation", "llama_3_1_8b.json",
                [](Json& j) { j["hidden_act"] = "gelu"; },
                "'hidden_act' is 'gelu'"},
        BadCase{"DynamicRope", "llama_3_1_8b.json",
                [](Json& j) {
                  j["rope_scaling"] = {{"type", "dynamic"}, {"factor", 2.0}};
                },
                "rope_scaling type 'dynamic' is not supported"},
        BadCase{"LongRope", "llama_3_1_8b.json",
                [](Json& j) {
                  j["rope_scaling"] = {{"rope_type", "longrope"}, {"factor", 2.0}};
                },
                "'longrope'"},
        BadCase{"Llama3RopeMissingField", "llama_3_1_8b.json",
                [](Json& j) { j["rope_scaling"].erase("low_freq_factor"); },
                "low_freq_factor"},
        BadCase{"RopeUnknownField", "llama_3_1_8b.json",
                [](Json& j) { j["rope_scaling"]["bogus"] = 1; },
                "rope_scaling (llama3) has unsupported field(s): bogus"},
        BadCase{"RopeMissingFactor", "qwen2_0_5b.json",
                [](Json& j) { j["rope_scaling"] = {{"type", "linear"}}; },
                "missing 'factor'"},
        BadCase{"RopeNoType", "qwen2_0_5b.json",
                [](Json& j) { j["rope_scaling"] = {{"factor", 2.0}}; },
                "neither 'rope_type' nor 'type'"},
        BadCase{"SlidingWindowOn", "qwen2_0_5b.json",
                [](Json& j) { j["use_sliding_window"] = true; },
                "'use_sliding_window' is true"},
        BadCase{"MixtralSlidingWindow", "mixtral_8x7b.json",
                [](Json& j) { j["sliding_window"] = 4096; },
                "'sliding_window' is 4096"},
        BadCase{"SlidingLayerTypes", "qwen3_0_6b.json",
                [](Json& j) {
                  j["layer_types"] = {"full_attention", "sliding_attention"};
                },
                "sliding_attention"},
        BadCase{"UnknownNumericField", "qwen3_0_6b.json",
                [](Json& j) { j["logit_softcapping"] = 30.0; },
                "may change the model's numerics: logit_softcapping"},
        BadCase{"MoeFieldOnDenseModel", "llama_3_1_8b.json",
                [](Json& j) { j["num_local_experts"] = 8; },
                "num_local_experts"},
        BadCase{"QuantizedCheckpoint", "deepseek_v3.json",
                [](Json& j) {
                  j["quantization_config"] = {{"quant_method", "fp8"}};
                },
                "quantization_config"},
        BadCase{"MlpBias", "llama_3_1_8b.json",
                [](Json& j) { j["mlp_bias"] = true; }, "'mlp_bias' is true"},
        BadCase{"MissingHidden", "qwen2_0_5b.json",
                [](Json& j) { j.erase("hidden_size"); },
                "missing required field 'hidden_size'"},
        BadCase{"WrongType", "qwen2_0_5b.json",
                [](Json& j) { j["num_hidden_layers"] = "24"; },
                "'num_hidden_layers' must be an integer"},
        BadCase{"FloatLayers", "qwen2_0_5b.json",
                [](Json& j) { j["num_hidden_layers"] = 24.5; },
                "'num_hidden_layers' must be an integer"},
        BadCase{"ZeroHeads", "qwen2_0_5b.json",
                [](Json& j) { j["num_attention_heads"] = 0; },
                "'num_attention_heads' must be > 0"},
        BadCase{"AbsurdLayers", "qwen2_0_5b.json",
                [](Json& j) { j["num_hidden_layers"] = 1000000000; },
                "'num_hidden_layers' is absurdly large"},
        BadCase{"AbsurdHidden", "qwen2_0_5b.json",
                [](Json& j) { j["hidden_size"] = int64_t{1} << 40; },
                "'hidden_size' is absurdly large"},
        BadCase{"AbsurdExperts", "mixtral_8x7b.json",
                [](Json& j) { j["num_local_experts"] = 1 << 20; },
                "'num_experts' is absurdly large"},
        BadCase{"HugeUnsigned", "qwen2_0_5b.json",
                [](Json& j) { j["vocab_size"] = uint64_t{1} << 63; },
                "'vocab_size' must be an integer in int64 range"},
        BadCase{"GqaMismatch", "qwen2_0_5b.json",
                [](Json& j) { j["num_key_value_heads"] = 3; },
                "not a multiple of num_key_value_heads"},
        BadCase{"NegativeEps", "qwen2_0_5b.json",
                [](Json& j) { j["rms_norm_eps"] = -1; }, "rms_norm_eps"},
        BadCase{"EosOutOfVocab", "qwen2_0_5b.json",
                [](Json& j) { j["eos_token_id"] = 200000; },
                "'eos_token_id' (200000) is outside the vocabulary"},
        BadCase{"EosBadType", "qwen2_0_5b.json",
                [](Json& j) { j["eos_token_id"] = "x"; }, "eos_token_id"},
        BadCase{"BadDtype", "qwen2_0_5b.json",
                [](Json& j) { j["torch_dtype"] = "int8"; },
                "'torch_dtype' is 'int8'"},
        BadCase{"TopKTooLarge", "mixtral_8x7b.json",
                [](Json& j) { j["num_experts_per_tok"] = 9; },
                "exceeds the number of experts"},
        BadCase{"QwenMoeMissingExperts", "qwen3_30b_a3b.json",
                [](Json& j) { j.erase("num_experts"); },
                "missing required field 'num_experts'"},
        BadCase{"QwenMoeBadMlpOnly", "qwen3_30b_a3b.json",
                [](Json& j) { j["mlp_only_layers"] = {48}; },
                "mlp_only_layers"},
        BadCase{"Qwen2MoeNeedsSharedSize", "qwen1_5_moe_a2_7b.json",
                [](Json& j) { j.erase("shared_expert_intermediate_size"); },
                "shared_expert_intermediate_size"},
        BadCase{"DeepseekBadTopk", "deepseek_v2_lite.json",
                [](Json& j) { j["topk_method"] = "gready"; },
                "'topk_method' is 'gready'"},
        BadCase{"DeepseekV2NoauxTc", "deepseek_v2_lite.json",
                [](Json& j) { j["topk_method"] = "noaux_tc"; },
                "deepseek_v2 supports greedy and group_limited_greedy"},
        BadCase{"DeepseekV2Sigmoid", "deepseek_v2_lite.json",
                [](Json& j) { j["scoring_func"] = "sigmoid"; },
                "only softmax"},
        BadCase{"DeepseekV3Greedy", "deepseek_v3.json",
                [](Json& j) { j["topk_method"] = "greedy"; },
                "only topk_method 'noaux_tc'"},
        BadCase{"DeepseekBadScoring", "deepseek_v3.json",
                [](Json& j) { j["scoring_func"] = "tanh"; },
                "'scoring_func' is 'tanh'"},
        BadCase{"DeepseekGroupsNotDividing", "deepseek_v3.json",
                [](Json& j) { j["n_group"] = 7; },
                "not divisible by n_group"},
        BadCase{"DeepseekTopkGroupTooLarge", "deepseek_v3.json",
                [](Json& j) { j["topk_group"] = 9; }, "exceeds n_group"},
        BadCase{"DeepseekMissingKvLora", "deepseek_v2_lite.json",
                [](Json& j) { j.erase("kv_lora_rank"); },
                "missing required field 'kv_lora_rank'"},
        BadCase{"DeepseekAttentionBias", "deepseek_v2_lite.json",
                [](Json& j) { j["attention_bias"] = true; },
                "'attention_bias' is true"},
        BadCase{"DeepseekOddRope", "deepseek_v2_lite.json",
                [](Json& j) { j["qk_rope_head_dim"] = 63; }, "must be even"},
        BadCase{"DeepseekNegativeDense", "deepseek_v2_lite.json",
                [](Json& j) { j["first_k_dense_replace"] = -1; },
                "first_k_dense_replace"},
        BadCase{"DeepseekRopeNotInterleaved", "deepseek_v3.json",
                [](Json& j) { j["rope_interleave"] = false; },
                "rope_interleave"},
        BadCase{"YarnBetas", "deepseek_v2_lite.json",
                [](Json& j) { j["rope_scaling"]["beta_fast"] = 0.5; },
                "beta_fast > beta_slow"}),
    [](const ::testing::TestParamInfo<BadCase>& info) {
      return info.param.name;
    });

TEST(ModelConfigTest, NotJson) {
  EXPECT_THAT(ParseModelConfig("{not json"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("not valid JSON")));
  EXPECT_THAT(ParseModelConfig("[1,2]"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("must be a JSON object")));
  EXPECT_THAT(ParseModelConfig(""),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(ModelConfigTest, ArchitectureNamesRoundTrip) {
  for (Architecture a :
       {Architecture::kLlama, Architecture::kQwen2, Architecture::kQwen3,
        Architecture::kMixtral, Architecture::kQwen2Moe, Architecture::kQwen3Moe,
        Architecture::kDeepseekV2, Architecture::kDeepseekV3}) {
    ES_ASSERT_OK_AND_ASSIGN(Architecture b,
                            ParseArchitecture(ArchitectureName(a)));
    EXPECT_EQ(a, b);
  }
}

}  // namespace
}  // namespace expertserve::engine
