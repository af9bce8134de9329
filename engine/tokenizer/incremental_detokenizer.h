// Streaming detokenization and stop-string detection.
//
// IncrementalDetokenizer turns a stream of token ids into text deltas that are
// always valid UTF-8 and that concatenate (with Finish()) to exactly
// Tokenizer::Decode of all ids. It follows the Rust `tokenizers` DecodeStream
// / vLLM scheme: decode a small window that starts at the last emission point
// (so context-dependent decoders such as Strip, Metaspace and ByteFallback
// see the same leading token twice and their effects cancel), and emit only
// the suffix beyond the previously decoded window once it no longer ends in
// U+FFFD (an incomplete byte sequence).
//
// StopStringMatcher scans those deltas for stop strings across token
// boundaries, holding back any tail that could still become a stop string.
//
// Thread-compatible: one instance per sequence, used from one thread at a time.
#ifndef EXPERTSERVE_ENGINE_TOKENIZER_INCREMENTAL_DETOKENIZER_H_
#define EXPERTSERVE_ENGINE_TOKENIZER_INCREMENTAL_DETOKENIZER_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/ids.h"
#include "engine/tokenizer/tokenizer.h"

namespace expertserve::engine {

// True when `s` is valid UTF-8 (every sequence complete).
bool IsCompleteUtf8(std::string_view s);

class IncrementalDetokenizer {
 public:
  // `tokenizer` must outlive this object.
  IncrementalDetokenizer(const Tokenizer& tokenizer, bool skip_special_tokens)
      : tok_(tokenizer), skip_special_(skip_special_tokens) {}

  // Appends one generated id; returns the newly stable text (may be empty).
  // An id outside the vocabulary -> kInvalidArgument.
  absl::StatusOr<std::string> Step(TokenId id);
  // End of the stream: returns whatever was held back (e.g. a dangling
  // incomplete byte sequence, rendered as U+FFFD like Decode does).
  absl::StatusOr<std::string> Finish();

  const std::vector<TokenId>& ids() const { return ids_; }

 private:
  const Tokenizer& tok_;
  const bool skip_special_;
  std::vector<TokenId> ids_;
  size_t prefix_index_ = 0;  // window start (last emission point but one)
  size_t read_index_ = 0;    // ids_[prefix_index_, read_index_) decode to prefix_
  std::string prefix_;
};

class StopStringMatcher {
 public:
  explicit StopStringMatcher(std::vector<std::string> stop_strings,
                             bool include_stop_string = false);

  struct Result {
    std::string text;      // safe to send to the client now
    bool stopped = false;  // a stop string completed; generation should end
    int stop_index = -1;   // which stop string (index into the constructor list)
  };
  // Feeds the next text delta. After a stop, returns empty results.
  Result Feed(std::string_view delta);
  // End of generation without a stop: releases the held-back tail.
  std::string Flush();
  bool stopped() const { return stopped_; }

 private:
  std::vector<std::string> stops_;
  bool include_stop_;
  std::string pending_;  // tail that may be the start of a stop string
  bool stopped_ = false;
};

}  // namespace expertserve::engine

#endif  // EXPERTSERVE_ENGINE_TOKENIZER_INCREMENTAL_DETOKENIZER_H_
