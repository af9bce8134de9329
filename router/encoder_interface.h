// Text -> fixed-size embedding, the first half of the router's
// "features -> category" step.
//
// The default implementation is HashedNgramEncoder (hashed character n-grams
// + word uni/bigrams, TF-IDF weighted, no model). A model-based encoder — the
// mean-pooled last hidden states of a small embedding model run through the
// engine — fits the same interface later: it would hold a narrow "embed these
// token ids" callback handed in by the server (router/ may not depend on the
// engine's scheduler), tokenize with engine/tokenizer, pool, L2-normalise, and
// return the engine's error as its status.
#ifndef EXPERTSERVE_ROUTER_ENCODER_INTERFACE_H_
#define EXPERTSERVE_ROUTER_ENCODER_INTERFACE_H_

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/types/span.h"

namespace expertserve::router {

// Implementations must be thread-safe: the router calls Encode concurrently
// from every request thread.
class EncoderInterface {
 public:
  virtual ~EncoderInterface() = default;

  // Embedding size; constant for the encoder's lifetime.
  virtual int dim() const = 0;

  // Writes the embedding of `text` to `out` ([dim]), L2-normalised, or all
  // zeros when the text carries no features (empty, whitespace only). Any
  // byte string is accepted (invalid UTF-8 is replaced, not rejected).
  // Errors: kInvalidArgument if out.size() != dim(); model-based encoders may
  // also return their backend's error.
  virtual absl::Status Encode(std::string_view text, absl::Span<float> out) const = 0;

  // For logs and the bench, e.g. "hashed-ngram(dim=4096,char=3-5,word=1-2)".
  virtual std::string name() const = 0;
};

}  // namespace expertserve::router

#endif  // EXPERTSERVE_ROUTER_ENCODER_INTERFACE_H_
