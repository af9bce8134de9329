// CPU kernels of the forward pass: the public entry points. Each validates
// shapes once here (ES_DCHECK: these are preconditions on engine-built
// arguments, never user input) and then runs the best SIMD path for this CPU
// (Highway runtime dispatch: AVX-512, AVX2, SSE4 or portable).
//
// Conventions: activations are f32, row-major, contiguous unless a `*_stride`
// (in elements) says otherwise. Weights are row-major `WeightRef`s in F32, BF16
// or F16, used in place from the checkpoint mapping (unaligned is fine), and
// every kernel accumulates in f32. All functions are thread-safe (shared
// state is only thread-safe one-time initialisation; caches are per thread)
// except that a ThreadPool is thread-compatible: only one thread at a time
// may run a kernel on a given pool.
#ifndef EXPERTSERVE_ENGINE_KERNELS_KERNELS_H_
#define EXPERTSERVE_ENGINE_KERNELS_KERNELS_H_

#include <cstddef>
#include <cstdint>
#include <span>

#include "common/thread_pool.h"
#include "engine/kernels/dtype.h"
#include "engine/kernels/paged_kv_layout.h"

namespace expertserve::kernels {

// ---- GEMM -------------------------------------------------------------------

// Which implementation MatMul uses. kAuto picks per shape regime from
// measurements (engine/kernels/README.md); the others exist for benchmarks
// and tests. kOneDnnSplitBf16 runs BF16 weights on the CPU's bf16 matrix
// units with x split into two bf16 terms (each product within 2^-17 of f32;
// cpu/matmul_split_bf16.cc); for other weight dtypes, or where oneDNN cannot
// build a bf16 matmul, it runs as kOneDnn. kAmxSplitBf16 computes the same
// split with its own AMX kernel that reads W in place (no per-call weight
// repacking; cpu/matmul_amx.cc); without AMX, or for K not a multiple of
// 32, it runs as kOneDnnSplitBf16.
enum class MatMulBackend : uint8_t {
  kAuto,
  kHighway,
  kOneDnn,
  kOneDnnSplitBf16,
  kAmxSplitBf16,
};

// Whether this CPU runs kOneDnnSplitBf16 natively (AMX or AVX512-BF16); kAuto
// only picks it then.
bool SplitBf16Native();
// Whether this CPU has AMX-BF16 and Linux granted this process the tile
// state (asked for on the first call); kAmxSplitBf16 needs it.
bool AmxBf16Available();

struct MatMulArgs {
  const float* x = nullptr;  // [M, K], rows x_stride apart
  size_t x_stride = 0;       // >= K
  size_t M = 0;
  size_t K = 0;
  WeightRef w;               // [N, K] contiguous (HF Linear weight)
  size_t N = 0;
  const float* bias = nullptr;  // [N] or null
  float* y = nullptr;        // [M, N], rows y_stride apart; must not alias x/w
  size_t y_stride = 0;       // >= N
};

// y[M,N] = x[M,K] · W[N,K]^T (+ bias[N]), f32 accumulation. Parallel over N
// (decode) or M×N tiles (prefill) on `pool`.
void MatMul(const MatMulArgs& args, ThreadPool& pool,
            MatMulBackend backend = MatMulBackend::kAuto);

// Several independent products in one parallel region: the pool forks and
// joins once for all of them, about 4 tasks per worker in all. Decode needs
// this: its products are small (one per active MoE expert, q/k/v, per-head
// MLA products), so a fork/join per product would cost as much as the
// product. No product's y may alias another's x or y.
void MatMulGroup(std::span<const MatMulArgs> products, ThreadPool& pool,
                 MatMulBackend backend = MatMulBackend::kAuto);

// Contiguous convenience form.
inline void MatMul(const float* x, size_t M, size_t K, WeightRef w, size_t N,
                   const float* bias, float* y, ThreadPool& pool,
                   MatMulBackend backend = MatMulBackend::kAuto) {
  MatMul(MatMulArgs{x, K, M, K, w, N, bias, y, N}, pool, backend);
}

// dst[n] = src[n] as f32 (weights of any dtype → f32).
void ConvertToF32(WeightRef src, size_t n, float* dst);

// ---- element-wise and row kernels (single-threaded; cheap next to GEMM) -----

// out[r, :] = x[r, :] * rsqrt(mean(x[r, :]^2) + eps) * weight[:].
// x, out: [rows, dim]; weight: [dim]. out may equal x.
void RMSNorm(const float* x, size_t rows, size_t dim, WeightRef weight,
             float eps, float* out);

// y[n] += x[n] (residual add).
void AddInPlace(float* y, const float* x, size_t n);

// out[n] = silu(gate[n]) * up[n] (SwiGLU); out may equal gate or up.
void SiluMul(const float* gate, const float* up, size_t n, float* out);

// x[n] = softmax(x[n]), in place, max-subtracted (stable for large logits).
void Softmax(float* x, size_t n);

// The k largest of x[n], descending, ties broken towards the lower index.
// indices, values: [k]; k <= n. values may be null.
void TopK(const float* x, size_t n, size_t k, int32_t* indices, float* values);

enum class RopeLayout : uint8_t {
  kNeox,         // "rotate half": pairs (i, i + rot_dim/2) (HF Llama/Qwen)
  kInterleaved,  // GPT-J: pairs (2i, 2i + 1) (DeepSeek's q_pe / k_pe)
};

// Rotates the first rot_dim dims of every head of one token in place:
//   (a, b) -> (a cos_i - b sin_i, b cos_i + a sin_i) for pair i.
// x: [num_heads, head_stride]; cos, sin: [rot_dim / 2] for this token's
// position; rot_dim even and <= head_stride.
//
// DeepSeek's HF code de-interleaves q_pe/k_pe before a neox rotation; that
// permutes the rotated dims identically for q and k, so kInterleaved in
// place gives the same q·k (and the cache stays in checkpoint order).
void ApplyRope(float* x, size_t num_heads, size_t head_stride, size_t rot_dim,
               const float* cos, const float* sin, RopeLayout layout);

// Σ a[i] b[i] over n.
float Dot(const float* a, const float* b, size_t n);
// y[n] += alpha * x[n].
void Axpy(float alpha, const float* x, float* y, size_t n);
// x[n] *= alpha.
void Scale(float alpha, float* x, size_t n);

// ---- paged attention --------------------------------------------------------

// One sequence's block table: block ids into the paged store, in position
// order (need not be contiguous or sorted).
struct SeqBlockTable {
  const int32_t* blocks = nullptr;  // [num_blocks]
  size_t num_blocks = 0;
};

struct PagedAttentionArgs {
  const float* q = nullptr;  // [num_tokens, num_q_heads, qk_head_dim]
  size_t q_token_stride = 0;  // elements between tokens (>= heads * qk dim)
  size_t num_tokens = 0;
  size_t num_q_heads = 0;  // a multiple of the store's num_kv_heads (GQA)
  const int32_t* token_seq = nullptr;  // [num_tokens] index into seqs
  const int32_t* token_pos = nullptr;  // [num_tokens] absolute position
  const SeqBlockTable* seqs = nullptr;  // [num_seqs]
  size_t num_seqs = 0;
  float scale = 1.0f;  // softmax scale, usually 1/sqrt(qk_head_dim)
  float* out = nullptr;  // [num_tokens, num_q_heads, v_dim]
  size_t out_token_stride = 0;  // >= num_q_heads * v_dim
};

// End of the run of tokens starting at `t` (of `n`): the following tokens of
// the same sequence at consecutive positions, i.e. one prefill chunk. Long
// runs take GEMM paths (here and in MLA); which path a token takes depends
// only on its own run, never on the rest of the batch.
inline size_t ConsecutiveRunEnd(const int32_t* token_seq, const int32_t* token_pos,
                                size_t t, size_t n) {
  size_t e = t + 1;
  while (e < n && token_seq[e] == token_seq[t] && token_pos[e] == token_pos[e - 1] + 1) ++e;
  return e;
}

// Causal GQA attention: token t (of sequence s = token_seq[t], at position
// p = token_pos[t]) and q head h attend to s's keys at positions 0..p in kv
// head h / (num_q_heads / num_kv_heads). Every such key/value must already be
// in the store (write the batch's own K/V first). qk_head_dim is the store's
// k_head_dim; v_dim is kv.VDim() (MLA: qk != v). Parallel over tokens × kv
// heads on `pool`; tokens of different sequences never interact, so results
// are independent of batch composition.
void PagedAttention(const PagedAttentionArgs& args, const PagedKvView& kv,
                    ThreadPool& pool);

// Writes one token's K and V (f32, converted to the store's dtype) at
// position pos of a sequence with the given block table.
// k: [num_kv_heads, k_head_dim]; v: [num_kv_heads, v_head_dim] (null if the
// layout has v_head_dim 0).
void WriteKv(const PagedKvStore& store, const SeqBlockTable& table, size_t pos,
             const float* k, const float* v);

// Name of the SIMD target the dispatcher picks on this CPU (e.g. "AVX2").
const char* ActiveTargetName();

}  // namespace expertserve::kernels

#endif  // EXPERTSERVE_ENGINE_KERNELS_KERNELS_H_
