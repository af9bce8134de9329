// Scalar reference implementations of every kernel in kernels.h: plain loops,
// double accumulation, no SIMD, no threads. Tests compare each SIMD target
// against these; they are far too slow for serving.
#ifndef EXPERTSERVE_ENGINE_KERNELS_REFERENCE_H_
#define EXPERTSERVE_ENGINE_KERNELS_REFERENCE_H_

#include <cstddef>
#include <cstdint>

#include "engine/kernels/kernels.h"

namespace expertserve::kernels::reference {

void MatMul(const MatMulArgs& args);
void RMSNorm(const float* x, size_t rows, size_t dim, WeightRef weight,
             float eps, float* out);
void AddInPlace(float* y, const float* x, size_t n);
void SiluMul(const float* gate, const float* up, size_t n, float* out);
void Softmax(float* x, size_t n);
void TopK(const float* x, size_t n, size_t k, int32_t* indices, float* values);
void ApplyRope(float* x, size_t num_heads, size_t head_stride, size_t rot_dim,
               const float* cos, const float* sin, RopeLayout layout);
float Dot(const float* a, const float* b, size_t n);
void Axpy(float alpha, const float* x, float* y, size_t n);
void Scale(float alpha, float* x, size_t n);
// Materialises each token's keys/values and runs a two-pass softmax.
void PagedAttention(const PagedAttentionArgs& args, const PagedKvView& kv);

}  // namespace expertserve::kernels::reference

#endif  // EXPERTSERVE_ENGINE_KERNELS_REFERENCE_H_
