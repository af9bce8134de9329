#include "engine/chat_template/lexer.h"

#include <cctype>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace expertserve::engine::chat_template {
namespace {

bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' ||
         c == '\f';
}

// Jinja normalises every newline to "\n" and drops one trailing newline.
std::string Normalize(absl::string_view source) {
  std::string out;
  out.reserve(source.size());
  for (size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\r') {
      out.push_back('\n');
      if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
    } else {
      out.push_back(source[i]);
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

class Lexer {
 public:
  explicit Lexer(std::string src) : src_(std::move(src)) {}

  absl::StatusOr<std::vector<Token>> Run() {
    bool line_starting = true;  // the previous tag ended a line
    bool strip_next_text = false;
    while (pos_ < src_.size()) {
      size_t tag = FindTagStart(pos_);
      std::string text = src_.substr(pos_, tag - pos_);
      size_t text_pos = pos_;
      if (strip_next_text) {
        size_t n = 0;
        while (n < text.size() && IsSpace(text[n])) ++n;
        text.erase(0, n);
        text_pos += n;
        strip_next_text = false;
      }
      if (tag < src_.size()) {
        char kind = src_[tag + 1];
        char modifier = tag + 2 < src_.size() ? src_[tag + 2] : '\0';
        if (modifier == '-') {
          while (!text.empty() && IsSpace(text.back())) text.pop_back();
        } else if (modifier != '+' && kind != '{') {
          // lstrip_blocks: drop spaces/tabs between a line start and a block.
          size_t line_start = text.rfind('\n');
          line_start = line_start == std::string::npos ? 0 : line_start + 1;
          if (line_start > 0 || line_starting) {
            bool blank = true;
            for (size_t i = line_start; i < text.size(); ++i) {
              if (text[i] != ' ' && text[i] != '\t') blank = false;
            }
            if (blank) text.resize(line_start);
          }
        }
      }
      if (!text.empty()) Emit(TokenKind::kText, std::move(text), text_pos);
      if (tag >= src_.size()) break;
      pos_ = tag;
      bool trim_after = false;
      char kind = src_[tag + 1];
      if (kind == '#') {
        absl::StatusOr<bool> r = LexComment();
        if (!r.ok()) return r.status();
        trim_after = *r;
      } else {
        absl::StatusOr<bool> r = LexTag(kind == '%');
        if (!r.ok()) return r.status();
        trim_after = *r;
      }
      strip_next_text = trim_after;
      // trim_blocks: the first newline after a block or comment goes.
      char closer_kind = src_[pos_ - 2];
      bool block_like = closer_kind == '%' || closer_kind == '#';
      char before_closer = pos_ >= 3 ? src_[pos_ - 3] : '\0';
      if (!trim_after && block_like && before_closer != '+' &&
          pos_ < src_.size() && src_[pos_] == '\n') {
        ++pos_;
        line_starting = true;
      } else {
        line_starting = false;
      }
    }
    Emit(TokenKind::kEof, "", src_.size());
    return std::move(tokens_);
  }

 private:
  size_t FindTagStart(size_t from) const {
    for (size_t i = from; i + 1 < src_.size(); ++i) {
      if (src_[i] == '{' &&
          (src_[i + 1] == '{' || src_[i + 1] == '%' || src_[i + 1] == '#')) {
        return i;
      }
    }
    return src_.size();
  }

  // Offsets arrive mostly in increasing order, so scanning on from the last
  // answer keeps this linear overall.
  SourcePos PosOf(size_t offset) const {
    if (offset < cached_offset_) {
      cached_offset_ = 0;
      cached_pos_ = SourcePos{};
    }
    for (; cached_offset_ < offset && cached_offset_ < src_.size();
         ++cached_offset_) {
      if (src_[cached_offset_] == '\n') {
        ++cached_pos_.line;
        cached_pos_.column = 1;
      } else {
        ++cached_pos_.column;
      }
    }
    return cached_pos_;
  }

  void Emit(TokenKind kind, std::string text, size_t offset) {
    Token t;
    t.kind = kind;
    t.text = std::move(text);
    t.pos = PosOf(offset);
    tokens_.push_back(std::move(t));
  }

  absl::Status Error(size_t offset, absl::string_view what) const {
    return absl::InvalidArgumentError(
        absl::StrCat("chat template: ", FormatPos(PosOf(offset)), ": ", what));
  }

  // Consumes "{# ... #}"; returns whether it ends with "-#}".
  absl::StatusOr<bool> LexComment() {
    size_t end = src_.find("#}", pos_ + 2);
    if (end == std::string::npos) {
      return Error(pos_, "unterminated comment: missing '#}'");
    }
    bool strip = end > pos_ + 2 && src_[end - 1] == '-';
    pos_ = end + 2;
    return strip;
  }

  // Consumes "{{ ... }}" or "{% ... %}"; returns whether it ends with "-".
  absl::StatusOr<bool> LexTag(bool block) {
    size_t open = pos_;
    Emit(block ? TokenKind::kBlockBegin : TokenKind::kVarBegin, "", pos_);
    pos_ += 2;
    if (pos_ < src_.size() && (src_[pos_] == '-' || src_[pos_] == '+')) ++pos_;
    const char closer = block ? '%' : '}';
    int depth = 0;  // brackets opened inside the tag
    while (true) {
      while (pos_ < src_.size() && IsSpace(src_[pos_])) ++pos_;
      if (pos_ >= src_.size()) {
        return Error(open, block ? "unterminated block tag: missing '%}'"
                                 : "unterminated expression: missing '}}'");
      }
      // Closer, optionally with a whitespace modifier.
      size_t p = pos_;
      bool strip = false;
      if ((src_[p] == '-' || src_[p] == '+') && p + 2 < src_.size() + 0 &&
          src_[p + 1] == closer && src_[p + 2] == '}') {
        strip = src_[p] == '-';
        ++p;
      }
      if (depth == 0 && p + 1 < src_.size() && src_[p] == closer &&
          src_[p + 1] == '}') {
        Emit(block ? TokenKind::kBlockEnd : TokenKind::kVarEnd, "", pos_);
        pos_ = p + 2;
        return strip;
      }
      absl::Status s = LexOne(&depth);
      if (!s.ok()) return s;
    }
  }

  absl::Status LexOne(int* depth) {
    size_t start = pos_;
    char c = src_[pos_];
    if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      while (pos_ < src_.size() &&
             (std::isalnum(static_cast<unsigned char>(src_[pos_])) ||
              src_[pos_] == '_')) {
        ++pos_;
      }
      Emit(TokenKind::kName, src_.substr(start, pos_ - start), start);
      return absl::OkStatus();
    }
    if (std::isdigit(static_cast<unsigned char>(c))) return LexNumber();
    if (c == '\'' || c == '"') return LexString();
    static constexpr absl::string_view kOps2[] = {"**", "//", "==", "!=", "<=",
                                                 ">="};
    for (absl::string_view op : kOps2) {
      if (absl::string_view(src_).substr(pos_, 2) == op) {
        pos_ += 2;
        Emit(TokenKind::kOp, std::string(op), start);
        return absl::OkStatus();
      }
    }
    static constexpr absl::string_view kOps1 = "+-*/%~<>=()[]{},.:|";
    if (kOps1.find(c) != absl::string_view::npos) {
      if (c == '(' || c == '[' || c == '{') ++*depth;
      if (c == ')' || c == ']' || c == '}') {
        if (*depth == 0) {
          return Error(start, absl::StrCat("unexpected '", std::string(1, c),
                                           "'"));
        }
        --*depth;
      }
      ++pos_;
      Emit(TokenKind::kOp, std::string(1, c), start);
      return absl::OkStatus();
    }
    std::string shown = (static_cast<unsigned char>(c) < 0x20 ||
                         static_cast<unsigned char>(c) >= 0x7f)
                            ? absl::StrCat("byte 0x", absl::Hex(
                                  static_cast<unsigned char>(c)))
                            : absl::StrCat("'", std::string(1, c), "'");
    return Error(start, absl::StrCat("unexpected character ", shown));
  }

  absl::Status LexNumber() {
    size_t start = pos_;
    std::string digits;
    auto take_digits = [&] {
      while (pos_ < src_.size() &&
             (std::isdigit(static_cast<unsigned char>(src_[pos_])) ||
              src_[pos_] == '_')) {
        if (src_[pos_] != '_') digits.push_back(src_[pos_]);
        ++pos_;
      }
    };
    take_digits();
    bool is_float = false;
    if (pos_ + 1 < src_.size() && src_[pos_] == '.' &&
        std::isdigit(static_cast<unsigned char>(src_[pos_ + 1]))) {
      is_float = true;
      digits.push_back('.');
      ++pos_;
      take_digits();
    }
    if (pos_ < src_.size() && (src_[pos_] == 'e' || src_[pos_] == 'E')) {
      size_t save = pos_;
      std::string save_digits = digits;
      digits.push_back('e');
      ++pos_;
      if (pos_ < src_.size() && (src_[pos_] == '+' || src_[pos_] == '-')) {
        digits.push_back(src_[pos_++]);
      }
      if (pos_ < src_.size() &&
          std::isdigit(static_cast<unsigned char>(src_[pos_]))) {
        is_float = true;
        take_digits();
      } else {
        pos_ = save;
        digits = save_digits;
      }
    }
    Token t;
    t.pos = PosOf(start);
    t.text = digits;
    if (is_float) {
      t.kind = TokenKind::kFloat;
      t.float_value = std::strtod(digits.c_str(), nullptr);
    } else {
      t.kind = TokenKind::kInt;
      if (digits.size() > 18) return Error(start, "integer literal too large");
      t.int_value = std::stoll(digits);
    }
    tokens_.push_back(std::move(t));
    return absl::OkStatus();
  }

  static void AppendUtf8(uint32_t cp, std::string* out) {
    if (cp < 0x80) {
      out->push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
      out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
  }

  // Python string-literal escapes; unknown escapes keep their backslash.
  absl::Status LexString() {
    size_t start = pos_;
    char quote = src_[pos_++];
    std::string out;
    while (true) {
      if (pos_ >= src_.size()) {
        return Error(start, "unterminated string literal");
      }
      char c = src_[pos_++];
      if (c == quote) break;
      if (c != '\\') {
        out.push_back(c);
        continue;
      }
      if (pos_ >= src_.size()) return Error(start, "unterminated string literal");
      char e = src_[pos_++];
      switch (e) {
        case 'n': out.push_back('\n'); break;
        case 't': out.push_back('\t'); break;
        case 'r': out.push_back('\r'); break;
        case 'b': out.push_back('\b'); break;
        case 'f': out.push_back('\f'); break;
        case 'v': out.push_back('\v'); break;
        case 'a': out.push_back('\a'); break;
        case '0': out.push_back('\0'); break;
        case '\\': case '\'': case '"': out.push_back(e); break;
        case '\n': break;  // line continuation
        case 'x': case 'u': case 'U': {
          size_t n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
          if (pos_ + n > src_.size()) return Error(pos_ - 2, "bad \\x/\\u escape");
          uint32_t cp = 0;
          for (size_t i = 0; i < n; ++i) {
            char h = src_[pos_ + i];
            if (!std::isxdigit(static_cast<unsigned char>(h))) {
              return Error(pos_ - 2, "bad \\x/\\u escape");
            }
            cp = cp * 16 + static_cast<uint32_t>(
                               std::isdigit(static_cast<unsigned char>(h))
                                   ? h - '0'
                                   : (std::tolower(h) - 'a' + 10));
          }
          if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
            return Error(pos_ - 2, "escape is not a valid Unicode scalar");
          }
          pos_ += n;
          AppendUtf8(cp, &out);
          break;
        }
        default:
          out.push_back('\\');
          out.push_back(e);
      }
    }
    Emit(TokenKind::kString, std::move(out), start);
    return absl::OkStatus();
  }

  std::string src_;
  size_t pos_ = 0;
  std::vector<Token> tokens_;
  mutable size_t cached_offset_ = 0;
  mutable SourcePos cached_pos_;
};

}  // namespace

std::string FormatPos(SourcePos pos) {
  return absl::StrCat("line ", pos.line, ", column ", pos.column);
}

absl::StatusOr<std::vector<Token>> Tokenize(absl::string_view source) {
  return Lexer(Normalize(source)).Run();
}

}  // namespace expertserve::engine::chat_template
