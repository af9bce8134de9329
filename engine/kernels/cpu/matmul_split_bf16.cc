// The split-BF16 oneDNN backend of MatMul: BF16 weights times f32 x on the
// CPU's bf16 matrix units (AMX tiles, or AVX512-BF16 dot products).
//
// x is split into two bf16 terms, x = hi + lo + r with hi = bf16(x),
// lo = bf16(x - hi) and |r| <= 2^-17 |x|; bf16 × bf16 products are exact in
// the f32 accumulators, so y = hi·W + lo·W keeps every term within 2^-17 of
// the f32 product (relative to Σ|x||w|): far inside the engine's f32 parity
// budget, unlike the single bf16 rounding of x that bf16 inference usually
// does (2^-8; with lo dropped, the BF16 parity variants miss by 2.3e-3 to
// 4.5e-3 of the logit scale against the 1e-4 rule). A finite x just below
// FLT_MAX rounds hi to inf (f32 would not); activations never come near it.
// Two bf16 passes still cost less than one f32 pass: on this repository's
// Emerald Rapids VM, one core ran 512 x 2048 x 256 products at 880-930
// GFLOP/s this way, where oneDNN's f32 sgemm ran 512 x 2048 x 2048 at 218
// (engine/kernels/README.md has the two-core table).
#include <algorithm>
#include <map>
#include <memory>
#include <tuple>
#include <vector>

#include "common/check.h"
#include "engine/kernels/cpu/backends.h"
#include "oneapi/dnnl/dnnl.h"

namespace expertserve::kernels {
namespace internal {
namespace {

#define ES_DNNL_CHECK(expr) ES_CHECK((expr) == dnnl_success)

// Shared by all threads; oneDNN engines are thread-safe.
dnnl_engine_t CpuEngine() {
  static dnnl_engine_t engine = [] {
    dnnl_engine_t e = nullptr;
    ES_DNNL_CHECK(dnnl_engine_create(&e, dnnl_cpu, 0));
    // The default (1024) is too few: expert products come in many M.
    ES_DNNL_CHECK(dnnl_set_primitive_cache_capacity(8192));
    return e;
  }();
  return engine;
}

// Streams are not thread-safe: one per pool thread.
dnnl_stream_t ThisThreadStream() {
  thread_local struct Holder {
    dnnl_stream_t stream = nullptr;
    Holder() {
      ES_DNNL_CHECK(dnnl_stream_create(&stream, CpuEngine(),
                                       dnnl_stream_default_flags));
    }
    ~Holder() { dnnl_stream_destroy(stream); }
  } holder;
  return holder.stream;
}

dnnl_memory_desc_t Desc2D(size_t rows, size_t cols, dnnl_data_type_t dt,
                          size_t row_stride, size_t col_stride) {
  dnnl_memory_desc_t d;
  const dnnl_dims_t dims = {static_cast<dnnl_dim_t>(rows),
                            static_cast<dnnl_dim_t>(cols)};
  const dnnl_dims_t strides = {static_cast<dnnl_dim_t>(row_stride),
                               static_cast<dnnl_dim_t>(col_stride)};
  ES_DNNL_CHECK(dnnl_memory_desc_init_by_strides(&d, 2, dims, dt, strides));
  return d;
}

// A bf16 matmul primitive dst[M, N] (+)= src[M, K] · W^T for W [N, K]
// row-major with row stride K, or !ok() if this oneDNN cannot build one.
// Written against oneDNN 2.x's C API (Debian 12; 3.x renamed the op
// descriptors). Thread-compatible, and Run() only on the thread that built
// it: Debian's oneDNN keeps one scratchpad per thread
// (DNNL_ENABLE_CONCURRENT_EXEC off), so a primitive shared across threads
// would race on it — hence the per-thread cache below, not a shared one.
class Bf16MatMul {
 public:
  Bf16MatMul(size_t M, size_t K, size_t N, size_t dst_stride, bool accumulate)
      : src_(Desc2D(M, K, dnnl_bf16, K, 1)),
        wei_(Desc2D(K, N, dnnl_bf16, 1, K)),
        dst_(Desc2D(M, N, dnnl_f32, dst_stride, 1)) {
    dnnl_matmul_desc_t op;
    if (dnnl_matmul_desc_init(&op, &src_, &wei_, nullptr, &dst_) != dnnl_success) return;
    dnnl_primitive_attr_t attr = nullptr;
    ES_DNNL_CHECK(dnnl_primitive_attr_create(&attr));
    if (accumulate) {
      dnnl_post_ops_t post = nullptr;
      ES_DNNL_CHECK(dnnl_post_ops_create(&post));
      ES_DNNL_CHECK(dnnl_post_ops_append_sum(post, 1.0f));
      ES_DNNL_CHECK(dnnl_primitive_attr_set_post_ops(attr, post));
      dnnl_post_ops_destroy(post);
    }
    dnnl_primitive_desc_t pd = nullptr;
    if (dnnl_primitive_desc_create(&pd, &op, attr, CpuEngine(), nullptr) ==
        dnnl_success) {
      if (dnnl_primitive_create(&prim_, pd) != dnnl_success) prim_ = nullptr;
      dnnl_primitive_desc_destroy(pd);
    }
    dnnl_primitive_attr_destroy(attr);
  }
  ~Bf16MatMul() {
    if (prim_ != nullptr) dnnl_primitive_destroy(prim_);
  }
  Bf16MatMul(const Bf16MatMul&) = delete;
  Bf16MatMul& operator=(const Bf16MatMul&) = delete;

