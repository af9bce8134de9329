#include "engine/chat_template/value.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace expertserve::engine::chat_template {

const Value* Dict::Find(absl::string_view key) const {
  for (const auto& [k, v] : items) {
    if (k == key) return &v;
  }
  return nullptr;
}

void Dict::Set(std::string key, Value value) {
  for (auto& [k, v] : items) {
    if (k == key) {
      v = std::move(value);
      return;
    }
  }
  items.emplace_back(std::move(key), std::move(value));
}

double Value::as_number() const {
  if (is_int()) return static_cast<double>(as_int());
  if (is_bool()) return as_bool() ? 1.0 : 0.0;
  return as_double();
}

bool Value::Truthy() const {
  if (is_undefined() || is_none()) return false;
  if (is_bool()) return as_bool();
  if (is_int()) return as_int() != 0;
  if (is_double()) return as_double() != 0.0;
  if (is_string()) return !as_string().empty();
  if (is_list()) return !as_list().empty();
  if (is_dict()) return as_dict().is_namespace || !as_dict().items.empty();
  return true;
}

std::string FormatDouble(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  // Shortest round-trip digits in scientific form, then laid out the way
  // Python's repr does: fixed notation for exponents in [-4, 16).
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof(buf), d,
                           std::chars_format::scientific);
  std::string sci(buf, res.ptr);
  size_t e_pos = sci.find('e');
  std::string mantissa = sci.substr(0, e_pos);
  int exponent = std::atoi(sci.c_str() + e_pos + 1);
  bool negative = mantissa[0] == '-';
  if (negative) mantissa.erase(0, 1);
  std::string digits;
  for (char c : mantissa) {
    if (c != '.') digits.push_back(c);
  }
  std::string out = negative ? "-" : "";
  if (exponent < -4 || exponent >= 16) {
    out += digits.substr(0, 1);
    if (digits.size() > 1) absl::StrAppend(&out, ".", digits.substr(1));
    absl::StrAppend(&out, exponent < 0 ? "e-" : "e+",
                    absl::StrFormat("%02d", std::abs(exponent)));
    return out;
  }
  if (exponent < 0) {
    out += "0.";
    out.append(static_cast<size_t>(-exponent - 1), '0');
    out += digits;
    return out;
  }
  size_t int_len = static_cast<size_t>(exponent) + 1;
  if (digits.size() <= int_len) {
    digits.append(int_len - digits.size(), '0');
    return out + digits + ".0";
  }
  return absl::StrCat(out, digits.substr(0, int_len), ".",
                      digits.substr(int_len));
}

namespace {
std::string ReprString(const std::string& s) {
  // Python prefers single quotes unless the string holds ' but no ".
  char quote =
      (s.find('\'') != std::string::npos && s.find('"') == std::string::npos)
          ? '"'
          : '\'';
  std::string out(1, quote);
  for (unsigned char c : s) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c == quote) {
          out += '\\';
          out += static_cast<char>(c);
        } else if (c < 0x20 || c == 0x7f) {
          out += absl::StrFormat("\\x%02x", c);
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += quote;
  return out;
}
}  // namespace

std::string Value::Str(size_t max_bytes) const {
  if (is_string()) return as_string();
  if (is_undefined()) return "";
  return Repr(max_bytes);
}

int NestingDepth(const Value& v, int limit) {
  if (limit < 0) return 1;
  int deepest = 0;
  if (v.is_list()) {
    for (const Value& x : v.as_list()) {
      deepest = std::max(deepest, NestingDepth(x, limit - 1));
      if (deepest > limit) break;
    }
    return deepest + 1;
  }
  if (v.is_dict()) {
    for (const auto& kv : v.as_dict().items) {
      deepest = std::max(deepest, NestingDepth(kv.second, limit - 1));
      if (deepest > limit) break;
    }
    return deepest + 1;
  }
  return 0;
}

std::string Value::Repr(size_t max_bytes) const {
  if (is_undefined()) return "";
  if (is_none()) return "None";
  if (is_bool()) return as_bool() ? "True" : "False";
  if (is_int()) return absl::StrCat(as_int());
  if (is_double()) return FormatDouble(as_double());
  if (is_string()) return ReprString(as_string());
  if (is_list()) {
    std::string out = "[";
    const List& l = as_list();
    for (size_t i = 0; i < l.size(); ++i) {
      if (i > 0) out += ", ";
      out += l[i].Repr(max_bytes);
      if (out.size() > max_bytes) break;
    }
    return out + "]";
  }
  if (is_dict()) {
    const Dict& d = as_dict();
    std::string out = d.is_namespace ? "<Namespace {" : "{";
    for (size_t i = 0; i < d.items.size(); ++i) {
      if (i > 0) out += ", ";
      absl::StrAppend(&out, ReprString(d.items[i].first), ": ",
                      d.items[i].second.Repr(max_bytes));
      if (out.size() > max_bytes) break;
    }
    return out + (d.is_namespace ? "}>" : "}");
  }
  return "<function>";
}

bool Value::Equals(const Value& other) const {
  // Python: bool and int compare numerically (True == 1).
  bool lhs_num = is_number() || is_bool();
  bool rhs_num = other.is_number() || other.is_bool();
  if (lhs_num && rhs_num) {
    if (is_double() || other.is_double()) {
      return as_number() == other.as_number();
    }
    int64_t a = is_bool() ? as_bool() : as_int();
    int64_t b = other.is_bool() ? other.as_bool() : other.as_int();
    return a == b;
  }
  if (v_.index() != other.v_.index()) return false;
  if (is_undefined() || is_none()) return true;
  if (is_string()) return as_string() == other.as_string();
  if (is_list()) {
    const List& a = as_list();
    const List& b = other.as_list();
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i) {
      if (!a[i].Equals(b[i])) return false;
    }
    return true;
  }
  if (is_dict()) {
    const Dict& a = as_dict();
    const Dict& b = other.as_dict();
    if (&a == &b) return true;
    if (a.is_namespace || b.is_namespace) return false;
    if (a.items.size() != b.items.size()) return false;
    for (const auto& [k, v] : a.items) {
      const Value* o = b.Find(k);
      if (o == nullptr || !v.Equals(*o)) return false;
    }
    return true;
  }
  return &as_callable() == &other.as_callable();
}

absl::string_view Value::TypeName() const {
  if (is_undefined()) return "undefined";
  if (is_none()) return "none";
  if (is_bool()) return "bool";
  if (is_int()) return "int";
  if (is_double()) return "float";
  if (is_string()) return "string";
  if (is_list()) return "list";
  if (is_dict()) return as_dict().is_namespace ? "namespace" : "dict";
  return "callable";
}

}  // namespace expertserve::engine::chat_template
