// What every benchmark needs to state results as a fraction of the machine:
// its peak FMA rate and memory bandwidth measured in the same run, plus a
// timing helper. The machines are shared and noisy, so benchmarks compare
// ratios within one run.
#ifndef EXPERTSERVE_BENCH_COMMON_ROOFLINE_H_
#define EXPERTSERVE_BENCH_COMMON_ROOFLINE_H_

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <vector>

#include "common/thread_pool.h"

namespace expertserve::bench {

using Clock = std::chrono::steady_clock;
inline double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

struct Timing {
  double best_s = 0;
  double median_s = 0;
  double first_s = 0;  // the warm-up call (cold caches, JIT compiles)
};

// Runs fn(rep) until min_seconds have passed (at least 3 reps, after one
// warm-up); returns best and median per-call time, and the warm-up's.
template <class Fn>
Timing Measure(double min_seconds, const Fn& fn) {
  const auto w0 = Clock::now();
  fn(0);
  const double first = Seconds(w0, Clock::now());
  std::vector<double> times;
  const auto start = Clock::now();
  for (size_t rep = 1;
       times.size() < 3 || Seconds(start, Clock::now()) < min_seconds; ++rep) {
    const auto t0 = Clock::now();
    fn(rep);
    times.push_back(Seconds(t0, Clock::now()));
  }
  std::sort(times.begin(), times.end());
  return Timing{times.front(), times[times.size() / 2], first};
}

// SIMD loops (Highway, best target for this CPU).
// 10 independent FMA chains; returns the flops done; *sink defeats DCE.
double FmaLoop(size_t iters, float* sink);
// Σ p[0..n): a pure read stream.
float ReadSum(const float* p, size_t n);
// STREAM triad a = b + s c.
void Triad(float* a, const float* b, const float* c, float s, size_t n);

struct Machine {
  double peak_gflops = 0;  // all workers of the pool, f32 FMA
  double read_gbps = 0;    // read stream, all workers
  double triad_gbps = 0;
};

// Measures the machine with `pool`'s workers; prints one JSON line
// {"bench":"machine",...} when `print`.
Machine MeasureMachine(ThreadPool& pool, bool quick, bool print = true);

}  // namespace expertserve::bench

#endif  // EXPERTSERVE_BENCH_COMMON_ROOFLINE_H_
