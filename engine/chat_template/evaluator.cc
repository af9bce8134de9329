#include "engine/chat_template/evaluator.h"

#include <cmath>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace expertserve::engine::chat_template {
namespace {

enum class Flow { kNormal, kBreak, kContinue };

using Scope = absl::flat_hash_map<std::string, Value>;

constexpr int kMaxValueDepth = 64;

class Evaluator {
 public:
  Evaluator(std::vector<std::pair<std::string, Value>> variables,
            const RenderLimits& limits)
      : limits_(limits) {
    scopes_.emplace_back();
    for (auto& [k, v] : MakeGlobals(limits_)) scopes_.back()[k] = std::move(v);
    for (auto& [k, v] : variables) scopes_.back()[k] = std::move(v);
    scopes_.emplace_back();  // template-level `set`s
  }

  absl::StatusOr<std::string> Run(const Body& body) {
    std::string out;
    ES_ASSIGN_OR_RETURN(Flow flow, Exec(body, &out));
    (void)flow;
    return out;
  }

 private:
  // Adds the position to an error from a builtin; raise_exception passes.
  static absl::Status At(SourcePos pos, const absl::Status& s) {
    if (s.ok() || s.GetPayload(kRaisePayload).has_value()) return s;
    if (absl::StartsWith(s.message(), "chat template: ")) return s;
    return absl::Status(s.code(), absl::StrCat("chat template: ", FormatPos(pos),
                                               ": ", s.message()));
  }
  static absl::Status Fail(SourcePos pos, absl::string_view msg) {
    return At(pos, absl::InvalidArgumentError(msg));
  }
  absl::Status CheckSize(SourcePos pos, size_t bytes) const {
    if (bytes > limits_.max_output_bytes) {
      return Fail(pos, absl::StrCat("output exceeds ", limits_.max_output_bytes,
                                    " bytes"));
    }
    return absl::OkStatus();
  }

  Value Lookup(const std::string& name) const {
    for (auto it = scopes_.rbegin(); it != scopes_.rend(); ++it) {
      auto found = it->find(name);
      if (found != it->end()) return found->second;
    }
    return Value::MakeUndefined(absl::StrCat("'", name, "' is undefined"));
  }

  // ---- statements -----------------------------------------------------------
  absl::StatusOr<Flow> Exec(const Body& body, std::string* out) {
    for (const NodePtr& n : body) {
      ES_ASSIGN_OR_RETURN(Flow flow, ExecNode(*n, out));
      if (flow != Flow::kNormal) return flow;
    }
    return Flow::kNormal;
  }

  absl::StatusOr<Flow> ExecNode(const Node& n, std::string* out) {
    switch (n.kind) {
      case Node::Kind::kText:
        out->append(n.text);
        ES_RETURN_IF_ERROR(CheckSize(n.pos, out->size()));
        return Flow::kNormal;
      case Node::Kind::kOutput: {
        ES_ASSIGN_OR_RETURN(Value v, Eval(*n.expr));
        out->append(v.Str(limits_.max_output_bytes));
        ES_RETURN_IF_ERROR(CheckSize(n.pos, out->size()));
        return Flow::kNormal;
      }
      case Node::Kind::kIf:
        for (const auto& [cond, body] : n.branches) {
          bool take = true;
          if (cond) {
            ES_ASSIGN_OR_RETURN(Value c, Eval(*cond));
            take = c.Truthy();
          }
          if (take) return Exec(body, out);
        }
        return Exec(n.else_body, out);
      case Node::Kind::kFor:
        return ExecFor(n, out);
      case Node::Kind::kSet: {
        ES_ASSIGN_OR_RETURN(Value v, Eval(*n.expr));
        return Assign(n, std::move(v));
      }
      case Node::Kind::kSetBlock: {
        std::string captured;
        ES_ASSIGN_OR_RETURN(Flow flow, Exec(n.body, &captured));
        (void)flow;
        ES_RETURN_IF_ERROR(Assign(n, Value(std::move(captured))).status());
        return Flow::kNormal;
      }
      case Node::Kind::kMacro:
        scopes_.back()[n.text] = MakeMacro(n);
        return Flow::kNormal;
      case Node::Kind::kBreak:
      case Node::Kind::kContinue:
        if (loop_depth_ == 0) {
          return Fail(n.pos, "'break'/'continue' outside a for loop");
        }
        return n.kind == Node::Kind::kBreak ? Flow::kBreak : Flow::kContinue;
    }
    return Flow::kNormal;
  }

