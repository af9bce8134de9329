#include "engine/kv_cache/block_manager.h"

#include <algorithm>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "common/check.h"

namespace expertserve::engine {
namespace {

// SplitMix64 finaliser: a cheap, well-mixed 64-bit step (deterministic across
// processes, unlike absl::Hash).
uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

uint64_t HashBlock(uint64_t parent_hash, std::span<const TokenId> tokens) {
  uint64_t h = Mix(parent_hash);
  for (TokenId t : tokens) h = Mix(h ^ static_cast<uint32_t>(t));
  return h;
}

int32_t CeilDiv(int32_t a, int32_t b) { return (a + b - 1) / b; }

}  // namespace

absl::StatusOr<int32_t> NumBlocksForBudget(size_t budget_bytes,
                                           size_t bytes_per_token,
                                           int32_t block_tokens) {
  if (block_tokens <= 0 || bytes_per_token == 0) {
    return absl::InvalidArgumentError("kv cache: block_tokens and bytes per token must be > 0");
  }
  const size_t block_bytes = bytes_per_token * static_cast<size_t>(block_tokens);
  const size_t n = budget_bytes / block_bytes;
  if (n == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "kv cache: a budget of ", budget_bytes, " bytes holds no block of ",
        block_bytes, " bytes (", block_tokens, " tokens x ", bytes_per_token,
        " bytes/token); raise the KV budget"));
  }
  return static_cast<int32_t>(std::min<size_t>(n, 1 << 30));
}

uint64_t PrefixCacheSalt(const std::string& model, uint64_t adapter_key) {
  uint64_t h = Mix(adapter_key);
  for (unsigned char c : model) h = Mix(h ^ c);
  return h;
}

BlockManager::BlockManager(int32_t num_blocks, int32_t block_tokens,
                           bool enable_prefix_caching)
    : num_blocks_(num_blocks),
      block_tokens_(block_tokens),
      prefix_caching_(enable_prefix_caching),
      blocks_(static_cast<size_t>(num_blocks)) {
  ES_CHECK(num_blocks > 0 && block_tokens > 0);
  free_.reserve(blocks_.size());
  // Pop from the back hands out low ids first (easier to read in tests).
  for (BlockId b = num_blocks - 1; b >= 0; --b) free_.push_back(b);
}

std::string BlockManager::CapacityString() const {
  return absl::StrCat(num_blocks_, " blocks = ",
                      static_cast<int64_t>(num_blocks_) * block_tokens_,
                      " tokens (", block_tokens_, " tokens/block)");
}

int32_t BlockManager::NumFreeBlocks() const {
  return static_cast<int32_t>(free_.size() + evictable_.size());
}

double BlockManager::Usage() const {
  return 1.0 - static_cast<double>(NumFreeBlocks()) / num_blocks_;
}

bool BlockManager::AllFree() const {
  return tables_.empty() && NumFreeBlocks() == num_blocks_;
}

BlockId BlockManager::Lookup(BlockId parent, uint64_t hash,
                             std::span<const TokenId> tokens) const {
  auto it = cache_.find(hash);
  if (it == cache_.end()) return -1;
  const Block& b = blocks_[static_cast<size_t>(it->second)];
  if (b.parent != parent ||
      !std::equal(tokens.begin(), tokens.end(), b.tokens.begin(), b.tokens.end())) {
    return -1;  // a hash collision: treat as a miss
  }
  return it->second;
}

BlockManager::PrefixMatch BlockManager::MatchPrefix(
    std::span<const TokenId> tokens, uint64_t salt) const {
  PrefixMatch m;
  if (!prefix_caching_) return m;
  const size_t full = tokens.size() / static_cast<size_t>(block_tokens_);
  BlockId parent = -1;
  uint64_t h = salt;
  for (size_t i = 0; i < full; ++i) {
    auto chunk = tokens.subspan(i * static_cast<size_t>(block_tokens_),
                                static_cast<size_t>(block_tokens_));
    h = HashBlock(h, chunk);
    const BlockId b = Lookup(parent, h, chunk);
    if (b < 0) break;
    ++m.num_blocks;
    if (blocks_[static_cast<size_t>(b)].ref_count == 0) ++m.num_evictable;
    parent = b;
  }
  return m;
}

