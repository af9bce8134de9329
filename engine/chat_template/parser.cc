#include "engine/chat_template/parser.h"

#include <initializer_list>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "engine/chat_template/builtins.h"
#include "common/status_macros.h"

namespace expertserve::engine::chat_template {
namespace {

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : toks_(std::move(tokens)) {}

  absl::StatusOr<Body> ParseTemplate() {
    std::string end;
    ES_ASSIGN_OR_RETURN(Body body, ParseBody({}, &end, SourcePos{}));
    return body;
  }

 private:
  // ---- token helpers ------------------------------------------------------
  const Token& Cur() const { return toks_[i_]; }
  const Token& Peek(size_t n = 1) const {
    return toks_[std::min(i_ + n, toks_.size() - 1)];
  }
  void Advance() {
    if (i_ + 1 < toks_.size()) ++i_;
  }
  bool IsOp(absl::string_view op) const {
    return Cur().kind == TokenKind::kOp && Cur().text == op;
  }
  bool IsName(absl::string_view name) const {
    return Cur().kind == TokenKind::kName && Cur().text == name;
  }
  static std::string Describe(const Token& t) {
    switch (t.kind) {
      case TokenKind::kText: return "template text";
      case TokenKind::kBlockBegin: return "'{%'";
      case TokenKind::kBlockEnd: return "'%}'";
      case TokenKind::kVarBegin: return "'{{'";
      case TokenKind::kVarEnd: return "'}}'";
      case TokenKind::kName: return absl::StrCat("'", t.text, "'");
      case TokenKind::kString: return "a string literal";
      case TokenKind::kInt:
      case TokenKind::kFloat: return absl::StrCat("number ", t.text);
      case TokenKind::kOp: return absl::StrCat("'", t.text, "'");
      case TokenKind::kEof: return "end of template";
    }
    return "token";
  }
  absl::Status ErrorAt(SourcePos pos, absl::string_view what) const {
    return absl::InvalidArgumentError(
        absl::StrCat("chat template: ", FormatPos(pos), ": ", what));
  }
  absl::Status Unexpected(absl::string_view expected) const {
    return ErrorAt(Cur().pos, absl::StrCat("expected ", expected, ", got ",
                                           Describe(Cur())));
  }
  absl::Status ExpectOp(absl::string_view op) {
    if (!IsOp(op)) return Unexpected(absl::StrCat("'", op, "'"));
    Advance();
    return absl::OkStatus();
  }
  absl::Status ExpectKind(TokenKind kind, absl::string_view what) {
    if (Cur().kind != kind) return Unexpected(what);
    Advance();
    return absl::OkStatus();
  }
  absl::StatusOr<std::string> ExpectName() {
    if (Cur().kind != TokenKind::kName) return Unexpected("a name");
    std::string n = Cur().text;
    Advance();
    return n;
  }
  absl::Status BlockEnd() { return ExpectKind(TokenKind::kBlockEnd, "'%}'"); }

  // Guards recursion depth for the lifetime of one nested parse.
  struct DepthGuard {
    explicit DepthGuard(int* d) : depth(d) { ++*depth; }
    ~DepthGuard() { --*depth; }
    int* depth;
  };
  absl::Status CheckDepth() const {
    if (depth_ > kMaxParseDepth) {
      return ErrorAt(Cur().pos, absl::StrCat("nesting deeper than ",
                                             kMaxParseDepth, " levels"));
    }
    return absl::OkStatus();
  }

  static ExprPtr MakeExpr(Expr::Kind kind, SourcePos pos) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->pos = pos;
    return e;
  }

