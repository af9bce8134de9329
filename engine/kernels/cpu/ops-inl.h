// Per-target SIMD bodies of the kernels in kernels.h. Included once per
// Highway target by kernels.cc (foreach_target.h), hence the toggling include
// guard; only kernels.cc may include it.
#if defined(EXPERTSERVE_ENGINE_KERNELS_CPU_OPS_INL_H_) == \
    defined(HWY_TARGET_TOGGLE)
#ifdef EXPERTSERVE_ENGINE_KERNELS_CPU_OPS_INL_H_
#undef EXPERTSERVE_ENGINE_KERNELS_CPU_OPS_INL_H_
#else
#define EXPERTSERVE_ENGINE_KERNELS_CPU_OPS_INL_H_
#endif

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>

#include "common/thread_pool.h"
#include "engine/kernels/cpu/backends.h"
#include "engine/kernels/kernels.h"
#include "hwy/cache_control.h"
#include "hwy/contrib/math/math-inl.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace expertserve::kernels {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;

// ---- loads of any element type as f32 ---------------------------------------

HWY_INLINE float ScalarF32(const float* p) { return *p; }
HWY_INLINE float ScalarF32(const hwy::bfloat16_t* p) {
  uint16_t bits;
  std::memcpy(&bits, p, 2);
  return BF16BitsToF32(bits);
}
HWY_INLINE float ScalarF32(const hwy::float16_t* p) {
  uint16_t bits;
  std::memcpy(&bits, p, 2);
  return F16BitsToF32(bits);
}

template <class D>
HWY_INLINE hn::Vec<D> LoadF32(D d, const float* HWY_RESTRICT p) {
  return hn::LoadU(d, p);
}
// BF16 -> F32 is a 16-bit shift after a half-width load: cheap enough that
// decode (memory-bound) promotes in registers instead of packing.
template <class D>
HWY_INLINE hn::Vec<D> LoadF32(D d, const hwy::bfloat16_t* HWY_RESTRICT p) {
  const hn::Rebind<hwy::bfloat16_t, D> dh;
  return hn::PromoteTo(d, hn::LoadU(dh, p));
}
template <class D>
HWY_INLINE hn::Vec<D> LoadF32(D d, const hwy::float16_t* HWY_RESTRICT p) {
  const hn::Rebind<hwy::float16_t, D> dh;
  return hn::PromoteTo(d, hn::LoadU(dh, p));
}

HWY_INLINE float ReduceSum(DF df, VF v) {
  return hn::GetLane(hn::SumOfLanes(df, v));
}

template <typename T>
void ConvertRowT(const T* HWY_RESTRICT src, size_t n, float* HWY_RESTRICT dst) {
  const DF df;
  const size_t NL = hn::Lanes(df);
  size_t i = 0;
  for (; i + NL <= n; i += NL) hn::StoreU(LoadF32(df, src + i), df, dst + i);
  for (; i < n; ++i) dst[i] = ScalarF32(src + i);
}

// Σ a[i] b[i]; two accumulators hide FMA latency.
template <typename T>
HWY_INLINE float DotT(const float* HWY_RESTRICT a, const T* HWY_RESTRICT b,
                      size_t n) {
  const DF df;
  const size_t NL = hn::Lanes(df);
  VF s0 = hn::Zero(df), s1 = hn::Zero(df);
  size_t i = 0;
  for (; i + 2 * NL <= n; i += 2 * NL) {
    s0 = hn::MulAdd(hn::LoadU(df, a + i), LoadF32(df, b + i), s0);
    s1 = hn::MulAdd(hn::LoadU(df, a + i + NL), LoadF32(df, b + i + NL), s1);
  }
  for (; i + NL <= n; i += NL) {
    s0 = hn::MulAdd(hn::LoadU(df, a + i), LoadF32(df, b + i), s0);
  }
  float sum = ReduceSum(df, hn::Add(s0, s1));
  for (; i < n; ++i) sum += a[i] * ScalarF32(b + i);
  return sum;
}

// y[i] += alpha * x[i].
template <typename T>
HWY_INLINE void AxpyT(float alpha, const T* HWY_RESTRICT x,
                      float* HWY_RESTRICT y, size_t n) {
  const DF df;
  const size_t NL = hn::Lanes(df);
  const VF va = hn::Set(df, alpha);
  size_t i = 0;
  for (; i + NL <= n; i += NL) {
    hn::StoreU(hn::MulAdd(va, LoadF32(df, x + i), hn::LoadU(df, y + i)), df,
               y + i);
  }
  for (; i < n; ++i) y[i] += alpha * ScalarF32(x + i);
}

HWY_INLINE void ScaleF(float alpha, float* HWY_RESTRICT x, size_t n) {
  const DF df;
  const size_t NL = hn::Lanes(df);
  const VF va = hn::Set(df, alpha);
  size_t i = 0;
  for (; i + NL <= n; i += NL) {
    hn::StoreU(hn::Mul(va, hn::LoadU(df, x + i)), df, x + i);
  }
  for (; i < n; ++i) x[i] *= alpha;
}

// ---- MatMul ------------------------------------------------------------------

// Decode streams weights from DRAM in 4 concurrent rows; the hardware
// prefetchers ramp up too slowly for that pattern (they restart at every 4 KiB
// page), so each row asks for the line kPrefetchBytes ahead. Near the end of
// a row that line belongs to the same row of the next 4-row strip: without
// it every strip began with 4 demand misses, a DRAM latency per 4-8 KB of
// weights on expert-sized rows (K = 512-2048). Measured on one MoE layer's
// routed experts at batch 16 (`bench-kernels --only=expert_group`): 0.65 ->
// 0.85 of the DRAM read rate; 512 B ahead gave 0.77, 1-2 KiB the same.
constexpr size_t kPrefetchBytes = 1024;

