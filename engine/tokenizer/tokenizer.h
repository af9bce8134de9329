// Hugging Face `tokenizer.json` compatible tokenizer: BPE model (byte-level
// and SentencePiece-style), normalizers, pre-tokenizers, added/special tokens,
// post-processors and decoders, with encode/decode parity against the Rust
// `tokenizers` library (tests/tokenizer/parity_test.cc).
//
// Thread-safety: a loaded Tokenizer is immutable apart from an internal,
// mutex-guarded BPE word cache, so Encode/Decode and every accessor may be
// called concurrently from any number of threads.
#ifndef EXPERTSERVE_ENGINE_TOKENIZER_TOKENIZER_H_
#define EXPERTSERVE_ENGINE_TOKENIZER_TOKENIZER_H_

#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/ids.h"

namespace expertserve::engine {

namespace tokenizer_internal {
struct Impl;
}  // namespace tokenizer_internal

class Tokenizer {
 public:
  struct Options {
    // Apply tokenizer_config.json's add_bos_token / add_eos_token the way
    // transformers' Llama/Gemma fast tokenizers do (they replace the
    // post-processor with a BOS/EOS template). Off = raw tokenizer.json.
    bool apply_tokenizer_config = true;
  };

  // Loads `dir`/tokenizer.json and, when present, `dir`/tokenizer_config.json.
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromDirectory(
      const std::filesystem::path& dir, const Options& options);
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromDirectory(
      const std::filesystem::path& dir) {
    return FromDirectory(dir, Options());
  }
  // `tokenizer_config_json` may be empty.
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromJson(
      std::string_view tokenizer_json, std::string_view tokenizer_config_json,
      const Options& options);
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromJson(
      std::string_view tokenizer_json, std::string_view tokenizer_config_json = {}) {
    return FromJson(tokenizer_json, tokenizer_config_json, Options());
  }

  ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // Text -> ids. Special tokens written in `text` are always recognised;
  // `add_special_tokens` runs the post-processor (BOS/EOS templates).
  // Invalid UTF-8 -> kInvalidArgument naming the byte offset.
  absl::StatusOr<std::vector<TokenId>> Encode(std::string_view text,
                                              bool add_special_tokens) const;

  // Ids -> text. An id outside the vocabulary -> kInvalidArgument naming it.
  absl::StatusOr<std::string> Decode(std::span<const TokenId> ids,
                                     bool skip_special_tokens) const;

  // One past the largest id (model vocabulary plus added tokens).
  int32_t vocab_size() const;
  std::optional<TokenId> TokenToId(std::string_view token) const;
  // The raw token string (byte-level tokens are in GPT-2's alphabet).
  std::optional<std::string_view> IdToToken(TokenId id) const;
  // From tokenizer_config.json (bos_token / eos_token); nullopt if absent.
  std::optional<TokenId> bos_id() const;
  std::optional<TokenId> eos_id() const;
  // True for added tokens flagged `special` (skipped by skip_special_tokens).
  bool IsSpecial(TokenId id) const;

 private:
  explicit Tokenizer(std::unique_ptr<tokenizer_internal::Impl> impl);
  std::unique_ptr<tokenizer_internal::Impl> impl_;
};

}  // namespace expertserve::engine

#endif  // EXPERTSERVE_ENGINE_TOKENIZER_TOKENIZER_H_