  // ---- statements ---------------------------------------------------------
  // Parses nodes until a `{% <one of end_tags> %}`; leaves the cursor on the
  // end tag's name and stores it in *end. `opened` is where the block began.
  absl::StatusOr<Body> ParseBody(std::initializer_list<absl::string_view> end_tags,
                                 std::string* end, SourcePos opened) {
    DepthGuard guard(&depth_);
    ES_RETURN_IF_ERROR(CheckDepth());
    Body body;
    while (true) {
      const Token& t = Cur();
      if (t.kind == TokenKind::kEof) {
        if (end_tags.size() == 0) return body;
        return ErrorAt(opened, absl::StrCat("block is never closed: expected '{% ",
                                            *(end_tags.end() - 1),
                                            " %}' before the end of the template"));
      }
      if (t.kind == TokenKind::kText) {
        auto n = std::make_unique<Node>();
        n->kind = Node::Kind::kText;
        n->pos = t.pos;
        n->text = t.text;
        body.push_back(std::move(n));
        Advance();
        continue;
      }
      if (t.kind == TokenKind::kVarBegin) {
        auto n = std::make_unique<Node>();
        n->kind = Node::Kind::kOutput;
        n->pos = t.pos;
        Advance();
        ES_ASSIGN_OR_RETURN(n->expr, ParseTupleExpr(/*allow_cond=*/true));
        ES_RETURN_IF_ERROR(ExpectKind(TokenKind::kVarEnd, "'}}'"));
        body.push_back(std::move(n));
        continue;
      }
      if (t.kind != TokenKind::kBlockBegin) return Unexpected("template text or a tag");
      SourcePos tag_pos = t.pos;
      Advance();
      if (Cur().kind != TokenKind::kName) return Unexpected("a tag name");
      for (absl::string_view e : end_tags) {
        if (Cur().text == e) {
          *end = Cur().text;
          return body;
        }
      }
      ES_ASSIGN_OR_RETURN(NodePtr node, ParseStatement(tag_pos));
      body.push_back(std::move(node));
    }
  }

  absl::StatusOr<NodePtr> ParseStatement(SourcePos pos) {
    std::string tag = Cur().text;
    SourcePos name_pos = Cur().pos;
    Advance();
    auto n = std::make_unique<Node>();
    n->pos = pos;
    if (tag == "if") return ParseIf(std::move(n));
    if (tag == "for") return ParseFor(std::move(n));
    if (tag == "set") return ParseSet(std::move(n));
    if (tag == "macro") return ParseMacro(std::move(n));
    if (tag == "break" || tag == "continue") {
      n->kind = tag == "break" ? Node::Kind::kBreak : Node::Kind::kContinue;
      ES_RETURN_IF_ERROR(BlockEnd());
      return n;
    }
    if (tag == "generation") {
      // transformers' AssistantTracker tag: renders its body unchanged.
      ES_RETURN_IF_ERROR(BlockEnd());
      std::string end;
      ES_ASSIGN_OR_RETURN(Body body, ParseBody({"endgeneration"}, &end, pos));
      Advance();
      ES_RETURN_IF_ERROR(BlockEnd());
      n->kind = Node::Kind::kIf;
      n->branches.emplace_back(nullptr, std::move(body));
      return n;
    }
    static constexpr absl::string_view kEndTags[] = {
        "endif", "endfor", "endset", "endmacro", "elif", "else",
        "endgeneration"};
    for (absl::string_view e : kEndTags) {
      if (tag == e) {
        return ErrorAt(name_pos, absl::StrCat("unexpected '{% ", tag,
                                              " %}' with no open block it closes"));
      }
    }
    static constexpr absl::string_view kUnsupported[] = {
        "call", "filter", "raw", "include", "import", "from", "extends",
        "block", "with", "do", "autoescape", "trans"};
    for (absl::string_view u : kUnsupported) {
      if (tag == u) {
        return ErrorAt(name_pos, absl::StrCat("the '{% ", tag,
                                              " %}' tag is not supported"));
      }
    }
    return ErrorAt(name_pos, absl::StrCat("unknown tag '", tag, "'"));
  }