// Prefetches for rows w0..w3 (w_stride apart) at column k of a kc-long chunk.
template <typename TW>
HWY_INLINE void PrefetchAhead(const TW* w0, const TW* w1, const TW* w2,
                              const TW* w3, size_t k, size_t kc, size_t w_stride) {
  constexpr size_t kAhead = kPrefetchBytes / sizeof(TW);
  size_t ka = k + kAhead;
  if (ka >= kc) ka += 4 * w_stride - kc;  // the next strip's row (may lie
                                          // past the weights: prefetches
                                          // never fault)
  hwy::Prefetch(w0 + ka);
  hwy::Prefetch(w1 + ka);
  hwy::Prefetch(w2 + ka);
  hwy::Prefetch(w3 + ka);
}

// Dot products of MR rows of x with 4 consecutive rows of W over kc elements:
// out[m * 4 + j] = Σ_k x[m, k] w[j, k]. Dot-product form because both
// operands are contiguous along K (W is [N, K]); 8 accumulators + 4 weight
// vectors + 1 x vector fit the 16 AVX2 registers.
template <size_t MR, typename TW>
HWY_INLINE void Dot4xMR(const float* HWY_RESTRICT x, size_t x_stride,
                        const TW* HWY_RESTRICT w, size_t w_stride, size_t kc,
                        float* HWY_RESTRICT out) {
  static_assert(MR == 1 || MR == 2);
  const DF df;
  const size_t NL = hn::Lanes(df);
  const TW* HWY_RESTRICT w0 = w;
  const TW* HWY_RESTRICT w1 = w + w_stride;
  const TW* HWY_RESTRICT w2 = w + 2 * w_stride;
  const TW* HWY_RESTRICT w3 = w + 3 * w_stride;
  const float* HWY_RESTRICT x0 = x;
  const float* HWY_RESTRICT x1 = x + (MR == 2 ? x_stride : 0);
  VF a0 = hn::Zero(df), a1 = hn::Zero(df), a2 = hn::Zero(df),
     a3 = hn::Zero(df);
  // MR == 1: the second set doubles the independent FMA chains (decode);
  // MR == 2: it holds the second x row.
  VF b0 = hn::Zero(df), b1 = hn::Zero(df), b2 = hn::Zero(df),
     b3 = hn::Zero(df);
  size_t k = 0;
  if constexpr (MR == 1) {
    for (; k + 2 * NL <= kc; k += 2 * NL) {
      PrefetchAhead(w0, w1, w2, w3, k, kc, w_stride);
      const VF xa = hn::LoadU(df, x0 + k);
      const VF xb = hn::LoadU(df, x0 + k + NL);
      a0 = hn::MulAdd(xa, LoadF32(df, w0 + k), a0);
      a1 = hn::MulAdd(xa, LoadF32(df, w1 + k), a1);
      a2 = hn::MulAdd(xa, LoadF32(df, w2 + k), a2);
      a3 = hn::MulAdd(xa, LoadF32(df, w3 + k), a3);
      b0 = hn::MulAdd(xb, LoadF32(df, w0 + k + NL), b0);
      b1 = hn::MulAdd(xb, LoadF32(df, w1 + k + NL), b1);
      b2 = hn::MulAdd(xb, LoadF32(df, w2 + k + NL), b2);
      b3 = hn::MulAdd(xb, LoadF32(df, w3 + k + NL), b3);
    }
  }
  for (; k + NL <= kc; k += NL) {
    if constexpr (MR == 2) PrefetchAhead(w0, w1, w2, w3, k, kc, w_stride);
    const VF v0 = LoadF32(df, w0 + k);
    const VF v1 = LoadF32(df, w1 + k);
    const VF v2 = LoadF32(df, w2 + k);
    const VF v3 = LoadF32(df, w3 + k);
    const VF xa = hn::LoadU(df, x0 + k);
    a0 = hn::MulAdd(xa, v0, a0);
    a1 = hn::MulAdd(xa, v1, a1);
    a2 = hn::MulAdd(xa, v2, a2);
    a3 = hn::MulAdd(xa, v3, a3);
    if constexpr (MR == 2) {
      const VF xb = hn::LoadU(df, x1 + k);
      b0 = hn::MulAdd(xb, v0, b0);
      b1 = hn::MulAdd(xb, v1, b1);
      b2 = hn::MulAdd(xb, v2, b2);
      b3 = hn::MulAdd(xb, v3, b3);
    }
  }
  if constexpr (MR == 1) {
    out[0] = ReduceSum(df, hn::Add(a0, b0));
    out[1] = ReduceSum(df, hn::Add(a1, b1));
    out[2] = ReduceSum(df, hn::Add(a2, b2));
    out[3] = ReduceSum(df, hn::Add(a3, b3));
  } else {
    out[0] = ReduceSum(df, a0);
    out[1] = ReduceSum(df, a1);
    out[2] = ReduceSum(df, a2);
    out[3] = ReduceSum(df, a3);
    out[4] = ReduceSum(df, b0);
    out[5] = ReduceSum(df, b1);
    out[6] = ReduceSum(df, b2);
    out[7] = ReduceSum(df, b3);
  }
  for (; k < kc; ++k) {
    const float c0 = ScalarF32(w0 + k), c1 = ScalarF32(w1 + k),
                c2 = ScalarF32(w2 + k), c3 = ScalarF32(w3 + k);
    out[0] += x0[k] * c0;
    out[1] += x0[k] * c1;
    out[2] += x0[k] * c2;
    out[3] += x0[k] * c3;
    if constexpr (MR == 2) {
      out[4] += x1[k] * c0;
      out[5] += x1[k] * c1;
      out[6] += x1[k] * c2;
      out[7] += x1[k] * c3;
    }
  }
}

