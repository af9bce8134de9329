#include "server/config/diagnostics.h"

#include <algorithm>
#include <cstdint>
#include <tuple>
#include <string>
#include "absl/strings/string_view.h"
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace expertserve::server::config {

void Diagnostics::Add(Position pos, absl::string_view path,
                      absl::string_view message) {
  if (errors_.size() >= kMaxErrors) {
    ++dropped_;
    return;
  }
  std::string text = path.empty() ? std::string(message)
                                  : absl::StrCat(path, ": ", message);
  errors_.push_back({pos, std::move(text), errors_.size()});
}

void Diagnostics::AddAt(absl::string_view path, absl::string_view message) {
  Add(Find(path), path, message);
}

void Diagnostics::Record(absl::string_view path, Position pos) {
  if (pos.line > 0) positions_.insert_or_assign(std::string(path), pos);
}

Position Diagnostics::Find(absl::string_view path) const {
  // Walk up "a.b[2].c" -> "a.b[2]" -> "a.b" -> "a" until a recorded one.
  while (!path.empty()) {
    auto it = positions_.find(path);
    if (it != positions_.end()) return it->second;
    const size_t cut = path.find_last_of(".[");
    if (cut == absl::string_view::npos) break;
    path = path.substr(0, cut);
  }
  return {};
}

absl::Status Diagnostics::ToStatus() const {
  if (errors_.empty()) return absl::OkStatus();
  std::vector<const Error*> sorted;
  sorted.reserve(errors_.size());
  for (const Error& e : errors_) sorted.push_back(&e);
  // Unknown positions (0) sort last; otherwise file order.
  auto key = [](const Error* e) {
    return std::make_tuple(e->pos.line == 0 ? 1 : 0, e->pos.line,
                           e->pos.column, e->order);
  };
  std::sort(sorted.begin(), sorted.end(),
            [&](const Error* a, const Error* b) { return key(a) < key(b); });
  const size_t total = size();
  std::string msg = absl::StrCat("invalid config ", source_, ": ", total,
                                 total == 1 ? " error" : " errors");
  for (const Error* e : sorted) {
    absl::StrAppend(&msg, "\n", source_);
    if (e->pos.line > 0) {
      absl::StrAppend(&msg, ":", e->pos.line, ":", e->pos.column);
    }
    absl::StrAppend(&msg, ": ", e->text);
  }
  if (dropped_ > 0) {
    absl::StrAppend(&msg, "\n", source_, ": ... and ", dropped_,
                    " more errors");
  }
  return absl::InvalidArgumentError(msg);
}

std::string Quote(absl::string_view text) {
  constexpr size_t kMax = 64;
  std::string out =
      absl::StrCat("\"", absl::CHexEscape(text.substr(0, kMax)), "\"");
  if (text.size() > kMax) out += "...";
  return out;
}

std::string QuotePath(absl::string_view path) {
  return absl::StrCat("\"", absl::CHexEscape(path), "\"");
}

namespace {

// Optimal-string-alignment distance, case-insensitive: a swapped pair of
// letters ("modles") counts as one edit.
size_t EditDistance(absl::string_view a, absl::string_view b) {
  const size_t m = b.size();
  // Three rolling rows: i-2, i-1, i.
  std::vector<size_t> prev2(m + 1), prev(m + 1), cur(m + 1);
  for (size_t j = 0; j <= m; ++j) prev[j] = j;
  auto lower = [](char c) { return absl::ascii_tolower(c); };
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= m; ++j) {
      const bool same = lower(a[i - 1]) == lower(b[j - 1]);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1,
                         prev[j - 1] + (same ? 0 : 1)});
      if (i > 1 && j > 1 && lower(a[i - 1]) == lower(b[j - 2]) &&
          lower(a[i - 2]) == lower(b[j - 1])) {
        cur[j] = std::min(cur[j], prev2[j - 2] + 1);
      }
    }
    std::swap(prev2, prev);
    std::swap(prev, cur);
  }
  return prev[m];
}

}  // namespace

absl::string_view Suggest(absl::string_view word,
                          absl::Span<const absl::string_view> candidates) {
  // Long garbage keys are not typos; skip the quadratic work.
  if (word.empty() || word.size() > 64) return {};
  absl::string_view best;
  size_t best_distance = SIZE_MAX;
  for (absl::string_view c : candidates) {
    const size_t dist = EditDistance(word, c);
    if (dist < best_distance) {
      best_distance = dist;
      best = c;
    }
  }
  const size_t len = std::max(word.size(), best.size());
  const size_t allowed = len <= 4 ? 1 : len <= 8 ? 2 : 3;
  return best_distance <= allowed ? best : absl::string_view();
}

}  // namespace expertserve::server::config