  absl::StatusOr<NodePtr> ParseIf(NodePtr n) {
    n->kind = Node::Kind::kIf;
    std::string end = "if";
    while (end == "if" || end == "elif") {
      ES_ASSIGN_OR_RETURN(ExprPtr cond, ParseTupleExpr(true));
      ES_RETURN_IF_ERROR(BlockEnd());
      ES_ASSIGN_OR_RETURN(Body body,
                          ParseBody({"elif", "else", "endif"}, &end, n->pos));
      Advance();
      n->branches.emplace_back(std::move(cond), std::move(body));
    }
    if (end == "else") {
      ES_RETURN_IF_ERROR(BlockEnd());
      ES_ASSIGN_OR_RETURN(n->else_body, ParseBody({"endif"}, &end, n->pos));
      Advance();
    }
    ES_RETURN_IF_ERROR(BlockEnd());
    return n;
  }

  absl::StatusOr<NodePtr> ParseFor(NodePtr n) {
    n->kind = Node::Kind::kFor;
    ES_ASSIGN_OR_RETURN(std::string target, ExpectName());
    n->targets.push_back(target);
    while (IsOp(",")) {
      Advance();
      ES_ASSIGN_OR_RETURN(target, ExpectName());
      n->targets.push_back(target);
    }
    if (!IsName("in")) return Unexpected("'in'");
    Advance();
    ES_ASSIGN_OR_RETURN(n->expr, ParseTupleExpr(/*allow_cond=*/false));
    if (IsName("if")) {
      Advance();
      ES_ASSIGN_OR_RETURN(n->filter, ParseExpr(true));
    }
    if (IsName("recursive")) {
      return ErrorAt(Cur().pos, "recursive for loops are not supported");
    }
    ES_RETURN_IF_ERROR(BlockEnd());
    std::string end;
    ES_ASSIGN_OR_RETURN(n->body, ParseBody({"else", "endfor"}, &end, n->pos));
    Advance();
    if (end == "else") {
      ES_RETURN_IF_ERROR(BlockEnd());
      ES_ASSIGN_OR_RETURN(n->else_body, ParseBody({"endfor"}, &end, n->pos));
      Advance();
    }
    ES_RETURN_IF_ERROR(BlockEnd());
    return n;
  }

  absl::StatusOr<NodePtr> ParseSet(NodePtr n) {
    n->kind = Node::Kind::kSet;
    ES_ASSIGN_OR_RETURN(std::string target, ExpectName());
    n->targets.push_back(target);
    if (IsOp(".")) {
      Advance();
      ES_ASSIGN_OR_RETURN(n->text, ExpectName());
    } else {
      while (IsOp(",")) {
        Advance();
        ES_ASSIGN_OR_RETURN(target, ExpectName());
        n->targets.push_back(target);
      }
    }
    if (Cur().kind == TokenKind::kBlockEnd && n->targets.size() == 1 &&
        n->text.empty()) {
      n->kind = Node::Kind::kSetBlock;
      Advance();
      std::string end;
      ES_ASSIGN_OR_RETURN(n->body, ParseBody({"endset"}, &end, n->pos));
      Advance();
      ES_RETURN_IF_ERROR(BlockEnd());
      return n;
    }
    ES_RETURN_IF_ERROR(ExpectOp("="));
    ES_ASSIGN_OR_RETURN(n->expr, ParseTupleExpr(true));
    ES_RETURN_IF_ERROR(BlockEnd());
    return n;
  }

  absl::StatusOr<NodePtr> ParseMacro(NodePtr n) {
    n->kind = Node::Kind::kMacro;
    ES_ASSIGN_OR_RETURN(n->text, ExpectName());
    ES_RETURN_IF_ERROR(ExpectOp("("));
    while (!IsOp(")")) {
      ES_ASSIGN_OR_RETURN(std::string param, ExpectName());
      ExprPtr def;
      if (IsOp("=")) {
        Advance();
        ES_ASSIGN_OR_RETURN(def, ParseExpr(true));
      }
      n->params.emplace_back(std::move(param), std::move(def));
      if (!IsOp(",")) break;
      Advance();
    }
    ES_RETURN_IF_ERROR(ExpectOp(")"));
    ES_RETURN_IF_ERROR(BlockEnd());
    std::string end;
    ES_ASSIGN_OR_RETURN(n->body, ParseBody({"endmacro"}, &end, n->pos));
    Advance();
    ES_RETURN_IF_ERROR(BlockEnd());
    return n;
  }

