#include "engine/sampler/validate.h"

#include <cmath>
#include <string>

#include "absl/strings/str_cat.h"

namespace expertserve::engine {
namespace {

absl::Status Bad(const char* name, const std::string& why) {
  return absl::InvalidArgumentError(absl::StrCat("sampling.", name, ": ", why));
}

}  // namespace

absl::Status ValidateSamplingParams(const SamplingParams& p, int32_t vocab_size,
                                    bool has_tokenizer) {
  if (!std::isfinite(p.temperature) || p.temperature < 0.0f) {
    return Bad("temperature", absl::StrCat("must be >= 0 (0 = greedy), got ", p.temperature));
  }
  if (p.top_k < -1) {
    return Bad("top_k", absl::StrCat("must be -1 or 0 (disabled) or >= 1, got ", p.top_k));
  }
  if (!(p.top_p > 0.0f && p.top_p <= 1.0f)) {
    return Bad("top_p", absl::StrCat("must be in (0, 1], got ", p.top_p));
  }
  if (!(p.min_p >= 0.0f && p.min_p <= 1.0f)) {
    return Bad("min_p", absl::StrCat("must be in [0, 1], got ", p.min_p));
  }
  if (!std::isfinite(p.repetition_penalty) || p.repetition_penalty <= 0.0f) {
    return Bad("repetition_penalty",
               absl::StrCat("must be > 0 (1 = off), got ", p.repetition_penalty));
  }
  if (!(p.presence_penalty >= -2.0f && p.presence_penalty <= 2.0f)) {
    return Bad("presence_penalty", absl::StrCat("must be in [-2, 2], got ", p.presence_penalty));
  }
  if (!(p.frequency_penalty >= -2.0f && p.frequency_penalty <= 2.0f)) {
    return Bad("frequency_penalty",
               absl::StrCat("must be in [-2, 2], got ", p.frequency_penalty));
  }
  for (const auto& [id, bias] : p.logit_bias) {
    if (id < 0 || id >= vocab_size) {
      return Bad("logit_bias", absl::StrCat("token id ", id, " is outside the vocabulary [0, ",
                                            vocab_size, ")"));
    }
    if (!(bias >= -100.0f && bias <= 100.0f)) {
      return Bad("logit_bias", absl::StrCat("bias for token ", id, " must be in [-100, 100], got ",
                                            bias));
    }
  }
  if (p.n < 1 || p.n > kMaxSamplesN) {
    return Bad("n", absl::StrCat("must be in [1, ", kMaxSamplesN, "], got ", p.n));
  }
  if (p.max_tokens < 1) {
    return Bad("max_tokens", absl::StrCat("must be >= 1, got ", p.max_tokens));
  }
  if (static_cast<int32_t>(p.stop.size()) > kMaxStopStrings) {
    return Bad("stop", absl::StrCat("at most ", kMaxStopStrings, " stop strings, got ",
                                    p.stop.size()));
  }
  for (const std::string& s : p.stop) {
    if (s.empty()) return Bad("stop", "stop strings must not be empty");
    if (static_cast<int32_t>(s.size()) > kMaxStopStringBytes) {
      return Bad("stop", absl::StrCat("stop strings are limited to ", kMaxStopStringBytes,
                                      " bytes, got ", s.size()));
    }
  }
  if (!p.stop.empty() && !has_tokenizer) {
    return Bad("stop", "this model has no tokenizer, so stop strings cannot be matched");
  }
  for (TokenId id : p.stop_token_ids) {
    if (id < 0 || id >= vocab_size) {
      return Bad("stop_token_ids", absl::StrCat("token id ", id,
                                                " is outside the vocabulary [0, ", vocab_size, ")"));
    }
  }
  if (p.logprobs && (*p.logprobs < 0 || *p.logprobs > kMaxLogprobs)) {
    return Bad("logprobs", absl::StrCat("must be in [0, ", kMaxLogprobs, "], got ", *p.logprobs));
  }
  if (p.prompt_logprobs && (*p.prompt_logprobs < 0 || *p.prompt_logprobs > kMaxLogprobs)) {
    return Bad("prompt_logprobs",
               absl::StrCat("must be in [0, ", kMaxLogprobs, "], got ", *p.prompt_logprobs));
  }
  return absl::OkStatus();
}

}  // namespace expertserve::engine