// Targets with 32 vector registers (AVX-512) also run a 4 × 4 kernel: 16
// accumulators + 4 weight vectors + 1 x vector fit, and every weight vector
// loaded feeds 4 FMAs instead of 2.
#if HWY_TARGET <= HWY_AVX3
constexpr bool kHasDot4x4 = true;
#else
constexpr bool kHasDot4x4 = false;
#endif

// out[m * 4 + j] = Σ_k x[m, k] w[j, k] for 4 rows of x and 4 rows of W.
template <typename TW>
HWY_INLINE void Dot4x4(const float* HWY_RESTRICT x, size_t x_stride,
                       const TW* HWY_RESTRICT w, size_t w_stride, size_t kc,
                       float* HWY_RESTRICT out) {
  const DF df;
  const size_t NL = hn::Lanes(df);
  const TW* HWY_RESTRICT w0 = w;
  const TW* HWY_RESTRICT w1 = w + w_stride;
  const TW* HWY_RESTRICT w2 = w + 2 * w_stride;
  const TW* HWY_RESTRICT w3 = w + 3 * w_stride;
  const float* HWY_RESTRICT x0 = x;
  const float* HWY_RESTRICT x1 = x + x_stride;
  const float* HWY_RESTRICT x2 = x + 2 * x_stride;
  const float* HWY_RESTRICT x3 = x + 3 * x_stride;
  VF a00 = hn::Zero(df), a01 = a00, a02 = a00, a03 = a00;
  VF a10 = a00, a11 = a00, a12 = a00, a13 = a00;
  VF a20 = a00, a21 = a00, a22 = a00, a23 = a00;
  VF a30 = a00, a31 = a00, a32 = a00, a33 = a00;
  size_t k = 0;
  for (; k + NL <= kc; k += NL) {
    PrefetchAhead(w0, w1, w2, w3, k, kc, w_stride);
    const VF v0 = LoadF32(df, w0 + k);
    const VF v1 = LoadF32(df, w1 + k);
    const VF v2 = LoadF32(df, w2 + k);
    const VF v3 = LoadF32(df, w3 + k);
    VF xv = hn::LoadU(df, x0 + k);
    a00 = hn::MulAdd(xv, v0, a00);
    a01 = hn::MulAdd(xv, v1, a01);
    a02 = hn::MulAdd(xv, v2, a02);
    a03 = hn::MulAdd(xv, v3, a03);
    xv = hn::LoadU(df, x1 + k);
    a10 = hn::MulAdd(xv, v0, a10);
    a11 = hn::MulAdd(xv, v1, a11);
    a12 = hn::MulAdd(xv, v2, a12);
    a13 = hn::MulAdd(xv, v3, a13);
    xv = hn::LoadU(df, x2 + k);
    a20 = hn::MulAdd(xv, v0, a20);
    a21 = hn::MulAdd(xv, v1, a21);
    a22 = hn::MulAdd(xv, v2, a22);
    a23 = hn::MulAdd(xv, v3, a23);
    xv = hn::LoadU(df, x3 + k);
    a30 = hn::MulAdd(xv, v0, a30);
    a31 = hn::MulAdd(xv, v1, a31);
    a32 = hn::MulAdd(xv, v2, a32);
    a33 = hn::MulAdd(xv, v3, a33);
  }
  out[0] = ReduceSum(df, a00);
  out[1] = ReduceSum(df, a01);
  out[2] = ReduceSum(df, a02);
  out[3] = ReduceSum(df, a03);
  out[4] = ReduceSum(df, a10);
  out[5] = ReduceSum(df, a11);
  out[6] = ReduceSum(df, a12);
  out[7] = ReduceSum(df, a13);
  out[8] = ReduceSum(df, a20);
  out[9] = ReduceSum(df, a21);
  out[10] = ReduceSum(df, a22);
  out[11] = ReduceSum(df, a23);
  out[12] = ReduceSum(df, a30);
  out[13] = ReduceSum(df, a31);
  out[14] = ReduceSum(df, a32);
  out[15] = ReduceSum(df, a33);
  for (; k < kc; ++k) {
    const float c[4] = {ScalarF32(w0 + k), ScalarF32(w1 + k), ScalarF32(w2 + k),
                        ScalarF32(w3 + k)};
    const float xs[4] = {x0[k], x1[k], x2[k], x3[k]};
    for (size_t m = 0; m < 4; ++m) {
      for (size_t j = 0; j < 4; ++j) out[m * 4 + j] += xs[m] * c[j];
    }
  }
}

// y[m, n] = (first ? bias[n] : y[m, n]) + v.
HWY_INLINE void StoreOut(const MatMulArgs& a, size_t m, size_t n, float v,
                         bool first) {
  float& dst = a.y[m * a.y_stride + n];
  dst = first ? (a.bias ? a.bias[n] : 0.0f) + v : dst + v;
}

