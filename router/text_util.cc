#include "router/text_util.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace expertserve::router {
namespace {

constexpr char32_t kReplacement = 0xFFFD;

// Decodes one code point at text[*pos], advancing *pos by its length (by one
// byte for an invalid sequence, which yields U+FFFD).
char32_t DecodeOne(std::string_view text, size_t* pos) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  const size_t i = *pos;
  const unsigned char b0 = s[i];
  if (b0 < 0x80) {
    *pos = i + 1;
    return b0;
  }
  int len = 0;
  char32_t cp = 0;
  char32_t min = 0;
  if ((b0 & 0xE0) == 0xC0) {
    len = 2, cp = b0 & 0x1F, min = 0x80;
  } else if ((b0 & 0xF0) == 0xE0) {
    len = 3, cp = b0 & 0x0F, min = 0x800;
  } else if ((b0 & 0xF8) == 0xF0) {
    len = 4, cp = b0 & 0x07, min = 0x10000;
  } else {
    *pos = i + 1;
    return kReplacement;
  }
  if (i + len > n) {
    *pos = i + 1;
    return kReplacement;
  }
  for (int k = 1; k < len; ++k) {
    const unsigned char b = s[i + k];
    if ((b & 0xC0) != 0x80) {
      *pos = i + 1;
      return kReplacement;
    }
    cp = (cp << 6) | (b & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
    *pos = i + 1;
    return kReplacement;
  }
  *pos = i + len;
  return cp;
}

}  // namespace

void DecodeUtf8(std::string_view text, std::vector<char32_t>* out) {
  size_t pos = 0;
  while (pos < text.size()) out->push_back(DecodeOne(text, &pos));
}

size_t CountCodePoints(std::string_view text) {
  size_t pos = 0;
  size_t count = 0;
  while (pos < text.size()) {
    DecodeOne(text, &pos);
    ++count;
  }
  return count;
}

char32_t SimpleLower(char32_t cp) {
  if (cp < 0x80) return (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp;
  if (cp >= 0xC0 && cp <= 0xDE && cp != 0xD7) return cp + 0x20;
  if (cp >= 0x100 && cp <= 0x17F) {
    // Latin Extended-A pairs capitals with the next code point; the parity
    // of the capital flips at U+0139 and back at U+014A, and U+0178 is Ÿ.
    if (cp == 0x178) return 0xFF;
    if (cp == 0x130 || cp == 0x131 || cp == 0x138 || cp == 0x149 || cp == 0x17F) {
      return cp;
    }
    const bool odd_capitals = (cp >= 0x139 && cp <= 0x148) || cp >= 0x179;
    const bool is_capital = odd_capitals ? (cp % 2 == 1) : (cp % 2 == 0);
    return is_capital ? cp + 1 : cp;
  }
  if (cp >= 0x391 && cp <= 0x3A9 && cp != 0x3A2) return cp + 0x20;
  if (cp >= 0x410 && cp <= 0x42F) return cp + 0x20;
  if (cp >= 0x400 && cp <= 0x40F) return cp + 0x50;
  return cp;
}

bool IsSpaceOrControl(char32_t cp) {
  if (cp <= 0x20 || cp == 0x7F) return true;
  if (cp >= 0x80 && cp <= 0xA0) return true;  // C1 controls, NBSP
  return cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200B) || cp == 0x2028 ||
         cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000 ||
         cp == 0xFEFF;
}

bool IsCjk(char32_t cp) {
  return (cp >= 0x3040 && cp <= 0x30FF) || (cp >= 0x3400 && cp <= 0x9FFF) ||
         (cp >= 0xAC00 && cp <= 0xD7AF) || (cp >= 0xF900 && cp <= 0xFAFF) ||
         (cp >= 0x20000 && cp <= 0x3FFFF);
}

bool IsWordChar(char32_t cp) {
  if (cp < 0x80) {
    return (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') ||
           (cp >= '0' && cp <= '9') || cp == '_';
  }
  if (IsSpaceOrControl(cp)) return false;
  if (cp < 0xC0) return cp == 0xAA || cp == 0xB5 || cp == 0xBA;  // ª µ º
  if (cp == 0xD7 || cp == 0xF7) return false;                    // × ÷
  if (cp >= 0x2000 && cp <= 0x2BFF) return false;  // punctuation, symbols,
                                                   // arrows, math operators
  if (cp >= 0x3000 && cp <= 0x303F) return false;  // CJK punctuation
  if (cp >= 0xFE30 && cp <= 0xFE4F) return false;
  if (cp >= 0xFF00 && cp <= 0xFF0F) return false;  // fullwidth punctuation
  if (cp == kReplacement) return false;
  if (cp >= 0x1F000 && cp <= 0x1FAFF) return false;  // emoji, pictographs
  return true;
}

std::string TruncateHeadTail(std::string_view text, size_t max_chars) {
  if (max_chars == 0 || text.size() <= max_chars) return std::string(text);
  // Byte offsets of the head's end and the tail's start, counted in code
  // points with the same decoder as the features (so invalid bytes count as
  // one character each).
  const size_t head_chars = max_chars / 2;
  const size_t tail_chars = max_chars - head_chars;
  std::vector<size_t> starts;  // [num code points] byte offset of each
  starts.reserve(text.size());
  size_t pos = 0;
  while (pos < text.size()) {
    starts.push_back(pos);
    DecodeOne(text, &pos);
  }
  if (starts.size() <= max_chars) return std::string(text);
  const size_t head_end = starts[head_chars];
  const size_t tail_begin = starts[starts.size() - tail_chars];
  std::string out;
  out.reserve(head_end + 1 + (text.size() - tail_begin));
  out.append(text.substr(0, head_end));
  out.push_back('\n');
  out.append(text.substr(tail_begin));
  return out;
}

}  // namespace expertserve::router
