// Token selection and logprobs for one sequence from its next-token logits.
//
// Processing order (vLLM v1's sampler): logit_bias -> repetition penalty
// (HF/vLLM: over prompt and output tokens, logit > 0 ? logit / p : logit * p)
// -> frequency and presence penalties (OpenAI/vLLM: over output tokens only,
// logit -= frequency * count + presence * [count > 0]) -> greedy argmax if
// temperature == 0 (ties to the lowest id) -> temperature -> min_p -> top_k
// -> top_p -> one draw from the sequence's PRNG (inverse CDF over the kept
// tokens, in descending-probability order when truncating, else id order).
//
// Logprobs are log-softmax of the RAW logits (before any of the above),
// vLLM's "raw_logprobs" convention.
#ifndef EXPERTSERVE_ENGINE_SAMPLER_SAMPLER_H_
#define EXPERTSERVE_ENGINE_SAMPLER_SAMPLER_H_

#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "common/ids.h"
#include "engine/engine_interface.h"
#include "engine/sampler/prng.h"
#include "engine/sampling_params.h"

namespace expertserve::engine {

// Reusable buffers; one per engine thread. Thread-compatible.
struct SamplerScratch {
  std::vector<float> logits;                   // [vocab]
  std::vector<std::pair<float, TokenId>> kept;  // [<= vocab]
};

// Chooses the next token from `logits` ([vocab], raw model output, not
// modified). `prompt` and `output` are the sequence's tokens so far (for the
// penalties). Validated params assumed.
TokenId SampleToken(std::span<const float> logits, const SamplingParams& params,
                    std::span<const TokenId> prompt, std::span<const TokenId> output,
                    SamplePrng& prng, SamplerScratch& scratch);

// log-softmax of `logits` at `chosen`, its 1-based rank, and the `top_n`
// most likely tokens (ties: lower id first).
PositionLogprobs ComputeLogprobs(std::span<const float> logits, TokenId chosen,
                                 int32_t top_n);

}  // namespace expertserve::engine

#endif  // EXPERTSERVE_ENGINE_SAMPLER_SAMPLER_H_
