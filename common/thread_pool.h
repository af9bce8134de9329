// An explicit fork-join thread pool for the CPU kernels. Passed by reference
// (never a singleton) so every parallel region names the pool it runs on.
#ifndef EXPERTSERVE_COMMON_THREAD_POOL_H_
#define EXPERTSERVE_COMMON_THREAD_POOL_H_

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <thread>
#include <type_traits>
#include <vector>

namespace expertserve {

// Fork-join pool of `NumWorkers()` workers: the calling thread is worker 0 and
// `NumWorkers() - 1` background threads are workers 1.., created once in the
// constructor. `ParallelFor` hands out task indices dynamically (an atomic
// counter), so uneven tasks balance themselves.
//
// Decode calls ParallelFor hundreds of times per token, so the per-call cost
// matters: idle workers spin briefly on a generation counter (a few tens of
// microseconds) before blocking on a futex (std::atomic::wait), and a call with
// one task, or a pool of one worker, runs inline with no synchronisation.
//
// The pool keeps every core busy for a whole forward step, so a thread that
// becomes runnable meanwhile without preempting a pool thread (the server's
// I/O: gRPC handing a step's tokens to the client from its own threads) waits
// for the next scheduler tick, 4 ms on this 250 Hz kernel: a whole decode
// step added to that token's latency (bench/serve measured it). Pool threads
// therefore offer their core (sched_yield) between jobs once they have run
// kYieldEvery since their last offer: a clock read per job (23 ns) and
// 0.16 us per offer when nothing else wants the core.
//
// Thread-compatible: ParallelFor may be called by one thread at a time (the
// owner, e.g. the engine loop thread) and must not be called from inside a
// task (no nesting). The task function must not throw.
class ThreadPool {
 public:
  // `num_workers` counts the calling thread; 0 means DefaultNumWorkers().
  explicit ThreadPool(size_t num_workers = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  // std::thread::hardware_concurrency(), at least 1.
  static size_t DefaultNumWorkers();

  size_t NumWorkers() const { return num_workers_; }

  // How often a busy pool thread offers its core (see the class comment).
  static constexpr std::chrono::microseconds kYieldEvery{200};
  // Offers made so far by all pool threads (tests).
  uint64_t NumYields() const { return yields_.load(std::memory_order_relaxed); }

  // Calls fn(task, worker) once for every task in [0, num_tasks), with
  // worker in [0, NumWorkers()), and returns when all calls have returned.
  // Calls made by the same worker are sequential, so fn may use per-worker
  // scratch indexed by `worker` without locking.
  template <class Fn>
  void ParallelFor(size_t num_tasks, const Fn& fn) {
    static_assert(std::is_invocable_v<const Fn&, size_t, size_t>,
                  "fn must be callable as fn(size_t task, size_t worker)");
    if (num_tasks == 0) return;
    if (num_tasks == 1 || num_workers_ == 1) {
      for (size_t t = 0; t < num_tasks; ++t) fn(t, size_t{0});
      return;
    }
    Run(num_tasks, &CallThunk<Fn>, &fn);
  }

 private:
  using TaskThunk = void (*)(const void* fn, size_t task, size_t worker);
  template <class Fn>
  static void CallThunk(const void* fn, size_t task, size_t worker) {
    (*static_cast<const Fn*>(fn))(task, worker);
  }

  void Run(size_t num_tasks, TaskThunk thunk, const void* fn);
  void WorkerLoop(size_t worker);
  // Takes tasks until none are left.
  void DrainTasks(size_t worker);
  // Yields if the calling thread has run kYieldEvery since `last`.
  void MaybeYield(std::chrono::steady_clock::time_point& last);

  const size_t num_workers_;
  std::vector<std::thread> threads_;

  // The current job, published by the increment of generation_ and read only
  // by its participants, whom the owner waits for before changing it.
  TaskThunk thunk_ = nullptr;
  const void* fn_ = nullptr;
  size_t num_tasks_ = 0;

  // (job sequence number << kParticipantBits) | number of participants:
  // workers [0, participants) take part. Packing the count into the word the
  // workers wait on lets non-participants skip a job without reading fields
  // the owner may already be rewriting for the next one.
  static constexpr int kParticipantBits = 16;
  alignas(64) std::atomic<uint64_t> generation_{0};
  alignas(64) std::atomic<size_t> next_task_{0};
  // (job sequence number << 32) | kJobClosed? | number of workers inside the
  // job. A worker joins only while the job is open, so the owner never waits
  // for a worker that was descheduled before it could start (the machine may
  // be oversubscribed); it waits only for workers that are running tasks.
  static constexpr uint64_t kJobClosed = uint64_t{1} << 31;
  alignas(64) std::atomic<uint64_t> job_state_{kJobClosed};
  alignas(64) std::atomic<uint32_t> sleeping_{0};
  std::atomic<bool> stop_{false};
  bool in_parallel_for_ = false;  // catches nested calls in debug builds
  std::chrono::steady_clock::time_point owner_last_yield_;  // the owner's
  std::atomic<uint64_t> yields_{0};
};

}  // namespace expertserve

#endif  // EXPERTSERVE_COMMON_THREAD_POOL_H_