  absl::StatusOr<Flow> Assign(const Node& n, Value v) {
    if (!n.text.empty() && n.kind == Node::Kind::kSet) {
      Value target = Lookup(n.targets[0]);
      if (!target.is_dict() || !target.as_dict().is_namespace) {
        return Fail(n.pos, absl::StrCat("cannot assign attribute on '",
                                        n.targets[0],
                                        "': only namespace() objects support "
                                        "`set obj.attr`"));
      }
      // Only namespace attributes carry values from one loop iteration to
      // the next, so bounding their depth bounds every value's nesting.
      if (NestingDepth(v, kMaxValueDepth) > kMaxValueDepth) {
        return Fail(n.pos, absl::StrCat("value nested deeper than ",
                                        kMaxValueDepth, " levels"));
      }
      target.mutable_dict().Set(n.text, std::move(v));
      return Flow::kNormal;
    }
    if (n.targets.size() == 1) {
      scopes_.back()[n.targets[0]] = std::move(v);
      return Flow::kNormal;
    }
    absl::StatusOr<std::vector<Value>> items = Iterate(v);
    if (!items.ok()) return At(n.pos, items.status());
    if (items->size() != n.targets.size()) {
      return Fail(n.pos, absl::StrCat("cannot unpack ", items->size(),
                                      " values into ", n.targets.size(),
                                      " names"));
    }
    for (size_t i = 0; i < items->size(); ++i) {
      scopes_.back()[n.targets[i]] = (*items)[i];
    }
    return Flow::kNormal;
  }

  absl::StatusOr<Flow> ExecFor(const Node& n, std::string* out) {
    ES_ASSIGN_OR_RETURN(Value iterable, Eval(*n.expr));
    if (iterable.is_none()) {
      return Fail(n.expr->pos, "'NoneType' object is not iterable");
    }
    absl::StatusOr<std::vector<Value>> all = Iterate(iterable);
    if (!all.ok()) return At(n.expr->pos, all.status());
    // The inline `if` filters before loop.length etc. are computed.
    std::vector<Value> items;
    for (Value& item : *all) {
      if (n.filter) {
        scopes_.emplace_back();
        absl::Status bound = Bind(n, item);
        absl::StatusOr<Value> keep =
            bound.ok() ? Eval(*n.filter) : absl::StatusOr<Value>(bound);
        scopes_.pop_back();
        if (!keep.ok()) return keep.status();
        if (!keep->Truthy()) continue;
      }
      items.push_back(std::move(item));
    }
    if (items.empty()) return Exec(n.else_body, out);
    ++loop_depth_;
    const int64_t length = static_cast<int64_t>(items.size());
    for (int64_t i = 0; i < length; ++i) {
      if (++iterations_ > limits_.max_loop_iterations) {
        --loop_depth_;
        return Fail(n.pos, absl::StrCat("more than ", limits_.max_loop_iterations,
                                        " loop iterations"));
      }
      Dict loop;  // keys are distinct, so append without Set's lookup
      loop.items.reserve(12);
      auto add = [&loop](const char* key, Value v) {
        loop.items.emplace_back(key, std::move(v));
      };
      add("index", Value(i + 1));
      add("index0", Value(i));
      add("revindex", Value(length - i));
      add("revindex0", Value(length - i - 1));
      add("first", Value(i == 0));
      add("last", Value(i == length - 1));
      add("length", Value(length));
      add("depth", Value(1));
      add("depth0", Value(0));
      if (i > 0) add("previtem", items[static_cast<size_t>(i - 1)]);
      if (i + 1 < length) add("nextitem", items[static_cast<size_t>(i + 1)]);
      add("cycle", Value(Callable([i](CallArgs& a) -> absl::StatusOr<Value> {
            if (a.positional.empty()) {
              return absl::InvalidArgumentError("loop.cycle() needs arguments");
            }
            return a.positional[static_cast<size_t>(i) % a.positional.size()];
          })));
      scopes_.emplace_back();
      scopes_.back()["loop"] = Value(std::move(loop));
      absl::Status bound = Bind(n, items[static_cast<size_t>(i)]);
      absl::StatusOr<Flow> flow =
          bound.ok() ? Exec(n.body, out) : absl::StatusOr<Flow>(bound);
      scopes_.pop_back();
      if (!flow.ok()) {
        --loop_depth_;
        return flow.status();
      }
      if (*flow == Flow::kBreak) break;
    }
    --loop_depth_;
    return Flow::kNormal;
  }

