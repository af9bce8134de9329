#include "engine/adapters/expert_config.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/fixtures/status_matchers.h"

namespace expertserve::engine::adapters {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::expertserve::testing::StatusIs;
using ::testing::IsEmpty;

TEST(ExpertConfigTest, ParsesTheEsftFormatKeepingListOrder) {
  ES_ASSERT_OK_AND_ASSIGN(
      EsftExpertConfig c,
      ParseExpertConfig(R"({"experts": {"3": [7, 1, 12], "1": [], "10": [0]},
                            "shared_experts": true, "non_expert_modules": false})",
                        "cfg"));
  EXPECT_EQ(c.experts.size(), 3u);
  EXPECT_THAT(c.experts.at(3), ElementsAre(7, 1, 12));
  EXPECT_THAT(c.experts.at(1), IsEmpty());
  EXPECT_THAT(c.experts.at(10), ElementsAre(0));
  EXPECT_TRUE(c.shared_experts);
  EXPECT_FALSE(c.non_expert_modules);
  EXPECT_THAT(c.warnings, IsEmpty());
}

TEST(ExpertConfigTest, AbsentFlagsAreFalseAndUnknownKeysWarn) {
  ES_ASSERT_OK_AND_ASSIGN(
      EsftExpertConfig c,
      ParseExpertConfig(R"({"experts": {}, "note": "x"})", "a/expert_cfg.json"));
  EXPECT_FALSE(c.shared_experts);
  EXPECT_FALSE(c.non_expert_modules);
  ASSERT_EQ(c.warnings.size(), 1u);
  EXPECT_THAT(c.warnings[0], HasSubstr("unknown key \"note\""));
}

TEST(ExpertConfigTest, RejectsMalformedConfigsNamingTheProblem) {
  const std::pair<const char*, const char*> cases[] = {
      {"not json", "not valid JSON"},
      {"[1]", "JSON object"},
      {R"({"shared_experts": false})", "missing \"experts\""},
      {R"({"experts": [1, 2]})", "must be an object"},
      {R"({"experts": {"x": [1]}})", "\"x\" is not a decimal layer index"},
      {R"({"experts": {"-1": [1]}})", "not a decimal layer index"},
      {R"({"experts": {"01": [1]}})", "not a decimal layer index"},
      {R"({"experts": {" 1": [1]}})", "not a decimal layer index"},
      {R"({"experts": {"1": 3}})", "must be a list"},
      {R"({"experts": {"1": [-2]}})", "not a non-negative expert id"},
      {R"({"experts": {"1": [1.5]}})", "not a non-negative expert id"},
      {R"({"experts": {"1": ["2"]}})", "not a non-negative expert id"},
      {R"({"experts": {"1": [4, 2, 4]}})", "lists expert 4 twice"},
      {R"({"experts": {}, "shared_experts": "yes"})", "\"shared_experts\" must be true or false"},
      {R"({"experts": {}, "non_expert_modules": 1})", "\"non_expert_modules\" must be"},
  };
  for (const auto& [json, want] : cases) {
    EXPECT_THAT(ParseExpertConfig(json, "adir/expert_cfg.json"),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         AllOf(HasSubstr("adir/expert_cfg.json"), HasSubstr(want))))
        << json;
  }
}

}  // namespace
}  // namespace expertserve::engine::adapters
