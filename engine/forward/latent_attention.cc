// MLA in two forms over one latent cache. Per head h, with c_t the cached
// (normalised) latent and W_uk_h / W_uv_h the key / value halves of kv_b_proj:
//
// - absorbed (decode, short chunks): q_nope·k_nope = (W_uk_h^T q_nope)·c_t and
//   v = W_uv_h Σ p_t c_t, so attention runs over [c_t, k_pe_t] directly with
//   one shared "kv head": nothing per context token is recomputed, but every
//   query-key pair costs rank + rope + rank MACs per head (544 for the bench
//   model, 1088 for DeepSeek-V2-Lite), and every query R = rank (nope + v)
//   per head for W_uk and W_uv.
// - expanded (prefill runs): k_nope and v of every context token are
//   recomputed from the latents (one GEMM on kv_b_proj: R per context token
//   and head), then standard attention costs nope + rope + v MACs per pair
//   and head (160 for the bench model: 3.4x fewer; 320 for V2-Lite).
//   Against the absorbed form it pays p0 R more (the context before the run)
//   and saves S per pair, so a run of n tokens from position p0 takes it
//   when (n p0 + n (n + 1) / 2) S >= p0 R: always from the start of a
//   prompt, only long chunks deep into one.
//
// Both are exact rewrites of the same attention; HF computes the expanded one.
#include "engine/forward/latent_attention.h"

#include <algorithm>
#include <vector>

#include "engine/forward/scratch.h"

