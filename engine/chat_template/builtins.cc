#include "engine/chat_template/builtins.h"

#include <algorithm>
#include <cmath>
#include <ctime>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"

namespace expertserve::engine::chat_template {
namespace {

absl::Status Err(absl::string_view msg) {
  return absl::InvalidArgumentError(msg);
}

// ---- argument binding ------------------------------------------------------
// Binds positional then keyword arguments to a fixed parameter list, like a
// Python signature; unknown or surplus arguments are errors.
absl::StatusOr<std::vector<Value>> Bind(absl::string_view fn, CallArgs& args,
                                        std::vector<absl::string_view> params) {
  if (args.positional.size() > params.size()) {
    return Err(absl::StrCat(fn, "() takes at most ", params.size(),
                            " arguments, got ", args.positional.size()));
  }
  std::vector<Value> out(params.size());
  for (size_t i = 0; i < args.positional.size(); ++i) out[i] = args.positional[i];
  for (auto& [key, value] : args.keyword) {
    auto it = std::find(params.begin(), params.end(), key);
    if (it == params.end()) {
      return Err(absl::StrCat(fn, "() got an unexpected keyword argument '",
                              key, "'"));
    }
    out[it - params.begin()] = value;
  }
  return out;
}

absl::StatusOr<std::string> NeedString(absl::string_view fn, const Value& v) {
  if (!v.is_string()) {
    return Err(absl::StrCat(fn, ": expected a string, got ", v.TypeName()));
  }
  return v.as_string();
}

// ---- UTF-8 helpers ----------------------------------------------------------
size_t CodePointLen(unsigned char c) {
  if (c < 0x80) return 1;
  if ((c >> 5) == 0x6) return 2;
  if ((c >> 4) == 0xE) return 3;
  if ((c >> 3) == 0x1E) return 4;
  return 1;
}

// Python str.isspace() for a single code point.
bool IsPySpace(absl::string_view cp) {
  static constexpr absl::string_view kSpaces[] = {
      " ", "\t", "\n", "\v", "\f", "\r", "\x1c", "\x1d", "\x1e", "\x1f",
      "\xc2\x85", "\xc2\xa0", "\xe1\x9a\x80", "\xe2\x80\xa8", "\xe2\x80\xa9",
      "\xe2\x80\xaf", "\xe2\x81\x9f", "\xe3\x80\x80"};
  for (absl::string_view s : kSpaces) {
    if (cp == s) return true;
  }
  // U+2000..U+200A
  return cp.size() == 3 && cp[0] == '\xe2' && cp[1] == '\x80' &&
         static_cast<unsigned char>(cp[2]) >= 0x80 &&
         static_cast<unsigned char>(cp[2]) <= 0x8a;
}

// str.strip / lstrip / rstrip; `chars` null means whitespace.
std::string Strip(const std::string& s, const Value& chars, bool left,
                  bool right) {
  std::vector<std::string> cps = SplitCodePoints(s);
  std::vector<std::string> set;
  if (chars.is_string()) set = SplitCodePoints(chars.as_string());
  auto strip_it = [&](const std::string& cp) {
    if (!chars.is_string()) return IsPySpace(cp);
    return std::find(set.begin(), set.end(), cp) != set.end();
  };
  size_t b = 0, e = cps.size();
  if (left) {
    while (b < e && strip_it(cps[b])) ++b;
  }
  if (right) {
    while (e > b && strip_it(cps[e - 1])) --e;
  }
  std::string out;
  for (size_t i = b; i < e; ++i) out += cps[i];
  return out;
}

std::string AsciiLower(std::string s) {
  for (char& c : s) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return s;
}
std::string AsciiUpper(std::string s) {
  for (char& c : s) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  return s;
}
bool IsAsciiAlpha(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
std::string Capitalize(const std::string& s) {
  std::string out = AsciiLower(s);
  if (!out.empty()) out[0] = AsciiUpper(out.substr(0, 1))[0];
  return out;
}
// Python str.title(): a letter after a non-letter is upper-cased.
std::string PyTitle(const std::string& s) {
  std::string out = s;
  bool prev_alpha = false;
  for (char& c : out) {
    bool alpha = IsAsciiAlpha(c) || static_cast<unsigned char>(c) >= 0x80;
    if (IsAsciiAlpha(c)) {
      c = prev_alpha ? AsciiLower(std::string(1, c))[0]
                     : AsciiUpper(std::string(1, c))[0];
    }
    prev_alpha = alpha;
  }
  return out;
}
// Jinja's title filter: capitalises words split on whitespace, '-', and
// opening brackets.
std::string JinjaTitle(const std::string& s) {
  std::string out;
  bool word_start = true;
  for (char c : s) {
    bool sep = c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' ||
               c == '\f' || c == '-' || c == '(' || c == '{' || c == '[' ||
               c == '<';
    if (sep) {
      out.push_back(c);
      word_start = true;
    } else {
      out.push_back(word_start ? AsciiUpper(std::string(1, c))[0]
                               : AsciiLower(std::string(1, c))[0]);
      word_start = false;
    }
  }
  return out;
}

absl::StatusOr<std::string> ReplaceAll(const std::string& s,
                                       const std::string& from,
                                       const std::string& to, int64_t count,
                                       size_t max_bytes) {
  if (!to.empty() && to.size() > from.size() &&
      (s.size() + 1) / std::max<size_t>(from.size(), 1) >
          max_bytes / to.size()) {
    return Err("replace(): result too large");
  }
  std::string out;
  if (from.empty()) {
    // Python inserts `to` between every character (and at both ends).
    std::vector<std::string> cps = SplitCodePoints(s);
    int64_t done = 0;
    for (const std::string& cp : cps) {
      if (count < 0 || done < count) {
        out += to;
        ++done;
      }
      out += cp;
    }
    if (count < 0 || done < count) out += to;
    return out;
  }
  size_t pos = 0;
  int64_t done = 0;
  while (count < 0 || done < count) {
    size_t hit = s.find(from, pos);
    if (hit == std::string::npos) break;
    out.append(s, pos, hit - pos);
    out += to;
    pos = hit + from.size();
    ++done;
  }
  out.append(s, pos, std::string::npos);
  return out;
}

// Python str.split(sep=None, maxsplit=-1).
absl::StatusOr<Value> Split(const std::string& s, const Value& sep,
                            int64_t maxsplit) {
  Value::List out;
  if (sep.is_none() || sep.is_undefined()) {
    std::vector<std::string> cps = SplitCodePoints(s);
    size_t i = 0;
    int64_t splits = 0;
    while (true) {
      while (i < cps.size() && IsPySpace(cps[i])) ++i;
      if (i >= cps.size()) break;
      std::string word;
      if (maxsplit >= 0 && splits >= maxsplit) {
        // The rest, with trailing whitespace stripped.
        size_t e = cps.size();
        while (e > i && IsPySpace(cps[e - 1])) --e;
        for (; i < e; ++i) word += cps[i];
        out.push_back(Value(word));
        break;
      }
      while (i < cps.size() && !IsPySpace(cps[i])) word += cps[i++];
      out.push_back(Value(word));
      ++splits;
    }
    return Value(std::move(out));
  }
  if (!sep.is_string()) return Err("split(): separator must be a string");
  const std::string& d = sep.as_string();
  if (d.empty()) return Err("split(): empty separator");
  size_t pos = 0;
  int64_t splits = 0;
  while (maxsplit < 0 || splits < maxsplit) {
    size_t hit = s.find(d, pos);
    if (hit == std::string::npos) break;
    out.push_back(Value(s.substr(pos, hit - pos)));
    pos = hit + d.size();
    ++splits;
  }
  out.push_back(Value(s.substr(pos)));
  return Value(std::move(out));
}

absl::StatusOr<bool> AffixMatch(const std::string& s, const Value& affix,
                                bool prefix) {
  auto one = [&](const std::string& a) {
    if (a.size() > s.size()) return false;
    return prefix ? s.compare(0, a.size(), a) == 0
                  : s.compare(s.size() - a.size(), a.size(), a) == 0;
  };
  if (affix.is_string()) return one(affix.as_string());
  if (affix.is_list()) {
    for (const Value& a : affix.as_list()) {
      if (!a.is_string()) return Err("startswith/endswith: tuple of non-strings");
      if (one(a.as_string())) return true;
    }
    return false;
  }
  return Err("startswith/endswith: argument must be a string or a tuple");
}

// Python str.format with "{}" / "{0}" / "{name}" fields (no format specs).
absl::StatusOr<std::string> PyFormat(const std::string& fmt, CallArgs& args,
                                     size_t max_bytes) {
  std::string out;
  size_t auto_index = 0;
  for (size_t i = 0; i < fmt.size(); ++i) {
    char c = fmt[i];
    if (c == '{' && i + 1 < fmt.size() && fmt[i + 1] == '{') {
      out += '{';
      ++i;
    } else if (c == '}' && i + 1 < fmt.size() && fmt[i + 1] == '}') {
      out += '}';
      ++i;
    } else if (c == '{') {
      size_t close = fmt.find('}', i);
      if (close == std::string::npos) return Err("format(): unmatched '{'");
      std::string field = fmt.substr(i + 1, close - i - 1);
      if (field.find_first_of(":!") != std::string::npos) {
        return Err("format(): format specs and conversions are not supported");
      }
      const Value* v = nullptr;
      if (field.empty() || std::all_of(field.begin(), field.end(), ::isdigit)) {
        size_t idx = field.empty() ? auto_index++ : std::stoul(field);
        if (idx >= args.positional.size()) return Err("format(): index out of range");
        v = &args.positional[idx];
      } else {
        for (auto& [k, kv] : args.keyword) {
          if (k == field) v = &kv;
        }
        if (v == nullptr) return Err(absl::StrCat("format(): no argument '", field, "'"));
      }
      out += v->Str(max_bytes);
      if (out.size() > max_bytes) return Err("format(): result too large");
      i = close;
    } else if (c == '}') {
      return Err("format(): single '}'");
    } else {
      out += c;
    }
  }
  return out;
}

Value Method(Callable f) { return Value(std::move(f)); }

Value StringMethod(const std::string& s, absl::string_view name,
                   size_t max_bytes) {
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    bool left = name != "rstrip", right = name != "lstrip";
    return Method([s, left, right](CallArgs& a) -> absl::StatusOr<Value> {
      ES_ASSIGN_OR_RETURN(auto p, Bind("strip", a, {"chars"}));
      return Value(Strip(s, p[0], left, right));
    });
  }
  if (name == "split") {
    return Method([s](CallArgs& a) -> absl::StatusOr<Value> {
      ES_ASSIGN_OR_RETURN(auto p, Bind("split", a, {"sep", "maxsplit"}));
      int64_t maxsplit = p[1].is_int() ? p[1].as_int() : -1;
      return Split(s, p[0], maxsplit);
    });
  }
  if (name == "startswith" || name == "endswith") {
    bool prefix = name == "startswith";
    return Method([s, prefix](CallArgs& a) -> absl::StatusOr<Value> {
      ES_ASSIGN_OR_RETURN(auto p, Bind("startswith", a, {"affix"}));
      ES_ASSIGN_OR_RETURN(bool r, AffixMatch(s, p[0], prefix));
      return Value(r);
    });
  }
  if (name == "replace") {
    return Method([s, max_bytes](CallArgs& a) -> absl::StatusOr<Value> {
      ES_ASSIGN_OR_RETURN(auto p, Bind("replace", a, {"old", "new", "count"}));
      ES_ASSIGN_OR_RETURN(std::string from, NeedString("replace", p[0]));
      ES_ASSIGN_OR_RETURN(std::string to, NeedString("replace", p[1]));
      ES_ASSIGN_OR_RETURN(std::string out,
                          ReplaceAll(s, from, to,
                                     p[2].is_int() ? p[2].as_int() : -1,
                                     max_bytes));
      return Value(std::move(out));
    });
  }
  if (name == "upper" || name == "lower" || name == "title" ||
      name == "capitalize") {
    std::string n(name);
    return Method([s, n](CallArgs& a) -> absl::StatusOr<Value> {
      ES_RETURN_IF_ERROR(Bind(n, a, {}).status());
      if (n == "upper") return Value(AsciiUpper(s));
      if (n == "lower") return Value(AsciiLower(s));
      if (n == "title") return Value(PyTitle(s));
      return Value(Capitalize(s));
    });
  }
  if (name == "find" || name == "count") {
    bool find = name == "find";
    return Method([s, find](CallArgs& a) -> absl::StatusOr<Value> {
      ES_ASSIGN_OR_RETURN(auto p, Bind(find ? "find" : "count", a, {"sub"}));
      ES_ASSIGN_OR_RETURN(std::string sub, NeedString("find", p[0]));
      if (find) {
        size_t hit = s.find(sub);
        if (hit == std::string::npos) return Value(int64_t{-1});
        return Value(static_cast<int64_t>(SplitCodePoints(s.substr(0, hit)).size()));
      }
      if (sub.empty()) return Value(static_cast<int64_t>(SplitCodePoints(s).size() + 1));
      int64_t n = 0;
      for (size_t pos = s.find(sub); pos != std::string::npos;
           pos = s.find(sub, pos + sub.size())) {
        ++n;
      }
      return Value(n);
    });
  }
  if (name == "join") {
    return Method([s, max_bytes](CallArgs& a) -> absl::StatusOr<Value> {
      ES_ASSIGN_OR_RETURN(auto p, Bind("join", a, {"iterable"}));
      ES_ASSIGN_OR_RETURN(std::vector<Value> items, Iterate(p[0]));
      std::string out;
      for (size_t i = 0; i < items.size(); ++i) {
        if (!items[i].is_string()) return Err("join(): sequence item is not a string");
        if (i > 0) out += s;
        out += items[i].as_string();
        if (out.size() > max_bytes) return Err("join(): result too large");
      }
      return Value(out);
    });
  }
  if (name == "format") {
    return Method([s, max_bytes](CallArgs& a) -> absl::StatusOr<Value> {
      ES_ASSIGN_OR_RETURN(std::string out, PyFormat(s, a, max_bytes));
      return Value(out);
    });
  }
  if (name == "splitlines") {
    return Method([s](CallArgs& a) -> absl::StatusOr<Value> {
      ES_RETURN_IF_ERROR(Bind("splitlines", a, {}).status());
      Value::List out;
      size_t pos = 0;
      while (pos < s.size()) {
        size_t nl = s.find('\n', pos);
        if (nl == std::string::npos) nl = s.size();
        std::string line = s.substr(pos, nl - pos);
        if (!line.empty() && line.back() == '\r') line.pop_back();
        out.push_back(Value(line));
        pos = nl + 1;
      }
      return Value(std::move(out));
    });
  }
  return Value::MakeUndefined(absl::StrCat("'str object' has no attribute '", name, "'"));
}

Value DictMethod(const Value& d, absl::string_view name) {
  if (d.as_dict().is_namespace) return Value::MakeUndefined("");
  if (name == "items" || name == "keys" || name == "values") {
    std::string n(name);
    return Method([d, n](CallArgs& a) -> absl::StatusOr<Value> {
      ES_RETURN_IF_ERROR(Bind(n, a, {}).status());
      Value::List out;
      for (const auto& [k, v] : d.as_dict().items) {
        if (n == "items") {
          out.push_back(Value(Value::List{Value(k), v}));
        } else {
          out.push_back(n == "keys" ? Value(k) : v);
        }
      }
      return Value(std::move(out));
    });
  }
  if (name == "get") {
    return Method([d](CallArgs& a) -> absl::StatusOr<Value> {
      ES_ASSIGN_OR_RETURN(auto p, Bind("get", a, {"key", "default"}));
      if (p[0].is_string()) {
        if (const Value* v = d.as_dict().Find(p[0].as_string())) return *v;
      }
      return p[1].is_undefined() ? Value(None{}) : p[1];
    });
  }
  return Value::MakeUndefined("");
}

// ---- JSON --------------------------------------------------------------------
void JsonString(const std::string& s, bool ensure_ascii, std::string* out) {
  out->push_back('"');
  for (size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    switch (c) {
      case '"': *out += "\\\""; ++i; continue;
      case '\\': *out += "\\\\"; ++i; continue;
      case '\n': *out += "\\n"; ++i; continue;
      case '\r': *out += "\\r"; ++i; continue;
      case '\t': *out += "\\t"; ++i; continue;
      case '\b': *out += "\\b"; ++i; continue;
      case '\f': *out += "\\f"; ++i; continue;
      default: break;
    }
    if (c < 0x20) {
      absl::StrAppend(out, absl::StrFormat("\\u%04x", c));
      ++i;
      continue;
    }
    size_t len = std::min(CodePointLen(c), s.size() - i);
    if (!ensure_ascii || c < 0x80) {
      out->append(s, i, len);
      i += len;
      continue;
    }
    uint32_t cp = len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
    for (size_t k = 1; k < len; ++k) {
      cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
    }
    if (cp >= 0x10000) {
      cp -= 0x10000;
      absl::StrAppend(out, absl::StrFormat("\\u%04x\\u%04x", 0xD800 + (cp >> 10),
                                           0xDC00 + (cp & 0x3FF)));
    } else {
      absl::StrAppend(out, absl::StrFormat("\\u%04x", cp));
    }
    i += len;
  }
  out->push_back('"');
}

absl::Status JsonValue(const Value& v, bool ensure_ascii, int indent,
                       bool sort_keys, int depth, size_t max_bytes,
                       std::string* out) {
  if (depth > 64) return Err("tojson: value nested too deeply");
  if (out->size() > max_bytes) return Err("tojson: result too large");
  std::string item_sep = indent >= 0 ? "," : ", ";
  auto newline = [&](int d) {
    if (indent >= 0) {
      out->push_back('\n');
      out->append(static_cast<size_t>(indent * d), ' ');
    }
  };
  if (v.is_undefined()) return Err("tojson: value is undefined");
  if (v.is_none()) {
    *out += "null";
  } else if (v.is_bool()) {
    *out += v.as_bool() ? "true" : "false";
  } else if (v.is_int()) {
    absl::StrAppend(out, v.as_int());
  } else if (v.is_double()) {
    double d = v.as_double();
    if (std::isnan(d)) {
      *out += "NaN";
    } else if (std::isinf(d)) {
      *out += d > 0 ? "Infinity" : "-Infinity";
    } else {
      *out += FormatDouble(d);
    }
  } else if (v.is_string()) {
    JsonString(v.as_string(), ensure_ascii, out);
  } else if (v.is_list()) {
    const Value::List& l = v.as_list();
    if (l.empty()) {
      *out += "[]";
      return absl::OkStatus();
    }
    out->push_back('[');
    for (size_t i = 0; i < l.size(); ++i) {
      if (i > 0) *out += item_sep;
      newline(depth + 1);
      ES_RETURN_IF_ERROR(JsonValue(l[i], ensure_ascii, indent, sort_keys,
                                   depth + 1, max_bytes, out));
    }
    newline(depth);
    out->push_back(']');
  } else if (v.is_dict()) {
    std::vector<const std::pair<std::string, Value>*> items;
    for (const auto& kv : v.as_dict().items) items.push_back(&kv);
    if (items.empty()) {
      *out += "{}";
      return absl::OkStatus();
    }
    if (sort_keys) {
      std::stable_sort(items.begin(), items.end(),
                       [](auto* a, auto* b) { return a->first < b->first; });
    }
    out->push_back('{');
    for (size_t i = 0; i < items.size(); ++i) {
      if (i > 0) *out += item_sep;
      newline(depth + 1);
      JsonString(items[i]->first, ensure_ascii, out);
      *out += ": ";
      ES_RETURN_IF_ERROR(JsonValue(items[i]->second, ensure_ascii, indent,
                                   sort_keys, depth + 1, max_bytes, out));
    }
    newline(depth);
    out->push_back('}');
  } else {
    return Err("tojson: a function is not JSON serializable");
  }
  return absl::OkStatus();
}

// ---- filters -----------------------------------------------------------------
absl::StatusOr<int64_t> ToInt(const Value& v, int64_t fallback) {
  if (v.is_int()) return v.as_int();
  if (v.is_bool()) return int64_t{v.as_bool()};
  if (v.is_double()) {
    double d = v.as_double();
    if (!std::isfinite(d) || std::fabs(d) > 9.2e18) return fallback;
    return static_cast<int64_t>(d);
  }
  if (v.is_string()) {
    std::string s = Strip(v.as_string(), Value(), true, true);
    if (s.empty()) return fallback;
    char* end = nullptr;
    errno = 0;
    long long r = std::strtoll(s.c_str(), &end, 10);
    if (end != s.c_str() + s.size() || errno != 0) {
      double d = std::strtod(s.c_str(), &end);
      if (end != s.c_str() + s.size() || !std::isfinite(d) ||
          std::fabs(d) > 9.2e18) {
        return fallback;
      }
      return static_cast<int64_t>(d);
    }
    return static_cast<int64_t>(r);
  }
  return fallback;
}

absl::StatusOr<Value> Length(const Value& v) {
  if (v.is_string()) return Value(static_cast<int64_t>(SplitCodePoints(v.as_string()).size()));
  if (v.is_list()) return Value(static_cast<int64_t>(v.as_list().size()));
  if (v.is_dict()) return Value(static_cast<int64_t>(v.as_dict().items.size()));
  if (v.is_undefined()) return Value(int64_t{0});
  return Err(absl::StrCat("object of type '", v.TypeName(), "' has no len()"));
}

// Resolves "a.b.0" attribute paths as Jinja's make_attrgetter does.
Value AttrPath(const Value& v, const std::string& path) {
  Value cur = v;
  size_t pos = 0;
  while (pos <= path.size()) {
    size_t dot = path.find('.', pos);
    if (dot == std::string::npos) dot = path.size();
    std::string part = path.substr(pos, dot - pos);
    bool digits = !part.empty() && std::all_of(part.begin(), part.end(), ::isdigit);
    if (digits && part.size() < 10) {
      absl::StatusOr<Value> r = GetItem(cur, Value(static_cast<int64_t>(std::stol(part))));
      cur = r.ok() ? *r : Value::MakeUndefined(part);
    } else {
      absl::StatusOr<Value> r = GetItem(cur, Value(part));
      cur = r.ok() ? *r : Value::MakeUndefined(part);
    }
    pos = dot + 1;
  }
  return cur;
}

absl::StatusOr<Value> SelectOrReject(absl::string_view fn, const Value& input,
                                     CallArgs& args, bool by_attr, bool select) {
  ES_ASSIGN_OR_RETURN(std::vector<Value> items, Iterate(input));
  size_t next = 0;
  std::string attr;
  if (by_attr) {
    if (args.positional.empty() || !args.positional[0].is_string()) {
      return Err(absl::StrCat(fn, "(): missing attribute name"));
    }
    attr = args.positional[next++].as_string();
  }
  std::string test;
  if (next < args.positional.size()) {
    if (!args.positional[next].is_string()) {
      return Err(absl::StrCat(fn, "(): test name must be a string"));
    }
    test = args.positional[next++].as_string();
    if (!IsKnownTest(test)) return Err(absl::StrCat(fn, "(): unknown test '", test, "'"));
  }
  Value::List out;
  for (const Value& item : items) {
    Value subject = by_attr ? AttrPath(item, attr) : item;
    bool pass;
    if (test.empty()) {
      pass = subject.Truthy();
    } else {
      CallArgs test_args;
      test_args.positional.assign(args.positional.begin() + static_cast<long>(next),
                                  args.positional.end());
      ES_ASSIGN_OR_RETURN(pass, ApplyTest(test, subject, test_args));
    }
    if (pass == select) out.push_back(item);
  }
  return Value(std::move(out));
}

std::string HtmlEscape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

// Orders numbers and strings as Python's sorted() does.
absl::StatusOr<bool> Less(const Value& a, const Value& b) {
  if ((a.is_number() || a.is_bool()) && (b.is_number() || b.is_bool())) {
    return a.as_number() < b.as_number();
  }
  if (a.is_string() && b.is_string()) return a.as_string() < b.as_string();
  return Err(absl::StrCat("cannot compare ", a.TypeName(), " and ", b.TypeName()));
}

constexpr absl::string_view kFilters[] = {
    "abs", "capitalize", "count", "d", "default", "e", "escape", "first",
    "float", "indent", "int", "items", "join", "last", "length", "list",
    "lower", "map", "reject", "rejectattr", "replace", "reverse", "round",
    "safe", "select", "selectattr", "sort", "string", "sum", "title",
    "tojson", "trim", "unique", "upper", "wordcount"};

constexpr absl::string_view kTests[] = {
    "boolean", "callable", "defined", "divisibleby", "eq", "equalto", "escaped",
    "even", "false", "float", "ge", "gt", "in", "integer", "iterable", "le",
    "lower", "lt", "mapping", "ne", "none", "number", "odd", "sameas",
    "sequence", "string", "true", "undefined", "upper", "==", "!=", "<", ">",
    "<=", ">="};

}  // namespace

std::vector<std::string> SplitCodePoints(absl::string_view s) {
  std::vector<std::string> out;
  for (size_t i = 0; i < s.size();) {
    size_t len = CodePointLen(static_cast<unsigned char>(s[i]));
    bool ok = i + len <= s.size();
    for (size_t k = 1; ok && k < len; ++k) {
      ok = (static_cast<unsigned char>(s[i + k]) & 0xC0) == 0x80;
    }
    if (!ok) {
      out.emplace_back("\xEF\xBF\xBD");
      ++i;
      continue;
    }
    out.emplace_back(s.substr(i, len));
    i += len;
  }
  return out;
}

bool IsKnownFilter(absl::string_view name) {
  return std::find(std::begin(kFilters), std::end(kFilters), name) !=
         std::end(kFilters);
}

bool IsKnownTest(absl::string_view name) {
  return std::find(std::begin(kTests), std::end(kTests), name) !=
         std::end(kTests);
}

absl::StatusOr<std::string> ToJson(const Value& v, bool ensure_ascii,
                                   int indent, bool sort_keys,
                                   size_t max_bytes) {
  std::string out;
  ES_RETURN_IF_ERROR(
      JsonValue(v, ensure_ascii, indent, sort_keys, 0, max_bytes, &out));
  if (out.size() > max_bytes) return Err("tojson: result too large");
  return out;
}

absl::StatusOr<std::vector<Value>> Iterate(const Value& v) {
  if (v.is_list()) return v.as_list();
  if (v.is_undefined()) return std::vector<Value>{};
  if (v.is_dict()) {
    std::vector<Value> keys;
    for (const auto& kv : v.as_dict().items) keys.push_back(Value(kv.first));
    return keys;
  }
  if (v.is_string()) {
    std::vector<Value> out;
    for (std::string& cp : SplitCodePoints(v.as_string())) out.push_back(Value(std::move(cp)));
    return out;
  }
  return Err(absl::StrCat("'", v.TypeName(), "' object is not iterable"));
}

Value GetAttr(const Value& obj, absl::string_view name, size_t max_bytes) {
  if (obj.is_string()) return StringMethod(obj.as_string(), name, max_bytes);
  if (obj.is_dict()) {
    Value method = DictMethod(obj, name);
    if (!method.is_undefined()) return method;
    if (const Value* v = obj.as_dict().Find(name)) return *v;
    return Value::MakeUndefined(absl::StrCat("'dict object' has no attribute '", name, "'"));
  }
  if (obj.is_undefined()) return Value::MakeUndefined(obj.undefined_name());
  return Value::MakeUndefined(
      absl::StrCat("'", obj.TypeName(), " object' has no attribute '", name, "'"));
}

absl::StatusOr<Value> GetItem(const Value& obj, const Value& key,
                              size_t max_bytes) {
  if (obj.is_dict() && !obj.as_dict().is_namespace) {
    if (key.is_string()) {
      if (const Value* v = obj.as_dict().Find(key.as_string())) return *v;
      return GetAttr(obj, key.as_string(), max_bytes);
    }
    return Value::MakeUndefined("dict key");
  }
  if (obj.is_dict() && key.is_string()) return GetAttr(obj, key.as_string(), max_bytes);
  if ((obj.is_list() || obj.is_string()) && (key.is_int() || key.is_bool())) {
    int64_t i = key.is_int() ? key.as_int() : int64_t{key.as_bool()};
    if (obj.is_list()) {
      const Value::List& l = obj.as_list();
      int64_t n = static_cast<int64_t>(l.size());
      if (i < 0) i += n;
      if (i < 0 || i >= n) return Value::MakeUndefined("list index out of range");
      return l[static_cast<size_t>(i)];
    }
    std::vector<std::string> cps = SplitCodePoints(obj.as_string());
    int64_t n = static_cast<int64_t>(cps.size());
    if (i < 0) i += n;
    if (i < 0 || i >= n) return Value::MakeUndefined("string index out of range");
    return Value(cps[static_cast<size_t>(i)]);
  }
  if (key.is_string()) return GetAttr(obj, key.as_string(), max_bytes);
  if (obj.is_undefined()) return Value::MakeUndefined(obj.undefined_name());
  return Err(absl::StrCat("cannot index ", obj.TypeName(), " with ", key.TypeName()));
}

absl::StatusOr<Value> SliceValue(const Value& obj, const Value& start,
                                 const Value& stop, const Value& step) {
  auto opt_int = [](const Value& v, const char* what) -> absl::StatusOr<std::optional<int64_t>> {
    if (v.is_undefined() || v.is_none()) return std::optional<int64_t>();
    if (v.is_int()) return std::optional<int64_t>(v.as_int());
    if (v.is_bool()) return std::optional<int64_t>(v.as_bool());
    return Err(absl::StrCat("slice ", what, " must be an integer"));
  };
  ES_ASSIGN_OR_RETURN(std::optional<int64_t> b, opt_int(start, "start"));
  ES_ASSIGN_OR_RETURN(std::optional<int64_t> e, opt_int(stop, "stop"));
  ES_ASSIGN_OR_RETURN(std::optional<int64_t> s, opt_int(step, "step"));
  int64_t st = s.value_or(1);
  if (st == 0) return Err("slice step cannot be zero");
  std::vector<Value> items;
  bool is_string = obj.is_string();
  if (is_string) {
    for (std::string& cp : SplitCodePoints(obj.as_string())) items.push_back(Value(std::move(cp)));
  } else if (obj.is_list()) {
    items = obj.as_list();
  } else if (obj.is_undefined()) {
    return Value::MakeUndefined(obj.undefined_name());
  } else {
    return Err(absl::StrCat("cannot slice ", obj.TypeName()));
  }
  // Python's PySlice_AdjustIndices.
  int64_t n = static_cast<int64_t>(items.size());
  auto adjust = [&](std::optional<int64_t> v, int64_t dflt) {
    if (!v) return dflt;
    int64_t x = *v;
    if (x < 0) {
      x += n;
      if (x < 0) x = st < 0 ? -1 : 0;
    } else if (x >= n) {
      x = st < 0 ? n - 1 : n;
    }
    return x;
  };
  int64_t lo = adjust(b, st < 0 ? n - 1 : 0);
  int64_t hi = adjust(e, st < 0 ? -1 : n);
  std::vector<Value> out;
  for (int64_t i = lo; st > 0 ? i < hi : i > hi; i += st) out.push_back(items[static_cast<size_t>(i)]);
  if (is_string) {
    std::string str;
    for (const Value& v : out) str += v.as_string();
    return Value(std::move(str));
  }
  return Value(std::move(out));
}

absl::StatusOr<Value> ApplyFilter(absl::string_view name, const Value& input,
                                  CallArgs& args, const RenderLimits& limits) {
  std::string fn(name);
  if (name == "trim") {
    ES_ASSIGN_OR_RETURN(auto p, Bind(fn, args, {"chars"}));
    return Value(Strip(input.Str(), p[0], true, true));
  }
  if (name == "tojson") {
    ES_ASSIGN_OR_RETURN(auto p, Bind(fn, args, {"ensure_ascii", "indent", "separators", "sort_keys"}));
    if (!p[2].is_undefined() && !p[2].is_none()) {
      return Err("tojson(): custom separators are not supported");
    }
    int indent = -1;
    if (p[1].is_int()) indent = static_cast<int>(std::clamp<int64_t>(p[1].as_int(), 0, 64));
    if (p[1].is_string()) return Err("tojson(): string indent is not supported");
    ES_ASSIGN_OR_RETURN(std::string s, ToJson(input, p[0].Truthy(), indent, p[3].Truthy(),
                                             limits.max_output_bytes));
    return Value(std::move(s));
  }
  if (name == "length" || name == "count") return Length(input);
  if (name == "lower") return Value(AsciiLower(input.Str()));
  if (name == "upper") return Value(AsciiUpper(input.Str()));
  if (name == "capitalize") return Value(Capitalize(input.Str()));
  if (name == "title") return Value(JinjaTitle(input.Str()));
  if (name == "default" || name == "d") {
    ES_ASSIGN_OR_RETURN(auto p, Bind(fn, args, {"default_value", "boolean"}));
    bool use_default = p[1].Truthy() ? !input.Truthy() : input.is_undefined();
    if (!use_default) return input;
    return p[0].is_undefined() ? Value(std::string()) : p[0];
  }
  if (name == "first" || name == "last") {
    ES_ASSIGN_OR_RETURN(std::vector<Value> items, Iterate(input));
    if (items.empty()) return Value::MakeUndefined(absl::StrCat("no ", name, " item"));
    return name == "first" ? items.front() : items.back();
  }
  if (name == "join") {
    ES_ASSIGN_OR_RETURN(auto p, Bind(fn, args, {"d", "attribute"}));
    ES_ASSIGN_OR_RETURN(std::vector<Value> items, Iterate(input));
    std::string sep = p[0].is_undefined() ? "" : p[0].Str();
    std::string out;
    for (size_t i = 0; i < items.size(); ++i) {
      if (i > 0) out += sep;
      out += (p[1].is_string() ? AttrPath(items[i], p[1].as_string()) : items[i]).Str();
      if (out.size() > limits.max_output_bytes) return Err("join(): result too large");
    }
    return Value(std::move(out));
  }
  if (name == "replace") {
    ES_ASSIGN_OR_RETURN(auto p, Bind(fn, args, {"old", "new", "count"}));
    ES_ASSIGN_OR_RETURN(std::string from, NeedString(fn, p[0]));
    ES_ASSIGN_OR_RETURN(std::string to, NeedString(fn, p[1]));
    ES_ASSIGN_OR_RETURN(std::string out,
                        ReplaceAll(input.Str(limits.max_output_bytes), from, to,
                                   p[2].is_int() ? p[2].as_int() : -1,
                                   limits.max_output_bytes));
    return Value(std::move(out));
  }
  if (name == "string") return Value(input.Str());
  if (name == "safe") return input;
  if (name == "escape" || name == "e") return Value(HtmlEscape(input.Str()));
  if (name == "int") {
    ES_ASSIGN_OR_RETURN(auto p, Bind(fn, args, {"default", "base"}));
    ES_ASSIGN_OR_RETURN(int64_t v, ToInt(input, p[0].is_int() ? p[0].as_int() : 0));
    return Value(v);
  }
  if (name == "float") {
    if (input.is_number() || input.is_bool()) return Value(input.as_number());
    if (input.is_string()) {
      std::string s = Strip(input.as_string(), Value(), true, true);
      char* end = nullptr;
      double d = std::strtod(s.c_str(), &end);
      if (!s.empty() && end == s.c_str() + s.size()) return Value(d);
    }
    return Value(0.0);
  }
  if (name == "abs") {
    if (input.is_int()) {
      if (input.as_int() == INT64_MIN) return Err("abs(): integer overflow");
      return Value(input.as_int() < 0 ? -input.as_int() : input.as_int());
    }
    if (input.is_double()) return Value(std::fabs(input.as_double()));
    return Err(absl::StrCat("abs(): bad operand type ", input.TypeName()));
  }
  if (name == "round") {
    ES_ASSIGN_OR_RETURN(auto p, Bind(fn, args, {"precision", "method"}));
    if (!input.is_number()) return Err("round(): expected a number");
    double scale = std::pow(10.0, p[0].is_int() ? static_cast<double>(std::clamp<int64_t>(p[0].as_int(), -20, 20)) : 0.0);
    double x = input.as_number() * scale;
    std::string method = p[1].is_string() ? p[1].as_string() : "common";
    double r = method == "floor" ? std::floor(x) : method == "ceil" ? std::ceil(x) : std::round(x);
    return Value(r / scale);
  }
  if (name == "list") {
    ES_ASSIGN_OR_RETURN(std::vector<Value> items, Iterate(input));
    return Value(std::move(items));
  }
  if (name == "items") {
    if (input.is_undefined()) return Value(Value::List{});
    if (!input.is_dict()) return Err(absl::StrCat("items(): expected a mapping, got ", input.TypeName()));
    Value::List out;
    for (const auto& [k, v] : input.as_dict().items) out.push_back(Value(Value::List{Value(k), v}));
    return Value(std::move(out));
  }
  if (name == "reverse") {
    if (input.is_string()) {
      std::vector<std::string> cps = SplitCodePoints(input.as_string());
      std::string out;
      for (auto it = cps.rbegin(); it != cps.rend(); ++it) out += *it;
      return Value(out);
    }
    ES_ASSIGN_OR_RETURN(std::vector<Value> items, Iterate(input));
    std::reverse(items.begin(), items.end());
    return Value(std::move(items));
  }
  if (name == "sort") {
    ES_ASSIGN_OR_RETURN(auto p, Bind(fn, args, {"reverse", "case_sensitive", "attribute"}));
    ES_ASSIGN_OR_RETURN(std::vector<Value> items, Iterate(input));
    std::vector<Value> keys;
    for (const Value& v : items) {
      Value k = p[2].is_string() ? AttrPath(v, p[2].as_string()) : v;
      if (k.is_string() && !p[1].Truthy()) k = Value(AsciiLower(k.as_string()));
      keys.push_back(k);
    }
    std::vector<size_t> order(items.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    absl::Status status;
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      absl::StatusOr<bool> lt = Less(keys[a], keys[b]);
      if (!lt.ok()) {
        status = lt.status();
        return false;
      }
      return *lt;
    });
    ES_RETURN_IF_ERROR(status);
    if (p[0].Truthy()) std::reverse(order.begin(), order.end());
    Value::List out;
    for (size_t i : order) out.push_back(items[i]);
    return Value(std::move(out));
  }
  if (name == "unique") {
    ES_ASSIGN_OR_RETURN(std::vector<Value> items, Iterate(input));
    Value::List out;
    for (const Value& v : items) {
      bool seen = false;
      for (const Value& o : out) seen = seen || o.Equals(v);
      if (!seen) out.push_back(v);
    }
    return Value(std::move(out));
  }
  if (name == "sum") {
    ES_ASSIGN_OR_RETURN(auto p, Bind(fn, args, {"attribute", "start"}));
    ES_ASSIGN_OR_RETURN(std::vector<Value> items, Iterate(input));
    bool is_float = false;
    int64_t isum = p[1].is_int() ? p[1].as_int() : 0;
    double fsum = static_cast<double>(isum);
    for (const Value& item : items) {
      Value v = p[0].is_string() ? AttrPath(item, p[0].as_string()) : item;
      if (v.is_double()) is_float = true;
      if (!v.is_number() && !v.is_bool()) return Err("sum(): items must be numbers");
      if (v.is_int() && __builtin_add_overflow(isum, v.as_int(), &isum)) {
        return Err("sum(): integer overflow");
      }
      fsum += v.as_number();
    }
    return is_float ? Value(fsum) : Value(isum);
  }
  if (name == "wordcount") {
    ES_ASSIGN_OR_RETURN(Value words, Split(input.Str(), Value(None{}), -1));
    return Value(static_cast<int64_t>(words.as_list().size()));
  }
  if (name == "indent") {
    ES_ASSIGN_OR_RETURN(auto p, Bind(fn, args, {"width", "first", "blank"}));
    std::string pad = p[0].is_string() ? p[0].as_string()
                                       : std::string(static_cast<size_t>(std::clamp<int64_t>(p[0].is_int() ? p[0].as_int() : 4, 0, 256)), ' ');
    std::string s = input.Str();
    std::string out;
    size_t pos = 0;
    bool first_line = true;
    while (true) {
      size_t nl = s.find('\n', pos);
      std::string line = s.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
      bool indent_it = first_line ? p[1].Truthy() : (p[2].Truthy() || !line.empty());
      if (indent_it) out += pad;
      out += line;
      if (out.size() > limits.max_output_bytes) return Err("indent(): result too large");
      if (nl == std::string::npos) break;
      out += '\n';
      pos = nl + 1;
      first_line = false;
    }
    return Value(std::move(out));
  }
  if (name == "selectattr" || name == "rejectattr") {
    return SelectOrReject(name, input, args, true, name == "selectattr");
  }
  if (name == "select" || name == "reject") {
    return SelectOrReject(name, input, args, false, name == "select");
  }
  if (name == "map") {
    ES_ASSIGN_OR_RETURN(std::vector<Value> items, Iterate(input));
    Value::List out;
    const Value* attribute = nullptr;
    const Value* dflt = nullptr;
    for (auto& [k, v] : args.keyword) {
      if (k == "attribute") attribute = &v;
      else if (k == "default") dflt = &v;
    }
    if (attribute != nullptr) {
      if (!attribute->is_string()) return Err("map(): attribute must be a string");
      for (const Value& item : items) {
        Value v = AttrPath(item, attribute->as_string());
        out.push_back(v.is_undefined() && dflt != nullptr ? *dflt : v);
      }
      return Value(std::move(out));
    }
    if (args.positional.empty() || !args.positional[0].is_string()) {
      return Err("map(): expected attribute= or a filter name");
    }
    std::string filter = args.positional[0].as_string();
    if (!IsKnownFilter(filter) || filter == "map") {
      return Err(absl::StrCat("map(): unknown filter '", filter, "'"));
    }
    CallArgs rest;
    rest.positional.assign(args.positional.begin() + 1, args.positional.end());
    rest.keyword = args.keyword;
    for (const Value& item : items) {
      CallArgs a = rest;
      ES_ASSIGN_OR_RETURN(Value v, ApplyFilter(filter, item, a, limits));
      out.push_back(std::move(v));
    }
    return Value(std::move(out));
  }
  return Err(absl::StrCat("unknown filter '", name, "'"));
}

