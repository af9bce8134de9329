#include "server/config/yaml_reader.h"

#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include "absl/strings/string_view.h"
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/config/units.h"

namespace expertserve::server::config {

Position PositionOf(const YAML::Node& node, Position fallback) {
  const YAML::Mark mark = node.Mark();
  // yaml-cpp marks are 0-based; -1 (null_mark) for nodes it synthesised.
  if (mark.line < 0 || mark.column < 0) return fallback;
  return {mark.line + 1, mark.column + 1};
}

std::string Describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      return "nothing (null)";
    case YAML::NodeType::Scalar:
      return Quote(node.Scalar());
  }
  return "an unknown node";
}

std::string JoinPath(absl::string_view parent, absl::string_view key) {
  return parent.empty() ? std::string(key) : absl::StrCat(parent, ".", key);
}

std::optional<std::string> Reader::Scalar(const Entry& e,
                                          absl::string_view what) {
  if (e.node.Type() != YAML::NodeType::Scalar) {
    Error(e, absl::StrCat("expected ", what, ", found ", Describe(e.node)));
    return std::nullopt;
  }
  return e.node.Scalar();
}

std::optional<std::string> Reader::String(const Entry& e) {
  return Scalar(e, "a string");
}

std::optional<std::string> Reader::NonEmptyString(const Entry& e) {
  std::optional<std::string> s = Scalar(e, "a non-empty string");
  if (s && s->empty()) {
    Error(e, "expected a non-empty string, found \"\"");
    return std::nullopt;
  }
  return s;
}

std::optional<int64_t> Reader::Int(const Entry& e, int64_t min, int64_t max) {
  const std::string what =
      max == INT64_MAX ? absl::StrCat("an integer >= ", min)
                       : absl::StrCat("an integer in [", min, ", ", max, "]");
  std::optional<std::string> s = Scalar(e, what);
  if (!s) return std::nullopt;
  int64_t v = 0;
  if (!absl::SimpleAtoi(*s, &v)) {
    Error(e, absl::StrCat("expected ", what, ", found ", Quote(*s)));
    return std::nullopt;
  }
  if (v < min || v > max) {
    Error(e, absl::StrCat("expected ", what, ", found ", v));
    return std::nullopt;
  }
  return v;
}

std::optional<double> Reader::Double(const Entry& e, double min, double max) {
  const std::string what = absl::StrCat("a number in [", min, ", ", max, "]");
  std::optional<std::string> s = Scalar(e, what);
  if (!s) return std::nullopt;
  double v = 0;
  if (!absl::SimpleAtod(*s, &v) || !std::isfinite(v)) {
    Error(e, absl::StrCat("expected ", what, ", found ", Quote(*s)));
    return std::nullopt;
  }
  if (v < min || v > max) {
    Error(e, absl::StrCat("expected ", what, ", found ", *s));
    return std::nullopt;
  }
  return v;
}

std::optional<bool> Reader::Bool(const Entry& e) {
  std::optional<std::string> s = Scalar(e, "true or false");
  if (!s) return std::nullopt;
  // YAML 1.2 core schema booleans only: "yes"/"on" are YAML 1.1 and mean
  // strings to most other tools.
  if (*s == "true" || *s == "True" || *s == "TRUE") return true;
  if (*s == "false" || *s == "False" || *s == "FALSE") return false;
  Error(e, absl::StrCat("expected true or false, found ", Quote(*s)));
  return std::nullopt;
}

std::optional<uint64_t> Reader::Size(const Entry& e, uint64_t min) {
  std::optional<std::string> s =
      Scalar(e, "a size such as \"512MiB\" or \"2GiB\"");
  if (!s) return std::nullopt;
  absl::StatusOr<uint64_t> v = ParseSize(*s);
  if (!v.ok()) {
    Error(e, v.status().message());
    return std::nullopt;
  }
  if (*v < min) {
    Error(e, absl::StrCat("expected a size of at least ", FormatSize(min),
                          ", found ", Quote(*s)));
    return std::nullopt;
  }
  return *v;
}

std::optional<absl::Duration> Reader::Duration(const Entry& e,
                                               bool allow_zero) {
  std::optional<std::string> s =
      Scalar(e, "a duration such as \"30s\" or \"500ms\"");
  if (!s) return std::nullopt;
  absl::StatusOr<absl::Duration> d = ParseDuration(*s);
  if (!d.ok()) {
    Error(e, d.status().message());
    return std::nullopt;
  }
  if (!allow_zero && *d == absl::ZeroDuration()) {
    Error(e, absl::StrCat("expected a duration greater than zero, found ",
                          Quote(*s)));
    return std::nullopt;
  }
  return *d;
}

