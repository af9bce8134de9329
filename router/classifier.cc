#include "router/classifier.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <functional>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "common/check.h"
#include "common/status_macros.h"

namespace expertserve::router {
namespace {

// Indices of the non-zero entries: hashed-feature embeddings are sparse
// (a short prompt touches a few hundred of 4096 buckets), so every dot
// product runs over these only.
std::vector<int> NonZeros(absl::Span<const float> v) {
  std::vector<int> nz;
  for (size_t i = 0; i < v.size(); ++i) {
    if (v[i] != 0.0f) nz.push_back(static_cast<int>(i));
  }
  return nz;
}

double SparseDot(const std::vector<int>& nz, absl::Span<const float> q,
                 const float* dense) {
  double s = 0;
  for (int i : nz) s += static_cast<double>(q[i]) * dense[i];
  return s;
}

// Softmax of sim / temperature (plus a "none" logit of 0 when there is one
// category); returns the probabilities of the real categories.
std::vector<double> Softmax(const std::vector<double>& sim, double temperature) {
  std::vector<double> logits(sim.size());
  for (size_t c = 0; c < sim.size(); ++c) logits[c] = sim[c] / temperature;
  if (sim.size() == 1) logits.push_back(0.0);
  const double mx = *std::max_element(logits.begin(), logits.end());
  double z = 0;
  for (double& l : logits) z += (l = std::exp(l - mx));
  std::vector<double> p(sim.size());
  for (size_t c = 0; c < sim.size(); ++c) p[c] = logits[c] / z;
  return p;
}

}  // namespace

absl::StatusOr<Classifier> Classifier::Fit(
    const EncoderInterface& encoder,
    const std::vector<std::vector<std::string>>& examples,
    const ClassifierOptions& options) {
  if (examples.empty()) {
    return absl::InvalidArgumentError("router classifier: no categories to fit");
  }
  if (options.knn_k < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("router classifier: knn_k must be >= 1, got ", options.knn_k));
  }
  if (!(options.hybrid_centroid_weight >= 0 && options.hybrid_centroid_weight <= 1)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "router classifier: hybrid_centroid_weight must be in [0, 1], got ",
        options.hybrid_centroid_weight));
  }
  if (options.temperature.has_value() &&
      !(*options.temperature > 0 && std::isfinite(*options.temperature))) {
    return absl::InvalidArgumentError(absl::StrCat(
        "router classifier: temperature must be finite and > 0, got ",
        *options.temperature));
  }
  Classifier c;
  c.options_ = options;
  c.num_categories_ = examples.size();
  c.dim_ = encoder.dim();
  const size_t dim = static_cast<size_t>(c.dim_);
  c.sums_.assign(c.num_categories_, std::vector<float>(dim, 0.0f));
  for (size_t cat = 0; cat < examples.size(); ++cat) {
    if (examples[cat].empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "router classifier: category ", cat, " has no examples"));
    }
    for (const std::string& text : examples[cat]) {
      const size_t row = c.labels_.size();
      c.examples_.resize((row + 1) * dim);
      absl::Span<float> e(c.examples_.data() + row * dim, dim);
      ES_RETURN_IF_ERROR(encoder.Encode(text, e));
      c.labels_.push_back(static_cast<int>(cat));
      for (size_t i = 0; i < dim; ++i) c.sums_[cat][i] += e[i];
    }
  }
  c.centroids_.resize(c.num_categories_);
  c.sum_norm2_.resize(c.num_categories_);
  for (size_t cat = 0; cat < c.num_categories_; ++cat) {
    double n2 = 0;
    for (float v : c.sums_[cat]) n2 += static_cast<double>(v) * v;
    c.sum_norm2_[cat] = n2;
    c.centroids_[cat] = c.sums_[cat];
    if (n2 > 0) {
      const float inv = static_cast<float>(1.0 / std::sqrt(n2));
      for (float& v : c.centroids_[cat]) v *= inv;
    }
  }

  // Leave-one-out similarities of every example, then the temperature that
  // makes them best calibrated (grid search; the NLL is smooth in log T).
  const size_t n = c.labels_.size();
  std::vector<std::vector<double>> loo_sim(n);
  for (size_t i = 0; i < n; ++i) {
    absl::Span<const float> q(c.examples_.data() + i * dim, dim);
    c.Similarities(NonZeros(q), q, static_cast<int>(i), &loo_sim[i]);
  }
  auto mean_nll = [&](double t) {
    double nll = 0;
    for (size_t i = 0; i < n; ++i) {
      const std::vector<double> p = Softmax(loo_sim[i], t);
      nll -= std::log(std::max(p[c.labels_[i]], 1e-300));
    }
    return nll / static_cast<double>(n);
  };
  if (options.temperature.has_value()) {
    c.temperature_ = *options.temperature;
  } else {
    double best = std::numeric_limits<double>::infinity();
    constexpr int kSteps = 96;
    for (int s = 0; s <= kSteps; ++s) {
      const double t = 0.003 * std::pow(1.0 / 0.003, s / static_cast<double>(kSteps));
      const double nll = mean_nll(t);
      if (nll < best) best = nll, c.temperature_ = t;
    }
  }
  c.loo_.num_examples = n;
  c.loo_.mean_nll = mean_nll(c.temperature_);
  size_t right = 0;
  for (size_t i = 0; i < n; ++i) {
    right += c.FromSimilarities(loo_sim[i], c.temperature_).top == c.labels_[i];
  }
  c.loo_.accuracy = static_cast<double>(right) / static_cast<double>(n);
  if (options.kind == ClassifierKind::kCentroid) {
    // Only leave-one-out needed the examples and sums: 16 KiB per example.
    c.examples_ = {};
    c.sums_ = {};
  }
  return c;
}

