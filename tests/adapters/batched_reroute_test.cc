#include "engine/adapters/batched_reroute.h"

#include <numeric>
#include <random>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/fixtures/status_matchers.h"

namespace expertserve::engine::adapters {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::expertserve::testing::StatusIs;

TEST(BatchedRerouteTest, MapsEachTokenThroughItsAdaptersTable) {
  // E = 4, S = 3: adapter 0 replaces expert 2 by slot 5, adapter 1 replaces
  // experts 0 and 3 by slots 4 and 6.
  const memory::ExpertReplacement r0[] = {{2, 5}};
  const memory::ExpertReplacement r1[] = {{3, 6}, {0, 4}};
  ES_ASSERT_OK_AND_ASSIGN(auto t0, memory::RerouteTable::Create(4, 3, r0));
  ES_ASSERT_OK_AND_ASSIGN(auto t1, memory::RerouteTable::Create(4, 3, r1));
  const memory::RerouteTable* tables[] = {&t0, &t1};
  ES_ASSERT_OK_AND_ASSIGN(PackedReroute packed, PackRerouteTables(tables, 4));
  EXPECT_THAT(packed.slots, ElementsAre(0, 1, 5, 3, 4, 1, 2, 6));
  const std::vector<ExpertId> topk = {2, 0, 2, 3, 0, 3};  // [3 tokens, k=2]
  const std::vector<int32_t> adapter = {0, -1, 1};
  std::vector<SlotId> out(6);
  ES_ASSERT_OK(RerouteTopK(topk, 2, adapter, packed, out));
  EXPECT_THAT(out, ElementsAre(5, 0, 2, 3, 4, 6));
}

TEST(BatchedRerouteTest, AgreesWithRerouteTableOnRandomBatches) {
  std::mt19937 rng(3);
  for (int iter = 0; iter < 50; ++iter) {
    const int E = 1 + static_cast<int>(rng() % 64), S = static_cast<int>(rng() % 16);
    const int A = static_cast<int>(rng() % 5);
    std::vector<memory::RerouteTable> tables;
    for (int a = 0; a < A; ++a) {
      std::vector<memory::ExpertReplacement> r;
      std::vector<int> experts(static_cast<size_t>(E));
      std::iota(experts.begin(), experts.end(), 0);
      std::shuffle(experts.begin(), experts.end(), rng);
      const int n = std::min(E, S == 0 ? 0 : static_cast<int>(rng() % (S + 1)));
      for (int i = 0; i < n; ++i) r.push_back({experts[i], E + i});
      ES_ASSERT_OK_AND_ASSIGN(auto t, memory::RerouteTable::Create(E, S, r));
      tables.push_back(t);
    }
    std::vector<const memory::RerouteTable*> ptrs;
    for (const auto& t : tables) ptrs.push_back(&t);
    ES_ASSERT_OK_AND_ASSIGN(PackedReroute packed, PackRerouteTables(ptrs, E));
    const size_t T = rng() % 40, k = 1 + rng() % 4;
    std::vector<ExpertId> topk(T * k);
    std::vector<int32_t> adapter(T);
    for (auto& e : topk) e = static_cast<ExpertId>(rng() % E);
    for (auto& a : adapter) a = static_cast<int32_t>(rng() % (A + 1)) - 1;
    std::vector<SlotId> out(T * k);
    ES_ASSERT_OK(RerouteTopK(topk, k, adapter, packed, out));
    for (size_t t = 0; t < T; ++t) {
      for (size_t j = 0; j < k; ++j) {
        const ExpertId e = topk[t * k + j];
        EXPECT_EQ(out[t * k + j], adapter[t] < 0 ? e : tables[adapter[t]][e]);
      }
    }
  }
}

TEST(BatchedRerouteTest, RejectsBadInputNamingTheToken) {
  auto t0 = memory::RerouteTable::Identity(4);
  const memory::RerouteTable* tables[] = {&t0};
  ES_ASSERT_OK_AND_ASSIGN(PackedReroute packed, PackRerouteTables(tables, 4));
  std::vector<SlotId> out(2);
  EXPECT_THAT(RerouteTopK(std::vector<ExpertId>{1, 4}, 2, std::vector<int32_t>{0},
                          packed, out),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("token 0 picks expert 4")));
  EXPECT_THAT(RerouteTopK(std::vector<ExpertId>{1, 2}, 2, std::vector<int32_t>{1},
                          packed, out),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("adapter index 1")));
  EXPECT_THAT(RerouteTopK(std::vector<ExpertId>{1}, 2, std::vector<int32_t>{0},
                          packed, out),
              StatusIs(absl::StatusCode::kInvalidArgument));
  const memory::RerouteTable* bad[] = {&t0, nullptr};
  EXPECT_THAT(PackRerouteTables(bad, 4), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(PackRerouteTables(tables, 5),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("E=4")));
}

}  // namespace
}  // namespace expertserve::engine::adapters
