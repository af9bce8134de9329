// Machine measurements for benchmarks (see roofline.h).
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "bench/common/roofline.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace expertserve::bench::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// 10 independent FMA chains (latency 4-5 cycles × 2 pipes) per thread;
// returns flops done, with a result the compiler cannot drop.
double FmaLoop(size_t iters, float* sink) {
  const hn::ScalableTag<float> df;
  auto a0 = hn::Set(df, 1.0f), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0,
       a6 = a0, a7 = a0, a8 = a0, a9 = a0;
  const auto m = hn::Set(df, 0.9999999f), c = hn::Set(df, 1e-7f);
  for (size_t i = 0; i < iters; ++i) {
    a0 = hn::MulAdd(a0, m, c); a1 = hn::MulAdd(a1, m, c);
    a2 = hn::MulAdd(a2, m, c); a3 = hn::MulAdd(a3, m, c);
    a4 = hn::MulAdd(a4, m, c); a5 = hn::MulAdd(a5, m, c);
    a6 = hn::MulAdd(a6, m, c); a7 = hn::MulAdd(a7, m, c);
    a8 = hn::MulAdd(a8, m, c); a9 = hn::MulAdd(a9, m, c);
  }
  const auto s = hn::Add(hn::Add(hn::Add(a0, a1), hn::Add(a2, a3)),
                         hn::Add(hn::Add(hn::Add(a4, a5), hn::Add(a6, a7)),
                                 hn::Add(a8, a9)));
  *sink = hn::GetLane(s);
  return static_cast<double>(iters) * 10 * hn::Lanes(df) * 2;
}

// Σ p[0..n) with 4 accumulators: a pure read stream.
float ReadSum(const float* p, size_t n) {
  const hn::ScalableTag<float> df;
  const size_t NL = hn::Lanes(df);
  auto s0 = hn::Zero(df), s1 = s0, s2 = s0, s3 = s0;
  size_t i = 0;
  for (; i + 4 * NL <= n; i += 4 * NL) {
    s0 = hn::Add(s0, hn::LoadU(df, p + i));
    s1 = hn::Add(s1, hn::LoadU(df, p + i + NL));
    s2 = hn::Add(s2, hn::LoadU(df, p + i + 2 * NL));
    s3 = hn::Add(s3, hn::LoadU(df, p + i + 3 * NL));
  }
  return hn::GetLane(hn::SumOfLanes(df, hn::Add(hn::Add(s0, s1), hn::Add(s2, s3))));
}

// STREAM triad a = b + s c.
void Triad(float* a, const float* b, const float* c, float s, size_t n) {
  const hn::ScalableTag<float> df;
  const size_t NL = hn::Lanes(df);
  const auto vs = hn::Set(df, s);
  size_t i = 0;
  for (; i + NL <= n; i += NL) {
    hn::StoreU(hn::MulAdd(vs, hn::LoadU(df, c + i), hn::LoadU(df, b + i)), df, a + i);
  }
  for (; i < n; ++i) a[i] = b[i] + s * c[i];
}

}  // namespace expertserve::bench::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "bench/common/roofline.h"
#include "engine/kernels/kernels.h"

namespace expertserve::bench {
HWY_EXPORT(FmaLoop);
HWY_EXPORT(ReadSum);
HWY_EXPORT(Triad);

double FmaLoop(size_t iters, float* sink) {
  return HWY_DYNAMIC_DISPATCH(FmaLoop)(iters, sink);
}
float ReadSum(const float* p, size_t n) {
  return HWY_DYNAMIC_DISPATCH(ReadSum)(p, n);
}
void Triad(float* a, const float* b, const float* c, float s, size_t n) {
  HWY_DYNAMIC_DISPATCH(Triad)(a, b, c, s, n);
}

namespace {

size_t StreamFloats() {
  long llc = sysconf(_SC_LEVEL3_CACHE_SIZE);
  if (llc <= 0) llc = sysconf(_SC_LEVEL2_CACHE_SIZE);
  const size_t bytes =
      std::max<size_t>(size_t{256} << 20, 4 * static_cast<size_t>(std::max(llc, 0L)));
  return bytes / sizeof(float);
}

}  // namespace

Machine MeasureMachine(ThreadPool& pool, bool quick, bool print) {
  Machine m{};
  const size_t workers = pool.NumWorkers();
  std::vector<float> sink(workers * 16);
  const size_t iters = quick ? 2000000 : 20000000;
  std::vector<double> flops(workers);
  const Timing fma = Measure(quick ? 0.1 : 0.5, [&](size_t) {
    pool.ParallelFor(workers, [&](size_t t, size_t) {
      flops[t] = HWY_DYNAMIC_DISPATCH(FmaLoop)(iters, &sink[t * 16]);
    });
  });
  double total = 0;
  for (double f : flops) total += f;
  m.peak_gflops = total / fma.best_s * 1e-9;

  // Streams past the last-level cache: 4x its size, at least 256 MiB per
  // array (server parts now carry 100-300 MiB of L3, so a fixed 64 MiB
  // measured cache bandwidth, about twice DRAM's).
  const size_t n = StreamFloats();
  std::vector<float> a(n, 1.0f), b(n, 2.0f), c(n, 3.0f);
  const size_t chunk = n / (workers * 8);
  const Timing rd = Measure(quick ? 0.1 : 0.5, [&](size_t) {
    pool.ParallelFor(workers * 8, [&](size_t t, size_t w) {
      sink[w * 16] += HWY_DYNAMIC_DISPATCH(ReadSum)(b.data() + t * chunk, chunk);
    });
  });
  m.read_gbps = n * 4.0 / rd.best_s * 1e-9;
  const Timing tr = Measure(quick ? 0.1 : 0.5, [&](size_t) {
    pool.ParallelFor(workers * 8, [&](size_t t, size_t) {
      HWY_DYNAMIC_DISPATCH(Triad)(a.data() + t * chunk, b.data() + t * chunk,
                                  c.data() + t * chunk, 0.5f, chunk);
    });
  });
  m.triad_gbps = n * 12.0 / tr.best_s * 1e-9;
  if (print) std::printf(
      "{\"bench\":\"machine\",\"target\":\"%s\",\"workers\":%zu,"
      "\"peak_fma_gflops\":%.1f,\"read_gbps\":%.2f,\"triad_gbps\":%.2f,"
      "\"bf16_matrix_units\":%s}\n",
      kernels::ActiveTargetName(), workers, m.peak_gflops, m.read_gbps,
      m.triad_gbps, kernels::SplitBf16Native() ? "true" : "false");
  return m;
}

}  // namespace expertserve::bench
#endif  // HWY_ONCE
