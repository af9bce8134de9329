#include "engine/kernels/reference.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

namespace expertserve::kernels::reference {

void MatMul(const MatMulArgs& a) {
  for (size_t m = 0; m < a.M; ++m) {
    for (size_t n = 0; n < a.N; ++n) {
      double acc = a.bias ? a.bias[n] : 0.0;
      for (size_t k = 0; k < a.K; ++k) {
        acc += static_cast<double>(a.x[m * a.x_stride + k]) *
               LoadAsF32(a.w, n * a.K + k);
      }
      a.y[m * a.y_stride + n] = static_cast<float>(acc);
    }
  }
}

void RMSNorm(const float* x, size_t rows, size_t dim, WeightRef weight,
             float eps, float* out) {
  for (size_t r = 0; r < rows; ++r) {
    double ss = 0;
    for (size_t i = 0; i < dim; ++i) ss += double{x[r * dim + i]} * x[r * dim + i];
    const double inv = 1.0 / std::sqrt(ss / static_cast<double>(dim) + eps);
    for (size_t i = 0; i < dim; ++i) {
      out[r * dim + i] =
          static_cast<float>(x[r * dim + i] * inv * LoadAsF32(weight, i));
    }
  }
}

void AddInPlace(float* y, const float* x, size_t n) {
  for (size_t i = 0; i < n; ++i) y[i] += x[i];
}

void SiluMul(const float* gate, const float* up, size_t n, float* out) {
  for (size_t i = 0; i < n; ++i) {
    const double g = gate[i];
    out[i] = static_cast<float>(g / (1.0 + std::exp(-g)) * up[i]);
  }
}

void Softmax(float* x, size_t n) {
  if (n == 0) return;
  const double mx = *std::max_element(x, x + n);
  double sum = 0;
  std::vector<double> e(n);
  for (size_t i = 0; i < n; ++i) sum += (e[i] = std::exp(x[i] - mx));
  for (size_t i = 0; i < n; ++i) x[i] = static_cast<float>(e[i] / sum);
}

void TopK(const float* x, size_t n, size_t k, int32_t* indices, float* values) {
  std::vector<int32_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [x](int32_t a, int32_t b) { return x[a] > x[b]; });
  for (size_t i = 0; i < k; ++i) {
    indices[i] = order[i];
    if (values) values[i] = x[order[i]];
  }
}

void ApplyRope(float* x, size_t num_heads, size_t head_stride, size_t rot_dim,
               const float* cos, const float* sin, RopeLayout layout) {
  const size_t half = rot_dim / 2;
  for (size_t h = 0; h < num_heads; ++h) {
    float* v = x + h * head_stride;
    for (size_t i = 0; i < half; ++i) {
      const size_t ia = layout == RopeLayout::kNeox ? i : 2 * i;
      const size_t ib = layout == RopeLayout::kNeox ? i + half : 2 * i + 1;
      const double a = v[ia], b = v[ib];
      v[ia] = static_cast<float>(a * cos[i] - b * sin[i]);
      v[ib] = static_cast<float>(b * cos[i] + a * sin[i]);
    }
  }
}

float Dot(const float* a, const float* b, size_t n) {
  double acc = 0;
  for (size_t i = 0; i < n; ++i) acc += double{a[i]} * b[i];
  return static_cast<float>(acc);
}

void Axpy(float alpha, const float* x, float* y, size_t n) {
  for (size_t i = 0; i < n; ++i) y[i] = static_cast<float>(y[i] + double{alpha} * x[i]);
}

void Scale(float alpha, float* x, size_t n) {
  for (size_t i = 0; i < n; ++i) x[i] *= alpha;
}

namespace {
float LoadKv(const void* base, KvDType dtype, size_t i) {
  return LoadAsF32(
      WeightRef{base, dtype == KvDType::kF32 ? DType::kF32 : DType::kBF16}, i);
}
}  // namespace

void PagedAttention(const PagedAttentionArgs& a, const PagedKvView& kv) {
  const PagedKvLayout& L = kv.layout;
  const size_t group = a.num_q_heads / L.num_kv_heads;
  const size_t qk_dim = L.k_head_dim;
  const size_t v_dim = kv.VDim();
  for (size_t t = 0; t < a.num_tokens; ++t) {
    const SeqBlockTable& table = a.seqs[a.token_seq[t]];
    const size_t ctx = static_cast<size_t>(a.token_pos[t]) + 1;
    for (size_t h = 0; h < a.num_q_heads; ++h) {
      const size_t kvh = h / group;
      const float* q = a.q + t * a.q_token_stride + h * qk_dim;
      std::vector<double> scores(ctx);
      double mx = -INFINITY;
      for (size_t p = 0; p < ctx; ++p) {
        const size_t block = static_cast<size_t>(table.blocks[p / L.block_tokens]);
        const size_t off = L.KOffset(block, p % L.block_tokens, kvh);
        double s = 0;
        for (size_t i = 0; i < qk_dim; ++i) s += double{q[i]} * LoadKv(kv.k, L.dtype, off + i);
        scores[p] = s * a.scale;
        mx = std::max(mx, scores[p]);
      }
      double sum = 0;
      for (double& s : scores) sum += (s = std::exp(s - mx));
      float* out = a.out + t * a.out_token_stride + h * v_dim;
      for (size_t i = 0; i < v_dim; ++i) {
        double acc = 0;
        for (size_t p = 0; p < ctx; ++p) {
          const size_t block = static_cast<size_t>(table.blocks[p / L.block_tokens]);
          const size_t slot = p % L.block_tokens;
          const float v = kv.v_aliases_k
                              ? LoadKv(kv.k, L.dtype, L.KOffset(block, slot, kvh) + i)
                              : LoadKv(kv.v, L.dtype, L.VOffset(block, slot, kvh) + i);
          acc += scores[p] * v;
        }
        out[i] = static_cast<float>(acc / sum);
      }
    }
  }
}

}  // namespace expertserve::kernels::reference
