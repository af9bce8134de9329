// Paged attention on every SIMD target against a dense attention written
// here (materialised per-sequence K/V, two-pass softmax in double), over
// shuffled non-contiguous block tables, GQA ratios, qk_dim != v_dim, MLA's
// V-aliases-K layout, mixed prefill/decode batches and both KV dtypes.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "common/thread_pool.h"
#include "engine/kernels/cpu/backends.h"
#include "engine/kernels/kernels.h"
#include "engine/kernels/reference.h"
#include "gtest/gtest.h"
#include "hwy/targets.h"
#include "hwy/tests/hwy_gtest.h"
#include "tests/kernels/test_util.h"

namespace expertserve::kernels {
namespace {

struct Config {
  size_t block_tokens, kv_heads, group, qk_dim, v_dim;
  bool mla;  // V is the first v_dim elements of K (one latent "head")
  KvDType dtype;
};

std::string Describe(const Config& c) {
  return "bt=" + std::to_string(c.block_tokens) + " kvh=" + std::to_string(c.kv_heads) +
         " group=" + std::to_string(c.group) + " qk=" + std::to_string(c.qk_dim) +
         " v=" + std::to_string(c.v_dim) + (c.mla ? " mla" : "") +
         (c.dtype == KvDType::kBF16 ? " bf16" : " f32");
}

// Rounds through the store's dtype so the dense reference sees the same
// values the kernel reads.
float Quantize(float f, KvDType t) {
  return t == KvDType::kF32 ? f : BF16BitsToF32(F32ToBF16Bits(f));
}

class PagedAttentionTest : public hwy::TestWithParamTarget {
 protected:
  void SetUp() override {
    hwy::TestWithParamTarget::SetUp();
    ASSERT_EQ(std::string(ActiveTargetName()), hwy::TargetName(GetParam()));
  }

  void RunCase(const Config& c) {
    const std::vector<size_t> seq_lens = {1, 2 * c.block_tokens + 1, 90, 37};
    const size_t num_seqs = seq_lens.size();
    const size_t k_dim = c.qk_dim, v_dim = c.v_dim;
    PagedKvLayout layout;
    layout.block_tokens = c.block_tokens;
    layout.num_kv_heads = c.kv_heads;
    layout.k_head_dim = k_dim;
    layout.v_head_dim = c.mla ? 0 : v_dim;
    layout.dtype = c.dtype;
    // Blocks for all sequences plus spares, handed out in shuffled order.
    size_t blocks_needed = 0;
    for (size_t len : seq_lens) blocks_needed += (len + c.block_tokens - 1) / c.block_tokens;
    layout.num_blocks = blocks_needed + 5;
    std::vector<int32_t> ids(layout.num_blocks);
    std::iota(ids.begin(), ids.end(), 0);
    std::shuffle(ids.begin(), ids.end(), rng_);

    std::vector<char> k_store(layout.LayerKElems() * KvDTypeSize(c.dtype) + 8);
    std::vector<char> v_store(layout.LayerVElems() * KvDTypeSize(c.dtype) + 8);
    PagedKvStore store{layout, k_store.data(), v_store.data()};

    std::vector<std::vector<int32_t>> tables(num_seqs);
    std::vector<SeqBlockTable> seq_tables(num_seqs);
    // Dense per-sequence K [len, kv_heads, k_dim] and V [len, kv_heads, v_dim].
    std::vector<std::vector<float>> dense_k(num_seqs), dense_v(num_seqs);
    size_t next_id = 0;
    for (size_t s = 0; s < num_seqs; ++s) {
      const size_t len = seq_lens[s];
      for (size_t b = 0; b < (len + c.block_tokens - 1) / c.block_tokens; ++b) {
        tables[s].push_back(ids[next_id++]);
      }
      seq_tables[s] = SeqBlockTable{tables[s].data(), tables[s].size()};
      dense_k[s] = test_util::RandomF32(rng_, len * c.kv_heads * k_dim, -2.0f, 2.0f);
      for (float& f : dense_k[s]) f = Quantize(f, c.dtype);
      if (c.mla) {
        for (size_t p = 0; p < len; ++p) {
          for (size_t i = 0; i < v_dim; ++i) dense_v[s].push_back(dense_k[s][p * k_dim + i]);
        }
      } else {
        dense_v[s] = test_util::RandomF32(rng_, len * c.kv_heads * v_dim);
        for (float& f : dense_v[s]) f = Quantize(f, c.dtype);
      }
      for (size_t p = 0; p < len; ++p) {
        WriteKv(store, seq_tables[s], p, dense_k[s].data() + p * c.kv_heads * k_dim,
                c.mla ? nullptr : dense_v[s].data() + p * c.kv_heads * v_dim);
      }
    }
    PagedKvView view = store.View();
    if (c.mla) {
      view.v_aliases_k = true;
      view.v_read_dim = v_dim;
    }

    // A mixed batch: seq 1 prefills its whole context (a chunk), seq 0 and
    // seq 3 decode their last position (seq 3 over several full blocks, so
    // the per-token kernel's register tiles of 4 keys run); tokens
    // interleaved across sequences.
    // Seq 2 continues a chunked prefill: its last kRun positions as one run
    // that starts mid-context (longer than one 64-row query tile).
    std::vector<int32_t> token_seq, token_pos;
    for (size_t p = seq_lens[2] - kRun; p < seq_lens[2]; ++p) {
      token_seq.push_back(2);
      token_pos.push_back(static_cast<int32_t>(p));
    }
    for (size_t p = 0; p < seq_lens[1]; ++p) {
      token_seq.push_back(1);
      token_pos.push_back(static_cast<int32_t>(p));
    }
    token_seq.push_back(0);
    token_pos.push_back(0);
    token_seq.push_back(3);
    token_pos.push_back(static_cast<int32_t>(seq_lens[3] - 1));
    const size_t T = token_seq.size();
    const size_t q_heads = c.kv_heads * c.group;
    const size_t q_stride = q_heads * k_dim + 1;  // padded rows
    const size_t out_stride = q_heads * v_dim + 2;
    const std::vector<float> q = test_util::RandomF32(rng_, T * q_stride);
    std::vector<float> out(T * out_stride, -9.0f);

    PagedAttentionArgs args;
    args.q = q.data();
    args.q_token_stride = q_stride;
    args.num_tokens = T;
    args.num_q_heads = q_heads;
    args.token_seq = token_seq.data();
    args.token_pos = token_pos.data();
    args.seqs = seq_tables.data();
    args.num_seqs = num_seqs;
    args.scale = 1.0f / std::sqrt(static_cast<float>(k_dim));
    args.out = out.data();
    args.out_token_stride = out_stride;
    PagedAttention(args, view, pool_);
    if (score_budget_ != 0) {
      // The GEMM path directly, with passes small enough to tile queries
      // and split heads: seq 2's run, then seq 1's.
      internal::PrefillAttention(args, view, 0, kRun, pool_, score_budget_);
      internal::PrefillAttention(args, view, kRun, seq_lens[1], pool_, score_budget_);
    }

    std::vector<float> ref_out(T * out_stride, -9.0f);
    PagedAttentionArgs ref_args = args;
    ref_args.out = ref_out.data();
    reference::PagedAttention(ref_args, view);

    for (size_t t = 0; t < T; ++t) {
      const size_t s = static_cast<size_t>(token_seq[t]);
      const size_t ctx = static_cast<size_t>(token_pos[t]) + 1;
      for (size_t h = 0; h < q_heads; ++h) {
        const size_t kvh = c.mla ? 0 : h / c.group;
        const float* qh = q.data() + t * q_stride + h * k_dim;
        std::vector<double> w(ctx);
        double mx = -INFINITY, sum = 0;
        for (size_t p = 0; p < ctx; ++p) {
          double d = 0;
          const float* kp = dense_k[s].data() + (p * c.kv_heads + kvh) * k_dim;
          for (size_t i = 0; i < k_dim; ++i) d += double{qh[i]} * kp[i];
          w[p] = d * args.scale;
          mx = std::max(mx, w[p]);
        }
        for (double& x : w) sum += (x = std::exp(x - mx));
        for (size_t i = 0; i < v_dim; ++i) {
          double acc = 0;
          for (size_t p = 0; p < ctx; ++p) {
            const size_t v_index = c.mla ? p * v_dim + i : (p * c.kv_heads + kvh) * v_dim + i;
            acc += w[p] * dense_v[s][v_index];
          }
          const double want = acc / sum;
          const size_t o = t * out_stride + h * v_dim + i;
          ASSERT_NEAR(out[o], want, 2e-5) << Describe(c) << " t=" << t << " h=" << h;
          ASSERT_NEAR(ref_out[o], want, 1e-5) << "reference: " << Describe(c);
        }
      }
      for (size_t o = q_heads * v_dim; o < out_stride; ++o) {
        ASSERT_EQ(out[t * out_stride + o], -9.0f) << "padding written";
      }
    }
  }

