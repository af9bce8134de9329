#include "engine/forward/kv_store.h"

namespace expertserve::engine {

kernels::PagedKvLayout KvLayoutFor(const ModelConfig& config, size_t num_blocks,
                                   size_t block_tokens) {
  kernels::PagedKvLayout layout;
  layout.num_blocks = num_blocks;
  layout.block_tokens = block_tokens;
  layout.dtype = kernels::KvDType::kF32;
  if (config.mla) {
    layout.num_kv_heads = 1;
    layout.k_head_dim =
        static_cast<size_t>(config.kv_lora_rank + config.qk_rope_head_dim);
    layout.v_head_dim = 0;
  } else {
    layout.num_kv_heads = static_cast<size_t>(config.num_key_value_heads);
    layout.k_head_dim = static_cast<size_t>(config.head_dim);
    layout.v_head_dim = static_cast<size_t>(config.head_dim);
  }
  return layout;
}

size_t KvBytesPerToken(const ModelConfig& config, kernels::KvDType dtype) {
  const kernels::PagedKvLayout l = KvLayoutFor(config, 1, 1);
  return (l.KTokenStride() + l.VTokenStride()) * kernels::KvDTypeSize(dtype) *
         static_cast<size_t>(config.num_hidden_layers);
}

KvStore::KvStore(const ModelConfig& config, size_t num_blocks,
                 size_t block_tokens)
    : layout_(KvLayoutFor(config, num_blocks, block_tokens)) {
  const size_t layers = static_cast<size_t>(config.num_hidden_layers);
  k_.resize(layers);
  v_.resize(layers);
  for (size_t l = 0; l < layers; ++l) {
    k_[l].assign(layout_.LayerKElems(), 0.0f);
    v_[l].assign(layout_.LayerVElems(), 0.0f);
  }
}

kernels::PagedKvStore KvStore::Layer(size_t layer) {
  return kernels::PagedKvStore{layout_, k_[layer].data(),
                               v_[layer].empty() ? nullptr : v_[layer].data()};
}

size_t KvStore::total_bytes() const {
  return k_.size() * layout_.LayerBytes();
}

}  // namespace expertserve::engine
