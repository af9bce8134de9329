#include "engine/sampler/stop_checker.h"

#include <algorithm>

namespace expertserve::engine {

StopChecker::StopChecker(const SamplingParams& params,
                         const std::vector<TokenId>& eos_ids,
                         const Tokenizer* tokenizer)
    : params_(params), eos_ids_(eos_ids) {
  if (tokenizer != nullptr) {
    detok_ = std::make_unique<IncrementalDetokenizer>(*tokenizer,
                                                      params.skip_special_tokens);
    matcher_ = std::make_unique<StopStringMatcher>(params.stop,
                                                   params.include_stop_str_in_output);
  }
}

std::string StopChecker::FlushText() {
  if (!detok_) return "";
  std::string out;
  if (!matcher_->stopped()) {
    auto tail = detok_->Finish();
    if (tail.ok()) out = matcher_->Feed(*tail).text;
    if (!matcher_->stopped()) out += matcher_->Flush();
  }
  return out;
}

std::string StopChecker::Flush() { return FlushText(); }

StopChecker::Result StopChecker::Append(TokenId token) {
  Result r;
  ++num_generated_;
  if (detok_) {
    // An id beyond the tokenizer (a padded vocabulary) decodes to nothing.
    auto delta = detok_->Step(token);
    if (delta.ok()) {
      StopStringMatcher::Result m = matcher_->Feed(*delta);
      r.text = std::move(m.text);
      if (m.stopped) {
        r.finish = FinishReason::kStop;
        r.stop_string = params_.stop[static_cast<size_t>(m.stop_index)];
        return r;
      }
    }
  }
  const bool is_stop_id =
      std::find(params_.stop_token_ids.begin(), params_.stop_token_ids.end(), token) !=
      params_.stop_token_ids.end();
  const bool is_eos = !params_.ignore_eos &&
                      std::find(eos_ids_.begin(), eos_ids_.end(), token) != eos_ids_.end();
  if (is_stop_id || is_eos) {
    r.finish = FinishReason::kStop;
    r.stop_token = token;
  } else if (num_generated_ >= params_.max_tokens) {
    r.finish = FinishReason::kLength;
  }
  if (r.finish) r.text += FlushText();
  return r;
}

}  // namespace expertserve::engine
