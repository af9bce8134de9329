// UTF-8 and Unicode helpers for the tokenizer: validation, Rust-compatible
// lossy decoding, normalization forms (ICU), and GPT-2's byte<->char map.
// All functions are pure and thread-safe.
#ifndef EXPERTSERVE_ENGINE_TOKENIZER_UNICODE_H_
#define EXPERTSERVE_ENGINE_TOKENIZER_UNICODE_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace expertserve::engine::unicode {

// Debian's Abseil has its own string_view type; this bridges std -> absl
// for hash lookups and StrCat.
inline absl::string_view AV(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// Byte offset of the first byte that does not start a complete, valid UTF-8
// sequence, or nullopt when `s` is valid UTF-8.
std::optional<size_t> FindInvalidUtf8(std::string_view s);

// Length in bytes of the valid UTF-8 prefix of `s` that ends on a complete
// character (i.e. drops a trailing incomplete sequence). `s` must otherwise be
// valid.
size_t CompleteUtf8Prefix(std::string_view s);

// Like Rust's String::from_utf8_lossy: every maximal invalid subpart becomes
// one U+FFFD.
std::string Utf8Lossy(std::string_view s);

// Decodes the code point at s[*pos] (s must be valid UTF-8) and advances *pos.
char32_t NextCodePoint(std::string_view s, size_t* pos);
void AppendUtf8(char32_t c, std::string* out);

enum class NormalForm { kNFC, kNFD, kNFKC, kNFKD };
// Normalizes `s` in place. `s` must be valid UTF-8.
absl::Status Normalize(NormalForm form, std::string* s);

// Rust char::to_lowercase applied per character (no context rules).
void Lowercase(std::string* s);

// Rust char::is_whitespace (Unicode White_Space).
bool IsWhitespace(char32_t c);
// Rust char::is_alphanumeric (Alphabetic or Numeric).
bool IsAlphanumeric(char32_t c);

// GPT-2 byte-level alphabet: byte b <-> one printable code point.
const std::array<char32_t, 256>& ByteToCodePoint();
// UTF-8 encoding of ByteToCodePoint()[b] (1 or 2 bytes).
const std::array<std::string, 256>& ByteToUtf8();
// Inverse map; -1 for code points outside the alphabet.
int CodePointToByte(char32_t c);

}  // namespace expertserve::engine::unicode

#endif  // EXPERTSERVE_ENGINE_TOKENIZER_UNICODE_H_
