#include "engine/forward/attention.h"

#include <vector>

#include "engine/forward/scratch.h"

namespace expertserve::engine {
namespace {

using kernels::MatMul;
using kernels::MatMulArgs;

const float* BiasOrNull(const std::vector<float>& b) {
  return b.empty() ? nullptr : b.data();
}

kernels::RopeLayout DeepseekRopeLayout(const ModelConfig& c) {
  return c.rope_interleave ? kernels::RopeLayout::kInterleaved
                           : kernels::RopeLayout::kNeox;
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

// DeepSeek MLA with the latent cache. Per head h, with c_t the normalised
// latent and W_uk_h / W_uv_h the key / value halves of kv_b_proj:
//   q_nope·k_nope = (W_uk_h^T q_nope)·c_t   and   v = W_uv_h Σ p_t c_t,
// so attention runs over [c_t, k_pe_t] with one shared "kv head".
void LatentAttention(const LayerContext& ctx, int64_t layer,
                     const AttentionWeights& w, const float* x, float* out) {
  const ModelConfig& c = ctx.config;
  const size_t T = ctx.batch.num_tokens();
  const size_t H = static_cast<size_t>(c.hidden_size);
  const size_t nh = static_cast<size_t>(c.num_attention_heads);
  const size_t nope = static_cast<size_t>(c.qk_nope_head_dim);
  const size_t rope = static_cast<size_t>(c.qk_rope_head_dim);
  const size_t vd = static_cast<size_t>(c.v_head_dim);
  const size_t rank = static_cast<size_t>(c.kv_lora_rank);
  const size_t qk = nope + rope;
  const size_t half = rope / 2;
  const float eps = static_cast<float>(c.rms_norm_eps);
  const kernels::RopeLayout layout = DeepseekRopeLayout(c);

  // latent[t] = [kv_a_layernorm(c_t), rope(k_pe_t)]: exactly what is cached.
  thread_local Scratch q_buf, latent_buf;
  float* q = q_buf.Get(T * nh * qk);
  float* latent = latent_buf.Get(T * (rank + rope));
  const MatMulArgs kv_a{x,       H,       T, H, w.kv_a, rank + rope, nullptr,
                        latent, rank + rope};
  if (c.q_lora_rank) {
    const size_t qr = static_cast<size_t>(*c.q_lora_rank);
    thread_local Scratch qa_buf;
    float* qa = qa_buf.Get(T * qr);
    const MatMulArgs first[] = {
        {x, H, T, H, w.q_a, qr, nullptr, qa, qr}, kv_a};
    kernels::MatMulGroup(first, ctx.pool);
    kernels::RMSNorm(qa, T, qr, w.q_a_norm, eps, qa);
    MatMul(qa, T, qr, w.q_b, nh * qk, nullptr, q, ctx.pool);
  } else {
    const MatMulArgs first[] = {
        {x, H, T, H, w.q, nh * qk, nullptr, q, nh * qk}, kv_a};
    kernels::MatMulGroup(first, ctx.pool);
  }
  kernels::PagedKvStore store = ctx.kv.Layer(static_cast<size_t>(layer));
  for (size_t t = 0; t < T; ++t) {
    float* lt = latent + t * (rank + rope);
    kernels::RMSNorm(lt, 1, rank, w.kv_a_norm, eps, lt);
    const float* cos = ctx.rope_cos.data() + t * half;
    const float* sin = ctx.rope_sin.data() + t * half;
    kernels::ApplyRope(lt + rank, 1, rope, rope, cos, sin, layout);
    kernels::ApplyRope(q + t * nh * qk + nope, nh, qk, rope, cos, sin,
                       layout);
    kernels::WriteKv(store, ctx.seq_tables[ctx.batch.token_seq[t]],
                     static_cast<size_t>(ctx.batch.positions[t]), lt, nullptr);
  }
  // Absorbed query: [T, nh, rank + rope] = [W_uk_h^T q_nope, q_pe].
  const size_t qa_dim = rank + rope;
  thread_local Scratch q_abs_buf;
  float* q_abs = q_abs_buf.Get(T * nh * qa_dim);
  std::vector<MatMulArgs> per_head(nh);
  for (size_t h = 0; h < nh; ++h) {
    MatMulArgs& a = per_head[h];
    a.x = q + h * qk;
    a.x_stride = nh * qk;
    a.M = T;
    a.K = nope;
    a.w = kernels::WeightRef{w.w_uk_t.data() + h * rank * nope,
                             kernels::DType::kF32};
    a.N = rank;
    a.y = q_abs + h * qa_dim;
    a.y_stride = nh * qa_dim;
    for (size_t t = 0; t < T; ++t) {
      const float* src = q + t * nh * qk + h * qk + nope;
      float* dst = q_abs + t * nh * qa_dim + h * qa_dim + rank;
      for (size_t i = 0; i < rope; ++i) dst[i] = src[i];
    }
  }
  kernels::MatMulGroup(per_head, ctx.pool);
  thread_local Scratch o_latent_buf;
  float* o_latent = o_latent_buf.Get(T * nh * rank);
  kernels::PagedKvView view = store.View();
  view.v_aliases_k = true;
  view.v_read_dim = rank;
  kernels::PagedAttentionArgs args;
  args.q = q_abs;
  args.q_token_stride = nh * qa_dim;
  args.num_tokens = T;
  args.num_q_heads = nh;
  args.token_seq = ctx.batch.token_seq.data();
  args.token_pos = ctx.batch.positions.data();
  args.seqs = ctx.seq_tables.data();
  args.num_seqs = ctx.seq_tables.size();
  args.scale = ctx.softmax_scale;
  args.out = o_latent;
  args.out_token_stride = nh * rank;
  kernels::PagedAttention(args, view, ctx.pool);
  // v_h = W_uv_h o_h, with W_uv_h = rows [h*(nope+v)+nope, +v) of kv_b_proj.
  thread_local Scratch values_buf;
  float* values = values_buf.Get(T * nh * vd);
  const size_t elem = kernels::DTypeSize(w.kv_b.dtype);
  for (size_t h = 0; h < nh; ++h) {
    MatMulArgs& a = per_head[h];
    a = MatMulArgs{};
    a.x = o_latent + h * rank;
    a.x_stride = nh * rank;
    a.M = T;
    a.K = rank;
    a.w = kernels::WeightRef{static_cast<const char*>(w.kv_b.data) +
                                 (h * (nope + vd) + nope) * rank * elem,
                             w.kv_b.dtype};
    a.N = vd;
    a.y = values + h * vd;
    a.y_stride = nh * vd;
  }
  kernels::MatMulGroup(per_head, ctx.pool);
  MatMul(values, T, nh * vd, w.o, H, nullptr, out, ctx.pool);
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
