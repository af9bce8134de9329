#include "common/thread_pool.h"

#include <atomic>
#include <cstddef>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace expertserve {
namespace {

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
