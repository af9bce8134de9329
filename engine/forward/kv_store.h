// The memory behind the paged KV cache: one K and one V array per layer in
// the kernels' paged layout. Block bookkeeping (free list, tables, prefix
// cache) lives in the KV cache manager that hands out block ids.
#ifndef EXPERTSERVE_ENGINE_FORWARD_KV_STORE_H_
#define EXPERTSERVE_ENGINE_FORWARD_KV_STORE_H_

#include <cstddef>
#include <vector>

#include "engine/kernels/paged_kv_layout.h"
#include "engine/model/model_config.h"

namespace expertserve::engine {

// The per-layer layout a model needs for `num_blocks` blocks: full K/V per kv
// head for standard attention; for MLA one compressed latent per token
// (kv_lora_rank + qk_rope_head_dim) and no V.
kernels::PagedKvLayout KvLayoutFor(const ModelConfig& config, size_t num_blocks,
                                   size_t block_tokens);

// Bytes one token of KV costs over all layers.
size_t KvBytesPerToken(const ModelConfig& config, kernels::KvDType dtype);

// Owns the stores. Engine thread only (thread-compatible).
class KvStore {
 public:
  KvStore(const ModelConfig& config, size_t num_blocks, size_t block_tokens);
  KvStore(const KvStore&) = delete;
  KvStore& operator=(const KvStore&) = delete;

  const kernels::PagedKvLayout& layout() const { return layout_; }
  size_t num_layers() const { return k_.size(); }
  kernels::PagedKvStore Layer(size_t layer);
  size_t total_bytes() const;

 private:
  kernels::PagedKvLayout layout_;
  std::vector<std::vector<float>> k_;  // [layers][LayerKElems]
  std::vector<std::vector<float>> v_;  // [layers][LayerVElems]
};

}  // namespace expertserve::engine

#endif  // EXPERTSERVE_ENGINE_FORWARD_KV_STORE_H_
