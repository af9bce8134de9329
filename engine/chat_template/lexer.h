// Splits a Jinja template into text and tag tokens, applying whitespace
// control the way Hugging Face configures Jinja (trim_blocks=True,
// lstrip_blocks=True, keep_trailing_newline=False) and the `-`/`+` modifiers.
#ifndef EXPERTSERVE_ENGINE_CHAT_TEMPLATE_LEXER_H_
#define EXPERTSERVE_ENGINE_CHAT_TEMPLATE_LEXER_H_

#include <cstdint>
#include <string>
#include "absl/strings/string_view.h"
#include <vector>

#include "absl/status/statusor.h"

namespace expertserve::engine::chat_template {

struct SourcePos {
  int line = 1;    // 1-based
  int column = 1;  // 1-based, in bytes
};

enum class TokenKind {
  kText,        // literal output between tags
  kBlockBegin,  // {%
  kBlockEnd,    // %}
  kVarBegin,    // {{
  kVarEnd,      // }}
  kName,        // identifier or keyword
  kString,      // string literal, escapes already decoded
  kInt,
  kFloat,
  kOp,          // operator or punctuation, e.g. "==", "(", "|"
  kEof,
};

struct Token {
  TokenKind kind;
  std::string text;  // decoded text / identifier / operator
  SourcePos pos;
  int64_t int_value = 0;
  double float_value = 0;
};

// Returns the token stream ending with kEof, or kInvalidArgument naming the
// line and column of the first lexical error.
absl::StatusOr<std::vector<Token>> Tokenize(absl::string_view source);

// "line L, column C" for error messages.
std::string FormatPos(SourcePos pos);

}  // namespace expertserve::engine::chat_template

#endif  // EXPERTSERVE_ENGINE_CHAT_TEMPLATE_LEXER_H_
