// Abstract syntax tree of a parsed chat template. Immutable after parsing, so
// one tree may be rendered from many threads at once.
#ifndef EXPERTSERVE_ENGINE_CHAT_TEMPLATE_AST_H_
#define EXPERTSERVE_ENGINE_CHAT_TEMPLATE_AST_H_

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/chat_template/lexer.h"
#include "engine/chat_template/value.h"

namespace expertserve::engine::chat_template {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  enum class Kind {
    kLiteral,  // literal: scalar constant
    kName,     // name
    kList,     // args: elements
    kTuple,    // args: elements (a tuple behaves as a list at run time)
    kDict,     // kwargs: key expression in args[2i], value in args[2i+1]
    kAttr,     // args[0].name
    kItem,     // args[0][args[1]]
    kSlice,    // args[0][args[1]:args[2]:args[3]], missing parts null
    kCall,     // args[0](args[1..], kwargs)
    kFilter,   // args[0] | name(args[1..], kwargs)
    kTest,     // args[0] is [not] name(args[1..])
    kUnary,    // name ("-", "+", "not") args[0]
    kBinary,   // args[0] name args[1]; name is the operator
    kCond,     // args[0] if args[1] else args[2] (args[2] may be null)
  };
  Kind kind;
  SourcePos pos;
  Value literal;
  std::string name;
  std::vector<ExprPtr> args;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  bool negated = false;  // kTest: "is not"
};

struct Node;
using NodePtr = std::unique_ptr<Node>;
using Body = std::vector<NodePtr>;

struct Node {
  enum class Kind {
    kText,      // text
    kOutput,    // {{ expr }}
    kIf,        // branches (condition, body), else_body
    kFor,       // targets in expr [if filter] body [else else_body]
    kSet,       // targets (or targets[0].attr) = expr
    kSetBlock,  // {% set targets[0] %} body {% endset %}
    kMacro,     // name(params) body
    kBreak,
    kContinue,
  };
  Kind kind;
  SourcePos pos;
  std::string text;  // kText; kMacro name; kSet attribute
  ExprPtr expr;      // kOutput, kFor iterable, kSet value
  ExprPtr filter;    // kFor: optional inline `if`
  std::vector<std::string> targets;
  std::vector<std::pair<std::string, ExprPtr>> params;  // kMacro defaults
  std::vector<std::pair<ExprPtr, Body>> branches;       // kIf
  Body body;
  Body else_body;
};

}  // namespace expertserve::engine::chat_template

#endif  // EXPERTSERVE_ENGINE_CHAT_TEMPLATE_AST_H_