absl::StatusOr<bool> ApplyTest(absl::string_view name, const Value& v,
                               CallArgs& args) {
  std::string fn(name);
  auto arg = [&]() -> absl::StatusOr<Value> {
    ES_ASSIGN_OR_RETURN(auto p, Bind(fn, args, {"other"}));
    return p[0];
  };
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "none") return v.is_none();
  if (name == "string") return v.is_string();
  if (name == "mapping") return v.is_dict();
  if (name == "iterable") return v.is_list() || v.is_dict() || v.is_string() || v.is_undefined();
  if (name == "sequence") return v.is_list() || v.is_dict() || v.is_string() || v.is_undefined();
  if (name == "number") return v.is_number() || v.is_bool();
  if (name == "integer") return v.is_int();
  if (name == "float") return v.is_double();
  if (name == "boolean") return v.is_bool();
  if (name == "true") return v.is_bool() && v.as_bool();
  if (name == "false") return v.is_bool() && !v.as_bool();
  if (name == "callable") return v.is_callable();
  if (name == "escaped") return false;
  if (name == "lower") return v.is_string() && AsciiLower(v.as_string()) == v.as_string();
  if (name == "upper") return v.is_string() && AsciiUpper(v.as_string()) == v.as_string();
  if (name == "odd" || name == "even") {
    if (!v.is_int()) return Err(absl::StrCat(name, " test needs an integer"));
    return (v.as_int() % 2 != 0) == (name == "odd");
  }
  if (name == "divisibleby") {
    ES_ASSIGN_OR_RETURN(Value o, arg());
    if (!v.is_int() || !o.is_int() || o.as_int() == 0) {
      return Err("divisibleby needs non-zero integers");
    }
    if (o.as_int() == -1) return true;
    return v.as_int() % o.as_int() == 0;
  }
  if (name == "eq" || name == "equalto" || name == "==" || name == "sameas") {
    ES_ASSIGN_OR_RETURN(Value o, arg());
    if (name == "sameas" && v.TypeName() != o.TypeName()) return false;
    return v.Equals(o);
  }
  if (name == "ne" || name == "!=") {
    ES_ASSIGN_OR_RETURN(Value o, arg());
    return !v.Equals(o);
  }
  if (name == "in") {
    ES_ASSIGN_OR_RETURN(Value o, arg());
    if (o.is_string() && v.is_string()) return o.as_string().find(v.as_string()) != std::string::npos;
    ES_ASSIGN_OR_RETURN(std::vector<Value> items, Iterate(o));
    for (const Value& i : items) {
      if (i.Equals(v)) return true;
    }
    return false;
  }
  if (name == "lt" || name == "gt" || name == "le" || name == "ge" ||
      name == "<" || name == ">" || name == "<=" || name == ">=") {
    ES_ASSIGN_OR_RETURN(Value o, arg());
    if (name == "lt" || name == "<") return Less(v, o);
    if (name == "gt" || name == ">") return Less(o, v);
    ES_ASSIGN_OR_RETURN(bool lt, Less(name == "le" || name == "<=" ? o : v,
                                      name == "le" || name == "<=" ? v : o));
    return !lt;
  }
  return Err(absl::StrCat("unknown test '", name, "'"));
}

