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

float* Grow(std::vector<float>& buf, size_t n) {
  if (buf.size() < n) buf.resize(n);
  return buf.data();
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
  // head's scores would exceed the budget. All q heads of a tile run in as few
  // passes as the budget allows: one fork/join per head and tile left MLA's
  // expanded prefill (16 kv heads, group 1) at ~75 GFLOP/s.
  constexpr size_t kQueryTile = 64;
  const size_t tile = std::min(
      {count, kQueryTile, std::max<size_t>(1, score_budget / ctx)});
  // Per kv head g, in f32: keys[g][j] = K[j] and values_t[g][d][j] = V[j][d]
  // (the PV product's weight is [dv, keys]), for a chunk of kv heads at a
  // time whose copies fit twice the score budget (64 MiB by default; all
  // heads at once would hold num_kv_heads x ctx x (dk + dv) floats: 256 MB
  // for 8 heads of 128 at 32k).
  // Grow-only per-thread scratch: fresh vectors cost a page fault per 4 KiB
  // on every call (~5 % of a 512-token MLA prefill's attention); buffers past
  // kKeepFloats are released at the end so a long-context spike does not stay.
  const size_t gather_budget = 2 * score_budget;  // floats
  constexpr size_t kKeepFloats = size_t{16} << 20;
  thread_local std::vector<float> keys_buf, values_t_buf, tile_values_t_buf, scores_buf;
  const size_t per_kv_head = ctx * (dk + dv);
  const size_t chunk_heads =
      std::clamp<size_t>(gather_budget / std::max<size_t>(per_kv_head, 1), 1, L.num_kv_heads);
  float* const keys = Grow(keys_buf, chunk_heads * ctx * dk);
  float* const values_t = Grow(values_t_buf, chunk_heads * dv * ctx);
  std::vector<MatMulArgs> products;
  for (size_t gc0 = 0; gc0 < L.num_kv_heads; gc0 += chunk_heads) {
    const size_t gc1 = std::min(L.num_kv_heads, gc0 + chunk_heads);
    // keys / values_t hold kv heads [gc0, gc1) at index g - gc0.
    pool.ParallelFor(gc1 - gc0, [&](size_t gi, size_t) {
      const size_t g = gc0 + gi;
      std::vector<float> vrow(dv);
      float* kg = keys + gi * ctx * dk;
      float* vg = values_t + gi * dv * ctx;
      for (size_t j = 0; j < ctx; ++j) {
        const size_t block = static_cast<size_t>(table.blocks[j / bt]);
        const size_t k_off = L.KOffset(block, j % bt, g);
        ConvertToF32(WeightRef{k_base + k_off * elem, dtype}, dk, kg + j * dk);
        const size_t v_off =
            block * bt * v_token_stride + (j % bt) * v_token_stride + g * v_head_stride;
        ConvertToF32(WeightRef{v_base + v_off * elem, dtype}, dv, vrow.data());
        for (size_t d = 0; d < dv; ++d) vg[d * ctx + j] = vrow[d];
      }
    });
    const size_t qh_begin = gc0 * group, qh_end = gc1 * group;
    for (size_t i0 = 0; i0 < count; i0 += tile) {
      const size_t i1 = std::min(count, i0 + tile);
      const size_t rows = i1 - i0;
      const size_t n_keys = p0 + i1;  // the tile's last token sees these
      const size_t per_head = rows * n_keys;
      const size_t heads_per_pass =
          std::clamp<size_t>(score_budget / per_head, 1, qh_end - qh_begin);
      float* const scores = Grow(scores_buf, heads_per_pass * per_head);
      for (size_t h0 = qh_begin; h0 < qh_end; h0 += heads_per_pass) {
        const size_t h1 = std::min(qh_end, h0 + heads_per_pass);
        const size_t g0 = h0 / group, g1 = (h1 - 1) / group + 1;
        products.clear();
        for (size_t qh = h0; qh < h1; ++qh) {
          products.push_back(MatMulArgs{
              a.q + (first + i0) * a.q_token_stride + qh * dk, a.q_token_stride,
              rows, dk, WeightRef{keys + (qh / group - gc0) * ctx * dk, DType::kF32},
              n_keys, nullptr, scores + (qh - h0) * per_head, n_keys});
        }
        MatMulGroup(products, pool);
        // The pass's PV weights: the first n_keys columns of its kv heads'
        // values_t (copied alongside the softmax rows unless that is all).
        const bool copy_v = n_keys < ctx;
        float* const tile_values_t =
            copy_v ? Grow(tile_values_t_buf, (g1 - g0) * dv * n_keys) : nullptr;
        // Softmax rows in tasks of kRowsPerTask (1024 one-row tasks per pass
        // spent more in the pool than in the rows).
        constexpr size_t kRowsPerTask = 8;
        const size_t score_rows = (h1 - h0) * rows;
        const size_t softmax_tasks = (score_rows + kRowsPerTask - 1) / kRowsPerTask;
        pool.ParallelFor(softmax_tasks + (copy_v ? g1 - g0 : 0), [&](size_t task, size_t) {
          if (task >= softmax_tasks) {
            const size_t g = g0 + task - softmax_tasks;
            for (size_t d = 0; d < dv; ++d) {
              std::copy_n(values_t + ((g - gc0) * dv + d) * ctx, n_keys,
                          tile_values_t + ((g - g0) * dv + d) * n_keys);
            }
            return;
          }
          const size_t e = std::min(score_rows, (task + 1) * kRowsPerTask);
          for (size_t sr = task * kRowsPerTask; sr < e; ++sr) {
            // Row r is token first+i0+r at position p0+i0+r: causal over
            // p0+i0+r+1 keys; later columns get probability 0.
            const size_t r = sr % rows;
            float* row = scores + sr * n_keys;
            const size_t valid = p0 + i0 + r + 1;
            Scale(a.scale, row, valid);
            Softmax(row, valid);
            std::fill(row + valid, row + n_keys, 0.0f);
          }
        });
        products.clear();
        for (size_t qh = h0; qh < h1; ++qh) {
          const size_t g = qh / group;
          const float* v = copy_v ? tile_values_t + (g - g0) * dv * n_keys
                                  : values_t + (g - gc0) * dv * ctx;
          products.push_back(MatMulArgs{
              scores + (qh - h0) * per_head, n_keys, rows, n_keys,
              WeightRef{v, DType::kF32}, dv, nullptr,
              a.out + (first + i0) * a.out_token_stride + qh * dv,
              a.out_token_stride});
        }
        MatMulGroup(products, pool);
      }
    }
  }
  for (std::vector<float>* buf : {&keys_buf, &values_t_buf, &tile_values_t_buf, &scores_buf}) {
    if (buf->capacity() > kKeepFloats) std::vector<float>().swap(*buf);
  }
}

}  // namespace expertserve::kernels::internal
