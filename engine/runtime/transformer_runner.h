// The production model runner: the Transformer forward pass over a KvStore
// sized from a byte budget.
#ifndef EXPERTSERVE_ENGINE_RUNTIME_TRANSFORMER_RUNNER_H_
#define EXPERTSERVE_ENGINE_RUNTIME_TRANSFORMER_RUNNER_H_

#include <filesystem>
#include <memory>

#include "absl/status/statusor.h"
#include "common/thread_pool.h"
#include "engine/forward/kv_store.h"
#include "engine/forward/transformer.h"
#include "engine/runtime/model_runner.h"

namespace expertserve::engine {

struct TransformerRunnerOptions {
  size_t kv_budget_bytes = size_t{256} << 20;
  int32_t block_tokens = 16;
  // > 0: exactly this many blocks, ignoring kv_budget_bytes (tests).
  int32_t num_blocks = 0;
  size_t num_threads = 0;  // 0 = hardware concurrency
};

// Engine thread only (thread-compatible).
class TransformerRunner final : public ModelRunnerInterface {
 public:
  static absl::StatusOr<std::unique_ptr<TransformerRunner>> Create(
      std::unique_ptr<Transformer> model, const TransformerRunnerOptions& options);

  int32_t vocab_size() const override;
  int32_t max_model_len() const override;
  int32_t num_kv_blocks() const override { return num_blocks_; }
  int32_t block_tokens() const override { return block_tokens_; }
  void CopyBlocks(std::span<const BlockCopy> copies) override;
  absl::Status Run(const StepBatch& batch, std::vector<float>& logits) override;
  ForwardStats forward_stats() const override { return stats_; }

  const Transformer& model() const { return *model_; }

 private:
  TransformerRunner(std::unique_ptr<Transformer> model, int32_t num_blocks,
                    int32_t block_tokens, size_t num_threads);

  std::unique_ptr<Transformer> model_;
  int32_t num_blocks_;
  int32_t block_tokens_;
  KvStore kv_;
  ThreadPool pool_;
  ForwardStats stats_;
};

}  // namespace expertserve::engine

#endif  // EXPERTSERVE_ENGINE_RUNTIME_TRANSFORMER_RUNNER_H_
