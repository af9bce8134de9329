#include "common/thread_pool.h"

#include <atomic>
#include <chrono>
#include <cstddef>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace expertserve {
namespace {

void SpinFor(std::chrono::microseconds d) {
  const auto end = std::chrono::steady_clock::now() + d;
  while (std::chrono::steady_clock::now() < end) {
  }
}

// A busy pool offers its core between jobs about every kYieldEvery per
// thread, never more often, so a thread that became runnable on the same
// core does not wait a whole forward step.
TEST(ThreadPoolTest, BusyThreadsOfferTheirCoreBetweenJobs) {
  ThreadPool pool(2);
  const auto start = std::chrono::steady_clock::now();
  // 200 jobs of 2 x 50 us: >= 10 ms of work for each of the 2 threads.
  for (int job = 0; job < 200; ++job) {
    pool.ParallelFor(
        2, [](size_t, size_t) { SpinFor(std::chrono::microseconds(50)); });
  }
  const auto elapsed = std::chrono::steady_clock::now() - start;
  // Every job lasts >= 50 us (the owner waits for the worker's task), so the
  // owner alone offers at least every 4 jobs: >= 50 offers.
  EXPECT_GE(pool.NumYields(), 50u);
  // At most one per kYieldEvery per thread (+1 each for the first).
  EXPECT_LE(pool.NumYields(), 2 * (elapsed / ThreadPool::kYieldEvery + 1));

  // Short calls do not yield each time.
  const uint64_t before = pool.NumYields();
  const auto quick_start = std::chrono::steady_clock::now();
  for (int i = 0; i < 2000; ++i) pool.ParallelFor(2, [](size_t, size_t) {});
  const auto quick = std::chrono::steady_clock::now() - quick_start;
  EXPECT_LE(pool.NumYields() - before,
            2 * (quick / ThreadPool::kYieldEvery + 1));
}

TEST(ThreadPoolTest, DefaultSizeIsAtLeastOne) {
  ThreadPool pool;
  EXPECT_GE(pool.NumWorkers(), 1u);
  EXPECT_EQ(pool.NumWorkers(), ThreadPool::DefaultNumWorkers());
}

TEST(ThreadPoolTest, ZeroTasksCallsNothing) {
  ThreadPool pool(3);
  int calls = 0;
  pool.ParallelFor(0, [&](size_t, size_t) { ++calls; });
  EXPECT_EQ(calls, 0);
}

TEST(ThreadPoolTest, SingleWorkerRunsInlineInOrder) {
  ThreadPool pool(1);
  std::vector<size_t> order;
  pool.ParallelFor(5, [&](size_t task, size_t worker) {
    EXPECT_EQ(worker, 0u);
    order.push_back(task);
  });
  EXPECT_THAT(order, testing::ElementsAre(0, 1, 2, 3, 4));
}

// Every task runs exactly once and worker ids stay in range, for pools larger
// and smaller than the task count, over many consecutive calls (the decode
// pattern that exercises the spin/park handshake).
TEST(ThreadPoolTest, EveryTaskRunsExactlyOnce) {
  for (size_t workers : {1, 2, 3, 5}) {
    ThreadPool pool(workers);
    for (size_t num_tasks : {1, 2, 3, 7, 64, 1000}) {
      for (int rep = 0; rep < 50; ++rep) {
        std::vector<std::atomic<int>> hits(num_tasks);
        std::atomic<bool> bad_worker{false};
        pool.ParallelFor(num_tasks, [&](size_t task, size_t worker) {
          if (worker >= workers) bad_worker = true;
          hits[task].fetch_add(1, std::memory_order_relaxed);
        });
        ASSERT_FALSE(bad_worker);
        for (size_t t = 0; t < num_tasks; ++t) {
          ASSERT_EQ(hits[t].load(), 1)
              << "workers=" << workers << " tasks=" << num_tasks << " t=" << t;
        }
      }
    }
  }
}

// Per-worker scratch indexed by `worker` must never be shared by two
// concurrent calls.
TEST(ThreadPoolTest, WorkerIdsAreExclusive) {
  ThreadPool pool(4);
  std::vector<std::atomic<int>> in_use(pool.NumWorkers());
  std::atomic<bool> overlap{false};
  for (int rep = 0; rep < 100; ++rep) {
    pool.ParallelFor(32, [&](size_t, size_t worker) {
      if (in_use[worker].fetch_add(1) != 0) overlap = true;
      volatile int spin = 0;
      for (int i = 0; i < 200; ++i) spin = spin + i;
      in_use[worker].fetch_sub(1);
    });
  }
  EXPECT_FALSE(overlap);
}

// After idling long enough for workers to park, a call still completes.
TEST(ThreadPoolTest, WakesParkedWorkers) {
  ThreadPool pool(3);
  for (int rep = 0; rep < 3; ++rep) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    std::atomic<size_t> sum{0};
    pool.ParallelFor(100, [&](size_t task, size_t) { sum += task; });
    EXPECT_EQ(sum.load(), 4950u);
  }
}

TEST(ThreadPoolTest, UsesMoreThanOneWorkerWhenTasksBlock) {
  ThreadPool pool(2);
  // Task 0 waits until some other worker has run task 1: completes only if
  // two workers really run concurrently.
  std::atomic<bool> other_ran{false};
  pool.ParallelFor(2, [&](size_t task, size_t) {
    if (task == 1) {
      other_ran = true;
    } else {
      while (!other_ran) std::this_thread::yield();
    }
  });
  EXPECT_TRUE(other_ran);
}

}  // namespace
}  // namespace expertserve
