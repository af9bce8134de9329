// Fuzzes the KV block manager with random operation sequences: add a
// sequence (prompts from a tiny alphabet, so prefixes repeat and hit the
// cache), grow it (decode or chunked prefill), fork it (n > 1), release it,
// and Prepare-only probes. A shadow "KV store" holds, per block slot, the
// token written there; the engine's write/copy protocol is replayed on it,
// and after every op each sequence must read back exactly its own tokens
// through its block table (this checks prefix hits and copy-on-write), and
// CheckInvariants must hold. At the end, releasing everything must leave the
// manager all-free.
//
// Input: byte 0 -> num_blocks in [1, 32]; byte 1 -> block_tokens in [1, 8];
// then 3-byte ops {opcode, a, b}.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <vector>

#include "common/check.h"
#include "engine/kv_cache/block_manager.h"

namespace {

using expertserve::SeqId;
using expertserve::TokenId;
using namespace expertserve::engine;  // NOLINT: test driver

struct Shadow {
  std::vector<std::vector<TokenId>> slots;  // [num_blocks][block_tokens]
};

void CheckSeq(const BlockManager& m, const Shadow& kv, SeqId id,
              const std::vector<TokenId>& tokens) {
  const auto& table = m.Table(id);
  const size_t bt = static_cast<size_t>(m.block_tokens());
  for (size_t p = 0; p < tokens.size(); ++p) {
    ES_CHECK(p / bt < table.size());
    ES_CHECK(kv.slots[static_cast<size_t>(table[p / bt])][p % bt] == tokens[p]);
  }
}

// Runs one step for `reqs`; writes the new tokens into the shadow store.
bool Step(BlockManager& m, Shadow& kv, std::map<SeqId, std::vector<TokenId>>& seqs,
          const std::vector<KvRequest>& reqs,
          const std::vector<std::vector<TokenId>>& new_tokens) {
  auto plan = m.Prepare(reqs);
  if (!plan.ok()) {
    ES_CHECK(plan.status().code() == absl::StatusCode::kResourceExhausted);
    return false;
  }
  std::vector<BlockCopy> copies;
  m.Apply(*plan, copies);
  for (const BlockCopy& c : copies) {
    kv.slots[static_cast<size_t>(c.dst)] = kv.slots[static_cast<size_t>(c.src)];
  }
  const size_t bt = static_cast<size_t>(m.block_tokens());
  for (size_t i = 0; i < reqs.size(); ++i) {
    const SeqId id = reqs[i].seq;
    std::vector<TokenId>& toks = seqs[id];
    size_t start = toks.size();
    if (reqs[i].is_new) {
      start = static_cast<size_t>(plan->seqs[i].cached_tokens);
      toks.assign(new_tokens[i].begin(), new_tokens[i].begin() + static_cast<long>(start));
    }
    const auto& table = m.Table(id);
    for (size_t k = 0; k < static_cast<size_t>(reqs[i].num_new_tokens); ++k) {
      const size_t p = start + k;
      const TokenId t = new_tokens[i][reqs[i].is_new ? p : k];
      kv.slots[static_cast<size_t>(table[p / bt])][p % bt] = t;
      toks.push_back(t);
    }
    m.MarkComputed(id, toks);
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const int32_t num_blocks = 1 + data[0] % 32;
  const int32_t block_tokens = 1 + data[1] % 8;
  BlockManager m(num_blocks, block_tokens, true);
  Shadow kv;
  kv.slots.assign(static_cast<size_t>(num_blocks),
                  std::vector<TokenId>(static_cast<size_t>(block_tokens), -1));
  std::map<SeqId, std::vector<TokenId>> seqs;
  SeqId next_id = 1;
  auto pick = [&](uint8_t a) -> SeqId {
    if (seqs.empty()) return -1;
    auto it = seqs.begin();
    std::advance(it, a % seqs.size());
    return it->first;
  };
  for (size_t i = 2; i + 3 <= size; i += 3) {
    const uint8_t op = data[i] % 5, a = data[i + 1], b = data[i + 2];
    switch (op) {
      case 0: {  // new sequence, prompt from a 2-letter alphabet
        const int len = 1 + b % 24;
        std::vector<TokenId> prompt;
        for (int k = 0; k < len; ++k) prompt.push_back((a >> (k % 8)) & 1);
        KvRequest r;
        r.seq = next_id;
        r.is_new = true;
        r.salt = 3;
        int32_t cached = 0;
        if (b & 0x80) {  // the engine's form: all eligible, the last token computed
          r.prefix_tokens = prompt;
          r.max_cached_tokens = len - 1;
          cached = std::min(m.MatchPrefix(r.prefix_tokens, r.salt).num_blocks * block_tokens,
                            len - 1);
        } else {
          r.prefix_tokens = std::span<const TokenId>(prompt).first(prompt.size() - 1);
          cached = m.MatchPrefix(r.prefix_tokens, r.salt).num_blocks * block_tokens;
        }
        r.num_new_tokens = len - cached;
        if (Step(m, kv, seqs, {r}, {prompt})) {
          ES_CHECK(static_cast<int32_t>(seqs[next_id].size()) == len);
          ++next_id;
        } else {
          seqs.erase(next_id);
        }
        break;
      }
      case 1: {  // grow by 1..4 tokens
        const SeqId id = pick(a);
        if (id < 0) break;
        const int n = 1 + b % 4;
        std::vector<TokenId> more;
        for (int k = 0; k < n; ++k) more.push_back((b >> k) & 1);
        KvRequest r{id, false, {}, 0, n};
        const int32_t need = m.BlocksNeeded(id, n);
        const bool fits = need <= m.NumFreeBlocks();
        ES_CHECK(Step(m, kv, seqs, {r}, {more}) == fits);
        break;
      }
      case 2: {  // fork
        const SeqId id = pick(a);
        if (id < 0) break;
        m.Fork(id, next_id);
        seqs[next_id] = seqs[id];
        ++next_id;
        break;
      }
      case 3: {  // release
        const SeqId id = pick(a);
        if (id < 0) break;
        m.Release(id);
        seqs.erase(id);
        break;
      }
      case 4: {  // Prepare only: must not change anything
        const int32_t free_before = m.NumFreeBlocks();
        KvRequest r{next_id, true, {}, 0, 1 + b % 40};
        (void)m.Prepare(std::span<const KvRequest>(&r, 1));
        ES_CHECK(m.NumFreeBlocks() == free_before);
        ES_CHECK(!m.HasSeq(next_id));
        break;
      }
    }
    ES_CHECK(m.CheckInvariants().ok());
    for (const auto& [id, toks] : seqs) CheckSeq(m, kv, id, toks);
  }
  for (const auto& [id, toks] : seqs) m.Release(id);
  ES_CHECK(m.AllFree());
  ES_CHECK(m.CheckInvariants().ok());
  return 0;
}
