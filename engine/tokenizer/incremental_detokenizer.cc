#include "engine/tokenizer/incremental_detokenizer.h"

#include <span>
#include <utility>

#include "common/status_macros.h"
#include "engine/tokenizer/unicode.h"

namespace expertserve::engine {
namespace {
constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}
}  // namespace

bool IsCompleteUtf8(std::string_view s) { return !unicode::FindInvalidUtf8(s).has_value(); }

absl::StatusOr<std::string> IncrementalDetokenizer::Step(TokenId id) {
  ids_.push_back(id);
  const std::span<const TokenId> window(ids_.data() + prefix_index_, ids_.size() - prefix_index_);
  auto text = tok_.Decode(window, skip_special_);
  if (!text.ok()) {
    ids_.pop_back();
    return text.status();
  }
  // Hold back while the window grows nothing new or ends mid-character.
  if (text->size() <= prefix_.size() || EndsWith(*text, kReplacement)) return std::string();
  if (text->compare(0, prefix_.size(), prefix_) != 0) {
    // The decoder rewrote earlier text (not seen with real tokenizers); wait
    // for a later, consistent window rather than emit something wrong.
    return std::string();
  }
  std::string delta = text->substr(prefix_.size());
  prefix_index_ = read_index_;
  read_index_ = ids_.size();
  ES_ASSIGN_OR_RETURN(prefix_, tok_.Decode(std::span<const TokenId>(ids_.data() + prefix_index_,
                                                                    read_index_ - prefix_index_),
                                           skip_special_));
  return delta;
}

absl::StatusOr<std::string> IncrementalDetokenizer::Finish() {
  if (read_index_ == ids_.size()) return std::string();
  ES_ASSIGN_OR_RETURN(std::string text,
                      tok_.Decode(std::span<const TokenId>(ids_.data() + prefix_index_,
                                                           ids_.size() - prefix_index_),
                                  skip_special_));
  read_index_ = ids_.size();
  if (text.size() <= prefix_.size() || text.compare(0, prefix_.size(), prefix_) != 0) {
    return std::string();
  }
  std::string tail = text.substr(prefix_.size());
  prefix_ = std::move(text);
  return tail;
}

StopStringMatcher::StopStringMatcher(std::vector<std::string> stop_strings,
                                     bool include_stop_string)
    : include_stop_(include_stop_string) {
  for (auto& s : stop_strings) stops_.push_back(std::move(s));
}

StopStringMatcher::Result StopStringMatcher::Feed(std::string_view delta) {
  Result r;
  if (stopped_) return r;
  pending_.append(delta);
  // Earliest occurrence of any stop string (ties: the earlier-listed one).
  size_t best = std::string::npos;
  int which = -1;
  for (size_t k = 0; k < stops_.size(); ++k) {
    if (stops_[k].empty()) continue;
    const size_t p = pending_.find(stops_[k]);
    if (p != std::string::npos && p < best) {
      best = p;
      which = static_cast<int>(k);
    }
  }
  if (which >= 0) {
    stopped_ = true;
    r.stopped = true;
    r.stop_index = which;
    r.text = pending_.substr(0, include_stop_ ? best + stops_[which].size() : best);
    pending_.clear();
    return r;
  }
  // Hold back the longest tail that is a proper prefix of some stop string.
  size_t hold = 0;
  for (const std::string& s : stops_) {
    const size_t max_len = std::min(s.size() - (s.empty() ? 0 : 1), pending_.size());
    for (size_t len = max_len; len > hold; --len) {
      if (pending_.compare(pending_.size() - len, len, s, 0, len) == 0) {
        hold = len;
        break;
      }
    }
  }
  r.text = pending_.substr(0, pending_.size() - hold);
  pending_.erase(0, pending_.size() - hold);
  return r;
}

std::string StopStringMatcher::Flush() {
  if (stopped_) return std::string();
  return std::exchange(pending_, std::string());
}

}  // namespace expertserve::engine