// Rows [m0, m1) × columns [n0, n1) of y, over all of K in chunks of kc.
// `pack` ([4, kc] floats) is set for 16-bit weights reused by more than two
// x rows: each 4-row strip is widened once and then read from L1.
template <typename TW>
void MatMulTile(const MatMulArgs& a, const TW* HWY_RESTRICT w, size_t m0,
                size_t m1, size_t n0, size_t n1, size_t kc,
                float* HWY_RESTRICT pack) {
  const size_t K = a.K;
  float out[16];
  for (size_t k0 = 0; k0 < K; k0 += kc) {
    const size_t kn = std::min(kc, K - k0);
    const bool first = k0 == 0;
    const float* x = a.x + k0;
    size_t n = n0;
    for (; n + 4 <= n1; n += 4) {
      const TW* wp = w + n * K + k0;
      const auto run = [&](const auto* ws, size_t w_stride) {
        size_t m = m0;
        if constexpr (kHasDot4x4) {
          for (; m + 4 <= m1; m += 4) {
            Dot4x4(x + m * a.x_stride, a.x_stride, ws, w_stride, kn, out);
            for (size_t r = 0; r < 4; ++r) {
              for (size_t j = 0; j < 4; ++j) {
                StoreOut(a, m + r, n + j, out[r * 4 + j], first);
              }
            }
          }
        }
        for (; m + 2 <= m1; m += 2) {
          Dot4xMR<2>(x + m * a.x_stride, a.x_stride, ws, w_stride, kn, out);
          for (size_t j = 0; j < 4; ++j) {
            StoreOut(a, m, n + j, out[j], first);
            StoreOut(a, m + 1, n + j, out[4 + j], first);
          }
        }
        if (m < m1) {
          Dot4xMR<1>(x + m * a.x_stride, a.x_stride, ws, w_stride, kn, out);
          for (size_t j = 0; j < 4; ++j) StoreOut(a, m, n + j, out[j], first);
        }
      };
      if constexpr (!std::is_same_v<TW, float>) {
        if (pack != nullptr) {
          for (size_t j = 0; j < 4; ++j) ConvertRowT(wp + j * K, kn, pack + j * kn);
          run(pack, kn);
          continue;
        }
      }
      run(wp, K);
    }
    for (; n < n1; ++n) {  // the last N % 4 rows
      const TW* wp = w + n * K + k0;
      for (size_t m = m0; m < m1; ++m) {
        StoreOut(a, m, n, DotT(x + m * a.x_stride, wp, kn), first);
      }
    }
  }
}

// One task of a planned product: a tile of M×N (see PlanMatMul in kernels.cc).
template <typename TW>
void MatMulTaskT(const MatMulArgs& a, const TW* w, const MatMulPlan& p,
                 size_t task) {
  if (a.K == 0) {  // y = bias (or 0): the tile loop would not run
    for (size_t m = 0; m < a.M; ++m) {
      for (size_t n = 0; n < a.N; ++n) StoreOut(a, m, n, 0.0f, true);
    }
    return;
  }
  const size_t mt = task / p.n_tiles, nt = task % p.n_tiles;
  const size_t m0 = mt * p.m_tile, m1 = std::min(a.M, m0 + p.m_tile);
  const size_t n0 = nt * p.n_tile, n1 = std::min(a.N, n0 + p.n_tile);
  // Widen a 16-bit 4-row strip once into L1 when enough x rows reuse it.
  // The 4 x 2 kernel gains from 5 rows (promoting in registers is cheaper
  // for fewer); the 4 x 4 kernel widens in registers for 4 x rows at once
  // and prefetches the weights, which beats the copy (whose loads from DRAM
  // stall) up to 16 rows (dense decode at batch 16: 114 -> 133 tok/s).
  constexpr size_t kPackMinRows = kHasDot4x4 ? 17 : 5;
  float* pack = nullptr;
  if (!std::is_same_v<TW, float> && p.m_tile >= kPackMinRows) {
    thread_local std::vector<float> buf;
    if (buf.size() < 4 * p.kc) buf.resize(4 * p.kc);
    pack = buf.data();
  }
  MatMulTile(a, w, m0, m1, n0, n1, p.kc, pack);
}

void MatMulTaskHwy(const MatMulArgs& a, const MatMulPlan& p, size_t task) {
  switch (a.w.dtype) {
    case DType::kF32:
      return MatMulTaskT(a, static_cast<const float*>(a.w.data), p, task);
    case DType::kBF16:
      return MatMulTaskT(a, static_cast<const hwy::bfloat16_t*>(a.w.data), p,
                         task);
    case DType::kF16:
      return MatMulTaskT(a, static_cast<const hwy::float16_t*>(a.w.data), p,
                         task);
  }
}

void ConvertToF32Impl(WeightRef src, size_t n, float* dst) {
  switch (src.dtype) {
    case DType::kF32:
      return ConvertRowT(static_cast<const float*>(src.data), n, dst);
    case DType::kBF16:
      return ConvertRowT(static_cast<const hwy::bfloat16_t*>(src.data), n, dst);
    case DType::kF16:
      return ConvertRowT(static_cast<const hwy::float16_t*>(src.data), n, dst);
  }
}

