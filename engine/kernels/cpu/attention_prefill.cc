// Causal attention for a run of consecutive query tokens of one sequence
// (a prefill chunk) as GEMMs: per kv head, the context's keys and values are
// gathered from the paged store into contiguous f32 once, then
// scores = Q·Kᵀ, a masked softmax per row, and out = P·V run through
// MatMulGroup over the group's q heads. The per-token kernel instead scores
// one key at a time (a dot product and a horizontal sum per key and head),
// which leaves prefill compute-bound at a few GFLOP/s.
#include <algorithm>
#include <cmath>
#include <vector>

#include "engine/kernels/cpu/backends.h"
#include "engine/kernels/kernels.h"

namespace expertserve::kernels::internal {
namespace {

DType ToDType(KvDType t) {
  return t == KvDType::kF32 ? DType::kF32 : DType::kBF16;
}

}  // namespace

void PrefillAttention(const PagedAttentionArgs& a, const PagedKvView& kv,
                      size_t first, size_t count, ThreadPool& pool,
                      size_t score_budget) {
  const PagedKvLayout& L = kv.layout;
  const size_t group = a.num_q_heads / L.num_kv_heads;
  const size_t dk = L.k_head_dim;
  const size_t dv = kv.VDim();
  const size_t bt = L.block_tokens;
  const size_t elem = KvDTypeSize(L.dtype);
  const DType dtype = ToDType(L.dtype);
  const SeqBlockTable& table = a.seqs[a.token_seq[first]];
  const size_t p0 = static_cast<size_t>(a.token_pos[first]);
  const size_t ctx = p0 + count;  // keys 0..p0+count-1
  const char* k_base = static_cast<const char*>(kv.k);
  const char* v_base =
      static_cast<const char*>(kv.v_aliases_k ? kv.k : kv.v);
  const size_t v_token_stride =
      kv.v_aliases_k ? L.KTokenStride() : L.VTokenStride();
  const size_t v_head_stride = kv.v_aliases_k ? dk : L.v_head_dim;

  // Query tiles of at most kQueryTile rows, so that a tile scores only the
  // keys up to its own last token (one tile over a whole 512-token chunk
  // would compute, then mask, half of the square); smaller still if one
  // head's scores would exceed the budget. Heads per pass so that all of a
  // pass's scores fit it.
  constexpr size_t kQueryTile = 64;
  const size_t tile = std::min(
      {count, kQueryTile, std::max<size_t>(1, score_budget / ctx)});
  std::vector<float> keys(ctx * dk), values_t(dv * ctx), vrow(dv), tile_values_t,
      scores;
  std::vector<MatMulArgs> products;
  for (size_t g = 0; g < L.num_kv_heads; ++g) {
    // Once per kv head, in f32: keys[j] = K[j] and values_t[d, j] = V[j][d]
    // (the PV product's weight is [dv, keys]).
    for (size_t j = 0; j < ctx; ++j) {
      const size_t block = static_cast<size_t>(table.blocks[j / bt]);
      const size_t k_off = L.KOffset(block, j % bt, g);
      ConvertToF32(WeightRef{k_base + k_off * elem, dtype}, dk, keys.data() + j * dk);
      const size_t v_off =
          block * bt * v_token_stride + (j % bt) * v_token_stride + g * v_head_stride;
      ConvertToF32(WeightRef{v_base + v_off * elem, dtype}, dv, vrow.data());
      for (size_t d = 0; d < dv; ++d) values_t[d * ctx + j] = vrow[d];
    }
    for (size_t i0 = 0; i0 < count; i0 += tile) {
      const size_t i1 = std::min(count, i0 + tile);
      const size_t rows = i1 - i0;
      const size_t n_keys = p0 + i1;  // the tile's last token sees these
      // The tile's PV weight: the first n_keys columns of values_t.
      const float* tile_v = values_t.data();
      if (n_keys < ctx) {
        tile_values_t.resize(dv * n_keys);
        for (size_t d = 0; d < dv; ++d) {
          std::copy_n(values_t.data() + d * ctx, n_keys, tile_values_t.data() + d * n_keys);
        }
        tile_v = tile_values_t.data();
      }
      const size_t per_head = rows * n_keys;
      const size_t heads_per_pass =
          std::clamp<size_t>(score_budget / per_head, 1, group);
      scores.resize(heads_per_pass * per_head);
      for (size_t h0 = 0; h0 < group; h0 += heads_per_pass) {
        const size_t h1 = std::min(group, h0 + heads_per_pass);
        products.clear();
        for (size_t h = h0; h < h1; ++h) {
          const size_t qh = g * group + h;
          products.push_back(MatMulArgs{
              a.q + (first + i0) * a.q_token_stride + qh * dk, a.q_token_stride,
              rows, dk, WeightRef{keys.data(), DType::kF32}, n_keys, nullptr,
              scores.data() + (h - h0) * per_head, n_keys});
        }
        MatMulGroup(products, pool);
        // Row r is token first+i0+r at position p0+i0+r: causal over
        // p0+i0+r+1 keys; later columns get probability 0.
        pool.ParallelFor((h1 - h0) * rows, [&](size_t task, size_t) {
          const size_t r = task % rows;
          float* row = scores.data() + task * n_keys;
          const size_t valid = p0 + i0 + r + 1;
          Scale(a.scale, row, valid);
          Softmax(row, valid);
          std::fill(row + valid, row + n_keys, 0.0f);
        });
        products.clear();
        for (size_t h = h0; h < h1; ++h) {
          const size_t qh = g * group + h;
          products.push_back(MatMulArgs{
              scores.data() + (h - h0) * per_head, n_keys, rows, n_keys,
              WeightRef{tile_v, DType::kF32}, dv, nullptr,
              a.out + (first + i0) * a.out_token_stride + qh * dv,
              a.out_token_stride});
        }
        MatMulGroup(products, pool);
      }
    }
  }
}

}  // namespace expertserve::kernels::internal
