// Error collection for config loading: every problem is kept, with its
// position and key path, so one run reports all of them. Internal to
// server/config. Thread-compatible.
#ifndef EXPERTSERVE_SERVER_CONFIG_DIAGNOSTICS_H_
#define EXPERTSERVE_SERVER_CONFIG_DIAGNOSTICS_H_

#include <string>
#include "absl/strings/string_view.h"
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/types/span.h"

namespace expertserve::server::config {

// 1-based; 0 = unknown.
struct Position {
  int line = 0;
  int column = 0;
};

class Diagnostics {
 public:
  // Past this many errors the rest are counted, not stored: a fuzzed or
  // badly broken file must not produce an unbounded message.
  static constexpr size_t kMaxErrors = 100;

  explicit Diagnostics(std::string source) : source_(std::move(source)) {}

  // `path` is a key path such as "models[1].path"; empty for the whole file.
  void Add(Position pos, absl::string_view path, absl::string_view message);
  // Adds at the recorded position of `path` (or its nearest recorded parent).
  void AddAt(absl::string_view path, absl::string_view message);

  // Remembers where `path` is written, for checks that run after parsing.
  void Record(absl::string_view path, Position pos);
  Position Find(absl::string_view path) const;
  // Whether exactly `path` was recorded (the key is written in the file).
  bool Has(absl::string_view path) const { return positions_.contains(path); }

  bool empty() const { return errors_.empty(); }
  // True once further errors would only be counted: callers may skip
  // expensive work such as suggestions.
  bool full() const { return errors_.size() >= kMaxErrors; }
  size_t size() const { return errors_.size() + dropped_; }
  const std::string& source() const { return source_; }

  // OK if empty; else kInvalidArgument listing the errors sorted by position,
  // one per line, after a one-line header.
  absl::Status ToStatus() const;

 private:
  struct Error {
    Position pos;
    std::string text;  // formatted, without the source prefix
    size_t order;      // insertion order, to keep the sort stable
  };
  std::string source_;
  std::vector<Error> errors_;
  size_t dropped_ = 0;
  absl::flat_hash_map<std::string, Position> positions_;
};

// Quotes user text for an error message: C-escaped, cut at 64 bytes.
std::string Quote(absl::string_view text);
// Quotes a file path: C-escaped, never cut (a cut path is useless).
std::string QuotePath(absl::string_view path);

// The closest candidate to `word` (case-insensitive edit distance with
// transpositions), or "" if none is close enough to be a plausible typo.
absl::string_view Suggest(absl::string_view word,
                          absl::Span<const absl::string_view> candidates);

}  // namespace expertserve::server::config

#endif  // EXPERTSERVE_SERVER_CONFIG_DIAGNOSTICS_H_
