// Internal: the GEMM backends behind MatMul and the rule choosing between
// them. Not part of the public API (kernels.h).
#ifndef EXPERTSERVE_ENGINE_KERNELS_CPU_BACKENDS_H_
#define EXPERTSERVE_ENGINE_KERNELS_CPU_BACKENDS_H_

#include "common/thread_pool.h"
#include "engine/kernels/kernels.h"

namespace expertserve::kernels {

// The backend kAuto resolves to for this shape (see README.md for the
// measurements behind it).
MatMulBackend ChooseMatMulBackend(const MatMulArgs& args);

// How one product is cut into tasks for the pool: m_tiles × n_tiles tiles of
// [m_tile, n_tile], K in chunks of kc (Highway); oneDNN uses N panels only
// (m_tiles == 1). A value type; building it has no side effects (the first
// kAmxSplitBf16 plan asks Linux for the tile state, once per process).
struct MatMulPlan {
  MatMulBackend backend = MatMulBackend::kHighway;
  size_t m_tile = 0;
  size_t n_tile = 0;
  size_t m_tiles = 1;
  size_t n_tiles = 1;
  size_t kc = 0;  // Highway: K chunk
  // kOneDnnSplitBf16: x split by MatMulGroup before the tasks run, hi
  // [SplitBf16Rows(M), K] then lo likewise; rows past M are zero.
  // kAmxSplitBf16: the same split in the AMX packing (AmxPackElems).
  const uint16_t* x_bf16 = nullptr;
  size_t num_tasks() const { return m_tiles * n_tiles; }
};

// Plans `args` (M, N > 0) on `backend` (not kAuto) as about `target_tasks`
// tasks (1: a single task, run inline). Deterministic; the first
// kOneDnnSplitBf16 plan also runs the one-time oneDNN probe.
MatMulPlan PlanMatMul(const MatMulArgs& args, MatMulBackend backend,
                      size_t target_tasks);

namespace internal {
// Limits oneDNN's OpenMP team to the calling (pool) thread, once per thread.
void SingleThreadedOnThisThread();
// Whether oneDNN can build a bf16 matmul here at all (natively or emulated).
bool SplitBf16Available();
// Rows the split of an M-row x takes (>= M; see cpu/matmul_split_bf16.cc).
size_t SplitBf16Rows(size_t M);
// hi[r, :] = bf16(x[r, :]), lo[r, :] = bf16(x[r, :] - hi[r, :]); hi and lo
// rows are K apart.
void SplitToBf16(const float* x, size_t x_stride, size_t rows, size_t K,
                 uint16_t* hi, uint16_t* lo);
// One N panel of kOneDnnSplitBf16 (BF16 weights, K > 0, plan.x_bf16 set).
void MatMulSplitBf16Task(const MatMulArgs& args, const MatMulPlan& plan,
                         size_t task);
// The AMX backend (cpu/matmul_amx.cc): W in 16-row blocks, K in steps of 32.
inline constexpr size_t kAmxRows = 16;
inline constexpr size_t kAmxK = 32;
// The AMX packing of an M x K x: per 16-row chunk of mc rows (the last may
// be shorter), hi then lo, each [K / 2][mc][2] bf16 (pairs of k per x row,
// the tiles' layout); chunk c starts 2 * 16 * c * K u16 in.
inline size_t AmxPackElems(size_t M, size_t K) { return 2 * M * K; }
// Packs one chunk: x rows [0, rows), 1 <= rows <= 16, K % 32 == 0.
void PackXForAmx(const float* x, size_t x_stride, size_t rows, size_t K,
                 uint16_t* dst);
// All of `args` on the Highway kernel, serially on the calling thread (the
// AMX backend's last N % 16 rows).
void MatMulHighwaySerial(const MatMulArgs& args);
// One N panel (plan.n_tile a multiple of 16) of kAmxSplitBf16.
void MatMulAmxTask(const MatMulArgs& args, const MatMulPlan& plan, size_t task);
// One N panel of oneDNN sgemm, single-threaded; 16-bit weights are widened
// into per-thread scratch first.
void MatMulOneDnnTask(const MatMulArgs& args, const MatMulPlan& plan,
                        size_t task);
// Causal attention for tokens [first, first + count) of `args`, which belong
// to one sequence at consecutive positions, as GEMMs over the gathered
// context (cpu/attention_prefill.cc). Scores are computed in passes of at
// most `score_budget` floats (query tiles × q heads; tests make it small),
// and kv heads are gathered in chunks of at most 2 × `score_budget` floats.
// Not for use inside a pool task.
inline constexpr size_t kPrefillScoreBudget = size_t{8} << 20;  // 32 MiB
void PrefillAttention(const PagedAttentionArgs& args, const PagedKvView& kv,
                      size_t first, size_t count, ThreadPool& pool,
                      size_t score_budget = kPrefillScoreBudget);
}  // namespace internal

}  // namespace expertserve::kernels

#endif  // EXPERTSERVE_ENGINE_KERNELS_CPU_BACKENDS_H_