// hi = bf16(x), lo = bf16(x - hi), both rounded to nearest even: the
// split-BF16 GEMM's input (cpu/matmul_split_bf16.cc). NaN becomes a quiet
// NaN; where hi is not finite, lo is 0.
void SplitToBf16Impl(const float* x, size_t x_stride, size_t rows, size_t K,
                     uint16_t* hi, uint16_t* lo) {
  const DF df;
  const hn::RebindToUnsigned<DF> du;
  const hn::RebindToSigned<DF> di;
  const hn::Rebind<uint16_t, DF> d16;
  const size_t NL = hn::Lanes(df);
  // bf16 bits of v in the low half of each u32 lane.
  const auto round = [&](VF v) {
    const auto u = hn::BitCast(du, v);
    const auto odd = hn::And(hn::ShiftRight<16>(u), hn::Set(du, 1u));
    const auto r = hn::ShiftRight<16>(hn::Add(u, hn::Add(hn::Set(du, 0x7fffu), odd)));
    // NaN: its top bits with the quiet bit set, as F32ToBF16Bits does.
    const auto nan = hn::Or(hn::ShiftRight<16>(u), hn::Set(du, 0x40u));
    return hn::IfThenElse(hn::RebindMask(du, hn::IsNaN(v)), nan, r);
  };
  const auto store = [&](hn::Vec<decltype(du)> bits, uint16_t* p) {
    hn::StoreU(hn::DemoteTo(d16, hn::BitCast(di, bits)), d16, p);
  };
  for (size_t r = 0; r < rows; ++r) {
    const float* xr = x + r * x_stride;
    uint16_t* h = hi + r * K;
    uint16_t* l = lo + r * K;
    size_t k = 0;
    for (; k + NL <= K; k += NL) {
      const VF v = hn::LoadU(df, xr + k);
      const auto hb = round(v);
      const VF hf = hn::BitCast(df, hn::ShiftLeft<16>(hb));
      const auto lb = hn::IfThenElseZero(hn::RebindMask(du, hn::IsFinite(hf)),
                                         round(hn::Sub(v, hf)));
      store(hb, h + k);
      store(lb, l + k);
    }
    for (; k < K; ++k) {
      h[k] = F32ToBF16Bits(xr[k]);
      const float hf = BF16BitsToF32(h[k]);
      l[k] = std::isfinite(hf) ? F32ToBF16Bits(xr[k] - hf) : 0;
    }
  }
}

// ---- row kernels ----------------------------------------------------------------

template <typename TW>
void RMSNormT(const float* x, size_t rows, size_t dim, const TW* weight,
              float eps, float* out) {
  const DF df;
  const size_t NL = hn::Lanes(df);
  for (size_t r = 0; r < rows; ++r) {
    const float* xr = x + r * dim;
    float* yr = out + r * dim;
    const float inv =
        1.0f / std::sqrt(DotT(xr, xr, dim) / static_cast<float>(dim) + eps);
    const VF vinv = hn::Set(df, inv);
    size_t i = 0;
    for (; i + NL <= dim; i += NL) {
      const VF v = hn::Mul(hn::Mul(hn::LoadU(df, xr + i), vinv),
                           LoadF32(df, weight + i));
      hn::StoreU(v, df, yr + i);
    }
    for (; i < dim; ++i) yr[i] = xr[i] * inv * ScalarF32(weight + i);
  }
}

void RMSNormImpl(const float* x, size_t rows, size_t dim, WeightRef weight,
                 float eps, float* out) {
  switch (weight.dtype) {
    case DType::kF32:
      return RMSNormT(x, rows, dim, static_cast<const float*>(weight.data), eps,
                      out);
    case DType::kBF16:
      return RMSNormT(x, rows, dim,
                      static_cast<const hwy::bfloat16_t*>(weight.data), eps, out);
    case DType::kF16:
      return RMSNormT(x, rows, dim,
                      static_cast<const hwy::float16_t*>(weight.data), eps, out);
  }
}

void AddImpl(float* HWY_RESTRICT y, const float* HWY_RESTRICT x, size_t n) {
  const DF df;
  const size_t NL = hn::Lanes(df);
  size_t i = 0;
  for (; i + NL <= n; i += NL) {
    hn::StoreU(hn::Add(hn::LoadU(df, y + i), hn::LoadU(df, x + i)), df, y + i);
  }
  for (; i < n; ++i) y[i] += x[i];
}

void SiluMulImpl(const float* gate, const float* up, size_t n, float* out) {
  const DF df;
  const size_t NL = hn::Lanes(df);
  const VF one = hn::Set(df, 1.0f);
  size_t i = 0;
  // sigmoid(g) from e = exp(-|g|) <= 1: never overflows (hn::Exp is only
  // valid up to ~104), and silu(g) -> g * e for very negative g as it should.
  for (; i + NL <= n; i += NL) {
    const VF g = hn::LoadU(df, gate + i);
    const VF e = hn::Exp(df, hn::Neg(hn::Abs(g)));
    const VF inv = hn::Div(one, hn::Add(one, e));
    const VF sig = hn::IfThenElse(hn::Ge(g, hn::Zero(df)), inv, hn::Mul(e, inv));
    hn::StoreU(hn::Mul(hn::Mul(g, sig), hn::LoadU(df, up + i)), df, out + i);
  }
  for (; i < n; ++i) {
    const float g = gate[i];
    const float e = std::exp(-std::fabs(g));
    const float sig = g >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
    out[i] = g * sig * up[i];
  }
}

// x[i] = exp(x[i] - mx) for i < n; returns Σ x[i]. Requires x[i] <= mx.
HWY_INLINE float ExpShiftedSum(float* HWY_RESTRICT x, size_t n, float mx) {
  const DF df;
  const size_t NL = hn::Lanes(df);
  const VF vmx = hn::Set(df, mx);
  VF vsum = hn::Zero(df);
  size_t i = 0;
  for (; i + NL <= n; i += NL) {
    const VF e = hn::Exp(df, hn::Sub(hn::LoadU(df, x + i), vmx));
    vsum = hn::Add(vsum, e);
    hn::StoreU(e, df, x + i);
  }
  float sum = ReduceSum(df, vsum);
  for (; i < n; ++i) sum += (x[i] = std::exp(x[i] - mx));
  return sum;
}