std::vector<std::pair<std::string, Value>> MakeGlobals(
    const RenderLimits& limits) {
  std::vector<std::pair<std::string, Value>> g;
  auto kwargs_dict = [](CallArgs& a, bool ns) -> absl::StatusOr<Value> {
    Dict d;
    d.is_namespace = ns;
    if (!a.positional.empty()) {
      if (a.positional.size() > 1 || !a.positional[0].is_dict()) {
        return Err("namespace()/dict() takes keyword arguments or one mapping");
      }
      d.items = a.positional[0].as_dict().items;
    }
    for (auto& [k, v] : a.keyword) d.Set(k, v);
    return Value(std::move(d));
  };
  g.emplace_back("namespace", Value(Callable([kwargs_dict](CallArgs& a) {
                   return kwargs_dict(a, true);
                 })));
  g.emplace_back("dict", Value(Callable([kwargs_dict](CallArgs& a) {
                   return kwargs_dict(a, false);
                 })));
  g.emplace_back("raise_exception",
                 Value(Callable([](CallArgs& a) -> absl::StatusOr<Value> {
                   std::string msg = a.positional.empty() ? "" : a.positional[0].Str();
                   absl::Status s = absl::InvalidArgumentError(msg);
                   s.SetPayload(kRaisePayload, absl::Cord("1"));
                   return s;
                 })));
  g.emplace_back("range", Value(Callable([limits](CallArgs& a) -> absl::StatusOr<Value> {
                   std::vector<int64_t> n;
                   for (const Value& v : a.positional) {
                     if (!v.is_int()) return Err("range() arguments must be integers");
                     n.push_back(v.as_int());
                   }
                   if (n.empty() || n.size() > 3 || !a.keyword.empty()) {
                     return Err("range() takes 1 to 3 integer arguments");
                   }
                   int64_t start = n.size() > 1 ? n[0] : 0;
                   int64_t stop = n.size() > 1 ? n[1] : n[0];
                   int64_t step = n.size() > 2 ? n[2] : 1;
                   if (step == 0) return Err("range() step must not be zero");
                   Value::List out;
                   for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
                     if (out.size() >= limits.max_loop_iterations) return Err("range() too large");
                     out.push_back(Value(i));
                     if ((step > 0 && i > INT64_MAX - step) || (step < 0 && i < INT64_MIN - step)) break;
                   }
                   return Value(std::move(out));
                 })));
  g.emplace_back("strftime_now", Value(Callable([](CallArgs& a) -> absl::StatusOr<Value> {
                   ES_ASSIGN_OR_RETURN(auto p, Bind("strftime_now", a, {"format"}));
                   ES_ASSIGN_OR_RETURN(std::string fmt, NeedString("strftime_now", p[0]));
                   std::time_t now = std::time(nullptr);
                   std::tm tm{};
                   localtime_r(&now, &tm);
                   char buf[256];
                   size_t n = std::strftime(buf, sizeof(buf), fmt.c_str(), &tm);
                   return Value(std::string(buf, n));
                 })));
  return g;
}

}  // namespace expertserve::engine::chat_template