namespace expertserve::engine {
namespace {

using kernels::MatMulArgs;

// Runs of at least this many tokens of one sequence at consecutive positions
// may take the expanded form (see the cost model above)...
constexpr size_t kExpandMinTokens = 32;
// ... unless its per-context temporaries would exceed this (DeepSeek-V2-Lite
// needs ~60 KB per context token: ~0.5 GB at 8k).
constexpr size_t kExpandMaxBytes = size_t{512} << 20;
// Scratch past this is released after the step.
constexpr size_t kKeepFloats = size_t{16} << 20;

struct MlaDims {
  size_t H, nh, nope, rope, vd, rank, qk;
  explicit MlaDims(const ModelConfig& c)
      : H(static_cast<size_t>(c.hidden_size)),
        nh(static_cast<size_t>(c.num_attention_heads)),
        nope(static_cast<size_t>(c.qk_nope_head_dim)),
        rope(static_cast<size_t>(c.qk_rope_head_dim)),
        vd(static_cast<size_t>(c.v_head_dim)),
        rank(static_cast<size_t>(c.kv_lora_rank)),
        qk(nope + rope) {}
  // Floats of the expanded form's temporaries for `ctx` context tokens: the
  // latents, kv_b's output, K and V, and (bounded by its own budget)
  // PrefillAttention's gathered copies, counted in full.
  size_t ExpandFloats(size_t ctx) const {
    return ctx * (rank + rope + nh * (nope + vd) + 2 * nh * (qk + vd));
  }
  // Whether a run of n tokens from position p0 is cheaper expanded.
  bool ExpandPays(size_t p0, size_t n) const {
    const double saved_per_pair = static_cast<double>(2 * rank + rope) - (qk + vd);
    const double recompute_per_token = static_cast<double>(rank) * (nope + vd);
    const double pairs = static_cast<double>(n) * p0 + n * (n + 1) / 2.0;
    return pairs * saved_per_pair >= static_cast<double>(p0) * recompute_per_token;
  }
};

kernels::RopeLayout DeepseekRopeLayout(const ModelConfig& c) {
  return c.rope_interleave ? kernels::RopeLayout::kInterleaved
                           : kernels::RopeLayout::kNeox;
}

// q[T, nh, qk] (roped) and the latents, written into the cache.
void ProjectAndCache(const LayerContext& ctx, const MlaDims& d,
                     const AttentionWeights& w, const float* x, float* q,
                     kernels::PagedKvStore& store) {
  const ModelConfig& c = ctx.config;
  const size_t T = ctx.batch.num_tokens();
  const size_t half = d.rope / 2;
  const float eps = static_cast<float>(c.rms_norm_eps);
  // latent[t] = [kv_a_layernorm(c_t), rope(k_pe_t)]: exactly what is cached.
  thread_local Scratch latent_buf;
  float* latent = latent_buf.Get(T * (d.rank + d.rope));
  const MatMulArgs kv_a{x, d.H, T, d.H, w.kv_a, d.rank + d.rope, nullptr,
                        latent, d.rank + d.rope};
  if (c.q_lora_rank) {
    const size_t qr = static_cast<size_t>(*c.q_lora_rank);
    thread_local Scratch qa_buf;
    float* qa = qa_buf.Get(T * qr);
    const MatMulArgs first[] = {{x, d.H, T, d.H, w.q_a, qr, nullptr, qa, qr},
                                kv_a};
    kernels::MatMulGroup(first, ctx.pool);
    kernels::RMSNorm(qa, T, qr, w.q_a_norm, eps, qa);
    kernels::MatMul(qa, T, qr, w.q_b, d.nh * d.qk, nullptr, q, ctx.pool);
  } else {
    const MatMulArgs first[] = {
        {x, d.H, T, d.H, w.q, d.nh * d.qk, nullptr, q, d.nh * d.qk}, kv_a};
    kernels::MatMulGroup(first, ctx.pool);
  }
  const kernels::RopeLayout layout = DeepseekRopeLayout(c);
  for (size_t t = 0; t < T; ++t) {
    float* lt = latent + t * (d.rank + d.rope);
    kernels::RMSNorm(lt, 1, d.rank, w.kv_a_norm, eps, lt);
    const float* cos = ctx.rope_cos.data() + t * half;
    const float* sin = ctx.rope_sin.data() + t * half;
    kernels::ApplyRope(lt + d.rank, 1, d.rope, d.rope, cos, sin, layout);
    kernels::ApplyRope(q + t * d.nh * d.qk + d.nope, d.nh, d.qk, d.rope, cos,
                       sin, layout);
    kernels::WriteKv(store, ctx.seq_tables[ctx.batch.token_seq[t]],
                     static_cast<size_t>(ctx.batch.positions[t]), lt, nullptr);
  }
}

// values[n, nh, vd] for n tokens (q rows nh*qk apart) in the absorbed form.
void AbsorbedAttention(const LayerContext& ctx, const MlaDims& d,
                       const AttentionWeights& w, kernels::PagedKvView view,
                       const float* q, const int32_t* token_seq,
                       const int32_t* token_pos, size_t n, float* values) {
  // Absorbed query: [n, nh, rank + rope] = [W_uk_h^T q_nope, q_pe].
  const size_t qa_dim = d.rank + d.rope;
  thread_local Scratch q_abs_buf;
  float* q_abs = q_abs_buf.Get(n * d.nh * qa_dim);
  const size_t uk_elem = kernels::DTypeSize(w.w_uk_t_dtype);
  std::vector<MatMulArgs> per_head(d.nh);
  for (size_t h = 0; h < d.nh; ++h) {
    MatMulArgs& a = per_head[h];
    a.x = q + h * d.qk;
    a.x_stride = d.nh * d.qk;
    a.M = n;
    a.K = d.nope;
    a.w = kernels::WeightRef{w.w_uk_t.data() + h * d.rank * d.nope * uk_elem,
                             w.w_uk_t_dtype};
    a.N = d.rank;
    a.y = q_abs + h * qa_dim;
    a.y_stride = d.nh * qa_dim;
    for (size_t t = 0; t < n; ++t) {
      const float* src = q + t * d.nh * d.qk + h * d.qk + d.nope;
      std::copy_n(src, d.rope, q_abs + t * d.nh * qa_dim + h * qa_dim + d.rank);
    }
  }
  kernels::MatMulGroup(per_head, ctx.pool);
  thread_local Scratch o_latent_buf;
  float* o_latent = o_latent_buf.Get(n * d.nh * d.rank);
  view.v_aliases_k = true;
  view.v_read_dim = d.rank;
  kernels::PagedAttentionArgs args;
  args.q = q_abs;
  args.q_token_stride = d.nh * qa_dim;
  args.num_tokens = n;
  args.num_q_heads = d.nh;
  args.token_seq = token_seq;
  args.token_pos = token_pos;
  args.seqs = ctx.seq_tables.data();
  args.num_seqs = ctx.seq_tables.size();
  args.scale = ctx.softmax_scale;
  args.out = o_latent;
  args.out_token_stride = d.nh * d.rank;
  kernels::PagedAttention(args, view, ctx.pool);
  // v_h = W_uv_h o_h, with W_uv_h = rows [h*(nope+v)+nope, +v) of kv_b_proj.
  const size_t elem = kernels::DTypeSize(w.kv_b.dtype);
  for (size_t h = 0; h < d.nh; ++h) {
    MatMulArgs& a = per_head[h];
    a = MatMulArgs{};
    a.x = o_latent + h * d.rank;
    a.x_stride = d.nh * d.rank;
    a.M = n;
    a.K = d.rank;
    a.w = kernels::WeightRef{static_cast<const char*>(w.kv_b.data) +
                                 (h * (d.nope + d.vd) + d.nope) * d.rank * elem,
                             w.kv_b.dtype};
    a.N = d.vd;
    a.y = values + h * d.vd;
    a.y_stride = d.nh * d.vd;
  }
  kernels::MatMulGroup(per_head, ctx.pool);
}

// values[count, nh, vd] for tokens [first, first + count) of the batch, one
// sequence at consecutive positions, in the expanded form.
void ExpandedAttention(const LayerContext& ctx, const MlaDims& d,
                       const AttentionWeights& w, const kernels::PagedKvView& view,
                       const float* q, size_t first, size_t count,
                       float* values) {
  const kernels::PagedKvLayout& L = view.layout;
  const kernels::SeqBlockTable& table =
      ctx.seq_tables[ctx.batch.token_seq[first]];
  const size_t n_ctx = static_cast<size_t>(ctx.batch.positions[first]) + count;
  const size_t lat_dim = d.rank + d.rope;
  const size_t kv_dim = d.nh * (d.nope + d.vd);
  thread_local Scratch lat_buf, kvb_buf, k_buf, v_buf;
  float* lat = lat_buf.Get(n_ctx * lat_dim);
  float* kvb = kvb_buf.Get(n_ctx * kv_dim);
  float* keys = k_buf.Get(n_ctx * d.nh * d.qk);
  float* vals = v_buf.Get(n_ctx * d.nh * d.vd);
  const kernels::DType kv_dtype = L.dtype == kernels::KvDType::kF32
                                      ? kernels::DType::kF32
                                      : kernels::DType::kBF16;
  const size_t kv_elem = kernels::KvDTypeSize(L.dtype);
  for (size_t j = 0; j < n_ctx; ++j) {
    const size_t block = static_cast<size_t>(table.blocks[j / L.block_tokens]);
    kernels::ConvertToF32(
        {static_cast<const char*>(view.k) +
             L.KOffset(block, j % L.block_tokens, 0) * kv_elem,
         kv_dtype},
        lat_dim, lat + j * lat_dim);
  }
  // [k_nope_h, v_h] of every context token and head.
  kernels::MatMul(MatMulArgs{lat, lat_dim, n_ctx, d.rank, w.kv_b, kv_dim,
                             nullptr, kvb, kv_dim},
                  ctx.pool);
  ctx.pool.ParallelFor(n_ctx, [&](size_t j, size_t) {
    const float* k_pe = lat + j * lat_dim + d.rank;
    for (size_t h = 0; h < d.nh; ++h) {
      const float* src = kvb + j * kv_dim + h * (d.nope + d.vd);
      float* kd = keys + (j * d.nh + h) * d.qk;
      std::copy_n(src, d.nope, kd);
      std::copy_n(k_pe, d.rope, kd + d.nope);
      std::copy_n(src + d.nope, d.vd, vals + (j * d.nh + h) * d.vd);
    }
  });
  // The recomputed context as a one-block paged store of nh kv heads.
  kernels::PagedKvLayout dense;
  dense.num_blocks = 1;
  dense.block_tokens = n_ctx;
  dense.num_kv_heads = d.nh;
  dense.k_head_dim = d.qk;
  dense.v_head_dim = d.vd;
  const int32_t block0 = 0;
  const kernels::SeqBlockTable one{&block0, 1};
  const std::vector<int32_t> seq0(count, 0);
  kernels::PagedAttentionArgs args;
  args.q = q + first * d.nh * d.qk;
  args.q_token_stride = d.nh * d.qk;
  args.num_tokens = count;
  args.num_q_heads = d.nh;
  args.token_seq = seq0.data();
  args.token_pos = ctx.batch.positions.data() + first;
  args.seqs = &one;
  args.num_seqs = 1;
  args.scale = ctx.softmax_scale;
  args.out = values;
  args.out_token_stride = d.nh * d.vd;
  kernels::PagedAttention(args, kernels::PagedKvView{dense, keys, vals, false, 0},
                          ctx.pool);
  for (Scratch* s : {&lat_buf, &kvb_buf, &k_buf, &v_buf}) s->ReleaseIfLarger(kKeepFloats);
}

}  // namespace

void LatentAttention(const LayerContext& ctx, int64_t layer,
                     const AttentionWeights& w, const float* x, float* out) {
  const MlaDims d(ctx.config);
  const StepBatch& b = ctx.batch;
  const size_t T = b.num_tokens();
  thread_local Scratch q_buf, values_buf;
  float* q = q_buf.Get(T * d.nh * d.qk);
  float* values = values_buf.Get(T * d.nh * d.vd);
  kernels::PagedKvStore store = ctx.kv.Layer(static_cast<size_t>(layer));
  ProjectAndCache(ctx, d, w, x, q, store);
  const kernels::PagedKvView view = store.View();

  // Long runs take the expanded form; the other tokens, gathered, the
  // absorbed one. Which form a token takes depends only on its own run.
  std::vector<int32_t> rest;  // token indices
  for (size_t t = 0; t < T;) {
    const size_t e =
        kernels::ConsecutiveRunEnd(b.token_seq.data(), b.positions.data(), t, T);
    const size_t p0 = static_cast<size_t>(b.positions[t]);
    if (e - t >= kExpandMinTokens && d.ExpandPays(p0, e - t) &&
        d.ExpandFloats(p0 + (e - t)) * sizeof(float) <= kExpandMaxBytes) {
      ExpandedAttention(ctx, d, w, view, q, t, e - t,
                        values + t * d.nh * d.vd);
    } else {
      for (size_t i = t; i < e; ++i) rest.push_back(static_cast<int32_t>(i));
    }
    t = e;
  }
  if (rest.size() == T) {
    AbsorbedAttention(ctx, d, w, view, q, b.token_seq.data(),
                      b.positions.data(), T, values);
  } else if (!rest.empty()) {
    const size_t n = rest.size();
    thread_local Scratch q_rest_buf, values_rest_buf;
    float* q_rest = q_rest_buf.Get(n * d.nh * d.qk);
    float* values_rest = values_rest_buf.Get(n * d.nh * d.vd);
    std::vector<int32_t> seq(n), pos(n);
    for (size_t i = 0; i < n; ++i) {
      std::copy_n(q + rest[i] * d.nh * d.qk, d.nh * d.qk, q_rest + i * d.nh * d.qk);
      seq[i] = b.token_seq[rest[i]];
      pos[i] = b.positions[rest[i]];
    }
    AbsorbedAttention(ctx, d, w, view, q_rest, seq.data(), pos.data(), n,
                      values_rest);
    for (size_t i = 0; i < n; ++i) {
      std::copy_n(values_rest + i * d.nh * d.vd, d.nh * d.vd,
                  values + rest[i] * d.nh * d.vd);
    }
  }
  kernels::MatMul(values, T, d.nh * d.vd, w.o, d.H, nullptr, out, ctx.pool);
}

}  // namespace expertserve::engine