void SoftmaxImpl(float* x, size_t n) {
  if (n == 0) return;
  const DF df;
  const size_t NL = hn::Lanes(df);
  float mx = x[0];
  size_t i = 0;
  if (n >= NL) {
    VF vmax = hn::LoadU(df, x);
    for (i = NL; i + NL <= n; i += NL) vmax = hn::Max(vmax, hn::LoadU(df, x + i));
    mx = hn::GetLane(hn::MaxOfLanes(df, vmax));
  }
  for (; i < n; ++i) mx = std::max(mx, x[i]);
  ScaleF(1.0f / ExpShiftedSum(x, n, mx), x, n);
}

void RopeImpl(float* x, size_t num_heads, size_t head_stride, size_t rot_dim,
              const float* cos, const float* sin, RopeLayout layout) {
  const DF df;
  const size_t NL = hn::Lanes(df);
  const size_t half = rot_dim / 2;
  for (size_t h = 0; h < num_heads; ++h) {
    float* v = x + h * head_stride;
    if (layout == RopeLayout::kNeox) {
      size_t i = 0;
      for (; i + NL <= half; i += NL) {
        const VF a = hn::LoadU(df, v + i), b = hn::LoadU(df, v + half + i);
        const VF c = hn::LoadU(df, cos + i), s = hn::LoadU(df, sin + i);
        hn::StoreU(hn::NegMulAdd(b, s, hn::Mul(a, c)), df, v + i);
        hn::StoreU(hn::MulAdd(a, s, hn::Mul(b, c)), df, v + half + i);
      }
      for (; i < half; ++i) {
        const float a = v[i], b = v[half + i];
        v[i] = a * cos[i] - b * sin[i];
        v[half + i] = b * cos[i] + a * sin[i];
      }
    } else {
      // Interleaved pairs: rot_dim is at most a few hundred, so the scalar
      // loop is a negligible share of a layer.
      for (size_t i = 0; i < half; ++i) {
        const float a = v[2 * i], b = v[2 * i + 1];
        v[2 * i] = a * cos[i] - b * sin[i];
        v[2 * i + 1] = b * cos[i] + a * sin[i];
      }
    }
  }
}

float DotImpl(const float* a, const float* b, size_t n) { return DotT(a, b, n); }
void AxpyImpl(float alpha, const float* x, float* y, size_t n) {
  AxpyT(alpha, x, y, n);
}
void ScaleImpl(float alpha, float* x, size_t n) { ScaleF(alpha, x, n); }

// ---- paged attention -------------------------------------------------------------

// Prefetches n rows of `row_bytes` bytes, `stride_bytes` apart: the next
// block's slice for one kv head is 16-ish short rows a token stride apart,
// a pattern the hardware prefetchers pick up too late.
HWY_INLINE void PrefetchRows(const void* base, size_t n, size_t row_bytes,
                             size_t stride_bytes) {
  const char* p = static_cast<const char*>(base);
  for (size_t j = 0; j < n; ++j) {
    for (size_t off = 0; off < row_bytes; off += 64) hwy::Prefetch(p + j * stride_bytes + off);
  }
}

// scores[g * bt + j] = scale * q_g · k_j for the `group` q heads sharing a
// kv head and the block's n_in keys, in register tiles of MR heads × 4 keys
// so each key vector loaded serves several heads (MLA's 16 heads share one
// latent: one dot product at a time was load-bound, with a horizontal sum per
// key and head).
template <typename TKV>
HWY_INLINE void ScoreBlock(const float* HWY_RESTRICT q, size_t group, size_t qk_dim,
                           const TKV* HWY_RESTRICT kb, size_t k_stride, size_t n_in,
                           float scale, size_t bt, float* HWY_RESTRICT scores) {
  constexpr size_t MR = kHasDot4x4 ? 4 : 2;
  float tile[16];
  size_t g = 0;
  for (; g + MR <= group; g += MR) {
    size_t j = 0;
    for (; j + 4 <= n_in; j += 4) {
      if constexpr (kHasDot4x4) {
        Dot4x4(q + g * qk_dim, qk_dim, kb + j * k_stride, k_stride, qk_dim, tile);
      } else {
        Dot4xMR<2>(q + g * qk_dim, qk_dim, kb + j * k_stride, k_stride, qk_dim, tile);
      }
      for (size_t m = 0; m < MR; ++m) {
        for (size_t c = 0; c < 4; ++c) scores[(g + m) * bt + j + c] = scale * tile[m * 4 + c];
      }
    }
    for (; j < n_in; ++j) {
      for (size_t m = 0; m < MR; ++m) {
        scores[(g + m) * bt + j] = scale * DotT(q + (g + m) * qk_dim, kb + j * k_stride, qk_dim);
      }
    }
  }
  for (; g < group; ++g) {
    for (size_t j = 0; j < n_in; ++j) {
      scores[g * bt + j] = scale * DotT(q + g * qk_dim, kb + j * k_stride, qk_dim);
    }
  }
}

