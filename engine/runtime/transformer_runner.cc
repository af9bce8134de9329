#include "engine/runtime/transformer_runner.h"

#include <algorithm>
#include <cstring>

#include "common/status_macros.h"

namespace expertserve::engine {

absl::StatusOr<std::unique_ptr<TransformerRunner>> TransformerRunner::Create(
    std::unique_ptr<Transformer> model, const TransformerRunnerOptions& options) {
  const size_t per_token = KvBytesPerToken(model->config(), kernels::KvDType::kF32);
  int32_t blocks = options.num_blocks;
  if (blocks <= 0) {
    ES_ASSIGN_OR_RETURN(blocks, NumBlocksForBudget(options.kv_budget_bytes, per_token,
                                                   options.block_tokens));
  }
  return std::unique_ptr<TransformerRunner>(new TransformerRunner(
      std::move(model), blocks, options.block_tokens, options.num_threads));
}

TransformerRunner::TransformerRunner(std::unique_ptr<Transformer> model,
                                     int32_t num_blocks, int32_t block_tokens,
                                     size_t num_threads)
    : model_(std::move(model)),
      num_blocks_(num_blocks),
      block_tokens_(block_tokens),
      kv_(model_->config(), static_cast<size_t>(num_blocks),
          static_cast<size_t>(block_tokens)),
      pool_(num_threads) {}

int32_t TransformerRunner::vocab_size() const {
  return static_cast<int32_t>(model_->config().vocab_size);
}

int32_t TransformerRunner::max_model_len() const {
  return static_cast<int32_t>(model_->config().max_position_embeddings);
}

void TransformerRunner::CopyBlocks(std::span<const BlockCopy> copies) {
  if (copies.empty()) return;
  const kernels::PagedKvLayout& l = kv_.layout();
  const size_t elem = kernels::KvDTypeSize(l.dtype);
  for (size_t layer = 0; layer < kv_.num_layers(); ++layer) {
    kernels::PagedKvStore s = kv_.Layer(layer);
    for (const BlockCopy& c : copies) {
      auto* k = static_cast<std::byte*>(s.k);
      std::memcpy(k + static_cast<size_t>(c.dst) * l.KBlockStride() * elem,
                  k + static_cast<size_t>(c.src) * l.KBlockStride() * elem,
                  l.KBlockStride() * elem);
      if (s.v != nullptr && l.VBlockStride() > 0) {
        auto* v = static_cast<std::byte*>(s.v);
        std::memcpy(v + static_cast<size_t>(c.dst) * l.VBlockStride() * elem,
                    v + static_cast<size_t>(c.src) * l.VBlockStride() * elem,
                    l.VBlockStride() * elem);
      }
    }
  }
}

absl::Status TransformerRunner::Run(const StepBatch& batch, std::vector<float>& logits) {
  return model_->Forward(batch, kv_, pool_, logits, &stats_);
}

}  // namespace expertserve::engine
