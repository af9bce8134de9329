// Typed, error-collecting reads from yaml-cpp nodes. Internal to server/config:
// the only header that exposes yaml-cpp types. Nothing here throws; every
// failed read reports to Diagnostics and returns nullopt.
// Thread-compatible.
#ifndef EXPERTSERVE_SERVER_CONFIG_YAML_READER_H_
#define EXPERTSERVE_SERVER_CONFIG_YAML_READER_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include "absl/strings/string_view.h"
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "absl/types/span.h"
#include "server/config/diagnostics.h"
#include "yaml-cpp/yaml.h"

namespace expertserve::server::config {

// One value in the document with its key path and position.
struct Entry {
  YAML::Node node;
  std::string path;
  Position pos;
};

Position PositionOf(const YAML::Node& node, Position fallback = {});

// "a mapping", "a list", "null", or the quoted scalar.
std::string Describe(const YAML::Node& node);

class Reader {
 public:
  explicit Reader(Diagnostics& diag) : diag_(diag) {}

  Diagnostics& diag() { return diag_; }
  void Error(const Entry& e, absl::string_view message) {
    diag_.Add(e.pos, e.path, message);
  }

  std::optional<std::string> String(const Entry& e);
  // A non-empty string.
  std::optional<std::string> NonEmptyString(const Entry& e);
  std::optional<int64_t> Int(const Entry& e, int64_t min, int64_t max);
  std::optional<double> Double(const Entry& e, double min, double max);
  std::optional<bool> Bool(const Entry& e);
  std::optional<uint64_t> Size(const Entry& e, uint64_t min);
  // A non-negative duration; zero only if `allow_zero`.
  std::optional<absl::Duration> Duration(const Entry& e, bool allow_zero);
  // One of `names`; returns its index.
  std::optional<size_t> Choice(const Entry& e,
                               absl::Span<const absl::string_view> names);

  // Calls `fn` for each item of a list (null = empty list). Reports and
  // returns false if `e` is not a list.
  bool ForEach(const Entry& e, const std::function<void(const Entry&)>& fn);

 private:
  // The scalar text, or nullopt after reporting "expected <what>".
  std::optional<std::string> Scalar(const Entry& e, absl::string_view what);
  Diagnostics& diag_;
};

// Reads a mapping key by key. Every key asked for with Get() is "known"; on
// Finish() each other key present is reported as unknown, with a suggestion
// among the known ones. A null node counts as an empty mapping.
class MapReader {
 public:
  MapReader(Reader& reader, const Entry& map);

  bool ok() const { return ok_; }  // false if the node was not a mapping
  const Entry& self() const { return self_; }

  // The value under `key`, or nullopt if absent.
  std::optional<Entry> Get(absl::string_view key);
  // As Get(), but reports "missing required key" when absent.
  std::optional<Entry> Require(absl::string_view key, absl::string_view what);
  // Keys in file order (for maps whose keys are data, such as routes).
  std::vector<std::pair<std::string, Entry>> Items();

  void Finish();

 private:
  struct Item {
    std::string key;
    Entry value;
    Position key_pos;
    bool used = false;
  };
  Reader& reader_;
  Entry self_;
  bool ok_ = true;
  bool finished_ = false;
  std::vector<Item> items_;
  std::vector<std::string> known_;
};

// "a.b" joined, or just "b" at the root.
std::string JoinPath(absl::string_view parent, absl::string_view key);

}  // namespace expertserve::server::config

#endif  // EXPERTSERVE_SERVER_CONFIG_YAML_READER_H_