// out[g, :] += Σ_j p[g * bt + j] v_j for the block's n_in values, 4 heads at a
// time with their [4, 2 vectors] slice of out held in registers across the
// keys (one axpy per key and head re-loaded and re-stored out every time).
template <typename TKV>
HWY_INLINE void AccumulateBlockPV(const float* HWY_RESTRICT p, size_t bt, size_t group,
                                  const TKV* HWY_RESTRICT vb, size_t v_stride, size_t n_in,
                                  size_t v_dim, float* HWY_RESTRICT out) {
  const DF df;
  const size_t NL = hn::Lanes(df);
  size_t g = 0;
  for (; g + 4 <= group; g += 4) {
    float* o0 = out + g * v_dim;
    float* o1 = o0 + v_dim;
    float* o2 = o1 + v_dim;
    float* o3 = o2 + v_dim;
    const float* p0 = p + g * bt;
    size_t d = 0;
    for (; d + 2 * NL <= v_dim; d += 2 * NL) {
      VF a0 = hn::LoadU(df, o0 + d), b0 = hn::LoadU(df, o0 + d + NL);
      VF a1 = hn::LoadU(df, o1 + d), b1 = hn::LoadU(df, o1 + d + NL);
      VF a2 = hn::LoadU(df, o2 + d), b2 = hn::LoadU(df, o2 + d + NL);
      VF a3 = hn::LoadU(df, o3 + d), b3 = hn::LoadU(df, o3 + d + NL);
      for (size_t j = 0; j < n_in; ++j) {
        const VF va = LoadF32(df, vb + j * v_stride + d);
        const VF vc = LoadF32(df, vb + j * v_stride + d + NL);
        const VF w0 = hn::Set(df, p0[j]), w1 = hn::Set(df, p0[bt + j]);
        const VF w2 = hn::Set(df, p0[2 * bt + j]), w3 = hn::Set(df, p0[3 * bt + j]);
        a0 = hn::MulAdd(w0, va, a0);
        b0 = hn::MulAdd(w0, vc, b0);
        a1 = hn::MulAdd(w1, va, a1);
        b1 = hn::MulAdd(w1, vc, b1);
        a2 = hn::MulAdd(w2, va, a2);
        b2 = hn::MulAdd(w2, vc, b2);
        a3 = hn::MulAdd(w3, va, a3);
        b3 = hn::MulAdd(w3, vc, b3);
      }
      hn::StoreU(a0, df, o0 + d);
      hn::StoreU(b0, df, o0 + d + NL);
      hn::StoreU(a1, df, o1 + d);
      hn::StoreU(b1, df, o1 + d + NL);
      hn::StoreU(a2, df, o2 + d);
      hn::StoreU(b2, df, o2 + d + NL);
      hn::StoreU(a3, df, o3 + d);
      hn::StoreU(b3, df, o3 + d + NL);
    }
    for (; d < v_dim; ++d) {
      for (size_t j = 0; j < n_in; ++j) {
        const float v = ScalarF32(vb + j * v_stride + d);
        o0[d] += p0[j] * v;
        o1[d] += p0[bt + j] * v;
        o2[d] += p0[2 * bt + j] * v;
        o3[d] += p0[3 * bt + j] * v;
      }
    }
  }
  for (; g < group; ++g) {
    for (size_t j = 0; j < n_in; ++j) {
      AxpyT(p[g * bt + j], vb + j * v_stride, out + g * v_dim, v_dim);
    }
  }
}