int32_t BlockManager::BlocksNeeded(SeqId seq, int32_t num_new_tokens) const {
  const SeqTable& t = tables_.at(seq);
  int32_t n = CeilDiv(t.num_tokens + num_new_tokens, block_tokens_) -
              static_cast<int32_t>(t.blocks.size());
  if (num_new_tokens > 0 && t.num_tokens % block_tokens_ != 0 &&
      blocks_[static_cast<size_t>(t.blocks.back())].ref_count > 1) {
    ++n;  // copy-on-write of the shared partial last block
  }
  return std::max(n, 0);
}

absl::StatusOr<KvPlan> BlockManager::Prepare(
    std::span<const KvRequest> requests) const {
  KvPlan plan;
  absl::flat_hash_set<BlockId> evictable_hits;
  for (const KvRequest& r : requests) {
    if (r.num_new_tokens < 0) {
      return absl::InvalidArgumentError("kv cache: negative num_new_tokens");
    }
    KvSeqPlan sp;
    sp.seq = r.seq;
    sp.is_new = r.is_new;
    sp.salt = r.salt;
    if (r.is_new) {
      if (tables_.contains(r.seq)) {
        return absl::InvalidArgumentError(
            absl::StrCat("kv cache: sequence ", r.seq, " already has blocks"));
      }
      sp.num_query_tokens = static_cast<int32_t>(r.prefix_tokens.size());
      const PrefixMatch m = MatchPrefix(r.prefix_tokens, r.salt);
      sp.cached_tokens = m.num_blocks * block_tokens_;
      if (r.max_cached_tokens >= 0) {
        sp.cached_tokens = std::min(sp.cached_tokens, r.max_cached_tokens);
      }
      // Blocks holding the cached tokens; a partly used last one is copied
      // before the step writes into it (it stays cached as it is).
      const int32_t num_hit = CeilDiv(sp.cached_tokens, block_tokens_);
      sp.copy_on_write = sp.cached_tokens % block_tokens_ != 0;
      // Walk again to collect the ids (MatchPrefix only counts).
      BlockId parent = -1;
      uint64_t h = r.salt;
      for (int32_t i = 0; i < num_hit; ++i) {
        auto chunk = r.prefix_tokens.subspan(
            static_cast<size_t>(i) * static_cast<size_t>(block_tokens_),
            static_cast<size_t>(block_tokens_));
        h = HashBlock(h, chunk);
        const BlockId b = Lookup(parent, h, chunk);
        ES_CHECK(b >= 0);
        sp.prefix_hit.push_back(b);
        if (blocks_[static_cast<size_t>(b)].ref_count == 0) evictable_hits.insert(b);
        parent = b;
      }
      sp.num_fresh_blocks =
          CeilDiv(sp.cached_tokens + r.num_new_tokens, block_tokens_) - num_hit +
          (sp.copy_on_write ? 1 : 0);
    } else {
      auto it = tables_.find(r.seq);
      if (it == tables_.end()) {
        return absl::InvalidArgumentError(
            absl::StrCat("kv cache: unknown sequence ", r.seq));
      }
      const SeqTable& t = it->second;
      sp.num_fresh_blocks = BlocksNeeded(r.seq, r.num_new_tokens);
      sp.copy_on_write = r.num_new_tokens > 0 && t.num_tokens % block_tokens_ != 0 &&
                         blocks_[static_cast<size_t>(t.blocks.back())].ref_count > 1;
    }
    plan.total_fresh_blocks += sp.num_fresh_blocks;
    plan.seqs.push_back(std::move(sp));
  }
  const int32_t available =
      NumFreeBlocks() - static_cast<int32_t>(evictable_hits.size());
  if (plan.total_fresh_blocks > available) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "kv cache: step needs ", plan.total_fresh_blocks, " free blocks, have ",
        available, " (", CapacityString(), ")"));
  }
  return plan;
}