  // Binds loop targets in the innermost scope, unpacking `for k, v in ...`.
  absl::Status Bind(const Node& n, const Value& item) {
    if (n.targets.size() == 1) {
      scopes_.back()[n.targets[0]] = item;
      return absl::OkStatus();
    }
    if (!item.is_list() || item.as_list().size() != n.targets.size()) {
      return Fail(n.pos, absl::StrCat("cannot unpack a ", item.TypeName(),
                                      " into ", n.targets.size(),
                                      " loop variables"));
    }
    for (size_t k = 0; k < n.targets.size(); ++k) {
      scopes_.back()[n.targets[k]] = item.as_list()[k];
    }
    return absl::OkStatus();
  }

  Value MakeMacro(const Node& n) {
    const Node* node = &n;
    return Value(Callable([this, node](CallArgs& args) -> absl::StatusOr<Value> {
      // Each call counts against the loop budget so that branching recursion
      // cannot run for exponential time within the depth bound.
      if (++iterations_ > limits_.max_loop_iterations) {
        return Fail(node->pos, absl::StrCat("more than ",
                                            limits_.max_loop_iterations,
                                            " loop iterations and macro calls"));
      }
      if (call_depth_ >= limits_.max_call_depth) {
        return Fail(node->pos, absl::StrCat("macro calls nested deeper than ",
                                            limits_.max_call_depth));
      }
      if (args.positional.size() > node->params.size()) {
        return Fail(node->pos, absl::StrCat("macro '", node->text, "' takes ",
                                            node->params.size(),
                                            " arguments, got ",
                                            args.positional.size()));
      }
      Scope locals;
      for (size_t i = 0; i < node->params.size(); ++i) {
        const auto& [param, def] = node->params[i];
        if (i < args.positional.size()) {
          locals[param] = args.positional[i];
        } else if (def) {
          ES_ASSIGN_OR_RETURN(locals[param], Eval(*def));
        } else {
          locals[param] = Value::MakeUndefined(absl::StrCat("'", param, "' is undefined"));
        }
      }
      for (auto& [k, v] : args.keyword) {
        bool known = false;
        for (const auto& p : node->params) known = known || p.first == k;
        if (!known) {
          return Fail(node->pos, absl::StrCat("macro '", node->text,
                                              "' has no parameter '", k, "'"));
        }
        locals[k] = v;
      }
      // A macro sees globals and template-level variables, not the caller's
      // loop scopes.
      std::vector<Scope> saved = std::move(scopes_);
      scopes_ = {saved[0], saved[1], std::move(locals)};
      int saved_loop_depth = loop_depth_;
      loop_depth_ = 0;
      ++call_depth_;
      std::string out;
      absl::StatusOr<Flow> flow = Exec(node->body, &out);
      --call_depth_;
      loop_depth_ = saved_loop_depth;
      saved[1] = std::move(scopes_[1]);
      scopes_ = std::move(saved);
      if (!flow.ok()) return flow.status();
      return Value(std::move(out));
    }));
  }

