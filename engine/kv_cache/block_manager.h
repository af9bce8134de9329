// The paged KV cache's bookkeeping: fixed-size blocks, per-sequence block
// tables, a free list, automatic prefix caching and copy-on-write forks. The
// K/V bytes themselves live in engine/forward's KvStore; this class only
// hands out block ids (and tells the caller which blocks to copy for COW).
//
// Prefix caching (vLLM v1's scheme): once every position of a block has been
// computed, the block is keyed by hash(parent block's hash, its token ids,
// salt), where the salt identifies the model and ESFT adapter (an adapter's
// experts change the values). A later sequence whose prompt starts with the
// same full blocks reuses them instead of recomputing. Blocks nobody
// references stay cached and are evicted least-recently-freed first when a
// fresh block is needed. Matches are verified by comparing the token ids and
// the parent block, so a hash collision can never alias two prefixes.
//
// Plan, then commit: Prepare() decides whether a step's allocations fit and
// has no side effects; Apply() performs exactly that plan.
#ifndef EXPERTSERVE_ENGINE_KV_CACHE_BLOCK_MANAGER_H_
#define EXPERTSERVE_ENGINE_KV_CACHE_BLOCK_MANAGER_H_

#include <cstddef>
#include <cstdint>
#include <list>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/ids.h"

namespace expertserve::engine {

using BlockId = int32_t;

// Number of blocks a byte budget holds (kInvalidArgument if not even one).
absl::StatusOr<int32_t> NumBlocksForBudget(size_t budget_bytes,
                                           size_t bytes_per_token,
                                           int32_t block_tokens);

// Salt of the prefix-cache hash for (model, adapter cache key; 0 = base).
uint64_t PrefixCacheSalt(const std::string& model, uint64_t adapter_key);

// One sequence's KV needs for one step.
struct KvRequest {
  SeqId seq = 0;
  // True for a sequence with no table yet (new or resumed after
  // preemption): its table is created, reusing cached full blocks that
  // match a prefix of `prefix_tokens`.
  bool is_new = false;
  // New sequences only: tokens eligible for a prefix-cache match (empty
  // disables the match).
  std::span<const TokenId> prefix_tokens;
  uint64_t salt = 0;
  // Tokens the step writes, starting right after what the sequence already
  // holds (for a new sequence: after the prefix-cache hit).
  int32_t num_new_tokens = 0;
  // New sequences only: at most this many matched tokens count as computed
  // (-1: all). The engine passes num_tokens - 1 with all tokens eligible, so
  // a fully cached prompt recomputes only its last token (which yields the
  // logits): the last matched block is then reused up to that token and
  // copied before the write (copy_on_write), rather than recomputed whole.
  int32_t max_cached_tokens = -1;
};

struct KvSeqPlan {
  SeqId seq = 0;
  bool is_new = false;
  uint64_t salt = 0;
  int32_t num_query_tokens = 0;     // new sequences: prefix_tokens.size()
  std::vector<BlockId> prefix_hit;  // new sequences: reused cached blocks
  int32_t cached_tokens = 0;        // new sequences: tokens they hold
  int32_t num_fresh_blocks = 0;     // taken from the free pool
  bool copy_on_write = false;       // last block is shared: copy it first
};

// The outcome of Prepare. Valid only until the next mutation of the manager.
struct KvPlan {
  std::vector<KvSeqPlan> seqs;
  int32_t total_fresh_blocks = 0;
};

// A block copy the caller must perform on the KV store before the step
// (copy-on-write of a shared partial block).
struct BlockCopy {
  BlockId src = 0;
  BlockId dst = 0;
};

// Engine thread only (thread-compatible).
class BlockManager {
 public:
  BlockManager(int32_t num_blocks, int32_t block_tokens,
               bool enable_prefix_caching);
  BlockManager(const BlockManager&) = delete;
  BlockManager& operator=(const BlockManager&) = delete;

  int32_t num_blocks() const { return num_blocks_; }
  int32_t block_tokens() const { return block_tokens_; }
  bool prefix_caching() const { return prefix_caching_; }
  // "N blocks = M tokens", for the start-up log.
  std::string CapacityString() const;