void BlockManager::Apply(const KvPlan& plan, std::vector<BlockCopy>& copies) {
  // Prefix hits first, so fresh allocations below can never evict them.
  for (const KvSeqPlan& sp : plan.seqs) {
    if (!sp.is_new) continue;
    SeqTable& t = tables_[sp.seq];
    ES_CHECK(t.blocks.empty());
    t.salt = sp.salt;
    // Only fully reused blocks count as hashed: a partly reused one is
    // replaced by its copy below and hashed again once full.
    t.num_hashed_blocks = sp.cached_tokens / block_tokens_;
    for (BlockId b : sp.prefix_hit) {
      Ref(b);
      t.blocks.push_back(b);
      if (t.hashes.size() < static_cast<size_t>(t.num_hashed_blocks)) {
        t.hashes.push_back(blocks_[static_cast<size_t>(b)].hash);
      }
    }
    t.num_tokens = sp.cached_tokens;
    prefix_hits_ += t.num_tokens;
    prefix_queries_ += sp.num_query_tokens;
  }
  for (const KvSeqPlan& sp : plan.seqs) {
    SeqTable& t = tables_.at(sp.seq);
    int32_t fresh = sp.num_fresh_blocks;
    if (sp.copy_on_write) {
      const BlockId old = t.blocks.back();
      const BlockId b = TakeFreeBlock();
      Ref(b);
      copies.push_back({old, b});
      Unref(old);
      t.blocks.back() = b;
      --fresh;
    }
    for (int32_t i = 0; i < fresh; ++i) {
      const BlockId b = TakeFreeBlock();
      Ref(b);
      t.blocks.push_back(b);
    }
  }
}

void BlockManager::MarkComputed(SeqId seq, std::span<const TokenId> tokens) {
  SeqTable& t = tables_.at(seq);
  t.num_tokens = std::max(t.num_tokens, static_cast<int32_t>(tokens.size()));
  const int32_t full = std::min(static_cast<int32_t>(tokens.size()) / block_tokens_,
                                static_cast<int32_t>(t.blocks.size()));
  for (int32_t i = t.num_hashed_blocks; i < full; ++i) {
    auto chunk = tokens.subspan(static_cast<size_t>(i) * static_cast<size_t>(block_tokens_),
                                static_cast<size_t>(block_tokens_));
    const uint64_t parent_hash = i == 0 ? t.salt : t.hashes[static_cast<size_t>(i) - 1];
    const uint64_t h = HashBlock(parent_hash, chunk);
    t.hashes.push_back(h);
    t.num_hashed_blocks = i + 1;
    if (!prefix_caching_) continue;
    const BlockId b = t.blocks[static_cast<size_t>(i)];
    Block& blk = blocks_[static_cast<size_t>(b)];
    // A block with the same content computed by another sequence keeps the
    // cache entry; this one stays private and is freed normally.
    if (blk.hashed || cache_.contains(h)) continue;
    blk.hashed = true;
    blk.hash = h;
    blk.parent = i == 0 ? -1 : t.blocks[static_cast<size_t>(i) - 1];
    blk.tokens.assign(chunk.begin(), chunk.end());
    cache_[h] = b;
  }
}

void BlockManager::Fork(SeqId parent, SeqId child) {
  ES_CHECK(!tables_.contains(child));
  SeqTable t = tables_.at(parent);  // copy: the child shares every block
  for (BlockId b : t.blocks) Ref(b);
  tables_.emplace(child, std::move(t));
}

void BlockManager::Release(SeqId seq) {
  auto it = tables_.find(seq);
  if (it == tables_.end()) return;
  // Tail blocks first: they are the least likely to be shared, so they are
  // evicted before the prefix blocks.
  for (auto b = it->second.blocks.rbegin(); b != it->second.blocks.rend(); ++b) {
    Unref(*b);
  }
  tables_.erase(it);
}

const std::vector<BlockId>& BlockManager::Table(SeqId seq) const {
  return tables_.at(seq).blocks;
}