  // ---- expressions --------------------------------------------------------
  // `a, b` without brackets is a tuple (e.g. `{% set x = 1, 2 %}`).
  absl::StatusOr<ExprPtr> ParseTupleExpr(bool allow_cond) {
    SourcePos pos = Cur().pos;
    ES_ASSIGN_OR_RETURN(ExprPtr first, ParseExpr(allow_cond));
    if (!IsOp(",")) return first;
    ExprPtr tuple = MakeExpr(Expr::Kind::kTuple, pos);
    tuple->args.push_back(std::move(first));
    while (IsOp(",")) {
      Advance();
      if (Cur().kind == TokenKind::kBlockEnd || Cur().kind == TokenKind::kVarEnd) {
        break;
      }
      ES_ASSIGN_OR_RETURN(ExprPtr e, ParseExpr(allow_cond));
      tuple->args.push_back(std::move(e));
    }
    return tuple;
  }

  absl::StatusOr<ExprPtr> ParseExpr(bool allow_cond) {
    DepthGuard guard(&depth_);
    ES_RETURN_IF_ERROR(CheckDepth());
    SourcePos pos = Cur().pos;
    ES_ASSIGN_OR_RETURN(ExprPtr e, ParseOr());
    while (allow_cond && IsName("if")) {
      Advance();
      ExprPtr cond = MakeExpr(Expr::Kind::kCond, pos);
      cond->args.push_back(std::move(e));
      ES_ASSIGN_OR_RETURN(ExprPtr test, ParseOr());
      cond->args.push_back(std::move(test));
      ExprPtr otherwise;
      if (IsName("else")) {
        Advance();
        ES_ASSIGN_OR_RETURN(otherwise, ParseExpr(true));
      }
      cond->args.push_back(std::move(otherwise));
      e = std::move(cond);
    }
    return e;
  }

  ExprPtr Binary(std::string op, ExprPtr lhs, ExprPtr rhs, SourcePos pos) {
    ExprPtr e = MakeExpr(Expr::Kind::kBinary, pos);
    e->name = std::move(op);
    e->args.push_back(std::move(lhs));
    e->args.push_back(std::move(rhs));
    return e;
  }

  absl::StatusOr<ExprPtr> ParseOr() {
    ES_ASSIGN_OR_RETURN(ExprPtr e, ParseAnd());
    while (IsName("or")) {
      SourcePos pos = Cur().pos;
      Advance();
      ES_ASSIGN_OR_RETURN(ExprPtr rhs, ParseAnd());
      e = Binary("or", std::move(e), std::move(rhs), pos);
    }
    return e;
  }

  absl::StatusOr<ExprPtr> ParseAnd() {
    ES_ASSIGN_OR_RETURN(ExprPtr e, ParseNot());
    while (IsName("and")) {
      SourcePos pos = Cur().pos;
      Advance();
      ES_ASSIGN_OR_RETURN(ExprPtr rhs, ParseNot());
      e = Binary("and", std::move(e), std::move(rhs), pos);
    }
    return e;
  }

  absl::StatusOr<ExprPtr> ParseNot() {
    if (IsName("not")) {
      DepthGuard guard(&depth_);
      ES_RETURN_IF_ERROR(CheckDepth());
      ExprPtr e = MakeExpr(Expr::Kind::kUnary, Cur().pos);
      e->name = "not";
      Advance();
      ES_ASSIGN_OR_RETURN(ExprPtr operand, ParseNot());
      e->args.push_back(std::move(operand));
      return e;
    }
    return ParseCompare();
  }

