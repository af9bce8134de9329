// A compiled PCRE2 pattern (UTF + UCP, JIT when available) used by the Split
// pre-tokenizer and the Replace normalizer/decoder. Hugging Face tokenizers
// uses Oniguruma; PCRE2 accepts the same syntax for the Unicode classes and
// look-arounds that real tokenizer.json patterns use.
//
// Thread-safe: the compiled code is immutable; per-call match state lives in
// thread-local storage.
#ifndef EXPERTSERVE_ENGINE_TOKENIZER_REGEX_H_
#define EXPERTSERVE_ENGINE_TOKENIZER_REGEX_H_

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace expertserve::engine {

class Regex {
 public:
  // Compiles `pattern`; a literal string is escaped first when `literal`.
  static absl::StatusOr<std::unique_ptr<Regex>> Compile(std::string_view pattern,
                                                        bool literal);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Appends the [begin, end) byte ranges of all non-overlapping, non-empty
  // matches in `subject` (which must be valid UTF-8) to `out`.
  absl::Status FindAll(std::string_view subject,
                       std::vector<std::pair<size_t, size_t>>* out) const;

 private:
  explicit Regex(void* code, bool jit) : code_(code), jit_(jit) {}
  void* code_;  // pcre2_code_8*
  bool jit_;
};

}  // namespace expertserve::engine

#endif  // EXPERTSERVE_ENGINE_TOKENIZER_REGEX_H_