int32_t BlockManager::NumTokens(SeqId seq) const {
  return tables_.at(seq).num_tokens;
}

int32_t BlockManager::NumExclusiveBlocks(SeqId seq) const {
  int32_t n = 0;
  for (BlockId b : tables_.at(seq).blocks) {
    if (blocks_[static_cast<size_t>(b)].ref_count == 1) ++n;
  }
  return n;
}

bool BlockManager::LastBlockShared(SeqId seq) const {
  const SeqTable& t = tables_.at(seq);
  return !t.blocks.empty() && blocks_[static_cast<size_t>(t.blocks.back())].ref_count > 1;
}

BlockId BlockManager::TakeFreeBlock() {
  if (!free_.empty()) {
    const BlockId b = free_.back();
    free_.pop_back();
    return b;
  }
  ES_CHECK(!evictable_.empty());
  const BlockId b = evictable_.front();
  evictable_.pop_front();
  Block& blk = blocks_[static_cast<size_t>(b)];
  cache_.erase(blk.hash);
  blk.hashed = false;
  blk.parent = -1;
  blk.tokens.clear();
  return b;
}

void BlockManager::Ref(BlockId b) {
  Block& blk = blocks_[static_cast<size_t>(b)];
  if (blk.ref_count == 0 && blk.hashed) evictable_.erase(blk.lru_pos);
  ++blk.ref_count;
}

void BlockManager::Unref(BlockId b) {
  Block& blk = blocks_[static_cast<size_t>(b)];
  ES_CHECK(blk.ref_count > 0);
  if (--blk.ref_count > 0) return;
  if (blk.hashed) {
    evictable_.push_back(b);
    blk.lru_pos = std::prev(evictable_.end());
  } else {
    free_.push_back(b);
  }
}

absl::Status BlockManager::CheckInvariants() const {
  std::vector<int32_t> refs(blocks_.size(), 0);
  for (const auto& [seq, t] : tables_) {
    if (static_cast<int32_t>(t.blocks.size()) != CeilDiv(t.num_tokens, block_tokens_)) {
      return absl::InternalError(absl::StrCat("seq ", seq, ": ", t.blocks.size(),
                                              " blocks for ", t.num_tokens, " tokens"));
    }
    for (BlockId b : t.blocks) {
      if (b < 0 || b >= num_blocks_) return absl::InternalError("block id out of range");
      ++refs[static_cast<size_t>(b)];
    }
  }
  std::vector<int> pools(blocks_.size(), 0);
  for (BlockId b : free_) {
    ++pools[static_cast<size_t>(b)];
    if (blocks_[static_cast<size_t>(b)].hashed) return absl::InternalError("free block is hashed");
  }
  for (BlockId b : evictable_) {
    ++pools[static_cast<size_t>(b)];
    if (!blocks_[static_cast<size_t>(b)].hashed) return absl::InternalError("evictable block not hashed");
  }
  for (size_t b = 0; b < blocks_.size(); ++b) {
    const Block& blk = blocks_[b];
    if (blk.ref_count != refs[b]) {
      return absl::InternalError(absl::StrCat("block ", b, ": ref_count ", blk.ref_count,
                                              ", referenced by ", refs[b], " tables"));
    }
    if (pools[b] != (blk.ref_count == 0 ? 1 : 0)) {
      return absl::InternalError(absl::StrCat("block ", b, " is in ", pools[b],
                                              " pools with ref_count ", blk.ref_count));
    }
    if (blk.hashed) {
      auto it = cache_.find(blk.hash);
      if (it == cache_.end() || it->second != static_cast<BlockId>(b)) {
        return absl::InternalError(absl::StrCat("hashed block ", b, " not indexed"));
      }
    }
  }
  for (const auto& [h, b] : cache_) {
    if (!blocks_[static_cast<size_t>(b)].hashed || blocks_[static_cast<size_t>(b)].hash != h) {
      return absl::InternalError("cache index points at an unhashed block");
    }
  }
  return absl::OkStatus();
}

}  // namespace expertserve::engine
