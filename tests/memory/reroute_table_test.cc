#include "memory/reroute_table.h"

#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/fixtures/status_matchers.h"

namespace expertserve::memory {
namespace {

using ::expertserve::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(RerouteTableTest, IdentityWhereNotReplaced) {
  const std::vector<ExpertReplacement> r = {{5, 9}, {1, 8}};
  ES_ASSERT_OK_AND_ASSIGN(RerouteTable t, RerouteTable::Create(6, 4, r));
  EXPECT_THAT(t.slots(), ElementsAre(0, 8, 2, 3, 4, 9));
  EXPECT_EQ(t[1], 8);
  EXPECT_EQ(t[0], 0);
  ASSERT_EQ(t.replacements().size(), 2u);
  EXPECT_EQ(t.replacements()[0].expert, 1);  // sorted by expert
  EXPECT_EQ(t.replacements()[1].expert, 5);
  EXPECT_EQ(t.num_base_experts(), 6);
}

TEST(RerouteTableTest, IdentityTableAndEmptyReplacement) {
  EXPECT_THAT(RerouteTable::Identity(3).slots(), ElementsAre(0, 1, 2));
  ES_ASSERT_OK_AND_ASSIGN(RerouteTable t, RerouteTable::Create(3, 0, {}));
  EXPECT_THAT(t.slots(), ElementsAre(0, 1, 2));
  EXPECT_TRUE(t.replacements().empty());
}

TEST(RerouteTableTest, RejectsInvalidEntriesNamingThem) {
  using R = std::vector<ExpertReplacement>;
  const auto kBad = absl::StatusCode::kInvalidArgument;
  EXPECT_THAT(RerouteTable::Create(4, 2, R{{4, 4}}),
              StatusIs(kBad, HasSubstr("expert id 4 is outside [0, 4)")));
  EXPECT_THAT(RerouteTable::Create(4, 2, R{{-1, 4}}),
              StatusIs(kBad, HasSubstr("expert id -1")));
  EXPECT_THAT(RerouteTable::Create(4, 2, R{{0, 3}}),
              StatusIs(kBad, HasSubstr("slot 3 is outside the adapter slots "
                                       "[4, 6)")));
  EXPECT_THAT(RerouteTable::Create(4, 2, R{{0, 6}}),
              StatusIs(kBad, HasSubstr("slot 6")));
  EXPECT_THAT(RerouteTable::Create(4, 2, R{{0, 4}, {0, 5}}),
              StatusIs(kBad, HasSubstr("entry 1: expert 0 is replaced twice")));
  EXPECT_THAT(RerouteTable::Create(4, 2, R{{0, 4}, {1, 4}}),
              StatusIs(kBad, HasSubstr("slot 4 already holds")));
  EXPECT_THAT(RerouteTable::Create(0, 2, R{}), StatusIs(kBad));
  EXPECT_THAT(RerouteTable::Create(4, -1, R{}), StatusIs(kBad));
  EXPECT_THAT(RerouteTable::Create(4, 0, R{{0, 4}}), StatusIs(kBad));
}

}  // namespace
}  // namespace expertserve::memory