  // Blocks a fresh allocation can take: never-used plus evictable cached.
  int32_t NumFreeBlocks() const;
  // Cached blocks nobody references (a subset of NumFreeBlocks).
  int32_t NumEvictableBlocks() const {
    return static_cast<int32_t>(evictable_.size());
  }
  // Fraction of blocks referenced by some sequence.
  double Usage() const;
  bool AllFree() const;

  struct PrefixMatch {
    int32_t num_blocks = 0;     // leading full blocks found in the cache
    int32_t num_evictable = 0;  // of which nobody references now
  };
  // Read-only prefix lookup (what Prepare would reuse for `tokens`).
  PrefixMatch MatchPrefix(std::span<const TokenId> tokens, uint64_t salt) const;

  // Blocks needed to grow `seq` by `num_new_tokens` (including a COW copy);
  // the sequence must exist.
  int32_t BlocksNeeded(SeqId seq, int32_t num_new_tokens) const;

  // No side effects. kResourceExhausted if the step does not fit; the
  // scheduler plans within NumFreeBlocks(), so this signals a planning bug.
  absl::StatusOr<KvPlan> Prepare(std::span<const KvRequest> requests) const;
  // Performs `plan` (from Prepare, with no mutation in between); appends the
  // COW copies to `copies`.
  void Apply(const KvPlan& plan, std::vector<BlockCopy>& copies);

  // Tokens of `seq` now computed: its first `tokens.size()` tokens. Newly
  // completed full blocks are entered into the prefix cache.
  void MarkComputed(SeqId seq, std::span<const TokenId> tokens);

  // `child` shares all of `parent`'s blocks (copy-on-write).
  void Fork(SeqId parent, SeqId child);
  // Drops the sequence's table; its blocks return to the pool (cached full
  // blocks stay reusable until evicted). Unknown ids are ignored.
  void Release(SeqId seq);

  bool HasSeq(SeqId seq) const { return tables_.contains(seq); }
  const std::vector<BlockId>& Table(SeqId seq) const;
  // Positions reserved for `seq` (tokens written or about to be).
  int32_t NumTokens(SeqId seq) const;
  // Blocks only `seq` references (what releasing it frees for sure).
  int32_t NumExclusiveBlocks(SeqId seq) const;
  // Whether the last block is shared (a write into it copies it first).
  bool LastBlockShared(SeqId seq) const;

  // Prefix-cache counters: prompt tokens looked up, and found.
  int64_t prefix_queries() const { return prefix_queries_; }
  int64_t prefix_hits() const { return prefix_hits_; }

  // Full consistency check (tests and the fuzz target): reference counts
  // match the tables, pools are disjoint and complete, hashes are indexed.
  absl::Status CheckInvariants() const;

 private:
  struct Block {
    int32_t ref_count = 0;
    bool hashed = false;
    uint64_t hash = 0;
    BlockId parent = -1;          // hashed blocks: previous block of the prefix
    std::vector<TokenId> tokens;  // hashed blocks: [block_tokens]
    std::list<BlockId>::iterator lru_pos;  // valid while evictable
  };
  struct SeqTable {
    std::vector<BlockId> blocks;
    int32_t num_tokens = 0;         // positions reserved
    int32_t num_hashed_blocks = 0;  // leading blocks whose hash is known
    std::vector<uint64_t> hashes;   // [num_hashed_blocks] chained hashes
    uint64_t salt = 0;
  };

  // The cached block for (parent, tokens, salt), or -1.
  BlockId Lookup(BlockId parent, uint64_t hash,
                 std::span<const TokenId> tokens) const;
  BlockId TakeFreeBlock();
  void Ref(BlockId b);
  void Unref(BlockId b);

  const int32_t num_blocks_;
  const int32_t block_tokens_;
  const bool prefix_caching_;
  std::vector<Block> blocks_;
  std::vector<BlockId> free_;       // never cached (or evicted), ref 0
  std::list<BlockId> evictable_;    // cached, ref 0; front = evict first
  absl::flat_hash_map<uint64_t, BlockId> cache_;  // hash -> block
  absl::flat_hash_map<SeqId, SeqTable> tables_;
  int64_t prefix_queries_ = 0;
  int64_t prefix_hits_ = 0;
};

}  // namespace expertserve::engine

#endif  // EXPERTSERVE_ENGINE_KV_CACHE_BLOCK_MANAGER_H_
