#include "engine/tokenizer/unicode.h"

#include <unicode/bytestream.h>
#include <unicode/errorcode.h>
#include <unicode/normalizer2.h>
#include <unicode/uchar.h>

#include "absl/strings/str_cat.h"

namespace expertserve::engine::unicode {
namespace {

// Length of the valid sequence starting at s[i] (1..4), or -(k) where k >= 1
// is the length of the maximal invalid subpart (Unicode "maximal subpart",
// which is what Rust's Utf8Chunks uses).
int ScanSequence(std::string_view s, size_t i) {
  const auto b0 = static_cast<uint8_t>(s[i]);
  if (b0 < 0x80) return 1;
  int len;
  uint8_t lo = 0x80, hi = 0xBF;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    len = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    len = 3;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    len = 4;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return -1;
  }
  for (int k = 1; k < len; ++k) {
    if (i + k >= s.size()) return -k;
    const auto b = static_cast<uint8_t>(s[i + k]);
    const uint8_t l = k == 1 ? lo : 0x80;
    const uint8_t h = k == 1 ? hi : 0xBF;
    if (b < l || b > h) return -k;
  }
  return len;
}

}  // namespace

std::optional<size_t> FindInvalidUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    // ASCII fast path, 8 bytes at a time.
    while (i + 8 <= s.size()) {
      uint64_t w;
      __builtin_memcpy(&w, s.data() + i, 8);
      if (w & 0x8080808080808080ULL) break;
      i += 8;
    }
    if (i >= s.size()) break;
    const int n = ScanSequence(s, i);
    if (n < 0) return i;
    i += n;
  }
  return std::nullopt;
}

size_t CompleteUtf8Prefix(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const int n = ScanSequence(s, i);
    if (n < 0) return i;
    i += n;
  }
  return i;
}

std::string Utf8Lossy(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    const int n = ScanSequence(s, i);
    if (n > 0) {
      out.append(s.data() + i, n);
      i += n;
    } else {
      out.append("\xEF\xBF\xBD");
      i += -n;
    }
  }
  return out;
}

char32_t NextCodePoint(std::string_view s, size_t* pos) {
  size_t i = *pos;
  const auto b0 = static_cast<uint8_t>(s[i]);
  if (b0 < 0x80) {
    *pos = i + 1;
    return b0;
  }
  if (b0 < 0xE0) {
    *pos = i + 2;
    return ((b0 & 0x1F) << 6) | (static_cast<uint8_t>(s[i + 1]) & 0x3F);
  }
  if (b0 < 0xF0) {
    *pos = i + 3;
    return ((b0 & 0x0F) << 12) | ((static_cast<uint8_t>(s[i + 1]) & 0x3F) << 6) |
           (static_cast<uint8_t>(s[i + 2]) & 0x3F);
  }
  *pos = i + 4;
  return ((b0 & 0x07) << 18) | ((static_cast<uint8_t>(s[i + 1]) & 0x3F) << 12) |
         ((static_cast<uint8_t>(s[i + 2]) & 0x3F) << 6) |
         (static_cast<uint8_t>(s[i + 3]) & 0x3F);
}

void AppendUtf8(char32_t c, std::string* out) {
  if (c < 0x80) {
    out->push_back(static_cast<char>(c));
  } else if (c < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (c >> 6)));
    out->push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else if (c < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (c >> 12)));
    out->push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (c >> 18)));
    out->push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (c & 0x3F)));
  }
}

absl::Status Normalize(NormalForm form, std::string* s) {
  // ASCII is invariant under every normalization form.
  bool ascii = true;
  for (char c : *s) {
    if (static_cast<uint8_t>(c) >= 0x80) {
      ascii = false;
      break;
    }
  }
  if (ascii) return absl::OkStatus();
  icu::ErrorCode err;
  const icu::Normalizer2* n = nullptr;
  switch (form) {
    case NormalForm::kNFC: n = icu::Normalizer2::getNFCInstance(err); break;
    case NormalForm::kNFD: n = icu::Normalizer2::getNFDInstance(err); break;
    case NormalForm::kNFKC: n = icu::Normalizer2::getNFKCInstance(err); break;
    case NormalForm::kNFKD: n = icu::Normalizer2::getNFKDInstance(err); break;
  }
  if (err.isFailure() || n == nullptr) {
    return absl::InternalError(absl::StrCat("ICU normalizer unavailable: ", err.errorName()));
  }
  if (n->isNormalizedUTF8(*s, err) && err.isSuccess()) return absl::OkStatus();
  err.reset();
  std::string out;
  out.reserve(s->size() + s->size() / 4);
  icu::StringByteSink<std::string> sink(&out);
  n->normalizeUTF8(0, *s, sink, nullptr, err);
  if (err.isFailure()) {
    return absl::InternalError(absl::StrCat("ICU normalization failed: ", err.errorName()));
  }
  *s = std::move(out);
  return absl::OkStatus();
}

void Lowercase(std::string* s) {
  std::string out;
  out.reserve(s->size());
  size_t i = 0;
  while (i < s->size()) {
    const char32_t c = NextCodePoint(*s, &i);
    if (c == 0x130) {  // the one unconditional multi-char mapping
      out.append("i\xCC\x87");
    } else {
      AppendUtf8(static_cast<char32_t>(u_tolower(static_cast<UChar32>(c))), &out);
    }
  }
  *s = std::move(out);
}

bool IsWhitespace(char32_t c) {
  return u_hasBinaryProperty(static_cast<UChar32>(c), UCHAR_WHITE_SPACE);
}

bool IsAlphanumeric(char32_t c) {
  if (u_hasBinaryProperty(static_cast<UChar32>(c), UCHAR_ALPHABETIC)) return true;
  const int8_t t = u_charType(static_cast<UChar32>(c));
  return t == U_DECIMAL_DIGIT_NUMBER || t == U_LETTER_NUMBER || t == U_OTHER_NUMBER;
}

namespace {
struct ByteTables {
  std::array<char32_t, 256> to_cp{};
  std::array<std::string, 256> to_utf8;
  std::array<int16_t, 324> from_cp{};  // code points < 324 cover the alphabet
  ByteTables() {
    from_cp.fill(-1);
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) ||
                             (b >= 0xAE && b <= 0xFF);
      to_cp[b] = printable ? static_cast<char32_t>(b) : static_cast<char32_t>(256 + n++);
      from_cp[to_cp[b]] = static_cast<int16_t>(b);
      AppendUtf8(to_cp[b], &to_utf8[b]);
    }
  }
};
const ByteTables& Tables() {
  static const ByteTables* t = new ByteTables();
  return *t;
}
}  // namespace

const std::array<char32_t, 256>& ByteToCodePoint() { return Tables().to_cp; }
const std::array<std::string, 256>& ByteToUtf8() { return Tables().to_utf8; }
int CodePointToByte(char32_t c) {
  return c < Tables().from_cp.size() ? Tables().from_cp[c] : -1;
}

}  // namespace expertserve::engine::unicode