void Classifier::Similarities(const std::vector<int>& nz, absl::Span<const float> q,
                              int exclude, std::vector<double>* sim) const {
  const size_t dim = static_cast<size_t>(dim_);
  sim->assign(num_categories_, 0.0);
  const double centroid_weight =
      options_.kind == ClassifierKind::kCentroid ? 1.0
      : options_.kind == ClassifierKind::kKnn    ? 0.0
                                                 : options_.hybrid_centroid_weight;
  if (centroid_weight > 0) {
    for (size_t cat = 0; cat < num_categories_; ++cat) {
      double s = 0;
      if (exclude >= 0 && labels_[exclude] == static_cast<int>(cat)) {
        // The centroid without the query itself (q is that example): the
        // cosine between q and (sum - q).
        const double qq = SparseDot(nz, q, q.data());
        const double sq = SparseDot(nz, q, sums_[cat].data());
        const double n2 = sum_norm2_[cat] - 2 * sq + qq;
        s = n2 > 1e-12 ? (sq - qq) / std::sqrt(n2) : 0.0;
      } else {
        s = SparseDot(nz, q, centroids_[cat].data());
      }
      (*sim)[cat] += centroid_weight * s;
    }
  }
  if (centroid_weight >= 1) return;
  // kNN: keep each category's cosines, then average its top k.
  std::vector<std::vector<double>> per_cat(num_categories_);
  for (size_t i = 0; i < labels_.size(); ++i) {
    if (static_cast<int>(i) == exclude) continue;
    per_cat[labels_[i]].push_back(SparseDot(nz, q, examples_.data() + i * dim));
  }
  for (size_t cat = 0; cat < num_categories_; ++cat) {
    auto& v = per_cat[cat];
    if (v.empty()) continue;
    const size_t k = std::min(v.size(), static_cast<size_t>(options_.knn_k));
    std::partial_sort(v.begin(), v.begin() + k, v.end(), std::greater<>());
    double s = 0;
    for (size_t j = 0; j < k; ++j) s += v[j];
    (*sim)[cat] += (1 - centroid_weight) * s / static_cast<double>(k);
  }
}

Classification Classifier::FromSimilarities(std::vector<double> sim,
                                            double temperature) const {
  Classification out;
  out.probability = Softmax(sim, temperature);
  out.similarity = std::move(sim);
  out.top = 0;
  for (size_t c = 1; c < out.probability.size(); ++c) {
    if (out.probability[c] > out.probability[out.top]) out.top = static_cast<int>(c);
  }
  out.confidence = out.probability[out.top];
  double second = num_categories_ == 1 ? 1.0 - out.confidence : 0.0;
  for (size_t c = 0; c < out.probability.size(); ++c) {
    if (static_cast<int>(c) != out.top) second = std::max(second, out.probability[c]);
  }
  out.margin = out.confidence - second;
  return out;
}

Classification Classifier::Classify(absl::Span<const float> embedding) const {
  ES_CHECK(embedding.size() == static_cast<size_t>(dim_));
  const std::vector<int> nz = NonZeros(embedding);
  std::vector<double> sim;
  Similarities(nz, embedding, -1, &sim);
  Classification out = FromSimilarities(std::move(sim), temperature_);
  out.empty_embedding = nz.empty();
  return out;
}

}  // namespace expertserve::router
