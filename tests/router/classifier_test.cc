#include "router/classifier.h"

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "router/hashed_ngram_encoder.h"
#include "tests/fixtures/status_matchers.h"

namespace expertserve::router {
namespace {

using ::expertserve::testing::StatusIs;
using ::testing::HasSubstr;

const std::vector<std::vector<std::string>> kExamples = {
    {"write a python function", "fix my javascript bug", "compile error in rust code"},
    {"solve the equation 2x + 1 = 5", "integrate x^2 dx", "what is the derivative of sin x"},
};

std::unique_ptr<HashedNgramEncoder> Encoder() {
  return *HashedNgramEncoder::Create({}, {});
}

std::vector<float> Embed(const EncoderInterface& e, const std::string& text) {
  std::vector<float> v(e.dim());
  EXPECT_TRUE(e.Encode(text, absl::MakeSpan(v)).ok());
  return v;
}

TEST(ClassifierTest, RejectsBadInput) {
  auto e = Encoder();
  EXPECT_THAT(Classifier::Fit(*e, {}, {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no categories")));
  EXPECT_THAT(Classifier::Fit(*e, {{"a"}, {}}, {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("category 1")));
  ClassifierOptions o;
  o.knn_k = 0;
  EXPECT_THAT(Classifier::Fit(*e, kExamples, o),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("knn_k")));
  o = {};
  o.temperature = 0.0;
  EXPECT_THAT(Classifier::Fit(*e, kExamples, o),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("temperature")));
}

// The probabilities are softmax(similarity / T), recomputed here by hand, and
// the centroid similarity is the cosine to the normalised mean of the
// examples' embeddings, also recomputed here.
TEST(ClassifierTest, CentroidProbabilitiesAreSoftmaxOfCosines) {
  auto e = Encoder();
  ClassifierOptions o;
  o.temperature = 0.1;
  auto c = Classifier::Fit(*e, kExamples, o);
  ASSERT_TRUE(c.ok()) << c.status();
  const auto q = Embed(*e, "my python code has a bug");
  const Classification r = c->Classify(q);
  ASSERT_EQ(r.probability.size(), 2u);
  for (size_t cat = 0; cat < 2; ++cat) {
    std::vector<double> mean(e->dim(), 0.0);
    for (const std::string& ex : kExamples[cat]) {
      const auto v = Embed(*e, ex);
      for (size_t i = 0; i < v.size(); ++i) mean[i] += v[i];
    }
    double n2 = 0, dot = 0;
    for (size_t i = 0; i < mean.size(); ++i) n2 += mean[i] * mean[i], dot += mean[i] * q[i];
    EXPECT_NEAR(r.similarity[cat], dot / std::sqrt(n2), 1e-5);
  }
  const double z = std::exp(r.similarity[0] / 0.1) + std::exp(r.similarity[1] / 0.1);
  EXPECT_NEAR(r.probability[0], std::exp(r.similarity[0] / 0.1) / z, 1e-9);
  EXPECT_NEAR(r.probability[0] + r.probability[1], 1.0, 1e-9);
  EXPECT_EQ(r.top, 0);
  EXPECT_DOUBLE_EQ(r.confidence, r.probability[0]);
  EXPECT_NEAR(r.margin, r.probability[0] - r.probability[1], 1e-12);
  EXPECT_FALSE(r.empty_embedding);
}

TEST(ClassifierTest, KnnAveragesTopKCosines) {
  auto e = Encoder();
  ClassifierOptions o;
  o.kind = ClassifierKind::kKnn;
  o.knn_k = 2;
  o.temperature = 0.05;
  auto c = Classifier::Fit(*e, kExamples, o);
  ASSERT_TRUE(c.ok()) << c.status();
  const auto q = Embed(*e, "integrate sin x dx");
  const Classification r = c->Classify(q);
  for (size_t cat = 0; cat < 2; ++cat) {
    std::vector<double> sims;
    for (const std::string& ex : kExamples[cat]) {
      const auto v = Embed(*e, ex);
      double d = 0;
      for (size_t i = 0; i < v.size(); ++i) d += static_cast<double>(v[i]) * q[i];
      sims.push_back(d);
    }
    std::sort(sims.rbegin(), sims.rend());
    EXPECT_NEAR(r.similarity[cat], (sims[0] + sims[1]) / 2, 1e-5);
  }
  EXPECT_EQ(r.top, 1);
}

TEST(ClassifierTest, HybridMixesCentroidAndKnn) {
  auto e = Encoder();
  ClassifierOptions o;
  o.temperature = 0.05;
  o.knn_k = 2;
  o.kind = ClassifierKind::kCentroid;
  auto centroid = Classifier::Fit(*e, kExamples, o);
  o.kind = ClassifierKind::kKnn;
  auto knn = Classifier::Fit(*e, kExamples, o);
  o.kind = ClassifierKind::kHybrid;
  o.hybrid_centroid_weight = 0.3;
  auto hybrid = Classifier::Fit(*e, kExamples, o);
  ASSERT_TRUE(centroid.ok() && knn.ok() && hybrid.ok());
  const auto q = Embed(*e, "fix the rust compile error");
  const auto c = centroid->Classify(q), k = knn->Classify(q), h = hybrid->Classify(q);
  for (size_t cat = 0; cat < 2; ++cat) {
    EXPECT_NEAR(h.similarity[cat], 0.3 * c.similarity[cat] + 0.7 * k.similarity[cat], 1e-9);
  }
  o.hybrid_centroid_weight = 1.5;
  EXPECT_THAT(Classifier::Fit(*e, kExamples, o),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("hybrid_centroid_weight")));
}

TEST(ClassifierTest, FitsTemperatureByLeaveOneOut) {
  auto e = Encoder();
  auto c = Classifier::Fit(*e, kExamples, {});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_GT(c->temperature(), 0.0);
  EXPECT_EQ(c->leave_one_out().num_examples, 6u);
  EXPECT_GE(c->leave_one_out().accuracy, 0.0);
  EXPECT_LE(c->leave_one_out().accuracy, 1.0);
  // The fitted T is the NLL minimiser on the grid, so it is at least as good
  // as any fixed temperature's leave-one-out NLL.
  for (double t : {0.01, 0.1, 1.0}) {
    ClassifierOptions fixed;
    fixed.temperature = t;
    auto f = Classifier::Fit(*e, kExamples, fixed);
    ASSERT_TRUE(f.ok());
    EXPECT_LE(c->leave_one_out().mean_nll, f->leave_one_out().mean_nll + 1e-3) << t;
  }
}

TEST(ClassifierTest, EmptyEmbeddingIsUniform) {
  auto e = Encoder();
  auto c = Classifier::Fit(*e, kExamples, {});
  ASSERT_TRUE(c.ok());
  const Classification r = c->Classify(std::vector<float>(e->dim(), 0.0f));
  EXPECT_TRUE(r.empty_embedding);
  EXPECT_NEAR(r.probability[0], 0.5, 1e-12);
  EXPECT_NEAR(r.margin, 0.0, 1e-12);
}

TEST(ClassifierTest, SingleCategoryScoresAgainstNone) {
  auto e = Encoder();
  ClassifierOptions o;
  o.temperature = 0.1;
  auto c = Classifier::Fit(*e, {{"write a python function", "fix my rust code"}}, o);
  ASSERT_TRUE(c.ok());
  const Classification on = c->Classify(Embed(*e, "python function"));
  const Classification off = c->Classify(Embed(*e, "zebra giraffe"));
  EXPECT_GT(on.confidence, 0.5);
  EXPECT_LT(on.confidence, 1.0);
  EXPECT_LT(off.confidence, on.confidence);
  EXPECT_NEAR(on.confidence, 1 / (1 + std::exp(-on.similarity[0] / 0.1)), 1e-9);
}

}  // namespace
}  // namespace expertserve::router