  // ---- expressions ----------------------------------------------------------
  absl::StatusOr<Value> Eval(const Expr& e) {
    switch (e.kind) {
      case Expr::Kind::kLiteral:
        return e.literal;
      case Expr::Kind::kName:
        return Lookup(e.name);
      case Expr::Kind::kList:
      case Expr::Kind::kTuple: {
        Value::List items;
        for (const ExprPtr& a : e.args) {
          ES_ASSIGN_OR_RETURN(Value v, Eval(*a));
          items.push_back(std::move(v));
        }
        return Value(std::move(items));
      }
      case Expr::Kind::kDict: {
        Dict d;
        for (size_t i = 0; i + 1 < e.args.size(); i += 2) {
          ES_ASSIGN_OR_RETURN(Value k, Eval(*e.args[i]));
          if (!k.is_string()) {
            return Fail(e.args[i]->pos, "dict keys must be strings");
          }
          ES_ASSIGN_OR_RETURN(Value v, Eval(*e.args[i + 1]));
          d.Set(k.as_string(), std::move(v));
        }
        return Value(std::move(d));
      }
      case Expr::Kind::kAttr: {
        ES_ASSIGN_OR_RETURN(Value obj, Eval(*e.args[0]));
        return GetAttr(obj, e.name, limits_.max_output_bytes);
      }
      case Expr::Kind::kItem: {
        ES_ASSIGN_OR_RETURN(Value obj, Eval(*e.args[0]));
        ES_ASSIGN_OR_RETURN(Value key, Eval(*e.args[1]));
        absl::StatusOr<Value> r = GetItem(obj, key, limits_.max_output_bytes);
        if (!r.ok()) return At(e.pos, r.status());
        return r;
      }
      case Expr::Kind::kSlice: {
        ES_ASSIGN_OR_RETURN(Value obj, Eval(*e.args[0]));
        Value parts[3];
        for (int i = 0; i < 3; ++i) {
          if (e.args[i + 1]) {
            ES_ASSIGN_OR_RETURN(parts[i], Eval(*e.args[i + 1]));
          }
        }
        absl::StatusOr<Value> r = SliceValue(obj, parts[0], parts[1], parts[2]);
        if (!r.ok()) return At(e.pos, r.status());
        return r;
      }
      case Expr::Kind::kCall: {
        ES_ASSIGN_OR_RETURN(Value fn, Eval(*e.args[0]));
        if (!fn.is_callable()) {
          if (fn.is_undefined()) {
            return Fail(e.pos, absl::StrCat("call of an undefined value (",
                                            fn.undefined_name(), ")"));
          }
          return Fail(e.pos, absl::StrCat("'", fn.TypeName(),
                                          "' object is not callable"));
        }
        ES_ASSIGN_OR_RETURN(CallArgs args, EvalArgs(e, 1));
        absl::StatusOr<Value> r = fn.as_callable()(args);
        if (!r.ok()) return At(e.pos, r.status());
        if (r->is_string()) ES_RETURN_IF_ERROR(CheckSize(e.pos, r->as_string().size()));
        return r;
      }
      case Expr::Kind::kFilter: {
        ES_ASSIGN_OR_RETURN(Value input, Eval(*e.args[0]));
        ES_ASSIGN_OR_RETURN(CallArgs args, EvalArgs(e, 1));
        absl::StatusOr<Value> r = ApplyFilter(e.name, input, args, limits_);
        if (!r.ok()) return At(e.pos, r.status());
        return r;
      }
      case Expr::Kind::kTest: {
        ES_ASSIGN_OR_RETURN(Value input, Eval(*e.args[0]));
        ES_ASSIGN_OR_RETURN(CallArgs args, EvalArgs(e, 1));
        absl::StatusOr<bool> r = ApplyTest(e.name, input, args);
        if (!r.ok()) return At(e.pos, r.status());
        return Value(*r != e.negated);
      }
      case Expr::Kind::kUnary: {
        ES_ASSIGN_OR_RETURN(Value v, Eval(*e.args[0]));
        if (e.name == "not") return Value(!v.Truthy());
        if (v.is_bool()) v = Value(int64_t{v.as_bool()});
        if (e.name == "+" && v.is_number()) return v;
        if (v.is_int() && v.as_int() != INT64_MIN) return Value(-v.as_int());
        if (v.is_double()) return Value(-v.as_double());
        return Fail(e.pos, absl::StrCat("bad operand type for unary ", e.name,
                                        ": '", v.TypeName(), "'"));
      }
      case Expr::Kind::kBinary:
        return EvalBinary(e);
      case Expr::Kind::kCond: {
        ES_ASSIGN_OR_RETURN(Value c, Eval(*e.args[1]));
        if (c.Truthy()) return Eval(*e.args[0]);
        if (e.args[2]) return Eval(*e.args[2]);
        return Value::MakeUndefined("conditional expression had no else");
      }
    }
    return Fail(e.pos, "internal error: unknown expression");
  }

