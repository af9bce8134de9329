// The oneDNN sgemm backend of MatMul (larger M: prefill, batched experts).
#include <dlfcn.h>

#include <algorithm>
#include <vector>

#include "common/check.h"
#include "engine/kernels/cpu/backends.h"
#include "oneapi/dnnl/dnnl.h"

namespace expertserve::kernels {

// Measured with expertserve-bench-kernels, backends interleaved in one run
// (engine/kernels/README.md): the Highway kernel streams the weights once and
// wins up to M = 32 (2.5-5x at M <= 4 with BF16 weights, where oneDNN's
// packing does not amortise and 16-bit weights need an f32 copy first;
// 1.3-1.9x at M = 16-32 with cold weights, since the 4x4 AVX-512
// micro-kernel); M = 64 is a tie; at prefill sizes (M = 512) oneDNN's packed
// sgemm wins by 1.3x. In the forward pass, switching at 32 rather than 64
// made a 512-token MoE prefill 6 % faster (its experts get 32-63 rows) with
// decode unchanged, so the switch sits at 32.
constexpr size_t kOneDnnMinM = 32;
// BF16 weights on bf16 matrix units (cpu/matmul_split_bf16.cc). Measured
// with expertserve-bench-kernels (AMX, backends interleaved): from M = 16 it
// beats the Highway kernel (expert 16 x 2048 x 1408: 338 vs 453 us; 16 x
// 4096 x 4096: 1.49 vs 2.35 ms); at M = 8 it loses (234 vs 205 us).
constexpr size_t kSplitBf16MinM = 16;

// BF16 weights on AMX through our own kernel (cpu/matmul_amx.cc), which
// reads W in place where oneDNN repacks it per call. Measured in the forward
// pass (bench-forward, configurations alternated twice; tokens/s), against
// the split-BF16 backend from M = 16 and Highway below: with AMX for M =
// 16-63, dense decode b16 192-201 -> 242-259, MoE decode b16 197-204 ->
// 215-217, MoE prefill 1 x 512 812-916 -> 922-950 (experts of ~48 rows);
// from M = 4, MoE decode b64 (experts of 3-9 rows) 418-437 -> 501-513 and
// one MoE layer's experts at 64 tokens 0.59-0.62 -> 0.74-0.79 of the DRAM
// read rate (`bench-kernels --only=expert_group`; from M = 2 or 3 no
// better). From M = 64 up, oneDNN's packed kernel keeps the dense model
// faster (prefill 4 x 512 485-504 vs 445-452 with AMX, decode b64 352-356
// vs 342) while the MoE's 4 x 512 prefill was 3-4 % slower: split-BF16.
constexpr size_t kAmxMinM = 4;
constexpr size_t kAmxMaxM = 64;
// Narrow products (routers: N = 8-64 experts; qwen2_moe's shared-expert gate,
// N = 1; MLA's per-head W_uv, N = 64) cost more to pack and set up than they
// stream, on AMX or oneDNN: Highway up to M = 63 (a 16 x 4096 x 8 router:
// 454 us on AMX with a scalar tail, 8.6 us on Highway; 16 x 1024 x 64 warm:
// 93 vs 30 us).
constexpr size_t kAmxMinN = 128;

MatMulBackend ChooseMatMulBackend(const MatMulArgs& args) {
  if (args.w.dtype == DType::kBF16 && args.M < kAmxMaxM && AmxBf16Available()) {
    if (args.N < kAmxMinN) return MatMulBackend::kHighway;  // narrow: overheads
    if (args.M >= kAmxMinM && args.K % internal::kAmxK == 0) {
      return MatMulBackend::kAmxSplitBf16;
    }
  }
  if (args.M >= kSplitBf16MinM && args.w.dtype == DType::kBF16 &&
      SplitBf16Native()) {
    return MatMulBackend::kOneDnnSplitBf16;
  }
  return args.M >= kOneDnnMinM ? MatMulBackend::kOneDnn
                               : MatMulBackend::kHighway;
}

namespace internal {

// Debian's oneDNN runs on OpenMP; our pool provides the parallelism, so each
// pool thread limits its own OpenMP team to itself. Looked up at run time
// (libgomp is loaded as oneDNN's dependency) so that neither the build nor a
// oneDNN built on another threading runtime needs OpenMP.
void SingleThreadedOnThisThread() {
  thread_local bool done = false;
  if (done) return;
  done = true;
  using SetNumThreads = void (*)(int);
  static const auto set_num_threads = reinterpret_cast<SetNumThreads>(
      dlsym(RTLD_DEFAULT, "omp_set_num_threads"));
  if (set_num_threads != nullptr) set_num_threads(1);
}

void MatMulOneDnnTask(const MatMulArgs& a, const MatMulPlan& plan,
                      size_t task) {
  SingleThreadedOnThisThread();
  const size_t n0 = task * plan.n_tile, n1 = std::min(a.N, n0 + plan.n_tile);
  // 16-bit weights are widened into per-thread scratch, one sgemm call per
  // chunk of rows. Chunks of ~1 MiB (half an L2) let oneDNN read the copy from
  // L2 (a 4 MiB copy spilled to L3: a 512-token MoE prefill ran 6 % slower),
  // but every call re-packs x ([M, K]), so a chunk has at least M rows (with
  // 64-row chunks at K = 4096 the dense prefill ran 7 % slower).
  const size_t widen_rows = std::max<size_t>(
      {64, a.M, (size_t{1} << 20) / (4 * std::max<size_t>(a.K, 1))});
  if (a.K == 0) {  // y = bias (or 0); sgemm rejects K = 0 leading dims
    for (size_t m = 0; m < a.M; ++m) {
      for (size_t n = n0; n < n1; ++n) {
        a.y[m * a.y_stride + n] = a.bias != nullptr ? a.bias[n] : 0.0f;
      }
    }
    return;
  }
  for (size_t s0 = n0; s0 < n1;) {
    size_t s1 = n1;
    const float* w;
    if (a.w.dtype == DType::kF32) {
      w = static_cast<const float*>(a.w.data) + s0 * a.K;
    } else {
      s1 = std::min(n1, s0 + widen_rows);
      thread_local std::vector<float> wide;
      if (wide.size() < (s1 - s0) * a.K) wide.resize((s1 - s0) * a.K);
      const char* src = static_cast<const char*>(a.w.data) +
                        s0 * a.K * DTypeSize(a.w.dtype);
      ConvertToF32(WeightRef{src, a.w.dtype}, (s1 - s0) * a.K, wide.data());
      w = wide.data();
    }
    const size_t rows = s1 - s0;
    // Row-major y[M, rows] = x[M, K] · w[rows, K]^T.
    const dnnl_status_t st = dnnl_sgemm(
        'N', 'T', static_cast<dnnl_dim_t>(a.M), static_cast<dnnl_dim_t>(rows),
        static_cast<dnnl_dim_t>(a.K), 1.0f, a.x,
        static_cast<dnnl_dim_t>(a.x_stride), w, static_cast<dnnl_dim_t>(a.K),
        0.0f, a.y + s0, static_cast<dnnl_dim_t>(a.y_stride));
    ES_CHECK(st == dnnl_success);  // only fails on invalid shapes
    if (a.bias != nullptr) {
      for (size_t m = 0; m < a.M; ++m) {
        float* yr = a.y + m * a.y_stride + s0;
        for (size_t j = 0; j < rows; ++j) yr[j] += a.bias[s0 + j];
      }
    }
    s0 = s1;
  }
}

}  // namespace internal
}  // namespace expertserve::kernels