  bool ok() const { return prim_ != nullptr; }

  void Run(const uint16_t* src, const void* w, float* dst) const {
    dnnl_memory_t m[3];
    ES_DNNL_CHECK(dnnl_memory_create(&m[0], &src_, CpuEngine(), const_cast<uint16_t*>(src)));
    ES_DNNL_CHECK(dnnl_memory_create(&m[1], &wei_, CpuEngine(), const_cast<void*>(w)));
    ES_DNNL_CHECK(dnnl_memory_create(&m[2], &dst_, CpuEngine(), dst));
    const dnnl_exec_arg_t args[3] = {
        {DNNL_ARG_SRC, m[0]}, {DNNL_ARG_WEIGHTS, m[1]}, {DNNL_ARG_DST, m[2]}};
    ES_DNNL_CHECK(dnnl_primitive_execute(prim_, ThisThreadStream(), 3, args));
    for (dnnl_memory_t mem : m) dnnl_memory_destroy(mem);
  }

 private:
  dnnl_memory_desc_t src_, wei_, dst_;
  dnnl_primitive_t prim_ = nullptr;
};

// This thread's primitive for a shape (per thread for correctness, see
// Bf16MatMul; building one costs ~6 us even when oneDNN's own cache has it,
// and a MoE prefill layer runs ~200 products). Bounded: cleared past
// kMaxCached shapes, so a reference is only valid until the next call.
const Bf16MatMul& CachedBf16MatMul(size_t M, size_t K, size_t N,
                                   size_t dst_stride, bool accumulate) {
  constexpr size_t kMaxCached = 4096;
  using Key = std::tuple<size_t, size_t, size_t, size_t, bool>;
  thread_local std::map<Key, std::unique_ptr<Bf16MatMul>> cache;
  const Key key{M, K, N, dst_stride, accumulate};
  auto it = cache.find(key);
  if (it == cache.end()) {
    if (cache.size() >= kMaxCached) cache.clear();
    it = cache.emplace(key, std::make_unique<Bf16MatMul>(M, K, N, dst_stride,
                                                         accumulate)).first;
  }
  return *it->second;
}

// Below this M, one bf16 pass over a [2M, K] stack shares oneDNN's weight
// packing between hi and lo; from it, two passes (the second accumulating
// into y) skip the extra add over y. Measured on one core, interleaved
// (2M+add vs two passes, GFLOP/s): M = 32..48: 510-610 vs 360-475;
// M = 128: 645 vs 763; M = 512: 550-880 vs 680-930.
constexpr size_t kTwoPassMinM = 128;
// Below kTwoPassMinM, M is padded with zero rows to a multiple of this: every
// new M costs a oneDNN JIT compile (~0.5 ms), and expert products come in
// every M (up to 64 experts x 2 weight shapes per cold MoE prefill step);
// AMX works in 16-row tiles anyway.
constexpr size_t kRowQuantum = 16;

// What this oneDNN can do with bf16 matmuls on this CPU. Immutable after
// the first call (a function-local static).
struct Probe {
  bool available = false;  // both primitive variants build (maybe emulated)
  bool native = false;     // ... on AVX512-BF16 or AMX hardware
};

const Probe& ProbeBf16() {
  static const Probe probe = [] {
    const Bf16MatMul plain(64, 256, 64, 64, false);
    const Bf16MatMul accumulate(64, 256, 64, 64, true);
    const bool available = plain.ok() && accumulate.ok();
    // Without AVX512-BF16 or AMX, oneDNN emulates bf16 (or cannot build the
    // primitive at all): the f32 backend is then faster.
    const bool native = available && dnnl_get_effective_cpu_isa() >=
                                         dnnl_cpu_isa_avx512_core_bf16;
    return Probe{available, native};
  }();
  return probe;
}

}  // namespace

bool SplitBf16Available() { return ProbeBf16().available; }

size_t SplitBf16Rows(size_t M) {
  return M >= kTwoPassMinM ? M : (M + kRowQuantum - 1) / kRowQuantum * kRowQuantum;
}

void MatMulSplitBf16Task(const MatMulArgs& a, const MatMulPlan& plan,
                         size_t task) {
  ES_DCHECK(a.w.dtype == DType::kBF16 && a.K > 0 && plan.x_bf16 != nullptr);
  SingleThreadedOnThisThread();
  const size_t n0 = task * plan.n_tile, n1 = std::min(a.N, n0 + plan.n_tile);
  const size_t rows = n1 - n0;
  const size_t mp = SplitBf16Rows(a.M);  // hi [mp, K], then lo [mp, K]
  const uint16_t* hi = plan.x_bf16;
  const uint16_t* lo = hi + mp * a.K;
  // Byte arithmetic: weights may sit at any address (dtype.h).
  const void* w = static_cast<const char*>(a.w.data) + n0 * a.K * sizeof(uint16_t);
  float* y = a.y + n0;
  if (a.M >= kTwoPassMinM) {
    const Bf16MatMul& first = CachedBf16MatMul(a.M, a.K, rows, a.y_stride, false);
    ES_CHECK(first.ok());
    first.Run(hi, w, y);
    const Bf16MatMul& second = CachedBf16MatMul(a.M, a.K, rows, a.y_stride, true);
    ES_CHECK(second.ok());
    second.Run(lo, w, y);
    if (a.bias != nullptr) {
      for (size_t m = 0; m < a.M; ++m) {
        for (size_t j = 0; j < rows; ++j) y[m * a.y_stride + j] += a.bias[n0 + j];
      }
    }
    return;
  }
  // hi and lo are adjacent: one [2 mp, K] source (its zero rows are ignored).
  const Bf16MatMul& stacked = CachedBf16MatMul(2 * mp, a.K, rows, rows, false);
  ES_CHECK(stacked.ok());
  thread_local std::vector<float> both;
  if (both.size() < 2 * mp * rows) both.resize(2 * mp * rows);
  stacked.Run(hi, w, both.data());
  for (size_t m = 0; m < a.M; ++m) {
    const float* top = both.data() + m * rows;
    const float* bottom = both.data() + (mp + m) * rows;
    float* yr = y + m * a.y_stride;
    for (size_t j = 0; j < rows; ++j) {
      yr[j] = top[j] + bottom[j] + (a.bias != nullptr ? a.bias[n0 + j] : 0.0f);
    }
  }
}

}  // namespace internal

bool SplitBf16Native() { return internal::ProbeBf16().native; }

}  // namespace expertserve::kernels
