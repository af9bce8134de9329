// Per-sequence end-of-generation logic and streamed text: EOS and stop token
// ids, stop strings across token boundaries (the tokenizer's incremental
// detokenizer feeding its StopStringMatcher), and max_tokens.
#ifndef EXPERTSERVE_ENGINE_SAMPLER_STOP_CHECKER_H_
#define EXPERTSERVE_ENGINE_SAMPLER_STOP_CHECKER_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/ids.h"
#include "engine/engine_interface.h"
#include "engine/sampling_params.h"
#include "engine/tokenizer/incremental_detokenizer.h"
#include "engine/tokenizer/tokenizer.h"

namespace expertserve::engine {

// Engine thread only (thread-compatible); one per sequence.
class StopChecker {
 public:
  // `params` and `tokenizer` (may be null: no text, no stop strings) must
  // outlive this object. `eos_ids` stop generation unless ignore_eos.
  StopChecker(const SamplingParams& params, const std::vector<TokenId>& eos_ids,
              const Tokenizer* tokenizer);

  struct Result {
    std::string text;  // text that became final with this token
    std::optional<FinishReason> finish;  // set when the sequence ends here
    std::string stop_string;
    TokenId stop_token = -1;
  };
  // Accounts for one generated token (which is always part of the output).
  Result Append(TokenId token);
  // The sequence ends for another reason (the context is full): releases
  // any held-back text.
  std::string Flush();

  int32_t num_generated() const { return num_generated_; }

 private:
  std::string FlushText();

  const SamplingParams& params_;
  const std::vector<TokenId>& eos_ids_;
  std::unique_ptr<IncrementalDetokenizer> detok_;
  std::unique_ptr<StopStringMatcher> matcher_;
  int32_t num_generated_ = 0;
};

}  // namespace expertserve::engine

#endif  // EXPERTSERVE_ENGINE_SAMPLER_STOP_CHECKER_H_
