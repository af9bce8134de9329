// The router's default encoder: hashed character n-grams and word n-grams,
// TF-IDF weighted, in a fixed-size signed feature-hashing space. No model and
// no training data beyond the utterances it is fitted on (for IDF).
#ifndef EXPERTSERVE_ROUTER_HASHED_NGRAM_ENCODER_H_
#define EXPERTSERVE_ROUTER_HASHED_NGRAM_ENCODER_H_

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "router/encoder_interface.h"

namespace expertserve::router {

struct HashedNgramOptions {
  int dim = 4096;  // power of two in [64, 1 << 20]
  // Character n-grams over each whitespace-separated chunk padded with one
  // space either side (so " x^2 " yields " x^", "x^2", "^2 ", ...).
  int min_char_ngram = 3;
  int max_char_ngram = 5;
  // Word n-grams over word tokens (runs of letters/digits/_; each symbol and
  // each CJK character is a token of its own). 1 = unigrams, 2 = + bigrams.
  int max_word_ngram = 2;
  // Each family is L2-normalised on its own, then mixed with these weights:
  // character n-grams carry morphology, typos and symbols (code, maths);
  // words carry vocabulary.
  float char_weight = 1.0f;
  float word_weight = 1.0f;
};

// Thread-safe: immutable after Create.
class HashedNgramEncoder final : public EncoderInterface {
 public:
  // Fits IDF on `fit_corpus` (the router's example utterances); an empty
  // corpus gives every feature the same weight. Errors: kInvalidArgument
  // naming the bad option.
  static absl::StatusOr<std::unique_ptr<HashedNgramEncoder>> Create(
      const HashedNgramOptions& options,
      absl::Span<const std::string> fit_corpus);

  int dim() const override { return options_.dim; }
  absl::Status Encode(std::string_view text, absl::Span<float> out) const override;
  std::string name() const override;

 private:
  explicit HashedNgramEncoder(const HashedNgramOptions& options);

  HashedNgramOptions options_;
  std::vector<float> idf_;  // [dim] per hash bucket
};

}  // namespace expertserve::router

#endif  // EXPERTSERVE_ROUTER_HASHED_NGRAM_ENCODER_H_