std::optional<size_t> Reader::Choice(
    const Entry& e, absl::Span<const absl::string_view> names) {
  const std::string what = absl::StrCat("one of ", absl::StrJoin(names, ", "));
  std::optional<std::string> s = Scalar(e, what);
  if (!s) return std::nullopt;
  for (size_t i = 0; i < names.size(); ++i) {
    if (names[i] == *s) return i;
  }
  std::string msg = absl::StrCat("expected ", what, ", found ", Quote(*s));
  absl::string_view hint = Suggest(*s, names);
  if (!hint.empty()) absl::StrAppend(&msg, " (did you mean \"", hint, "\"?)");
  Error(e, msg);
  return std::nullopt;
}

bool Reader::ForEach(const Entry& e,
                     const std::function<void(const Entry&)>& fn) {
  if (e.node.IsNull()) return true;
  if (!e.node.IsSequence()) {
    Error(e, absl::StrCat("expected a list, found ", Describe(e.node)));
    return false;
  }
  size_t i = 0;
  for (const YAML::Node& item : e.node) {
    Entry child{item, absl::StrCat(e.path, "[", i, "]"),
                PositionOf(item, e.pos)};
    diag_.Record(child.path, child.pos);
    fn(child);
    ++i;
  }
  return true;
}

MapReader::MapReader(Reader& reader, const Entry& map)
    : reader_(reader), self_(map) {
  if (map.node.IsNull()) return;
  if (!map.node.IsMap()) {
    reader_.Error(map, absl::StrCat("expected a mapping, found ",
                                    Describe(map.node)));
    ok_ = false;
    return;
  }
  absl::flat_hash_map<std::string, Position> seen;
  // Copies, not references: yaml-cpp's iterator returns a temporary proxy,
  // so `const Node& k = it->first` dangles (ASan: stack-use-after-scope).
  for (auto it = map.node.begin(); it != map.node.end(); ++it) {
    const YAML::Node key = it->first;
    const YAML::Node val = it->second;
    const Position key_pos = PositionOf(key, map.pos);
    if (!key.IsScalar()) {
      reader_.diag().Add(key_pos, map.path,
                         absl::StrCat("expected a string key, found ",
                                      Describe(key)));
      continue;
    }
    const std::string& name = key.Scalar();
    const std::string path = JoinPath(map.path, name);
    auto [prev, inserted] = seen.emplace(name, key_pos);
    if (!inserted) {
      reader_.diag().Add(
          key_pos, path,
          absl::StrCat("duplicate key (first set at line ",
                       prev->second.line, ")"));
      continue;
    }
    Entry value{val, path, PositionOf(val, key_pos)};
    // A null value's mark is where the value would be; the key reads better.
    if (val.IsNull()) value.pos = key_pos;
    reader_.diag().Record(path, value.pos);
    items_.push_back({name, std::move(value), key_pos});
  }
}

std::optional<Entry> MapReader::Get(absl::string_view key) {
  known_.emplace_back(key);
  for (Item& item : items_) {
    if (item.key == key) {
      item.used = true;
      return item.value;
    }
  }
  return std::nullopt;
}

std::optional<Entry> MapReader::Require(absl::string_view key,
                                        absl::string_view what) {
  std::optional<Entry> e = Get(key);
  if (!e && ok_) {
    reader_.diag().Add(self_.pos, JoinPath(self_.path, key),
                       absl::StrCat("missing required key \"", key,
                                    "\" (expected ", what, ")"));
  }
  return e;
}

std::vector<std::pair<std::string, Entry>> MapReader::Items() {
  std::vector<std::pair<std::string, Entry>> out;
  for (Item& item : items_) {
    item.used = true;
    out.emplace_back(item.key, item.value);
  }
  return out;
}

void MapReader::Finish() {
  if (finished_) return;
  finished_ = true;
  std::vector<absl::string_view> known(known_.begin(), known_.end());
  for (const Item& item : items_) {
    if (item.used) continue;
    if (reader_.diag().full()) {
      reader_.diag().Add(item.key_pos, "", "");  // counted only
      continue;
    }
    std::string msg = absl::StrCat("unknown key ", Quote(item.key));
    absl::string_view hint = Suggest(item.key, known);
    if (!hint.empty()) {
      absl::StrAppend(&msg, " (did you mean \"", hint, "\"?)");
    } else if (!known.empty()) {
      absl::StrAppend(&msg, "; expected one of: ", absl::StrJoin(known, ", "));
    }
    reader_.diag().Add(item.key_pos, JoinPath(self_.path, item.key), msg);
  }
}

}  // namespace expertserve::server::config
