#include "engine/kv_cache/block_manager.h"

#include <numeric>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/fixtures/status_matchers.h"

namespace expertserve::engine {
namespace {

using ::expertserve::testing::IsOk;
using ::expertserve::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

std::vector<TokenId> Iota(int n, TokenId start = 100) {
  std::vector<TokenId> v(static_cast<size_t>(n));
  std::iota(v.begin(), v.end(), start);
  return v;
}

// Allocates a new sequence for all of `tokens` (matching at most
// tokens.size() - 1 of them) and marks it computed, as the engine does.
KvSeqPlan AddSeq(BlockManager& m, SeqId seq, const std::vector<TokenId>& tokens,
                 uint64_t salt = 1) {
  KvRequest r;
  r.seq = seq;
  r.is_new = true;
  r.prefix_tokens = std::span<const TokenId>(tokens).first(tokens.size() - 1);
  r.salt = salt;
  const auto match = m.MatchPrefix(r.prefix_tokens, salt);
  r.num_new_tokens = static_cast<int32_t>(tokens.size()) - match.num_blocks * m.block_tokens();
  auto plan = m.Prepare(std::span<const KvRequest>(&r, 1));
  EXPECT_THAT(plan, IsOk());
  std::vector<BlockCopy> copies;
  m.Apply(*plan, copies);
  m.MarkComputed(seq, tokens);
  EXPECT_THAT(m.CheckInvariants(), IsOk());
  return plan->seqs[0];
}

absl::Status Grow(BlockManager& m, SeqId seq, std::vector<TokenId>& tokens,
                  TokenId next, std::vector<BlockCopy>* copies_out = nullptr) {
  KvRequest r{seq, false, {}, 0, 1};
  ES_ASSIGN_OR_RETURN(KvPlan plan, m.Prepare(std::span<const KvRequest>(&r, 1)));
  std::vector<BlockCopy> copies;
  m.Apply(plan, copies);
  if (copies_out) *copies_out = copies;
  tokens.push_back(next);
  m.MarkComputed(seq, tokens);
  return m.CheckInvariants();
}

TEST(BlockManagerTest, BudgetToBlocks) {
  auto n = NumBlocksForBudget(1 << 20, 1024, 16);
  ASSERT_THAT(n, IsOk());
  EXPECT_EQ(*n, 64);
  EXPECT_THAT(NumBlocksForBudget(100, 1024, 16), StatusIs(absl::StatusCode::kInvalidArgument));
  BlockManager m(64, 16, true);
  EXPECT_EQ(m.CapacityString(), "64 blocks = 1024 tokens (16 tokens/block)");
}

TEST(BlockManagerTest, AllocatesCeilBlocksAndFreesAll) {
  BlockManager m(8, 4, true);
  AddSeq(m, 1, Iota(9));  // 3 blocks
  EXPECT_EQ(m.Table(1).size(), 3u);
  EXPECT_EQ(m.NumFreeBlocks(), 5);
  EXPECT_DOUBLE_EQ(m.Usage(), 3.0 / 8);
  m.Release(1);
  EXPECT_TRUE(m.AllFree());
  // Two full blocks stay cached (evictable); the partial one is plain free.
  EXPECT_EQ(m.NumEvictableBlocks(), 2);
}

TEST(BlockManagerTest, PrefixHitReusesFullBlocksOnly) {
  BlockManager m(16, 4, true);
  auto a = Iota(10);
  AddSeq(m, 1, a);
  auto b = Iota(10);
  b[9] = 7;  // same first 9 tokens
  KvSeqPlan p = AddSeq(m, 2, b);
  // Full blocks within the first 9 tokens: 2 (tokens 0..7).
  EXPECT_EQ(p.prefix_hit, std::vector<BlockId>(m.Table(1).begin(), m.Table(1).begin() + 2));
  EXPECT_EQ(p.num_fresh_blocks, 1);
  EXPECT_EQ(m.prefix_hits(), 8);
  EXPECT_EQ(m.prefix_queries(), 9 + 9);
  m.Release(1);
  m.Release(2);
  EXPECT_TRUE(m.AllFree());
}

TEST(BlockManagerTest, FullyCachedPromptRecomputesLastBlock) {
  BlockManager m(16, 4, true);
  auto a = Iota(8);
  AddSeq(m, 1, a);
  KvSeqPlan p = AddSeq(m, 2, a);
  // Only tokens [0, 7) are eligible, so one block is reused and the last
  // block (which yields the logits) is recomputed.
  EXPECT_EQ(p.prefix_hit.size(), 1u);
  EXPECT_EQ(p.num_fresh_blocks, 1);
}

// The engine's form: every token eligible, at most n - 1 counted as cached.
// A fully cached prompt then reuses its last block up to the last token and
// writes that token into a copy: the cached block itself is never written.
TEST(BlockManagerTest, MaxCachedTokensCopiesThePartlyReusedLastBlock) {
  BlockManager m(16, 4, true);
  const auto a = Iota(8);
  AddSeq(m, 1, a);
  const std::vector<BlockId> cached = m.Table(1);
  KvRequest r;
  r.seq = 2;
  r.is_new = true;
  r.prefix_tokens = a;
  r.max_cached_tokens = 7;
  r.salt = 1;
  r.num_new_tokens = 1;
  auto plan = m.Prepare(std::span<const KvRequest>(&r, 1));
  ASSERT_THAT(plan, IsOk());
  const KvSeqPlan& p = plan->seqs[0];
  EXPECT_EQ(p.cached_tokens, 7);
  EXPECT_EQ(p.prefix_hit, cached);
  EXPECT_TRUE(p.copy_on_write);
  EXPECT_EQ(p.num_fresh_blocks, 1);
  std::vector<BlockCopy> copies;
  m.Apply(*plan, copies);
  ASSERT_EQ(copies.size(), 1u);
  EXPECT_EQ(copies[0].src, cached[1]);
  EXPECT_EQ(m.Table(2)[0], cached[0]);
  EXPECT_EQ(m.Table(2)[1], copies[0].dst);
  EXPECT_NE(copies[0].dst, cached[1]);
  EXPECT_EQ(m.NumTokens(2), 7);
  m.MarkComputed(2, a);
  EXPECT_THAT(m.CheckInvariants(), IsOk());
  // Both original blocks are still cached for the next request.
  m.Release(1);
  m.Release(2);
  EXPECT_EQ(m.MatchPrefix(a, 1).num_blocks, 2);
  EXPECT_THAT(m.CheckInvariants(), IsOk());
  EXPECT_TRUE(m.AllFree());
}

TEST(BlockManagerTest, SaltSeparatesAdaptersAndModels) {
  BlockManager m(16, 4, true);
  auto a = Iota(9);
  AddSeq(m, 1, a, PrefixCacheSalt("m", 0));
  EXPECT_EQ(m.MatchPrefix(a, PrefixCacheSalt("m", 0)).num_blocks, 2);
  EXPECT_EQ(m.MatchPrefix(a, PrefixCacheSalt("m", 7)).num_blocks, 0);
  EXPECT_EQ(m.MatchPrefix(a, PrefixCacheSalt("other", 0)).num_blocks, 0);
}

TEST(BlockManagerTest, PrefixMustMatchFromTheStart) {
  BlockManager m(16, 4, true);
  auto a = Iota(12);
  AddSeq(m, 1, a);
  auto b = a;
  b[0] = 1;  // first block differs: later identical blocks are no hit
  EXPECT_EQ(m.MatchPrefix(b, 1).num_blocks, 0);
}

TEST(BlockManagerTest, EvictsLeastRecentlyFreedCachedBlocks) {
  BlockManager m(4, 4, true);
  auto a = Iota(5, 100);  // 1 full + 1 partial
  auto b = Iota(5, 200);
  AddSeq(m, 1, a);
  AddSeq(m, 2, b);
  m.Release(1);  // a's full block freed first -> evicted first
  m.Release(2);
  EXPECT_EQ(m.NumEvictableBlocks(), 2);
  EXPECT_EQ(m.MatchPrefix(a, 1).num_blocks, 1);
  EXPECT_EQ(m.MatchPrefix(a, 1).num_evictable, 1);
  // Needs 3 blocks: the 2 plain free ones, then evicts a's block (oldest).
  AddSeq(m, 3, Iota(9, 300));
  EXPECT_EQ(m.MatchPrefix(a, 1).num_blocks, 0);
  EXPECT_EQ(m.MatchPrefix(b, 1).num_blocks, 1);
  m.Release(3);
  EXPECT_TRUE(m.AllFree());
}

TEST(BlockManagerTest, HitOnEvictableBlockIsNotEvictedBySameStep) {
  BlockManager m(3, 4, true);
  auto a = Iota(5);
  AddSeq(m, 1, a);
  m.Release(1);  // 1 evictable + 2 free
  // New seq hits the evictable block and needs 2 fresh: exactly fits.
  KvRequest r{2, true, std::span<const TokenId>(a).first(4), 1, 1};
  auto plan = m.Prepare(std::span<const KvRequest>(&r, 1));
  ASSERT_THAT(plan, IsOk());
  EXPECT_EQ(plan->seqs[0].prefix_hit.size(), 1u);
  // A second seq asking for 1 more block no longer fits (the hit is taken).
  KvRequest both[2] = {r, KvRequest{3, true, {}, 1, 8}};
  EXPECT_THAT(m.Prepare(both), StatusIs(absl::StatusCode::kResourceExhausted));
}

TEST(BlockManagerTest, PrepareHasNoSideEffects) {
  BlockManager m(8, 4, true);
  auto a = Iota(6);
  AddSeq(m, 1, a);
  m.Release(1);
  const int free_before = m.NumFreeBlocks();
  const int evictable_before = m.NumEvictableBlocks();
  KvRequest reqs[2] = {KvRequest{2, true, std::span<const TokenId>(a).first(5), 1, 2},
                       KvRequest{3, true, {}, 1, 20}};
  for (int i = 0; i < 3; ++i) {
    ASSERT_THAT(m.Prepare(reqs), IsOk());
    KvRequest too_big{4, true, {}, 1, 100};
    EXPECT_THAT(m.Prepare(std::span<const KvRequest>(&too_big, 1)),
                StatusIs(absl::StatusCode::kResourceExhausted));
  }
  EXPECT_EQ(m.NumFreeBlocks(), free_before);
  EXPECT_EQ(m.NumEvictableBlocks(), evictable_before);
  EXPECT_FALSE(m.HasSeq(2));
  EXPECT_EQ(m.prefix_hits(), 0);
  EXPECT_THAT(m.CheckInvariants(), IsOk());
}

TEST(BlockManagerTest, ForkSharesBlocksAndCopiesOnWrite) {
  BlockManager m(8, 4, true);
  auto a = Iota(6);  // blocks: [full][2 of 4]
  AddSeq(m, 1, a);
  m.Fork(1, 2);
  EXPECT_EQ(m.Table(1), m.Table(2));
  EXPECT_EQ(m.NumFreeBlocks(), 6);
  EXPECT_EQ(m.BlocksNeeded(2, 1), 1);  // COW of the partial block
  auto a2 = a;
  std::vector<BlockCopy> copies;
  ASSERT_THAT(Grow(m, 2, a2, 9, &copies), IsOk());
  ASSERT_EQ(copies.size(), 1u);
  EXPECT_EQ(copies[0].src, m.Table(1)[1]);
  EXPECT_EQ(copies[0].dst, m.Table(2)[1]);
  EXPECT_EQ(m.Table(1)[0], m.Table(2)[0]);  // the full block stays shared
  EXPECT_NE(m.Table(1)[1], m.Table(2)[1]);
  // The parent now owns its partial block alone: no copy.
  ASSERT_THAT(Grow(m, 1, a, 8, &copies), IsOk());
  EXPECT_THAT(copies, IsEmpty());
  m.Release(1);
  EXPECT_EQ(m.Table(2).size(), 2u);
  m.Release(2);
  EXPECT_TRUE(m.AllFree());
}

TEST(BlockManagerTest, ForkAtBlockBoundaryNeedsNoCopy) {
  BlockManager m(8, 4, true);
  auto a = Iota(8);
  AddSeq(m, 1, a);
  m.Fork(1, 2);
  std::vector<BlockCopy> copies;
  ASSERT_THAT(Grow(m, 2, a, 1, &copies), IsOk());
  EXPECT_THAT(copies, IsEmpty());
  m.Release(2);
  m.Release(1);
  EXPECT_TRUE(m.AllFree());
}

TEST(BlockManagerTest, PrefixCachingOffNeverHits) {
  BlockManager m(8, 4, false);
  auto a = Iota(9);
  AddSeq(m, 1, a);
  KvSeqPlan p = AddSeq(m, 2, a);
  EXPECT_THAT(p.prefix_hit, IsEmpty());
  m.Release(1);
  m.Release(2);
  EXPECT_EQ(m.NumEvictableBlocks(), 0);
  EXPECT_TRUE(m.AllFree());
}

TEST(BlockManagerTest, DuplicateContentKeepsOneCacheEntry) {
  BlockManager m(8, 4, true);
  auto a = Iota(5);
  // Two sequences computed in the same step (no hit for either).
  KvRequest reqs[2] = {KvRequest{1, true, std::span<const TokenId>(a).first(4), 1, 5},
                       KvRequest{2, true, std::span<const TokenId>(a).first(4), 1, 5}};
  auto plan = m.Prepare(reqs);
  ASSERT_THAT(plan, IsOk());
  std::vector<BlockCopy> copies;
  m.Apply(*plan, copies);
  m.MarkComputed(1, a);
  m.MarkComputed(2, a);
  ASSERT_THAT(m.CheckInvariants(), IsOk());
  m.Release(1);
  m.Release(2);
  EXPECT_EQ(m.NumEvictableBlocks(), 1);
  EXPECT_TRUE(m.AllFree());
}

TEST(BlockManagerTest, PrepareRejectsUnknownAndDuplicateSequences) {
  BlockManager m(8, 4, true);
  KvRequest r{5, false, {}, 0, 1};
  EXPECT_THAT(m.Prepare(std::span<const KvRequest>(&r, 1)),
              StatusIs(absl::StatusCode::kInvalidArgument));
  AddSeq(m, 1, Iota(3));
  KvRequest again{1, true, {}, 0, 1};
  EXPECT_THAT(m.Prepare(std::span<const KvRequest>(&again, 1)),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace expertserve::engine
