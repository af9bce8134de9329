// A model runner with no weights for scheduler and engine tests.
//
// It keeps a real paged "KV store" holding the token id written at every
// (block, slot), and computes each wanted logit row from the sequence's
// whole history READ BACK THROUGH ITS BLOCK TABLE: the next token is
// Next(hash of tokens at positions 0..p). So a wrong block table, a bad
// prefix-cache hit or a missed copy-on-write changes the output, and
// outputs are independent of batch composition by construction.
#ifndef EXPERTSERVE_ENGINE_RUNTIME_FAKE_MODEL_RUNNER_H_
#define EXPERTSERVE_ENGINE_RUNTIME_FAKE_MODEL_RUNNER_H_

#include <functional>
#include <vector>

#include "engine/runtime/model_runner.h"

namespace expertserve::engine {

struct FakeModelOptions {
  int32_t vocab_size = 64;
  int32_t max_model_len = 4096;
  int32_t num_kv_blocks = 64;
  int32_t block_tokens = 4;
  // Scripted next token from (history hash, history length); the default
  // is a deterministic pseudo-random token in [1, vocab).
  std::function<TokenId(uint64_t hash, int32_t length)> next;
};

// Engine thread only (thread-compatible).
class FakeModelRunner final : public ModelRunnerInterface {
 public:
  explicit FakeModelRunner(FakeModelOptions options);

  int32_t vocab_size() const override { return options_.vocab_size; }
  int32_t max_model_len() const override { return options_.max_model_len; }
  int32_t num_kv_blocks() const override { return options_.num_kv_blocks; }
  int32_t block_tokens() const override { return options_.block_tokens; }
  void CopyBlocks(std::span<const BlockCopy> copies) override;
  absl::Status Run(const StepBatch& batch, std::vector<float>& logits) override;

  // The next token for a full history (what a correct engine must produce
  // greedily): for building expectations in tests.
  TokenId NextFor(std::span<const TokenId> history) const;
  // The logit row ([vocab]) the runner returns after `history`.
  std::vector<float> LogitsFor(std::span<const TokenId> history) const;
  // Every batch run so far (tests inspect step composition).
  const std::vector<StepBatch>& batches() const { return batches_; }

 private:
  FakeModelOptions options_;
  std::vector<TokenId> kv_;  // [num_kv_blocks, block_tokens]; -1 = unwritten
  std::vector<StepBatch> batches_;
};

}  // namespace expertserve::engine

#endif  // EXPERTSERVE_ENGINE_RUNTIME_FAKE_MODEL_RUNNER_H_