// One token × kv heads [kvh0, kvh1) with q heads [gs, ge) of each one's GQA
// group (each key/value row is read once per group part), online softmax
// over the token's context one block at a time (one rescale per block and
// head). gs is a multiple of 4, so every head sees the same register tiles
// however the group is split (results do not depend on the split).
// Blocks are the outer loop so a block's rows for all of the chunk's heads
// (contiguous within each token) are consumed together: per-head passes
// would touch one 4 KiB page per key and thrash the TLB on long contexts.
// scratch: [group * block_tokens + 2 * num_q_heads] floats.
template <typename TKV>
void AttentionTask(const PagedAttentionArgs& a, const PagedKvView& kv,
                   size_t t, size_t kvh0, size_t kvh1, size_t gs, size_t ge,
                   float* HWY_RESTRICT scratch) {
  const PagedKvLayout& L = kv.layout;
  const size_t group = a.num_q_heads / L.num_kv_heads;
  const size_t sub = ge - gs;  // q heads per kv head in this task
  const size_t bt = L.block_tokens;
  const size_t qk_dim = L.k_head_dim;
  const size_t v_dim = kv.VDim();
  const TKV* k_base = static_cast<const TKV*>(kv.k);
  const TKV* v_base;
  size_t v_token_stride, v_head_stride;
  if (kv.v_aliases_k) {
    v_base = k_base;
    v_token_stride = L.KTokenStride();
    v_head_stride = qk_dim;
  } else {
    v_base = static_cast<const TKV*>(kv.v);
    v_token_stride = L.VTokenStride();
    v_head_stride = L.v_head_dim;
  }
  const size_t v_block_stride = bt * v_token_stride;
  const SeqBlockTable& table = a.seqs[a.token_seq[t]];
  const size_t ctx = static_cast<size_t>(a.token_pos[t]) + 1;
  const size_t num_blocks = (ctx + bt - 1) / bt;
  const size_t heads = (kvh1 - kvh0) * sub;  // q heads in this task

  float* scores = scratch;          // [sub, bt]
  float* m = scratch + group * bt;  // [heads] running max
  float* l = m + heads;             // [heads] running denominator
  // q / out of (kvh, gs): kv heads are group heads apart in both.
  const float* q0 = a.q + t * a.q_token_stride + (kvh0 * group + gs) * qk_dim;
  float* out0 = a.out + t * a.out_token_stride + (kvh0 * group + gs) * v_dim;
  for (size_t kvh = kvh0; kvh < kvh1; ++kvh) {
    float* o = out0 + (kvh - kvh0) * group * v_dim;
    std::fill(o, o + sub * v_dim, 0.0f);
  }
  std::fill(m, m + heads, -INFINITY);
  std::fill(l, l + heads, 0.0f);
  for (size_t b = 0; b < num_blocks; ++b) {
    const size_t block = static_cast<size_t>(table.blocks[b]);
    const size_t n_in = std::min(bt, ctx - b * bt);
    if (b + 1 < num_blocks) {
      const size_t next = static_cast<size_t>(table.blocks[b + 1]);
      const size_t n_next = std::min(bt, ctx - (b + 1) * bt);
      PrefetchRows(k_base + next * L.KBlockStride() + kvh0 * qk_dim, n_next,
                   (kvh1 - kvh0) * qk_dim * sizeof(TKV), L.KTokenStride() * sizeof(TKV));
      if (!kv.v_aliases_k) {
        PrefetchRows(v_base + next * v_block_stride + kvh0 * v_head_stride, n_next,
                     (kvh1 - kvh0) * v_head_stride * sizeof(TKV),
                     v_token_stride * sizeof(TKV));
      }
    }
    for (size_t kvh = kvh0; kvh < kvh1; ++kvh) {
      const TKV* kb = k_base + block * L.KBlockStride() + kvh * qk_dim;
      const TKV* vb = v_base + block * v_block_stride + kvh * v_head_stride;
      const size_t h0 = (kvh - kvh0) * sub;  // first q head, task-relative
      const float* q = q0 + (kvh - kvh0) * group * qk_dim;
      float* out = out0 + (kvh - kvh0) * group * v_dim;
      ScoreBlock(q, sub, qk_dim, kb, L.KTokenStride(), n_in, a.scale, bt, scores);
      for (size_t g = 0; g < sub; ++g) {
        float* sg = scores + g * bt;
        float bmax = -INFINITY;
        for (size_t j = 0; j < n_in; ++j) bmax = std::max(bmax, sg[j]);
        if (bmax > m[h0 + g]) {
          const float corr = std::exp(m[h0 + g] - bmax);  // 0 on the first block
          ScaleF(corr, out + g * v_dim, v_dim);
          l[h0 + g] *= corr;
          m[h0 + g] = bmax;
        }
        l[h0 + g] += ExpShiftedSum(sg, n_in, m[h0 + g]);
      }
      AccumulateBlockPV(scores, bt, sub, vb, v_token_stride, n_in, v_dim, out);
    }
  }
  for (size_t kvh = kvh0; kvh < kvh1; ++kvh) {
    for (size_t g = 0; g < sub; ++g) {
      const size_t h = (kvh - kvh0) * sub + g;
      ScaleF(1.0f / l[h], out0 + ((kvh - kvh0) * group + g) * v_dim, v_dim);
    }
  }
}

// The tokens listed in `tokens`, one at a time (decodes, short chunks).
void PagedAttentionImpl(const PagedAttentionArgs& a, const PagedKvView& kv,
                        const std::vector<int32_t>& tokens, ThreadPool& pool) {
  const size_t kv_heads = kv.layout.num_kv_heads;
  const size_t group = a.num_q_heads / kv_heads;
  // Split kv heads only as far as needed to keep every worker busy (decode
  // of a single sequence); otherwise one task per token. With fewer kv heads
  // than that (MLA: one latent for 16 heads), split each group's q heads too,
  // in parts of a multiple of 4 heads (single-token MLA decode ran on one
  // core).
  const size_t want_tasks = 2 * pool.NumWorkers();
  const size_t num_tokens = tokens.size();
  const size_t splits = (want_tasks + num_tokens - 1) / num_tokens;
  const size_t chunks = std::clamp<size_t>(splits, 1, kv_heads);
  const size_t chunk = (kv_heads + chunks - 1) / chunks;
  const size_t num_chunks = (kv_heads + chunk - 1) / chunk;
  size_t part = group;  // q heads per task and kv head
  // Parts only up to one per worker: every part re-reads the context's keys.
  const size_t worker_splits = (pool.NumWorkers() + num_tokens - 1) / num_tokens;
  if (chunk == 1 && worker_splits > kv_heads) {
    const size_t want_parts = std::min(group, (worker_splits + kv_heads - 1) / kv_heads);
    part = std::min(group, ((group + want_parts - 1) / want_parts + 3) / 4 * 4);
  }
  const size_t num_parts = (group + part - 1) / part;
  const size_t per_token = num_chunks * num_parts;
  const size_t scratch_floats = group * kv.layout.block_tokens + 2 * a.num_q_heads;
  pool.ParallelFor(num_tokens * per_token, [&](size_t task, size_t) {
    thread_local std::vector<float> scratch;
    if (scratch.size() < scratch_floats) scratch.resize(scratch_floats);
    const size_t t = static_cast<size_t>(tokens[task / per_token]);
    const size_t c = (task % per_token) / num_parts;
    const size_t p = task % num_parts;
    const size_t kvh0 = c * chunk, kvh1 = std::min(kv_heads, kvh0 + chunk);
    const size_t gs = p * part, ge = std::min(group, gs + part);
    if (kv.layout.dtype == KvDType::kF32) {
      AttentionTask<float>(a, kv, t, kvh0, kvh1, gs, ge, scratch.data());
    } else {
      AttentionTask<hwy::bfloat16_t>(a, kv, t, kvh0, kvh1, gs, ge, scratch.data());
    }
  });
}

const char* TargetNameImpl() { return hwy::TargetName(HWY_TARGET); }

}  // namespace HWY_NAMESPACE
}  // namespace expertserve::kernels
HWY_AFTER_NAMESPACE();

#endif  // include guard
