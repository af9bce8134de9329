// expertserve-bench-kernels: MatMul backends (Highway vs OpenBLAS) on the
// shapes that matter, next to this machine's measured memory bandwidth and
// peak FMA rate from the same run, plus the ThreadPool's per-call overhead.
// Prints one JSON object per line. The machine is shared and noisy: compare
// ratios within one run, not absolute numbers across runs.
//
// Usage: expertserve-bench-kernels [--quick]
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "bench/kernels/bench_kernels.cc"
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
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "common/thread_pool.h"
#include "engine/kernels/kernels.h"

namespace expertserve::bench {
HWY_EXPORT(FmaLoop);
HWY_EXPORT(ReadSum);
HWY_EXPORT(Triad);

using Clock = std::chrono::steady_clock;
double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

struct Timing {
  double best_s, median_s;
};

// Runs fn(rep) until min_seconds have passed (at least 3 reps, after one
// warm-up); returns best and median per-call time.
template <class Fn>
Timing Measure(double min_seconds, const Fn& fn) {
  fn(0);
  std::vector<double> times;
  const auto start = Clock::now();
  for (size_t rep = 1; times.size() < 3 || Seconds(start, Clock::now()) < min_seconds; ++rep) {
    const auto t0 = Clock::now();
    fn(rep);
    times.push_back(Seconds(t0, Clock::now()));
  }
  std::sort(times.begin(), times.end());
  return Timing{times.front(), times[times.size() / 2]};
}

struct Machine {
  double peak_gflops;
  double read_gbps;
  double triad_gbps;
};

Machine MeasureMachine(ThreadPool& pool, bool quick) {
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

  // 3 × 64 MiB: well past any cache.
  const size_t n = (quick ? 4 : 16) << 20;
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
  std::printf(
      "{\"bench\":\"machine\",\"target\":\"%s\",\"workers\":%zu,"
      "\"peak_fma_gflops\":%.1f,\"read_gbps\":%.2f,\"triad_gbps\":%.2f}\n",
      kernels::ActiveTargetName(), workers, m.peak_gflops, m.read_gbps,
      m.triad_gbps);
  return m;
}

void MeasurePoolOverhead(ThreadPool& pool) {
  const size_t calls = 20000;
  std::vector<size_t> dummy(pool.NumWorkers() * 16);
  const Timing t = Measure(0.2, [&](size_t) {
    for (size_t i = 0; i < calls; ++i) {
      pool.ParallelFor(pool.NumWorkers(), [&](size_t task, size_t w) { dummy[w * 16] += task; });
    }
  });
  std::printf(
      "{\"bench\":\"thread_pool\",\"workers\":%zu,\"parallel_for_us_best\":%.3f,"
      "\"parallel_for_us_median\":%.3f}\n",
      pool.NumWorkers(), t.best_s / calls * 1e6, t.median_s / calls * 1e6);
}

const char* BackendName(kernels::MatMulBackend b) {
  switch (b) {
    case kernels::MatMulBackend::kAuto: return "auto";
    case kernels::MatMulBackend::kHighway: return "highway";
    case kernels::MatMulBackend::kOpenBlas: return "openblas";
  }
  return "?";
}

void BenchMatMul(ThreadPool& pool, const Machine& mach, const char* regime,
                 size_t M, size_t K, size_t N, kernels::DType dtype,
                 kernels::MatMulBackend backend, bool quick) {
  const size_t w_bytes = N * K * kernels::DTypeSize(dtype);
  // Enough weight copies to exceed the caches, so decode streams from DRAM
  // as it does with a real model (at most ~256 MiB in all).
  const size_t copies = std::clamp<size_t>((128u << 20) / std::max<size_t>(w_bytes, 1), 1, 64);
  std::vector<std::vector<char>> w(copies, std::vector<char>(w_bytes));
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  for (size_t i = 0; i < N * K; ++i) {
    const float f = dist(rng);
    if (dtype == kernels::DType::kF32) {
      std::memcpy(w[0].data() + 4 * i, &f, 4);
    } else {
      const uint16_t bits = dtype == kernels::DType::kBF16 ? kernels::F32ToBF16Bits(f)
                                                           : kernels::F32ToF16Bits(f);
      std::memcpy(w[0].data() + 2 * i, &bits, 2);
    }
  }
  for (size_t c = 1; c < copies; ++c) w[c] = w[0];
  std::vector<float> x(M * K), y(M * N);
  for (float& f : x) f = dist(rng);
  const Timing t = Measure(quick ? 0.05 : 0.3, [&](size_t rep) {
    kernels::MatMul(x.data(), M, K, kernels::WeightRef{w[rep % copies].data(), dtype}, N,
                    nullptr, y.data(), pool, backend);
  });
  const double flops = 2.0 * M * N * K;
  const double bytes = static_cast<double>(w_bytes) + 4.0 * (M * K + M * N);
  const double roof_s = std::max(flops / (mach.peak_gflops * 1e9), bytes / (mach.read_gbps * 1e9));
  std::printf(
      "{\"bench\":\"matmul\",\"regime\":\"%s\",\"backend\":\"%s\",\"dtype\":\"%s\","
      "\"M\":%zu,\"K\":%zu,\"N\":%zu,\"us_best\":%.1f,\"us_median\":%.1f,"
      "\"gflops\":%.2f,\"gbps\":%.2f,\"bound\":\"%s\",\"roofline_fraction\":%.3f}\n",
      regime, BackendName(backend), kernels::DTypeName(dtype), M, K, N, t.best_s * 1e6,
      t.median_s * 1e6, flops / t.best_s * 1e-9, bytes / t.best_s * 1e-9,
      flops / (mach.peak_gflops * 1e9) > bytes / (mach.read_gbps * 1e9) ? "compute" : "memory",
      roof_s / t.best_s);
  std::fflush(stdout);
}

int Main(int argc, char** argv) {
  const bool quick = argc > 1 && std::string(argv[1]) == "--quick";
  ThreadPool pool;
  const Machine mach = MeasureMachine(pool, quick);
  MeasurePoolOverhead(pool);
  using kernels::DType;
  using kernels::MatMulBackend;
  const DType dtypes[] = {DType::kBF16, DType::kF32};
  const MatMulBackend backends[] = {MatMulBackend::kHighway, MatMulBackend::kOpenBlas,
                                    MatMulBackend::kAuto};
  const std::vector<size_t> dims = quick ? std::vector<size_t>{1024} : std::vector<size_t>{1024, 2048, 4096};
  for (DType dt : dtypes) {
    for (size_t d : dims) {
      for (size_t M : {1, 4, 16, 64}) {
        for (MatMulBackend b : backends) BenchMatMul(pool, mach, "decode", M, d, d, dt, b, quick);
      }
    }
    for (size_t M : {1, 2, 4, 8, 16, 32}) {
      for (MatMulBackend b : backends) BenchMatMul(pool, mach, "expert", M, 2048, 1408, dt, b, quick);
    }
    for (MatMulBackend b : backends) {
      BenchMatMul(pool, mach, "prefill", 512, 2048, quick ? 512 : 2048, dt, b, quick);
    }
  }
  return 0;
}

}  // namespace expertserve::bench

int main(int argc, char** argv) { return expertserve::bench::Main(argc, argv); }
#endif  // HWY_ONCE
