// The fused CUDA reroute kernel against the CPU RerouteTopK on random batches.
// Skips (cuda label) where there is no device; the binary starts without a
// driver because cudart is linked statically.
#include <random>
#include <vector>

#include "engine/adapters/batched_reroute.h"
#include "engine/adapters/cuda/reroute.cuh"
#include "gtest/gtest.h"
#include "tests/fixtures/status_matchers.h"

namespace expertserve::engine::adapters {
namespace {

TEST(RerouteCudaTest, MatchesCpuReroute) {
  if (cuda::DeviceCount() == 0) GTEST_SKIP() << "no CUDA device";
  std::mt19937 rng(5);
  for (int iter = 0; iter < 30; ++iter) {
    const int E = 1 + static_cast<int>(rng() % 160);
    const int A = static_cast<int>(rng() % 24);
    PackedReroute packed;
    packed.num_adapters = A;
    packed.num_experts = E;
    for (int a = 0; a < A; ++a) {
      for (int e = 0; e < E; ++e) {
        packed.slots.push_back(rng() % 4 == 0 ? E + static_cast<int>(rng() % 64) : e);
      }
    }
    const size_t T = rng() % 3000, k = 1 + rng() % 8;
    std::vector<ExpertId> topk(T * k);
    std::vector<int32_t> adapter(T);
    for (auto& e : topk) e = static_cast<ExpertId>(rng() % E);
    for (auto& a : adapter) a = static_cast<int32_t>(rng() % (A + 1)) - 1;
    std::vector<SlotId> want(T * k), got(T * k, -7);
    ES_ASSERT_OK(RerouteTopK(topk, k, adapter, packed, want));
    const int err = cuda::RerouteOnDevice(topk.data(), adapter.data(),
                                          packed.slots.data(),
                                          static_cast<int64_t>(T),
                                          static_cast<int>(k), A, E, got.data());
    ASSERT_EQ(err, 0) << cuda::ErrorString(err);
    EXPECT_EQ(got, want) << "iteration " << iter;
  }
}

TEST(RerouteCudaTest, OutOfRangeEntriesGetSlotMinusOne) {
  if (cuda::DeviceCount() == 0) GTEST_SKIP() << "no CUDA device";
  const std::vector<int32_t> table = {0, 5, 2};  // A = 1, E = 3
  const std::vector<int32_t> topk = {1, 3, 1, 1};
  const std::vector<int32_t> adapter = {0, 2};
  std::vector<int32_t> out(4);
  ASSERT_EQ(cuda::RerouteOnDevice(topk.data(), adapter.data(), table.data(), 2, 2,
                                  1, 3, out.data()),
            0);
  EXPECT_EQ(out, (std::vector<int32_t>{5, -1, -1, -1}));
}

TEST(RerouteCudaTest, DeviceCountIsZeroNotACrashWithoutADriver) {
  EXPECT_GE(cuda::DeviceCount(), 0);
}

}  // namespace
}  // namespace expertserve::engine::adapters
