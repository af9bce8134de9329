// Runtime-dispatched entry points of kernels.h: validates shapes, then calls
// the best compiled Highway target for this CPU (or oneDNN for GEMM shapes
// where it measured faster; see engine/kernels/README.md).
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "engine/kernels/cpu/kernels.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
// Per-target bodies; foreach_target re-includes this file once per target.
#include "engine/kernels/cpu/ops-inl.h"

#if HWY_ONCE
#include <algorithm>
#include <cstring>
#include <utility>
#include <vector>

#include "common/check.h"
#include "engine/kernels/cpu/backends.h"
#include "engine/kernels/kernels.h"

namespace expertserve::kernels {

HWY_EXPORT(MatMulTaskHwy);
HWY_EXPORT(ConvertToF32Impl);
HWY_EXPORT(SplitToBf16Impl);
HWY_EXPORT(RMSNormImpl);
HWY_EXPORT(AddImpl);
HWY_EXPORT(SiluMulImpl);
HWY_EXPORT(SoftmaxImpl);
HWY_EXPORT(RopeImpl);
HWY_EXPORT(DotImpl);
HWY_EXPORT(AxpyImpl);
HWY_EXPORT(ScaleImpl);
HWY_EXPORT(PagedAttentionImpl);
HWY_EXPORT(TargetNameImpl);

MatMulPlan PlanMatMul(const MatMulArgs& a, MatMulBackend backend,
                      size_t target_tasks) {
  MatMulPlan p;
  target_tasks = std::max<size_t>(1, target_tasks);
  if (backend == MatMulBackend::kAmxSplitBf16) {
    if (a.w.dtype == DType::kBF16 && a.K > 0 && a.K % internal::kAmxK == 0 &&
        AmxBf16Available()) {
      p.backend = backend;
      p.m_tile = a.M;
      // Panels of whole 16-row blocks.
      const size_t per_task = (a.N + target_tasks - 1) / target_tasks;
      p.n_tile = std::max(internal::kAmxRows,
                          (per_task + internal::kAmxRows - 1) / internal::kAmxRows *
                              internal::kAmxRows);
      p.n_tiles = (a.N + p.n_tile - 1) / p.n_tile;
      return p;
    }
    backend = MatMulBackend::kOneDnnSplitBf16;
  }
  if (backend == MatMulBackend::kOneDnnSplitBf16 &&
      (a.w.dtype != DType::kBF16 || a.K == 0 ||
       !internal::SplitBf16Available())) {
    backend = MatMulBackend::kOneDnn;
  }
  p.backend = backend;
  if (backend == MatMulBackend::kOneDnn ||
      backend == MatMulBackend::kOneDnnSplitBf16) {
    p.m_tile = a.M;
    p.n_tile = std::max<size_t>(16, (a.N + target_tasks - 1) / target_tasks);
    p.n_tiles = (a.N + p.n_tile - 1) / p.n_tile;
    return p;
  }
  if (a.K == 0) {  // one task writes the bias (or zeros)
    p.m_tile = a.M;
    p.n_tile = a.N;
    return p;
  }
  // Prefill: 64-row tiles of x, so one tile's K-chunk stays in L2.
  p.m_tile = a.M <= 64 ? a.M : 64;
  p.m_tiles = (a.M + p.m_tile - 1) / p.m_tile;
  // N tiles are whole 4-row strips. Tiny products run as one task.
  const bool tiny = a.M * a.N * a.K < (size_t{1} << 15);
  p.n_tile = a.N;
  if (!tiny && target_tasks > 1) {
    const size_t want_n_tiles =
        std::max<size_t>(1, (target_tasks + p.m_tiles - 1) / p.m_tiles);
    p.n_tile = (a.N + want_n_tiles - 1) / want_n_tiles;
    p.n_tile = std::max<size_t>(4, (p.n_tile + 3) / 4 * 4);
  }
  p.n_tiles = (a.N + p.n_tile - 1) / p.n_tile;
  // K chunk: keep [m_tile, kc] of x within ~192 KiB of L2. Decode (m_tile
  // <= 2) streams each weight row in one pass instead.
  p.kc = a.K;
  if (p.m_tile > 2) {
    p.kc = std::max<size_t>(256, (49152 / p.m_tile) / 64 * 64);
    if (p.kc >= a.K) p.kc = a.K;
  }
  // 16-bit weights shared by more than 4 x rows may be widened into an L1
  // copy of [4, kc] floats (the target's kernel decides, MatMulTaskT): keep
  // that copy within 16 KiB.
  if (a.w.dtype != DType::kF32 && p.m_tile > 4) p.kc = std::min<size_t>(p.kc, 1024);
  return p;
}

namespace internal {
void MatMulHighwaySerial(const MatMulArgs& a) {
  if (a.M == 0 || a.N == 0) return;
  const MatMulPlan p = PlanMatMul(a, MatMulBackend::kHighway, 1);
  for (size_t t = 0; t < p.num_tasks(); ++t) HWY_DYNAMIC_DISPATCH(MatMulTaskHwy)(a, p, t);
}

void SplitToBf16(const float* x, size_t x_stride, size_t rows, size_t K,
                 uint16_t* hi, uint16_t* lo) {
  HWY_DYNAMIC_DISPATCH(SplitToBf16Impl)(x, x_stride, rows, K, hi, lo);
}
}  // namespace internal

namespace {

void CheckMatMulArgs(const MatMulArgs& a) {
  ES_DCHECK(a.M == 0 || a.x != nullptr);
  ES_DCHECK(a.x_stride >= a.K);
  ES_DCHECK(a.y_stride >= a.N);
  ES_DCHECK(a.N * a.K == 0 || a.w.data != nullptr);
  ES_DCHECK(a.M * a.N == 0 || a.y != nullptr);
  static_cast<void>(a);
}

void RunMatMulTask(const MatMulArgs& a, const MatMulPlan& p, size_t task) {
  if (p.backend == MatMulBackend::kAmxSplitBf16) {
    internal::MatMulAmxTask(a, p, task);
  } else if (p.backend == MatMulBackend::kOneDnnSplitBf16) {
    internal::MatMulSplitBf16Task(a, p, task);
  } else if (p.backend == MatMulBackend::kOneDnn) {
    internal::MatMulOneDnnTask(a, p, task);
  } else {
    HWY_DYNAMIC_DISPATCH(MatMulTaskHwy)(a, p, task);
  }
}

bool IsSplit(const MatMulPlan& p) {
  return p.backend == MatMulBackend::kOneDnnSplitBf16 ||
         p.backend == MatMulBackend::kAmxSplitBf16;
}

// u16 elements of a product's split x (hi and lo) in its backend's layout.
size_t SplitElems(const MatMulArgs& a, const MatMulPlan& p) {
  return p.backend == MatMulBackend::kAmxSplitBf16
             ? internal::AmxPackElems(a.M, a.K)
             : 2 * internal::SplitBf16Rows(a.M) * a.K;
}

// Splits the x of every split-BF16 product into its bf16 hi and lo terms,
// in its backend's layout (one parallel pass before the products run, since
// every N panel reads all of x) and points the plans at them; products
// sharing an x and a layout (an MLP's gate and up) share the split. The
// buffer is the calling thread's, grow-only, and lives until its next
// MatMulGroup.
void SplitXForBf16(std::span<const MatMulArgs> products,
                   std::vector<MatMulPlan>& plans, ThreadPool& pool) {
  constexpr size_t kRowsPerTask = 16;  // also the AMX chunk: one per task
  static_assert(kRowsPerTask == internal::kAmxRows);
  thread_local std::vector<uint16_t> buffer;
  if (std::none_of(plans.begin(), plans.end(), IsSplit)) {
    return;  // nothing to split, nothing to allocate
  }
  std::vector<size_t> offset(products.size()), owner(products.size());
  std::vector<std::pair<size_t, size_t>> tasks;  // (product, first row)
  size_t total = 0;
  for (size_t i = 0; i < products.size(); ++i) {
    if (!IsSplit(plans[i])) continue;
    const MatMulArgs& a = products[i];
    owner[i] = i;
    for (size_t j = 0; j < i; ++j) {
      const MatMulArgs& b = products[j];
      if (plans[j].backend == plans[i].backend && b.x == a.x && b.M == a.M &&
          b.K == a.K && b.x_stride == a.x_stride) {
        owner[i] = owner[j];
        break;
      }
    }
    if (owner[i] != i) continue;
    offset[i] = total;
    total += SplitElems(a, plans[i]);
    const size_t rows = plans[i].backend == MatMulBackend::kAmxSplitBf16
                            ? (a.M + kRowsPerTask - 1) / kRowsPerTask * kRowsPerTask
                            : internal::SplitBf16Rows(a.M);
    for (size_t r = 0; r < rows; r += kRowsPerTask) tasks.emplace_back(i, r);
  }
  if (tasks.empty()) return;
  if (buffer.size() < total) buffer.resize(total);
  // Not `buffer` inside the tasks: on a worker, that names its own.
  uint16_t* const base = buffer.data();
  for (size_t i = 0; i < products.size(); ++i) {
    if (IsSplit(plans[i])) plans[i].x_bf16 = base + offset[owner[i]];
  }
  pool.ParallelFor(tasks.size(), [&](size_t t, size_t /*worker*/) {
    const auto [i, r0] = tasks[t];
    const MatMulArgs& a = products[i];
    const size_t real_end = std::min(r0 + kRowsPerTask, a.M);
    const size_t real = real_end > r0 ? real_end - r0 : 0;
    if (plans[i].backend == MatMulBackend::kAmxSplitBf16) {
      internal::PackXForAmx(a.x + r0 * a.x_stride, a.x_stride, real, a.K,
                            base + offset[i] + 2 * r0 * a.K);
      return;
    }
    const size_t mp = internal::SplitBf16Rows(a.M);
    const size_t r1 = std::min(mp, r0 + kRowsPerTask);
    uint16_t* hi = base + offset[i];
    if (real > 0) {
      internal::SplitToBf16(a.x + r0 * a.x_stride, a.x_stride, real, a.K,
                            hi + r0 * a.K, hi + (mp + r0) * a.K);
    }
    // Padding rows (zeros contribute nothing; their outputs are dropped).
    const size_t pad0 = std::max(r0, a.M);
    if (pad0 < r1) {
      std::fill(hi + pad0 * a.K, hi + r1 * a.K, uint16_t{0});
      std::fill(hi + (mp + pad0) * a.K, hi + (mp + r1) * a.K, uint16_t{0});
    }
  });
}

}  // namespace

void MatMul(const MatMulArgs& a, ThreadPool& pool, MatMulBackend backend) {
  MatMulGroup(std::span<const MatMulArgs>(&a, 1), pool, backend);
}

void MatMulGroup(std::span<const MatMulArgs> products, ThreadPool& pool,
                 MatMulBackend backend) {
  size_t live = 0;
  for (const MatMulArgs& a : products) {
    CheckMatMulArgs(a);
    if (a.M != 0 && a.N != 0) ++live;
  }
  if (live == 0) return;
  // About 4 tasks per worker in all, for balance on a shared machine.
  const size_t workers = pool.NumWorkers();
  const size_t target =
      workers == 1 ? 1 : std::max<size_t>(1, (4 * workers + live - 1) / live);
  std::vector<MatMulPlan> plans(products.size());
  std::vector<size_t> first_task(products.size() + 1, 0);
  for (size_t i = 0; i < products.size(); ++i) {
    const MatMulArgs& a = products[i];
    size_t n = 0;
    if (a.M != 0 && a.N != 0) {
      const MatMulBackend b =
          backend == MatMulBackend::kAuto ? ChooseMatMulBackend(a) : backend;
      plans[i] = PlanMatMul(a, b, target);
      n = plans[i].num_tasks();
    }
    first_task[i + 1] = first_task[i] + n;
  }
  SplitXForBf16(products, plans, pool);
  pool.ParallelFor(first_task.back(), [&](size_t task, size_t /*worker*/) {
    // The product owning `task`: the last one starting at or before it.
    const size_t i = static_cast<size_t>(
        std::upper_bound(first_task.begin() + 1, first_task.end(), task) -
        (first_task.begin() + 1));
    RunMatMulTask(products[i], plans[i], task - first_task[i]);
  });
}

void ConvertToF32(WeightRef src, size_t n, float* dst) {
  ES_DCHECK(n == 0 || (src.data != nullptr && dst != nullptr));
  HWY_DYNAMIC_DISPATCH(ConvertToF32Impl)(src, n, dst);
}

void RMSNorm(const float* x, size_t rows, size_t dim, WeightRef weight,
             float eps, float* out) {
  ES_DCHECK(rows * dim == 0 || (x && out && weight.data));
  ES_DCHECK(eps >= 0.0f);
  HWY_DYNAMIC_DISPATCH(RMSNormImpl)(x, rows, dim, weight, eps, out);
}

void AddInPlace(float* y, const float* x, size_t n) {
  ES_DCHECK(n == 0 || (x && y));
  HWY_DYNAMIC_DISPATCH(AddImpl)(y, x, n);
}

void SiluMul(const float* gate, const float* up, size_t n, float* out) {
  ES_DCHECK(n == 0 || (gate && up && out));
  HWY_DYNAMIC_DISPATCH(SiluMulImpl)(gate, up, n, out);
}

void Softmax(float* x, size_t n) {
  ES_DCHECK(n == 0 || x);
  HWY_DYNAMIC_DISPATCH(SoftmaxImpl)(x, n);
}

void TopK(const float* x, size_t n, size_t k, int32_t* indices, float* values) {
  ES_DCHECK(k <= n);
  ES_DCHECK(k == 0 || (x && indices));
  // Insertion into a sorted k-list: n is the expert count (<= a few hundred)
  // and k is small, so this beats a sort and needs no scratch.
  size_t filled = 0;
  for (size_t i = 0; i < n && k > 0; ++i) {
    const float v = x[i];
    if (filled == k && !(v > x[indices[k - 1]])) continue;
    size_t pos = filled < k ? filled++ : k - 1;
    // Strictly greater moves up, so equal values keep index order.
    while (pos > 0 && v > x[indices[pos - 1]]) {
      indices[pos] = indices[pos - 1];
      --pos;
    }
    indices[pos] = static_cast<int32_t>(i);
  }
  if (values) {
    for (size_t i = 0; i < k; ++i) values[i] = x[indices[i]];
  }
}

void ApplyRope(float* x, size_t num_heads, size_t head_stride, size_t rot_dim,
               const float* cos, const float* sin, RopeLayout layout) {
  ES_DCHECK(rot_dim % 2 == 0 && rot_dim <= head_stride);
  ES_DCHECK(num_heads * rot_dim == 0 || (x && cos && sin));
  HWY_DYNAMIC_DISPATCH(RopeImpl)(x, num_heads, head_stride, rot_dim, cos, sin,
                                 layout);
}

float Dot(const float* a, const float* b, size_t n) {
  ES_DCHECK(n == 0 || (a && b));
  return HWY_DYNAMIC_DISPATCH(DotImpl)(a, b, n);
}

void Axpy(float alpha, const float* x, float* y, size_t n) {
  ES_DCHECK(n == 0 || (x && y));
  HWY_DYNAMIC_DISPATCH(AxpyImpl)(alpha, x, y, n);
}

void Scale(float alpha, float* x, size_t n) {
  ES_DCHECK(n == 0 || x);
  HWY_DYNAMIC_DISPATCH(ScaleImpl)(alpha, x, n);
}

void PagedAttention(const PagedAttentionArgs& a, const PagedKvView& kv,
                    ThreadPool& pool) {
  const PagedKvLayout& L = kv.layout;
  ES_DCHECK(L.num_kv_heads > 0 && L.block_tokens > 0);
  ES_DCHECK(a.num_q_heads % L.num_kv_heads == 0);
  ES_DCHECK(a.q_token_stride >= a.num_q_heads * L.k_head_dim);
  ES_DCHECK(a.out_token_stride >= a.num_q_heads * kv.VDim());
  ES_DCHECK(!kv.v_aliases_k || kv.v_read_dim <= L.k_head_dim);
  ES_DCHECK(kv.k != nullptr && (kv.v_aliases_k || kv.v != nullptr));
#ifndef NDEBUG
  for (size_t t = 0; t < a.num_tokens; ++t) {
    ES_DCHECK(a.token_seq[t] >= 0 &&
              static_cast<size_t>(a.token_seq[t]) < a.num_seqs);
    ES_DCHECK(a.token_pos[t] >= 0);
    const SeqBlockTable& table = a.seqs[a.token_seq[t]];
    const size_t blocks_needed =
        static_cast<size_t>(a.token_pos[t]) / L.block_tokens + 1;
    ES_DCHECK(blocks_needed <= table.num_blocks);
    for (size_t b = 0; b < blocks_needed; ++b) {
      ES_DCHECK(table.blocks[b] >= 0 &&
                static_cast<size_t>(table.blocks[b]) < L.num_blocks);
    }
  }
#endif
  if (a.num_tokens == 0 || a.num_q_heads == 0) return;
  // Runs of at least kPrefillMinTokens tokens of one sequence at consecutive
  // positions (prefill chunks) go through the GEMM path; the rest (decodes,
  // short chunks) through the per-token kernel. Which path a token takes
  // depends only on its own sequence's run, never on the rest of the batch.
  constexpr size_t kPrefillMinTokens = 16;
  std::vector<int32_t> singles;
  for (size_t t = 0; t < a.num_tokens;) {
    const size_t e = ConsecutiveRunEnd(a.token_seq, a.token_pos, t, a.num_tokens);
    if (e - t >= kPrefillMinTokens) {
      internal::PrefillAttention(a, kv, t, e - t, pool);
    } else {
      for (size_t i = t; i < e; ++i) singles.push_back(static_cast<int32_t>(i));
    }
    t = e;
  }
  if (singles.empty()) return;
  HWY_DYNAMIC_DISPATCH(PagedAttentionImpl)(a, kv, singles, pool);
}

void WriteKv(const PagedKvStore& store, const SeqBlockTable& table, size_t pos,
             const float* k, const float* v) {
  const PagedKvLayout& L = store.layout;
  ES_DCHECK(pos / L.block_tokens < table.num_blocks);
  const size_t block = static_cast<size_t>(table.blocks[pos / L.block_tokens]);
  ES_DCHECK(block < L.num_blocks);
  const size_t slot = pos % L.block_tokens;
  const auto put = [&](void* base, size_t offset, const float* src, size_t n) {
    if (L.dtype == KvDType::kF32) {
      std::memcpy(static_cast<float*>(base) + offset, src, n * sizeof(float));
    } else {
      uint16_t* dst = static_cast<uint16_t*>(base) + offset;
      for (size_t i = 0; i < n; ++i) dst[i] = F32ToBF16Bits(src[i]);
    }
  };
  put(store.k, L.KOffset(block, slot, 0), k, L.KTokenStride());
  if (L.v_head_dim > 0) put(store.v, L.VOffset(block, slot, 0), v, L.VTokenStride());
}

const char* ActiveTargetName() {
  return HWY_DYNAMIC_DISPATCH(TargetNameImpl)();
}

}  // namespace expertserve::kernels
#endif  // HWY_ONCE
