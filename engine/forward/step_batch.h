// The input of one forward step: a flat batch of tokens from many sequences
// at arbitrary positions (prefill chunks and decodes mixed), in
// structure-of-arrays form.
#ifndef EXPERTSERVE_ENGINE_FORWARD_STEP_BATCH_H_
#define EXPERTSERVE_ENGINE_FORWARD_STEP_BATCH_H_

#include <cstdint>
#include <vector>

#include "common/ids.h"
#include "engine/forward/adapter_routing.h"

namespace expertserve::engine {

// One sequence taking part in the step.
struct StepSequence {
  // KV block ids in position order; must cover every position the step
  // writes (the KV cache allocates them before the step).
  std::vector<int32_t> block_table;
  // The sequence's ESFT adapter (its reroute tables); null runs the base.
  const AdapterRouting* adapter = nullptr;
};

// Thread-compatible value type, built by the scheduler and read by the
// forward pass.
struct StepBatch {
  std::vector<TokenId> tokens;     // [num_tokens]
  std::vector<int32_t> positions;  // [num_tokens] absolute position in its sequence
  std::vector<int32_t> token_seq;  // [num_tokens] index into sequences
  std::vector<StepSequence> sequences;
  // Tokens whose next-token logits are wanted (usually each sequence's last
  // token of the step), as indices into tokens; logits come out in this order.
  std::vector<int32_t> logit_tokens;  // [num_logits]

  size_t num_tokens() const { return tokens.size(); }

  // Appends `count` consecutive tokens of sequence `seq` starting at
  // position `start` and, if `want_logits`, asks for the last one's logits.
  void AddTokens(int32_t seq, const TokenId* ids, int32_t count, int32_t start,
                 bool want_logits) {
    for (int32_t i = 0; i < count; ++i) {
      tokens.push_back(ids[i]);
      positions.push_back(start + i);
      token_seq.push_back(seq);
    }
    if (want_logits && count > 0) {
      logit_tokens.push_back(static_cast<int32_t>(tokens.size()) - 1);
    }
  }
};

}  // namespace expertserve::engine

#endif  // EXPERTSERVE_ENGINE_FORWARD_STEP_BATCH_H_
