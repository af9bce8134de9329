// Walks the AST and renders output. One Evaluator per Render call; it owns all
// mutable render state, so a shared AST is never written.
#ifndef EXPERTSERVE_ENGINE_CHAT_TEMPLATE_EVALUATOR_H_
#define EXPERTSERVE_ENGINE_CHAT_TEMPLATE_EVALUATOR_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/chat_template/ast.h"
#include "engine/chat_template/builtins.h"
#include "engine/chat_template/value.h"

namespace expertserve::engine::chat_template {

// Renders `body` with the given top-level variables (globals are added).
// Errors are kInvalidArgument with a line/column, except raise_exception()
// whose message passes through unchanged.
absl::StatusOr<std::string> Evaluate(
    const Body& body, std::vector<std::pair<std::string, Value>> variables,
    const RenderLimits& limits);

}  // namespace expertserve::engine::chat_template

#endif  // EXPERTSERVE_ENGINE_CHAT_TEMPLATE_EVALUATOR_H_
