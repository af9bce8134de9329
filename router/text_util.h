// UTF-8 helpers for the router's features: decoding with replacement,
// simple lower-casing, character classes, and head+tail truncation. The
// router is deliberately independent of the tokenizer's Unicode tables: its
// features only need to be stable and cheap, not linguistically exact.
#ifndef EXPERTSERVE_ROUTER_TEXT_UTIL_H_
#define EXPERTSERVE_ROUTER_TEXT_UTIL_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace expertserve::router {

// Appends the code points of `text` to `out`. Each invalid or truncated
// sequence (overlong, surrogate, > U+10FFFF) becomes one U+FFFD.
void DecodeUtf8(std::string_view text, std::vector<char32_t>* out);

// Number of code points DecodeUtf8 would produce.
size_t CountCodePoints(std::string_view text);

// Lower-cases ASCII, Latin-1, Latin Extended-A, Greek and Cyrillic capitals;
// other code points are returned unchanged (full case folding is not needed
// for hashed features).
char32_t SimpleLower(char32_t cp);

// Whitespace or a control character.
bool IsSpaceOrControl(char32_t cp);

// CJK ideographs, kana and Hangul: scripts written without spaces, so each
// character is its own word.
bool IsCjk(char32_t cp);

// A letter or digit of some script, or '_' (approximate outside ASCII:
// everything that is not space, punctuation or a symbol block).
bool IsWordChar(char32_t cp);

// `text` if it has at most `max_chars` code points; otherwise its first
// max_chars/2 and last max_chars - max_chars/2 code points joined by "\n".
// Keeps both ends because a request's intent sits at the start (the ask) or
// the end (the question after pasted code or a document) about equally
// often. Cuts on code point boundaries only. max_chars == 0: no limit.
std::string TruncateHeadTail(std::string_view text, size_t max_chars);

}  // namespace expertserve::router

#endif  // EXPERTSERVE_ROUTER_TEXT_UTIL_H_
