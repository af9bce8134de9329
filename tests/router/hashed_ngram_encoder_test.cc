#include "router/hashed_ngram_encoder.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/fixtures/status_matchers.h"

namespace expertserve::router {
namespace {

using ::expertserve::testing::StatusIs;
using ::testing::HasSubstr;

std::vector<float> Embed(const EncoderInterface& e, const std::string& text) {
  std::vector<float> v(e.dim());
  EXPECT_TRUE(e.Encode(text, absl::MakeSpan(v)).ok());
  return v;
}

double Dot(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += static_cast<double>(a[i]) * b[i];
  return s;
}

std::unique_ptr<HashedNgramEncoder> Make(const HashedNgramOptions& o = {},
                                         const std::vector<std::string>& corpus = {}) {
  auto e = HashedNgramEncoder::Create(o, corpus);
  EXPECT_TRUE(e.ok()) << e.status();
  return *std::move(e);
}

TEST(HashedNgramEncoderTest, UnitNormOrZero) {
  auto e = Make();
  EXPECT_EQ(e->dim(), 4096);
  EXPECT_NEAR(Dot(Embed(*e, "write a python function"), Embed(*e, "write a python function")),
              1.0, 1e-5);
  for (const std::string blank : {"", " ", "\n\t \r", "\xE3\x80\x80"}) {
    const auto v = Embed(*e, blank);
    EXPECT_TRUE(std::all_of(v.begin(), v.end(), [](float x) { return x == 0.0f; }))
        << "\"" << blank << "\"";
  }
}

// Independent check of the TF-IDF arithmetic on a case small enough to do by
// hand: word unigrams only, no IDF corpus (every idf = log(1/1) + 1 = 1),
// text "b a a": tf(a) = 1 + ln 2, tf(b) = 1, so the embedding's non-zero
// magnitudes are {1, 1 + ln 2} / sqrt(1 + (1 + ln 2)^2) (hash buckets and
// signs are arbitrary; the two words cannot share a bucket here unless the
// hash collides, which this fixed pair does not).
TEST(HashedNgramEncoderTest, TfIdfArithmeticMatchesHandComputation) {
  HashedNgramOptions o;
  o.char_weight = 0;
  o.max_word_ngram = 1;
  auto e = Make(o);
  std::vector<float> mags;
  for (float x : Embed(*e, "b a a")) {
    if (x != 0) mags.push_back(std::fabs(x));
  }
  ASSERT_EQ(mags.size(), 2u);
  std::sort(mags.begin(), mags.end());
  const double tf_a = 1 + std::log(2.0);
  const double norm = std::sqrt(1 + tf_a * tf_a);
  EXPECT_NEAR(mags[0], 1 / norm, 1e-6);
  EXPECT_NEAR(mags[1], tf_a / norm, 1e-6);

  // With an IDF corpus of 3 documents where "a" occurs in all and "b" in
  // none: idf(a) = ln(4/4) + 1 = 1, idf(b) = ln(4/1) + 1.
  auto f = Make(o, {"a", "a c", "a d"});
  mags.clear();
  for (float x : Embed(*f, "b a a")) {
    if (x != 0) mags.push_back(std::fabs(x));
  }
  ASSERT_EQ(mags.size(), 2u);
  const double wb = std::log(4.0) + 1;
  const double norm2 = std::sqrt(wb * wb + tf_a * tf_a);
  std::sort(mags.begin(), mags.end());
  EXPECT_NEAR(mags[0], std::min(wb, tf_a) / norm2, 1e-6);
  EXPECT_NEAR(mags[1], std::max(wb, tf_a) / norm2, 1e-6);
}

TEST(HashedNgramEncoderTest, DeterministicAndCaseInsensitive) {
  const std::vector<std::string> corpus = {"alpha beta", "gamma delta"};
  auto a = Make({}, corpus);
  auto b = Make({}, corpus);
  const std::string text = "Grüße aus Köln! 中文 text, x^2 + 3 = 7";
  EXPECT_EQ(Embed(*a, text), Embed(*b, text));
  EXPECT_EQ(Embed(*a, text), Embed(*a, text));
  EXPECT_EQ(Embed(*a, "HELLO   World"), Embed(*a, "hello world"));
  EXPECT_EQ(Embed(*a, "ЖУК"), Embed(*a, "жук"));
  // Digits are one class: the numbers do not matter, their shape does.
  EXPECT_EQ(Embed(*a, "solve 3x + 7 = 22"), Embed(*a, "solve 5x + 2 = 13"));
}

TEST(HashedNgramEncoderTest, SimilarTextsAreCloser) {
  auto e = Make();
  const auto q = Embed(*e, "write a python function that reverses a list");
  const auto near = Embed(*e, "python function to reverse a string");
  const auto far = Embed(*e, "what is the statute of limitations for fraud");
  EXPECT_GT(Dot(q, near), Dot(q, far) + 0.1);
}

TEST(HashedNgramEncoderTest, AnyBytesAreAccepted) {
  auto e = Make();
  std::string junk;
  for (int i = 0; i < 256; ++i) junk.push_back(static_cast<char>(i));
  const auto v = Embed(*e, junk);
  EXPECT_NEAR(Dot(v, v), 1.0, 1e-5);
}

TEST(HashedNgramEncoderTest, RejectsBadOptionsAndSizes) {
  HashedNgramOptions o;
  o.dim = 1000;
  EXPECT_THAT(HashedNgramEncoder::Create(o, {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("power of two")));
  o = {};
  o.min_char_ngram = 4;
  o.max_char_ngram = 3;
  EXPECT_THAT(HashedNgramEncoder::Create(o, {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("min_char_ngram")));
  o = {};
  o.max_word_ngram = 3;
  EXPECT_THAT(HashedNgramEncoder::Create(o, {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("max_word_ngram")));
  o = {};
  o.char_weight = 0;
  o.word_weight = 0;
  EXPECT_THAT(HashedNgramEncoder::Create(o, {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("weight")));
  auto e = Make();
  std::vector<float> small(10);
  EXPECT_THAT(e->Encode("x", absl::MakeSpan(small)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("expected dim 4096")));
}

}  // namespace
}  // namespace expertserve::router
