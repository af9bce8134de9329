// Runtime values of the chat-template interpreter: a small dynamically typed
// variant with Python/Jinja semantics (truthiness, str(), repr(), equality).
#ifndef EXPERTSERVE_ENGINE_CHAT_TEMPLATE_VALUE_H_
#define EXPERTSERVE_ENGINE_CHAT_TEMPLATE_VALUE_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include "absl/strings/string_view.h"
#include <utility>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"

namespace expertserve::engine::chat_template {

class Value;

// Insertion-ordered string-keyed map, like a Python dict. Linear lookup is fine
// for chat messages (a handful of keys).
struct Dict {
  std::vector<std::pair<std::string, Value>> items;
  // Jinja only allows `{% set obj.attr = v %}` on namespace() objects.
  bool is_namespace = false;

  const Value* Find(absl::string_view key) const;
  void Set(std::string key, Value value);
};

struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;
};

// A built-in function, bound method or macro.
using Callable = std::function<absl::StatusOr<Value>(CallArgs& args)>;

// Marks a missing variable or attribute; remembers its name for errors.
struct Undefined {
  std::string name;
};
struct None {};

// Values are cheap to copy: containers are shared. Lists and plain dicts are
// never mutated after construction (the HF sandbox is immutable); namespace
// dicts are mutated in place by `set ns.attr`, which is why they are shared.
// Thread-compatible.
class Value {
 public:
  using List = std::vector<Value>;
  using Storage =
      std::variant<Undefined, None, bool, int64_t, double, std::string,
                   std::shared_ptr<List>, std::shared_ptr<Dict>,
                   std::shared_ptr<const Callable>>;

  Value() : v_(Undefined{}) {}
  Value(None n) : v_(n) {}                                   // NOLINT
  Value(bool b) : v_(b) {}                                   // NOLINT
  Value(int64_t i) : v_(i) {}                                // NOLINT
  Value(int i) : v_(int64_t{i}) {}                           // NOLINT
  Value(double d) : v_(d) {}                                 // NOLINT
  Value(std::string s) : v_(std::move(s)) {}                 // NOLINT
  Value(absl::string_view s) : v_(std::string(s)) {}          // NOLINT
  Value(const char* s) : v_(std::string(s)) {}               // NOLINT
  Value(List l) : v_(std::make_shared<List>(std::move(l))) {}  // NOLINT
  Value(Dict d) : v_(std::make_shared<Dict>(std::move(d))) {}  // NOLINT
  Value(Callable f)                                          // NOLINT
      : v_(std::make_shared<const Callable>(std::move(f))) {}
  static Value MakeUndefined(std::string name) {
    Value v;
    v.v_ = Undefined{std::move(name)};
    return v;
  }

  bool is_undefined() const { return std::holds_alternative<Undefined>(v_); }
  bool is_none() const { return std::holds_alternative<None>(v_); }
  bool is_bool() const { return std::holds_alternative<bool>(v_); }
  bool is_int() const { return std::holds_alternative<int64_t>(v_); }
  bool is_double() const { return std::holds_alternative<double>(v_); }
  bool is_number() const { return is_int() || is_double(); }
  bool is_string() const { return std::holds_alternative<std::string>(v_); }
  bool is_list() const {
    return std::holds_alternative<std::shared_ptr<List>>(v_);
  }
  bool is_dict() const {
    return std::holds_alternative<std::shared_ptr<Dict>>(v_);
  }
  bool is_callable() const {
    return std::holds_alternative<std::shared_ptr<const Callable>>(v_);
  }

  bool as_bool() const { return std::get<bool>(v_); }
  int64_t as_int() const { return std::get<int64_t>(v_); }
  double as_double() const { return std::get<double>(v_); }
  // Numeric value of an int, double or bool.
  double as_number() const;
  const std::string& as_string() const { return std::get<std::string>(v_); }
  const List& as_list() const { return *std::get<std::shared_ptr<List>>(v_); }
  const Dict& as_dict() const { return *std::get<std::shared_ptr<Dict>>(v_); }
  Dict& mutable_dict() const { return *std::get<std::shared_ptr<Dict>>(v_); }
  const Callable& as_callable() const {
    return *std::get<std::shared_ptr<const Callable>>(v_);
  }
  const std::string& undefined_name() const {
    return std::get<Undefined>(v_).name;
  }

  // Python truthiness.
  bool Truthy() const;
  // Python str(): what `{{ v }}` prints. Undefined prints "". Containers stop
  // growing once past `max_bytes` (the caller then reports the overflow).
  std::string Str(size_t max_bytes = SIZE_MAX) const;
  // Python repr(), used for elements of printed containers.
  std::string Repr(size_t max_bytes = SIZE_MAX) const;
  // Python ==.
  bool Equals(const Value& other) const;
  // Type name for error messages ("string", "list", ...).
  absl::string_view TypeName() const;

 private:
  Storage v_;
};

// Container nesting depth of `v`, counting at most up to `limit` + 1.
int NestingDepth(const Value& v, int limit);

// Python's float repr (shortest round-trip, "1.0", "1e-05", "1e+16").
std::string FormatDouble(double d);

}  // namespace expertserve::engine::chat_template

#endif  // EXPERTSERVE_ENGINE_CHAT_TEMPLATE_VALUE_H_