  absl::StatusOr<CallArgs> EvalArgs(const Expr& e, size_t first) {
    CallArgs args;
    for (size_t i = first; i < e.args.size(); ++i) {
      ES_ASSIGN_OR_RETURN(Value v, Eval(*e.args[i]));
      args.positional.push_back(std::move(v));
    }
    for (const auto& [k, x] : e.kwargs) {
      ES_ASSIGN_OR_RETURN(Value v, Eval(*x));
      args.keyword.emplace_back(k, std::move(v));
    }
    return args;
  }

  absl::StatusOr<Value> EvalBinary(const Expr& e) {
    const std::string& op = e.name;
    ES_ASSIGN_OR_RETURN(Value a, Eval(*e.args[0]));
    if (op == "and") return a.Truthy() ? Eval(*e.args[1]) : a;
    if (op == "or") return a.Truthy() ? a : Eval(*e.args[1]);
    ES_ASSIGN_OR_RETURN(Value b, Eval(*e.args[1]));
    if (op == "==") return Value(a.Equals(b));
    if (op == "!=") return Value(!a.Equals(b));
    if (op == "~") {
      std::string s =
          a.Str(limits_.max_output_bytes) + b.Str(limits_.max_output_bytes);
      ES_RETURN_IF_ERROR(CheckSize(e.pos, s.size()));
      return Value(std::move(s));
    }
    if (op == "in" || op == "not in") {
      bool found = false;
      if (b.is_string()) {
        if (!a.is_string()) {
          return Fail(e.pos, absl::StrCat("'in <string>' requires a string on "
                                          "the left, not ", a.TypeName()));
        }
        found = b.as_string().find(a.as_string()) != std::string::npos;
      } else if (b.is_dict()) {
        found = a.is_string() && b.as_dict().Find(a.as_string()) != nullptr;
      } else if (b.is_list()) {
        for (const Value& x : b.as_list()) found = found || x.Equals(a);
      } else if (!b.is_undefined()) {
        return Fail(e.pos, absl::StrCat("argument of type '", b.TypeName(),
                                        "' is not iterable"));
      }
      return Value(found == (op == "in"));
    }
    if (a.is_undefined() || b.is_undefined()) {
      return Fail(e.pos, absl::StrCat("operator '", op, "' on an undefined value (",
                                      (a.is_undefined() ? a : b).undefined_name(), ")"));
    }
    bool nums = (a.is_number() || a.is_bool()) && (b.is_number() || b.is_bool());
    if (op == "<" || op == ">" || op == "<=" || op == ">=") {
      int cmp;
      if (nums) {
        double x = a.as_number(), y = b.as_number();
        cmp = x < y ? -1 : x > y ? 1 : 0;
      } else if (a.is_string() && b.is_string()) {
        cmp = a.as_string().compare(b.as_string());
      } else {
        return TypeError(e, a, b);
      }
      bool r = op == "<" ? cmp < 0 : op == ">" ? cmp > 0 : op == "<=" ? cmp <= 0 : cmp >= 0;
      return Value(r);
    }
    if (op == "+") {
      if (a.is_string() && b.is_string()) {
        ES_RETURN_IF_ERROR(CheckSize(e.pos, a.as_string().size() + b.as_string().size()));
        return Value(a.as_string() + b.as_string());
      }
      if (a.is_list() && b.is_list()) {
        if (a.as_list().size() + b.as_list().size() >
            limits_.max_output_bytes / 8) {
          return Fail(e.pos, "list concatenation result too large");
        }
        Value::List l = a.as_list();
        l.insert(l.end(), b.as_list().begin(), b.as_list().end());
        return Value(std::move(l));
      }
    }
    if (op == "*" && (a.is_string() || a.is_list() || b.is_string() || b.is_list())) {
      const Value& seq = (a.is_string() || a.is_list()) ? a : b;
      const Value& count = (a.is_string() || a.is_list()) ? b : a;
      if (!count.is_int() && !count.is_bool()) return TypeError(e, a, b);
      int64_t n = count.is_int() ? count.as_int() : count.as_bool();
      if (n < 0) n = 0;
      size_t unit = seq.is_string() ? seq.as_string().size() : seq.as_list().size() * 16;
      if (unit > 0 && static_cast<uint64_t>(n) > limits_.max_output_bytes / unit) {
        return Fail(e.pos, "repetition result too large");
      }
      if (seq.is_string()) {
        std::string s;
        for (int64_t i = 0; i < n; ++i) s += seq.as_string();
        return Value(std::move(s));
      }
      Value::List l;
      for (int64_t i = 0; i < n; ++i) l.insert(l.end(), seq.as_list().begin(), seq.as_list().end());
      return Value(std::move(l));
    }
    if (!nums) return TypeError(e, a, b);
    bool ints = !a.is_double() && !b.is_double();
    if (ints) {
      int64_t x = a.is_int() ? a.as_int() : a.as_bool();
      int64_t y = b.is_int() ? b.as_int() : b.as_bool();
      int64_t r = 0;
      if (op == "+" || op == "-" || op == "*") {
        bool overflow = op == "+"   ? __builtin_add_overflow(x, y, &r)
                        : op == "-" ? __builtin_sub_overflow(x, y, &r)
                                    : __builtin_mul_overflow(x, y, &r);
        if (overflow) return Fail(e.pos, "integer overflow");
        return Value(r);
      }
      if (op == "//" || op == "%") {
        if (y == 0) return Fail(e.pos, "integer division or modulo by zero");
        if (x == INT64_MIN && y == -1) return Fail(e.pos, "integer overflow");
        int64_t q = x / y, m = x % y;
        if (m != 0 && ((m < 0) != (y < 0))) {  // Python floors
          --q;
          m += y;
        }
        return Value(op == "//" ? q : m);
      }
      if (op == "**" && y >= 0) {
        int64_t acc = 1;
        for (int64_t i = 0; i < y; ++i) {
          if (__builtin_mul_overflow(acc, x, &acc)) return Fail(e.pos, "integer overflow");
          if (acc == 0 || acc == 1) break;
          if (acc == -1) {
            acc = (y - i - 1) % 2 == 0 ? -1 : 1;
            break;
          }
        }
        return Value(acc);
      }
    }
    double x = a.as_number(), y = b.as_number();
    if (op == "+") return Value(x + y);
    if (op == "-") return Value(x - y);
    if (op == "*") return Value(x * y);
    if (op == "/") {
      if (y == 0) return Fail(e.pos, "division by zero");
      return Value(x / y);
    }
    if (op == "//" || op == "%") {
      if (y == 0) return Fail(e.pos, "float division or modulo by zero");
      double m = std::fmod(x, y);
      if (m != 0 && ((m < 0) != (y < 0))) m += y;
      return Value(op == "//" ? std::floor((x - m) / y + 0.5) : m);
    }
    if (op == "**") {
      if (x == 0 && y < 0) return Fail(e.pos, "0.0 cannot be raised to a negative power");
      return Value(std::pow(x, y));
    }
    return TypeError(e, a, b);
  }

  absl::Status TypeError(const Expr& e, const Value& a, const Value& b) {
    return Fail(e.pos, absl::StrCat("unsupported operand types for ", e.name,
                                    ": '", a.TypeName(), "' and '",
                                    b.TypeName(), "'"));
  }

  const RenderLimits& limits_;
  std::vector<Scope> scopes_;
  size_t iterations_ = 0;
  int loop_depth_ = 0;
  int call_depth_ = 0;
};

}  // namespace

absl::StatusOr<std::string> Evaluate(
    const Body& body, std::vector<std::pair<std::string, Value>> variables,
    const RenderLimits& limits) {
  Evaluator ev(std::move(variables), limits);
  return ev.Run(body);
}

}  // namespace expertserve::engine::chat_template
