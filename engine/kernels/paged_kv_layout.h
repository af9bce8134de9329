// Storage layout of the paged KV cache, shared by the engine's KV cache (which
// allocates it) and the paged attention kernel (which reads it).
#ifndef EXPERTSERVE_ENGINE_KERNELS_PAGED_KV_LAYOUT_H_
#define EXPERTSERVE_ENGINE_KERNELS_PAGED_KV_LAYOUT_H_

#include <cstddef>
#include <cstdint>

namespace expertserve::kernels {

enum class KvDType : uint8_t { kF32, kBF16 };

inline size_t KvDTypeSize(KvDType t) { return t == KvDType::kF32 ? 4 : 2; }

// One layer's K and V stores, each a separate array (elements of `dtype`):
//   K: [num_blocks, block_tokens, num_kv_heads, k_head_dim]
//   V: [num_blocks, block_tokens, num_kv_heads, v_head_dim]
// A sequence's token at position p lives in block block_table[p / block_tokens]
// at slot p % block_tokens. Blocks of one layer are contiguous, so a store is
// one allocation of LayerKElems() / LayerVElems() elements per layer.
//
// MLA caches one compressed latent per token: num_kv_heads = 1, k_head_dim =
// kv_lora_rank + qk_rope_head_dim, and no V store (v_head_dim = 0); the
// attention kernel then reads V as the first kv_lora_rank elements of K (see
// PagedKvView::v_aliases_k).
struct PagedKvLayout {
  size_t num_blocks = 0;
  size_t block_tokens = 0;
  size_t num_kv_heads = 0;
  size_t k_head_dim = 0;
  size_t v_head_dim = 0;
  KvDType dtype = KvDType::kF32;

  size_t KTokenStride() const { return num_kv_heads * k_head_dim; }
  size_t VTokenStride() const { return num_kv_heads * v_head_dim; }
  size_t KBlockStride() const { return block_tokens * KTokenStride(); }
  size_t VBlockStride() const { return block_tokens * VTokenStride(); }
  size_t LayerKElems() const { return num_blocks * KBlockStride(); }
  size_t LayerVElems() const { return num_blocks * VBlockStride(); }
  size_t LayerBytes() const {
    return (LayerKElems() + LayerVElems()) * KvDTypeSize(dtype);
  }
  // Element offset of (block, slot, kv_head) in the K / V store.
  size_t KOffset(size_t block, size_t slot, size_t head) const {
    return block * KBlockStride() + slot * KTokenStride() + head * k_head_dim;
  }
  size_t VOffset(size_t block, size_t slot, size_t head) const {
    return block * VBlockStride() + slot * VTokenStride() + head * v_head_dim;
  }
};

// What the attention kernel reads for one layer: the layout plus the stores.
// Thread-compatible value type; the stores are not owned.
struct PagedKvView {
  PagedKvLayout layout;
  const void* k = nullptr;  // [num_blocks, block_tokens, num_kv_heads, k_head_dim]
  const void* v = nullptr;  // [num_blocks, block_tokens, num_kv_heads, v_head_dim]
  // MLA: V is the first `v_read_dim` elements of each K head (v is ignored).
  bool v_aliases_k = false;
  size_t v_read_dim = 0;  // only with v_aliases_k; <= k_head_dim

  size_t VDim() const { return v_aliases_k ? v_read_dim : layout.v_head_dim; }
};

// The mutable counterpart, for writing new tokens' K/V.
struct PagedKvStore {
  PagedKvLayout layout;
  void* k = nullptr;
  void* v = nullptr;
  PagedKvView View() const { return PagedKvView{layout, k, v, false, 0}; }
};

}  // namespace expertserve::kernels

#endif  // EXPERTSERVE_ENGINE_KERNELS_PAGED_KV_LAYOUT_H_
