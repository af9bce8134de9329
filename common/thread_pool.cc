#include "common/thread_pool.h"

#include <algorithm>

#include "common/check.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace expertserve {
namespace {

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#else
  std::this_thread::yield();
#endif
}

// About 30-60 us of pause instructions: long enough to bridge the gap between
// the back-to-back parallel regions of one decode step, short enough not to
// burn a core while the engine is idle.
constexpr int kSpinIterations = 2000;

}  // namespace

size_t ThreadPool::DefaultNumWorkers() {
  return std::max<size_t>(1, std::thread::hardware_concurrency());
}

ThreadPool::ThreadPool(size_t num_workers)
    : num_workers_(std::min<size_t>(
          num_workers == 0 ? DefaultNumWorkers() : num_workers,
          (size_t{1} << kParticipantBits) - 1)) {
  threads_.reserve(num_workers_ - 1);
  for (size_t w = 1; w < num_workers_; ++w) {
    threads_.emplace_back([this, w] { WorkerLoop(w); });
  }
}

ThreadPool::~ThreadPool() {
  stop_.store(true, std::memory_order_seq_cst);
  generation_.fetch_add(uint64_t{1} << kParticipantBits,
                        std::memory_order_seq_cst);
  generation_.notify_all();
  for (std::thread& t : threads_) t.join();
}

void ThreadPool::DrainTasks(size_t worker) {
  for (;;) {
    const size_t task = next_task_.fetch_add(1, std::memory_order_relaxed);
    if (task >= num_tasks_) return;
    thunk_(fn_, task, worker);
  }
}

void ThreadPool::MaybeYield(std::chrono::steady_clock::time_point& last) {
  const auto now = std::chrono::steady_clock::now();
  if (now - last < kYieldEvery) return;
  std::this_thread::yield();
  yields_.fetch_add(1, std::memory_order_relaxed);
  last = std::chrono::steady_clock::now();
}

void ThreadPool::Run(size_t num_tasks, TaskThunk thunk, const void* fn) {
  ES_DCHECK(!in_parallel_for_);  // ParallelFor is not reentrant
  MaybeYield(owner_last_yield_);
  in_parallel_for_ = true;
  thunk_ = thunk;
  fn_ = fn;
  num_tasks_ = num_tasks;
  const uint64_t participants = std::min(num_tasks, num_workers_);
  next_task_.store(0, std::memory_order_relaxed);
  const uint64_t seq =
      (generation_.load(std::memory_order_relaxed) >> kParticipantBits) + 1;
  // Open the job (release: publishes the fields above to joining workers).
  job_state_.store((seq & 0xffffffffu) << 32, std::memory_order_release);
  // seq_cst pairs with the workers' sleeping_ increment (Dekker): either the
  // worker sees the new generation before it blocks, or we see it sleeping.
  generation_.store((seq << kParticipantBits) | participants,
                    std::memory_order_seq_cst);
  if (sleeping_.load(std::memory_order_seq_cst) != 0) generation_.notify_all();

  DrainTasks(0);

  // Every task is taken. Close the job so late wakers skip it, then wait for
  // the workers still running tasks.
  uint64_t state = job_state_.fetch_or(kJobClosed, std::memory_order_acq_rel) |
                   kJobClosed;
  int spins = 0;
  while ((state & (kJobClosed - 1)) != 0) {
    if (++spins < kSpinIterations) {
      CpuRelax();
    } else {
      std::this_thread::yield();  // a worker may have been descheduled
    }
    state = job_state_.load(std::memory_order_acquire);
  }
  in_parallel_for_ = false;
}

void ThreadPool::WorkerLoop(size_t worker) {
  uint64_t seen = 0;
  auto last_yield = std::chrono::steady_clock::now();
  for (;;) {
    uint64_t gen = generation_.load(std::memory_order_acquire);
    for (int i = 0; gen == seen && i < kSpinIterations; ++i) {
      CpuRelax();
      gen = generation_.load(std::memory_order_acquire);
    }
    while (gen == seen) {
      sleeping_.fetch_add(1, std::memory_order_seq_cst);
      gen = generation_.load(std::memory_order_seq_cst);
      if (gen == seen) generation_.wait(seen, std::memory_order_seq_cst);
      sleeping_.fetch_sub(1, std::memory_order_seq_cst);
      gen = generation_.load(std::memory_order_acquire);
      last_yield = std::chrono::steady_clock::now();  // the core is fresh
    }
    seen = gen;
    if (stop_.load(std::memory_order_acquire)) return;
    const uint64_t participants =
        gen & ((uint64_t{1} << kParticipantBits) - 1);
    if (worker >= participants) continue;
    // Join the job if it is still the one we were woken for and still open;
    // while we are counted in, the owner does not touch the job fields.
    const uint64_t want_seq = (gen >> kParticipantBits) & 0xffffffffu;
    uint64_t state = job_state_.load(std::memory_order_acquire);
    bool joined = false;
    while ((state >> 32) == want_seq && (state & kJobClosed) == 0) {
      if (job_state_.compare_exchange_weak(state, state + 1,
                                           std::memory_order_acquire)) {
        joined = true;
        break;
      }
    }
    if (joined) {
      DrainTasks(worker);
      job_state_.fetch_sub(1, std::memory_order_release);
      MaybeYield(last_yield);
    }
  }
}

}  // namespace expertserve
