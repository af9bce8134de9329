#include "engine/forward/attention.h"

#include <vector>

#include "engine/forward/latent_attention.h"
#include "engine/forward/scratch.h"

namespace expertserve::engine {
namespace {

using kernels::MatMul;
using kernels::MatMulArgs;

const float* BiasOrNull(const std::vector<float>& b) {
  return b.empty() ? nullptr : b.data();
}

void StandardAttention(const LayerContext& ctx, int64_t layer,
                       const AttentionWeights& w, const float* x, float* out) {
  const ModelConfig& c = ctx.config;
  const size_t T = ctx.batch.num_tokens();
  const size_t H = static_cast<size_t>(c.hidden_size);
  const size_t nh = static_cast<size_t>(c.num_attention_heads);
  const size_t nkv = static_cast<size_t>(c.num_key_value_heads);
  const size_t hd = static_cast<size_t>(c.head_dim);
  const size_t half = static_cast<size_t>(c.RotaryDim() / 2);

  thread_local Scratch q_buf, k_buf, v_buf;
  float* q = q_buf.Get(T * nh * hd);
  float* k = k_buf.Get(T * nkv * hd);
  float* v = v_buf.Get(T * nkv * hd);
  const MatMulArgs qkv[] = {
      {x, H, T, H, w.q, nh * hd, BiasOrNull(w.q_bias), q, nh * hd},
      {x, H, T, H, w.k, nkv * hd, BiasOrNull(w.k_bias), k, nkv * hd},
      {x, H, T, H, w.v, nkv * hd, BiasOrNull(w.v_bias), v, nkv * hd}};
  kernels::MatMulGroup(qkv, ctx.pool);
  if (w.q_norm.data != nullptr) {  // Qwen3: per-head RMSNorm before RoPE
    const float eps = static_cast<float>(c.rms_norm_eps);
    kernels::RMSNorm(q, T * nh, hd, w.q_norm, eps, q);
    kernels::RMSNorm(k, T * nkv, hd, w.k_norm, eps, k);
  }
  kernels::PagedKvStore store = ctx.kv.Layer(static_cast<size_t>(layer));
  for (size_t t = 0; t < T; ++t) {
    const float* cos = ctx.rope_cos.data() + t * half;
    const float* sin = ctx.rope_sin.data() + t * half;
    kernels::ApplyRope(q + t * nh * hd, nh, hd, 2 * half, cos, sin,
                       kernels::RopeLayout::kNeox);
    kernels::ApplyRope(k + t * nkv * hd, nkv, hd, 2 * half, cos, sin,
                       kernels::RopeLayout::kNeox);
    kernels::WriteKv(store, ctx.seq_tables[ctx.batch.token_seq[t]],
                     static_cast<size_t>(ctx.batch.positions[t]),
                     k + t * nkv * hd, v + t * nkv * hd);
  }
  thread_local Scratch attn_buf;
  float* attn = attn_buf.Get(T * nh * hd);
  kernels::PagedAttentionArgs args;
  args.q = q;
  args.q_token_stride = nh * hd;
  args.num_tokens = T;
  args.num_q_heads = nh;
  args.token_seq = ctx.batch.token_seq.data();
  args.token_pos = ctx.batch.positions.data();
  args.seqs = ctx.seq_tables.data();
  args.num_seqs = ctx.seq_tables.size();
  args.scale = ctx.softmax_scale;
  args.out = attn;
  args.out_token_stride = nh * hd;
  kernels::PagedAttention(args, store.View(), ctx.pool);
  MatMul(attn, T, nh * hd, w.o, H, BiasOrNull(w.o_bias), out, ctx.pool);
}

}  // namespace

void AttentionForward(const LayerContext& ctx, int64_t layer,
                      const AttentionWeights& w, const float* x, float* out) {
  if (ctx.config.mla) {
    LatentAttention(ctx, layer, w, x, out);
  } else {
    StandardAttention(ctx, layer, w, x, out);
  }
}

}  // namespace expertserve::engine
