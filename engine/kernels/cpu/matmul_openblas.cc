#include <cblas.h>

#include <algorithm>
#include <mutex>
#include <vector>

#include "engine/kernels/cpu/backends.h"

namespace expertserve::kernels {

// Measured with expertserve-bench-kernels, backends interleaved in one run
// (README.md): the Highway kernel streams the weights once and wins clearly
// for M <= 4 (1.3-12x; sgemm's packing does not amortise over so few rows)
// and still wins or ties at M = 8. M = 16 is a tie within the noise of the
// shared machine. From M = 32 on OpenBLAS's packed, register-blocked sgemm
// wins (1.1-3.4x at M = 32/64 and ~1.5x at prefill) even counting the f32
// copy that 16-bit weights need first.
constexpr size_t kOpenBlasMinM = 16;

MatMulBackend ChooseMatMulBackend(const MatMulArgs& args) {
  return args.M >= kOpenBlasMinM ? MatMulBackend::kOpenBlas
                                 : MatMulBackend::kHighway;
}

namespace internal {
namespace {
// Our pool provides the parallelism; OpenBLAS's own threads would fight it.
void InitOpenBlasOnce() {
  static std::once_flag once;
  std::call_once(once, [] { openblas_set_num_threads(1); });
}
}  // namespace

void MatMulOpenBlas(const MatMulArgs& a, ThreadPool& pool) {
  InitOpenBlasOnce();
  const size_t workers = pool.NumWorkers();
  const size_t want = workers == 1 ? 1 : 4 * workers;
  const size_t panel = std::max<size_t>(16, (a.N + want - 1) / want);
  const size_t num_panels = (a.N + panel - 1) / panel;
  // Widening 16-bit weights: sub-panels of at most kWidenRows rows keep the
  // scratch small (kWidenRows * K floats per thread).
  constexpr size_t kWidenRows = 64;
  pool.ParallelFor(num_panels, [&](size_t p, size_t) {
    const size_t n0 = p * panel, n1 = std::min(a.N, n0 + panel);
    for (size_t s0 = n0; s0 < n1;) {
      size_t s1 = n1;
      const float* w;
      if (a.w.dtype == DType::kF32) {
        w = static_cast<const float*>(a.w.data) + s0 * a.K;
      } else {
        s1 = std::min(n1, s0 + kWidenRows);
        thread_local std::vector<float> wide;
        if (wide.size() < (s1 - s0) * a.K) wide.resize((s1 - s0) * a.K);
        const char* src = static_cast<const char*>(a.w.data) +
                          s0 * a.K * DTypeSize(a.w.dtype);
        ConvertToF32(WeightRef{src, a.w.dtype}, (s1 - s0) * a.K, wide.data());
        w = wide.data();
      }
      const size_t rows = s1 - s0;
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans,
                  static_cast<blasint>(a.M), static_cast<blasint>(rows),
                  static_cast<blasint>(a.K), 1.0f, a.x,
                  static_cast<blasint>(a.x_stride), w,
                  static_cast<blasint>(a.K), 0.0f, a.y + s0,
                  static_cast<blasint>(a.y_stride));
      if (a.bias != nullptr) {
        for (size_t m = 0; m < a.M; ++m) {
          float* yr = a.y + m * a.y_stride + s0;
          for (size_t j = 0; j < rows; ++j) yr[j] += a.bias[s0 + j];
        }
      }
      s0 = s1;
    }
  });
}

}  // namespace internal
}  // namespace expertserve::kernels
