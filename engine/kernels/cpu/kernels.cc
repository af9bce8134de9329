// Runtime-dispatched entry points of kernels.h: validates shapes, then calls
// the best compiled Highway target for this CPU (or OpenBLAS for GEMM shapes
// where it measured faster; see engine/kernels/README.md).
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "engine/kernels/cpu/kernels.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
// Per-target bodies; foreach_target re-includes this file once per target.
#include "engine/kernels/cpu/ops-inl.h"

#if HWY_ONCE
#include <algorithm>
#include <cstring>
#include <vector>

#include "common/check.h"
#include "engine/kernels/cpu/backends.h"
#include "engine/kernels/kernels.h"

namespace expertserve::kernels {

HWY_EXPORT(MatMulHwy);
HWY_EXPORT(ConvertToF32Impl);
HWY_EXPORT(RMSNormImpl);
HWY_EXPORT(AddImpl);
HWY_EXPORT(SiluMulImpl);
HWY_EXPORT(SoftmaxImpl);
HWY_EXPORT(RopeImpl);
HWY_EXPORT(DotImpl);
HWY_EXPORT(AxpyImpl);
HWY_EXPORT(ScaleImpl);
HWY_EXPORT(PagedAttentionImpl);
HWY_EXPORT(TargetNameImpl);

void MatMul(const MatMulArgs& a, ThreadPool& pool, MatMulBackend backend) {
  ES_DCHECK(a.M == 0 || a.x != nullptr);
  ES_DCHECK(a.x_stride >= a.K);
  ES_DCHECK(a.y_stride >= a.N);
  ES_DCHECK(a.N * a.K == 0 || a.w.data != nullptr);
  ES_DCHECK(a.M * a.N == 0 || a.y != nullptr);
  if (a.M == 0 || a.N == 0) return;
  if (backend == MatMulBackend::kAuto) backend = ChooseMatMulBackend(a);
  if (backend == MatMulBackend::kOpenBlas) {
    internal::MatMulOpenBlas(a, pool);
    return;
  }
  HWY_DYNAMIC_DISPATCH(MatMulHwy)(a, pool);
}

void ConvertToF32(WeightRef src, size_t n, float* dst) {
  ES_DCHECK(n == 0 || (src.data != nullptr && dst != nullptr));
  HWY_DYNAMIC_DISPATCH(ConvertToF32Impl)(src, n, dst);
}

void RMSNorm(const float* x, size_t rows, size_t dim, WeightRef weight,
             float eps, float* out) {
  ES_DCHECK(rows * dim == 0 || (x && out && weight.data));
  ES_DCHECK(eps >= 0.0f);
  HWY_DYNAMIC_DISPATCH(RMSNormImpl)(x, rows, dim, weight, eps, out);
}

void AddInPlace(float* y, const float* x, size_t n) {
  ES_DCHECK(n == 0 || (x && y));
  HWY_DYNAMIC_DISPATCH(AddImpl)(y, x, n);
}

void SiluMul(const float* gate, const float* up, size_t n, float* out) {
  ES_DCHECK(n == 0 || (gate && up && out));
  HWY_DYNAMIC_DISPATCH(SiluMulImpl)(gate, up, n, out);
}

void Softmax(float* x, size_t n) {
  ES_DCHECK(n == 0 || x);
  HWY_DYNAMIC_DISPATCH(SoftmaxImpl)(x, n);
}

void TopK(const float* x, size_t n, size_t k, int32_t* indices, float* values) {
  ES_DCHECK(k <= n);
  ES_DCHECK(k == 0 || (x && indices));
  // Insertion into a sorted k-list: n is the expert count (<= a few hundred)
  // and k is small, so this beats a sort and needs no scratch.
  size_t filled = 0;
  for (size_t i = 0; i < n && k > 0; ++i) {
    const float v = x[i];
    if (filled == k && !(v > x[indices[k - 1]])) continue;
    size_t pos = filled < k ? filled++ : k - 1;
    // Strictly greater moves up, so equal values keep index order.
    while (pos > 0 && v > x[indices[pos - 1]]) {
      indices[pos] = indices[pos - 1];
      --pos;
    }
    indices[pos] = static_cast<int32_t>(i);
  }
  if (values) {
    for (size_t i = 0; i < k; ++i) values[i] = x[indices[i]];
  }
}

void ApplyRope(float* x, size_t num_heads, size_t head_stride, size_t rot_dim,
               const float* cos, const float* sin, RopeLayout layout) {
  ES_DCHECK(rot_dim % 2 == 0 && rot_dim <= head_stride);
  ES_DCHECK(num_heads * rot_dim == 0 || (x && cos && sin));
  HWY_DYNAMIC_DISPATCH(RopeImpl)(x, num_heads, head_stride, rot_dim, cos, sin,
                                 layout);
}

float Dot(const float* a, const float* b, size_t n) {
  ES_DCHECK(n == 0 || (a && b));
  return HWY_DYNAMIC_DISPATCH(DotImpl)(a, b, n);
}

void Axpy(float alpha, const float* x, float* y, size_t n) {
  ES_DCHECK(n == 0 || (x && y));
  HWY_DYNAMIC_DISPATCH(AxpyImpl)(alpha, x, y, n);
}

void Scale(float alpha, float* x, size_t n) {
  ES_DCHECK(n == 0 || x);
  HWY_DYNAMIC_DISPATCH(ScaleImpl)(alpha, x, n);
}

void PagedAttention(const PagedAttentionArgs& a, const PagedKvView& kv,
                    ThreadPool& pool) {
  const PagedKvLayout& L = kv.layout;
  ES_DCHECK(L.num_kv_heads > 0 && L.block_tokens > 0);
  ES_DCHECK(a.num_q_heads % L.num_kv_heads == 0);
  ES_DCHECK(a.q_token_stride >= a.num_q_heads * L.k_head_dim);
  ES_DCHECK(a.out_token_stride >= a.num_q_heads * kv.VDim());
  ES_DCHECK(!kv.v_aliases_k || kv.v_read_dim <= L.k_head_dim);
  ES_DCHECK(kv.k != nullptr && (kv.v_aliases_k || kv.v != nullptr));
#ifndef NDEBUG
  for (size_t t = 0; t < a.num_tokens; ++t) {
    ES_DCHECK(a.token_seq[t] >= 0 &&
              static_cast<size_t>(a.token_seq[t]) < a.num_seqs);
    ES_DCHECK(a.token_pos[t] >= 0);
    const SeqBlockTable& table = a.seqs[a.token_seq[t]];
    const size_t blocks_needed =
        static_cast<size_t>(a.token_pos[t]) / L.block_tokens + 1;
    ES_DCHECK(blocks_needed <= table.num_blocks);
    for (size_t b = 0; b < blocks_needed; ++b) {
      ES_DCHECK(table.blocks[b] >= 0 &&
                static_cast<size_t>(table.blocks[b]) < L.num_blocks);
    }
  }
#endif
  if (a.num_tokens == 0 || a.num_q_heads == 0) return;
  HWY_DYNAMIC_DISPATCH(PagedAttentionImpl)(a, kv, pool);
}

void WriteKv(const PagedKvStore& store, const SeqBlockTable& table, size_t pos,
             const float* k, const float* v) {
  const PagedKvLayout& L = store.layout;
  ES_DCHECK(pos / L.block_tokens < table.num_blocks);
  const size_t block = static_cast<size_t>(table.blocks[pos / L.block_tokens]);
  ES_DCHECK(block < L.num_blocks);
  const size_t slot = pos % L.block_tokens;
  const auto put = [&](void* base, size_t offset, const float* src, size_t n) {
    if (L.dtype == KvDType::kF32) {
      std::memcpy(static_cast<float*>(base) + offset, src, n * sizeof(float));
    } else {
      uint16_t* dst = static_cast<uint16_t*>(base) + offset;
      for (size_t i = 0; i < n; ++i) dst[i] = F32ToBF16Bits(src[i]);
    }
  };
  put(store.k, L.KOffset(block, slot, 0), k, L.KTokenStride());
  if (L.v_head_dim > 0) put(store.v, L.VOffset(block, slot, 0), v, L.VTokenStride());
}

const char* ActiveTargetName() {
  return HWY_DYNAMIC_DISPATCH(TargetNameImpl)();
}

}  // namespace expertserve::kernels
#endif  // HWY_ONCE