  absl::StatusOr<ExprPtr> ParseCompare() {
    ES_ASSIGN_OR_RETURN(ExprPtr e, ParseMath1());
    bool compared = false;
    while (true) {
      SourcePos pos = Cur().pos;
      std::string op;
      if (Cur().kind == TokenKind::kOp &&
          (Cur().text == "==" || Cur().text == "!=" || Cur().text == "<" ||
           Cur().text == ">" || Cur().text == "<=" || Cur().text == ">=")) {
        op = Cur().text;
        Advance();
      } else if (IsName("in")) {
        op = "in";
        Advance();
      } else if (IsName("not") && Peek().kind == TokenKind::kName &&
                 Peek().text == "in") {
        op = "not in";
        Advance();
        Advance();
      } else {
        return e;
      }
      if (compared) {
        return ErrorAt(pos, "chained comparisons (a < b < c) are not supported");
      }
      compared = true;
      ES_ASSIGN_OR_RETURN(ExprPtr rhs, ParseMath1());
      e = Binary(op, std::move(e), std::move(rhs), pos);
    }
  }

  absl::StatusOr<ExprPtr> ParseMath1() {
    ES_ASSIGN_OR_RETURN(ExprPtr e, ParseConcat());
    while (IsOp("+") || IsOp("-")) {
      SourcePos pos = Cur().pos;
      std::string op = Cur().text;
      Advance();
      ES_ASSIGN_OR_RETURN(ExprPtr rhs, ParseConcat());
      e = Binary(op, std::move(e), std::move(rhs), pos);
    }
    return e;
  }

  absl::StatusOr<ExprPtr> ParseConcat() {
    ES_ASSIGN_OR_RETURN(ExprPtr e, ParseMath2());
    while (IsOp("~")) {
      SourcePos pos = Cur().pos;
      Advance();
      ES_ASSIGN_OR_RETURN(ExprPtr rhs, ParseMath2());
      e = Binary("~", std::move(e), std::move(rhs), pos);
    }
    return e;
  }

  absl::StatusOr<ExprPtr> ParseMath2() {
    ES_ASSIGN_OR_RETURN(ExprPtr e, ParsePow());
    while (IsOp("*") || IsOp("/") || IsOp("//") || IsOp("%")) {
      SourcePos pos = Cur().pos;
      std::string op = Cur().text;
      Advance();
      ES_ASSIGN_OR_RETURN(ExprPtr rhs, ParsePow());
      e = Binary(op, std::move(e), std::move(rhs), pos);
    }
    return e;
  }

  absl::StatusOr<ExprPtr> ParsePow() {
    ES_ASSIGN_OR_RETURN(ExprPtr e, ParseUnary(true));
    while (IsOp("**")) {
      SourcePos pos = Cur().pos;
      Advance();
      ES_ASSIGN_OR_RETURN(ExprPtr rhs, ParseUnary(true));
      e = Binary("**", std::move(e), std::move(rhs), pos);
    }
    return e;
  }

  absl::StatusOr<ExprPtr> ParseUnary(bool with_filter) {
    DepthGuard guard(&depth_);
    ES_RETURN_IF_ERROR(CheckDepth());
    ExprPtr e;
    if (IsOp("-") || IsOp("+")) {
      e = MakeExpr(Expr::Kind::kUnary, Cur().pos);
      e->name = Cur().text;
      Advance();
      ES_ASSIGN_OR_RETURN(ExprPtr operand, ParseUnary(false));
      e->args.push_back(std::move(operand));
    } else {
      ES_ASSIGN_OR_RETURN(e, ParsePrimary());
      ES_ASSIGN_OR_RETURN(e, ParsePostfix(std::move(e)));
    }
    if (with_filter) return ParseFilterAndTest(std::move(e));
    return e;
  }

