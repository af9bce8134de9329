// Embedding -> probability distribution over categories.
#ifndef EXPERTSERVE_ROUTER_CLASSIFIER_H_
#define EXPERTSERVE_ROUTER_CLASSIFIER_H_

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "router/encoder_interface.h"

namespace expertserve::router {

enum class ClassifierKind {
  // Cosine to each category's mean example embedding.
  kCentroid,
  // Mean of the k highest cosines to each category's examples.
  kKnn,
  // hybrid_centroid_weight * centroid + (1 - weight) * kNN: the centroid
  // captures a category's overall vocabulary, the nearest example a
  // specific phrasing.
  kHybrid,
};

struct ClassifierOptions {
  ClassifierKind kind = ClassifierKind::kCentroid;
  int knn_k = 3;  // kKnn/kHybrid; capped at each category's example count
  double hybrid_centroid_weight = 0.5;  // kHybrid only, in [0, 1]
  // Softmax temperature over the similarities. nullopt = fitted: the value
  // minimising the leave-one-out negative log-likelihood of the examples.
  std::optional<double> temperature;
};

struct Classification {
  std::vector<double> similarity;   // [num_categories] cosine-based, in [-1, 1]
  std::vector<double> probability;  // [num_categories] sums to 1 (< 1 alone)
  int top = -1;                     // argmax of probability (lowest index on ties)
  double confidence = 0;            // probability[top]
  double margin = 0;                // probability[top] - second best (or 0 alone)
  bool empty_embedding = false;     // all zeros: no evidence, uniform
};

struct LeaveOneOutReport {
  size_t num_examples = 0;
  double accuracy = 0;        // fraction classified right with themselves held out
  double mean_nll = 0;        // at the chosen temperature
};

// Thread-safe: immutable after Fit.
class Classifier {
 public:
  // examples[c] are category c's example utterances, each non-empty list;
  // they are embedded with `encoder`. Errors: kInvalidArgument for no
  // categories, a category without examples or bad options; the encoder's
  // errors.
  static absl::StatusOr<Classifier> Fit(
      const EncoderInterface& encoder,
      const std::vector<std::vector<std::string>>& examples,
      const ClassifierOptions& options);

  // `embedding` ([dim]) from the same encoder. An all-zero embedding gives a
  // uniform distribution (no evidence). A single category is scored against
  // a "none of them" alternative of similarity 0, so its confidence still
  // means something.
  Classification Classify(absl::Span<const float> embedding) const;

  size_t num_categories() const { return num_categories_; }
  double temperature() const { return temperature_; }
  const LeaveOneOutReport& leave_one_out() const { return loo_; }

 private:
  Classifier() = default;
  // Similarities of a query given by its non-zero entries, with example
  // `exclude` (or -1) left out: leave-one-out reuses the same code.
  void Similarities(const std::vector<int>& nz, absl::Span<const float> q,
                    int exclude, std::vector<double>* sim) const;
  Classification FromSimilarities(std::vector<double> sim, double temperature) const;

  ClassifierOptions options_;
  size_t num_categories_ = 0;
  int dim_ = 0;
  // Kept after Fit for kKnn and kHybrid only.
  std::vector<float> examples_;          // [num_examples, dim] L2-normalised
  std::vector<int> labels_;              // [num_examples] category index
  std::vector<std::vector<float>> sums_; // [num_categories][dim] sum of examples
  std::vector<std::vector<float>> centroids_;  // [num_categories][dim] unit (or 0)
  std::vector<double> sum_norm2_;        // [num_categories] |sums_[c]|^2
  double temperature_ = 0.05;
  LeaveOneOutReport loo_;
};

}  // namespace expertserve::router

#endif  // EXPERTSERVE_ROUTER_CLASSIFIER_H_