  static constexpr size_t kRun = 70;
  std::mt19937 rng_{99};
  ThreadPool pool_{3};
  size_t score_budget_ = 0;  // nonzero: also run PrefillAttention with it
};
HWY_TARGET_INSTANTIATE_TEST_SUITE_P(PagedAttentionTest);

TEST_P(PagedAttentionTest, MatchesDenseAttention) {
  for (KvDType dtype : {KvDType::kF32, KvDType::kBF16}) {
    for (size_t bt : {1, 3, 16}) {
      for (size_t kv_heads : {1, 2}) {
        for (size_t group : {1, 4}) {
          for (size_t qk_dim : {5, 16, 40}) {
            RunCase(Config{bt, kv_heads, group, qk_dim, qk_dim, false, dtype});
            RunCase(Config{bt, kv_heads, group, qk_dim, 3 + qk_dim / 2, false, dtype});
          }
        }
      }
    }
  }
}

// Prefill runs in passes of a few query rows and heads (the default budget
// only tiles at very long contexts).
TEST_P(PagedAttentionTest, PrefillPathTilesQueriesAndHeads) {
  for (size_t budget : {1, 40, 37 * 9, 1000}) {
    score_budget_ = budget;
    for (KvDType dtype : {KvDType::kF32, KvDType::kBF16}) {
      RunCase(Config{16, 2, 4, 16, 11, false, dtype});
      RunCase(Config{4, 1, 3, 17, 13, true, dtype});
    }
  }
}

TEST_P(PagedAttentionTest, MlaLatentCacheVAliasesK) {
  // DeepSeek-style: one latent head [kv_lora_rank + rope_dim], 4 q heads.
  for (KvDType dtype : {KvDType::kF32, KvDType::kBF16}) {
    for (size_t bt : {2, 16}) {
      RunCase(Config{bt, 1, 4, 24 + 8, 24, true, dtype});
      RunCase(Config{bt, 1, 3, 17, 13, true, dtype});
      // Register tiles of 4 heads x 4 keys and 4 heads x 2 vectors of V with
      // heads, keys and dims left over; 16 heads like DeepSeek's.
      RunCase(Config{bt, 1, 6, 48, 40, true, dtype});
      RunCase(Config{bt, 1, 16, 72, 64, true, dtype});
    }
  }
}

}  // namespace
}  // namespace expertserve::kernels