  absl::StatusOr<ExprPtr> ParsePrimary() {
    const Token& t = Cur();
    SourcePos pos = t.pos;
    switch (t.kind) {
      case TokenKind::kName: {
        ExprPtr e = MakeExpr(Expr::Kind::kLiteral, pos);
        if (t.text == "true" || t.text == "True") {
          e->literal = Value(true);
        } else if (t.text == "false" || t.text == "False") {
          e->literal = Value(false);
        } else if (t.text == "none" || t.text == "None") {
          e->literal = Value(None{});
        } else {
          e->kind = Expr::Kind::kName;
          e->name = t.text;
        }
        Advance();
        return e;
      }
      case TokenKind::kString: {
        std::string s;
        while (Cur().kind == TokenKind::kString) {  // "a" "b" concatenates
          s += Cur().text;
          Advance();
        }
        ExprPtr e = MakeExpr(Expr::Kind::kLiteral, pos);
        e->literal = Value(std::move(s));
        return e;
      }
      case TokenKind::kInt:
      case TokenKind::kFloat: {
        ExprPtr e = MakeExpr(Expr::Kind::kLiteral, pos);
        e->literal = t.kind == TokenKind::kInt ? Value(t.int_value)
                                               : Value(t.float_value);
        Advance();
        return e;
      }
      case TokenKind::kOp:
        if (t.text == "(") {
          Advance();
          if (IsOp(")")) {
            Advance();
            return MakeExpr(Expr::Kind::kTuple, pos);
          }
          ES_ASSIGN_OR_RETURN(ExprPtr e, ParseTupleExpr(true));
          ES_RETURN_IF_ERROR(ExpectOp(")"));
          return e;
        }
        if (t.text == "[") {
          Advance();
          ExprPtr e = MakeExpr(Expr::Kind::kList, pos);
          while (!IsOp("]")) {
            ES_ASSIGN_OR_RETURN(ExprPtr item, ParseExpr(true));
            e->args.push_back(std::move(item));
            if (!IsOp(",")) break;
            Advance();
          }
          ES_RETURN_IF_ERROR(ExpectOp("]"));
          return e;
        }
        if (t.text == "{") {
          Advance();
          ExprPtr e = MakeExpr(Expr::Kind::kDict, pos);
          while (!IsOp("}")) {
            ES_ASSIGN_OR_RETURN(ExprPtr key, ParseExpr(true));
            ES_RETURN_IF_ERROR(ExpectOp(":"));
            ES_ASSIGN_OR_RETURN(ExprPtr value, ParseExpr(true));
            e->args.push_back(std::move(key));
            e->args.push_back(std::move(value));
            if (!IsOp(",")) break;
            Advance();
          }
          ES_RETURN_IF_ERROR(ExpectOp("}"));
          return e;
        }
        break;
      default:
        break;
    }
    return Unexpected("an expression");
  }

  absl::Status ParseCallArgs(Expr* e) {
    ES_RETURN_IF_ERROR(ExpectOp("("));
    while (!IsOp(")")) {
      if (Cur().kind == TokenKind::kName && Peek().kind == TokenKind::kOp &&
          Peek().text == "=") {
        std::string key = Cur().text;
        Advance();
        Advance();
        ES_ASSIGN_OR_RETURN(ExprPtr v, ParseExpr(true));
        e->kwargs.emplace_back(std::move(key), std::move(v));
      } else {
        if (!e->kwargs.empty()) {
          return ErrorAt(Cur().pos, "positional argument after keyword argument");
        }
        ES_ASSIGN_OR_RETURN(ExprPtr v, ParseExpr(true));
        e->args.push_back(std::move(v));
      }
      if (!IsOp(",")) break;
      Advance();
    }
    return ExpectOp(")");
  }

  absl::StatusOr<ExprPtr> ParsePostfix(ExprPtr e) {
    while (true) {
      SourcePos pos = Cur().pos;
      if (IsOp(".")) {
        Advance();
        if (Cur().kind == TokenKind::kInt) {  // foo.0 is foo[0]
          ExprPtr item = MakeExpr(Expr::Kind::kItem, pos);
          ExprPtr index = MakeExpr(Expr::Kind::kLiteral, Cur().pos);
          index->literal = Value(Cur().int_value);
          Advance();
          item->args.push_back(std::move(e));
          item->args.push_back(std::move(index));
          e = std::move(item);
          continue;
        }
        ExprPtr attr = MakeExpr(Expr::Kind::kAttr, pos);
        ES_ASSIGN_OR_RETURN(attr->name, ExpectName());
        attr->args.push_back(std::move(e));
        e = std::move(attr);
      } else if (IsOp("[")) {
        Advance();
        ES_ASSIGN_OR_RETURN(e, ParseSubscript(std::move(e), pos));
      } else if (IsOp("(")) {
        ExprPtr call = MakeExpr(Expr::Kind::kCall, pos);
        call->args.push_back(std::move(e));
        ES_RETURN_IF_ERROR(ParseCallArgs(call.get()));
        e = std::move(call);
      } else {
        return e;
      }
    }
  }

