// Per-request generation parameters: everything the sampler supports.
//
// Semantics follow vLLM's SamplingParams (and so the OpenAI API), stated per
// field. Validate() (engine/sampler/validate.h) checks them and names the
// offending parameter in its kInvalidArgument message.
#ifndef EXPERTSERVE_ENGINE_SAMPLING_PARAMS_H_
#define EXPERTSERVE_ENGINE_SAMPLING_PARAMS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/ids.h"

namespace expertserve::engine {

// Limits enforced by validation (vLLM defaults where vLLM has one).
inline constexpr int32_t kMaxLogprobs = 20;   // vLLM max_logprobs
inline constexpr int32_t kMaxSamplesN = 64;   // n
inline constexpr int32_t kMaxStopStrings = 32;
inline constexpr int32_t kMaxStopStringBytes = 256;

// Value type, thread-compatible.
struct SamplingParams {
  // 0 means greedy (argmax; ties to the lowest id). Must be >= 0.
  float temperature = 1.0f;
  // Keep the k most likely tokens; 0 or -1 disables. Must be -1 or >= 0.
  int32_t top_k = 0;
  // Nucleus: smallest set whose probability mass reaches top_p. In (0, 1].
  float top_p = 1.0f;
  // Drop tokens with prob < min_p * max prob. In [0, 1].
  float min_p = 0.0f;
  // HF/vLLM multiplicative penalty over prompt AND generated tokens:
  // logit > 0 ? logit / p : logit * p. 1 disables. Must be > 0.
  float repetition_penalty = 1.0f;
  // OpenAI/vLLM additive penalties over generated tokens only:
  // logit -= presence * [count > 0] + frequency * count. In [-2, 2].
  float presence_penalty = 0.0f;
  float frequency_penalty = 0.0f;
  // Added to the logit of the token before any other processing; ids must be
  // in the vocabulary, biases in [-100, 100] (OpenAI).
  std::vector<std::pair<TokenId, float>> logit_bias;
  // Per-request seed: sample i of the request draws from a PRNG seeded with
  // (seed, i) and advanced once per generated token, so the output does not
  // depend on what else is in the batch. Unset: a random seed.
  std::optional<uint64_t> seed;
  // Independent samples of the same prompt (they share the prompt's KV
  // blocks copy-on-write). In [1, kMaxSamplesN].
  int32_t n = 1;
  // Generation ends when the text contains one of these (matched across
  // token boundaries); the stop string itself is not returned unless
  // include_stop_str_in_output.
  std::vector<std::string> stop;
  bool include_stop_str_in_output = false;
  // Generation ends after one of these ids (the id is returned).
  std::vector<TokenId> stop_token_ids;
  // Generated tokens at most (>= 1). Prompt + max_tokens must fit the
  // model's context and the KV cache, else Submit fails kOutOfRange.
  int32_t max_tokens = 16;
  // Keep generating past the model's EOS token.
  bool ignore_eos = false;
  // Per generated token: its logprob, its rank and the top-N alternatives
  // (N in [0, kMaxLogprobs]), from the log-softmax of the RAW model logits
  // (before bias, penalties, temperature and truncation; vLLM's
  // "raw_logprobs" convention). Unset: no logprobs.
  std::optional<int32_t> logprobs;
  // The same for every prompt token after the first (the first has no
  // context, so its entry is empty, like vLLM's None). Requires the whole
  // prompt to be computed, so such requests skip the prefix cache.
  std::optional<int32_t> prompt_logprobs;
  // Detokenization of the streamed text.
  bool skip_special_tokens = true;
};

}  // namespace expertserve::engine

#endif  // EXPERTSERVE_ENGINE_SAMPLING_PARAMS_H_
