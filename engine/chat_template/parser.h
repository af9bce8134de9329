// Recursive-descent parser from tokens to the AST, with Jinja's operator
// precedence. Unknown tags, filters and tests are parse errors with a position.
#ifndef EXPERTSERVE_ENGINE_CHAT_TEMPLATE_PARSER_H_
#define EXPERTSERVE_ENGINE_CHAT_TEMPLATE_PARSER_H_

#include "absl/strings/string_view.h"

#include "absl/status/statusor.h"
#include "engine/chat_template/ast.h"

namespace expertserve::engine::chat_template {

// Nesting depth (blocks plus expression parentheses) beyond which parsing
// fails, so hostile templates cannot overflow the stack.
inline constexpr int kMaxParseDepth = 64;

absl::StatusOr<Body> Parse(absl::string_view source);

}  // namespace expertserve::engine::chat_template

#endif  // EXPERTSERVE_ENGINE_CHAT_TEMPLATE_PARSER_H_