  // After '[': an index `x[i]` or a slice `x[a:b:c]`.
  absl::StatusOr<ExprPtr> ParseSubscript(ExprPtr obj, SourcePos pos) {
    ExprPtr parts[3];
    int part = 0;
    bool is_slice = false;
    while (true) {
      if (IsOp("]")) break;
      if (IsOp(":")) {
        is_slice = true;
        if (++part > 2) return ErrorAt(Cur().pos, "too many ':' in slice");
        Advance();
        continue;
      }
      if (parts[part]) return Unexpected("':' or ']'");
      ES_ASSIGN_OR_RETURN(parts[part], ParseExpr(true));
    }
    ES_RETURN_IF_ERROR(ExpectOp("]"));
    if (!is_slice) {
      if (!parts[0]) return ErrorAt(pos, "empty subscript");
      ExprPtr item = MakeExpr(Expr::Kind::kItem, pos);
      item->args.push_back(std::move(obj));
      item->args.push_back(std::move(parts[0]));
      return item;
    }
    ExprPtr slice = MakeExpr(Expr::Kind::kSlice, pos);
    slice->args.push_back(std::move(obj));
    for (ExprPtr& p : parts) slice->args.push_back(std::move(p));
    return slice;
  }

  absl::StatusOr<ExprPtr> ParseFilterAndTest(ExprPtr e) {
    while (true) {
      if (IsOp("|")) {
        Advance();
        SourcePos pos = Cur().pos;
        ES_ASSIGN_OR_RETURN(std::string name, ExpectName());
        if (!IsKnownFilter(name)) {
          return ErrorAt(pos, absl::StrCat("unknown filter '", name, "'"));
        }
        ExprPtr f = MakeExpr(Expr::Kind::kFilter, pos);
        f->name = std::move(name);
        f->args.push_back(std::move(e));
        if (IsOp("(")) ES_RETURN_IF_ERROR(ParseCallArgs(f.get()));
        e = std::move(f);
      } else if (IsName("is")) {
        Advance();
        bool negated = false;
        if (IsName("not")) {
          negated = true;
          Advance();
        }
        SourcePos pos = Cur().pos;
        ES_ASSIGN_OR_RETURN(std::string name, ExpectName());
        if (!IsKnownTest(name)) {
          return ErrorAt(pos, absl::StrCat("unknown test '", name, "'"));
        }
        ExprPtr t = MakeExpr(Expr::Kind::kTest, pos);
        t->name = std::move(name);
        t->negated = negated;
        t->args.push_back(std::move(e));
        const Token& c = Cur();
        if (IsOp("(")) {
          ES_RETURN_IF_ERROR(ParseCallArgs(t.get()));
        } else if ((c.kind == TokenKind::kName && c.text != "else" &&
                    c.text != "or" && c.text != "and") ||
                   c.kind == TokenKind::kString || c.kind == TokenKind::kInt ||
                   c.kind == TokenKind::kFloat || IsOp("[") || IsOp("{")) {
          // Jinja allows one bare argument: `x is divisibleby 3`.
          ES_ASSIGN_OR_RETURN(ExprPtr arg, ParsePrimary());
          ES_ASSIGN_OR_RETURN(arg, ParsePostfix(std::move(arg)));
          t->args.push_back(std::move(arg));
        }
        e = std::move(t);
      } else {
        return e;
      }
    }
  }

  std::vector<Token> toks_;
  size_t i_ = 0;
  int depth_ = 0;
};

}  // namespace

absl::StatusOr<Body> Parse(absl::string_view source) {
  ES_ASSIGN_OR_RETURN(std::vector<Token> tokens, Tokenize(source));
  return Parser(std::move(tokens)).ParseTemplate();
}

}  // namespace expertserve::engine::chat_template
