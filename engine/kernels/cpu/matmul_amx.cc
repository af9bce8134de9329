// The AMX backend of MatMul: BF16 weights read straight into AMX tiles,
// times f32 x split into bf16 hi + lo terms (the precision argument of
// matmul_split_bf16.cc holds unchanged: every product is exact in the f32
// accumulators, so y stays within 2^-17 of the f32 product).
//
// Why not oneDNN for these shapes: its bf16 matmul repacks the weight panel
// into its blocked layout on every call, so a weight used once per step
// (decode; experts with a few rows) crosses the memory bus twice. Here the
// product runs transposed, y^T = W x^T: W is the tile instruction's A
// operand, loaded in place (16 rows x 32 k per tile, any address, row
// stride K), and x^T is the small B operand, packed once per product into
// the pair-interleaved (VNNI) layout tiles want. Two 16-row blocks of W are
// streamed together against 16 rows of x at a time; further 16-row chunks
// of x re-read the blocks from cache.
//
// Used by kAuto for M in [4, 64) and N >= 128 (cpu/matmul_onednn.cc has the
// numbers).
// Tiles are per thread: every task loads its config and releases the tiles.
#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

#include "common/check.h"
#include "engine/kernels/cpu/backends.h"

#if defined(__x86_64__) && defined(__linux__)
#define ES_HAVE_AMX 1
#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace expertserve::kernels::internal {

void PackXForAmx(const float* x, size_t x_stride, size_t rows, size_t K,
                 uint16_t* dst) {
  ES_DCHECK(rows >= 1 && rows <= kAmxRows && K % kAmxK == 0);
  // Split into [rows, K] hi and lo, then interleave: row r of a B tile holds,
  // for each x row m, the pair (k = 2r, 2r + 1).
  thread_local std::vector<uint16_t> rowwise;
  if (rowwise.size() < 2 * rows * K) rowwise.resize(2 * rows * K);
  uint16_t* hi = rowwise.data();
  uint16_t* lo = hi + rows * K;
  SplitToBf16(x, x_stride, rows, K, hi, lo);
  for (size_t term = 0; term < 2; ++term) {
    const uint16_t* src = term == 0 ? hi : lo;
    uint16_t* out = dst + term * rows * K;
    // Output-order loop: writes stream, the few source rows stay in L1
    // (row-order wrote 4 bytes per 4 * rows: 2.5x slower at 16 x 4096).
    for (size_t r = 0; r < K / 2; ++r) {
      for (size_t m = 0; m < rows; ++m) {
        std::memcpy(out + 2 * (r * rows + m), src + m * K + 2 * r, 2 * sizeof(uint16_t));
      }
    }
  }
}

#if defined(ES_HAVE_AMX)

namespace {

// How far ahead each of a pair's 32 weight rows is prefetched (bytes): cold
// weights, one thread, M = 1-32: 10-20 % faster than without.
constexpr size_t kPrefetchBytes = 512;

struct alignas(64) TileConfig {
  uint8_t palette_id;
  uint8_t start_row;
  uint8_t reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
};

// Per chunk width mc (1-16 x rows): tiles 0-3 accumulate [16 W rows, mc]
// f32, tiles 4, 5 hold W (16 rows x 32 k, bf16), tiles 6, 7 x^T (16 k pairs
// x mc). Static objects, not locals: GCC 12 drops the stores to a local
// config before ldtilecfg (the builtin does not tell it the memory is read).
constexpr TileConfig MakeTileConfig(size_t mc) {
  TileConfig c{};
  c.palette_id = 1;
  for (int t = 0; t < 8; ++t) {
    c.rows[t] = 16;
    c.colsb[t] = static_cast<uint16_t>(t == 4 || t == 5 ? 64 : 4 * mc);
  }
  return c;
}

template <size_t... I>
constexpr std::array<TileConfig, sizeof...(I)> MakeTileConfigs(std::index_sequence<I...>) {
  return {MakeTileConfig(I + 1)...};
}

constexpr std::array<TileConfig, kAmxRows> kTileConfigs =
    MakeTileConfigs(std::make_index_sequence<kAmxRows>());

__attribute__((target("amx-tile"))) void LoadTileConfig(size_t mc) {
  _tile_loadconfig(&kTileConfigs[mc - 1]);
}

bool DetectAmx() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (__get_cpuid_count(7, 0, &a, &b, &c, &d) == 0) return false;
  constexpr unsigned kAmxBf16 = 1u << 22, kAmxTile = 1u << 24;
  if ((d & kAmxBf16) == 0 || (d & kAmxTile) == 0) return false;
  // Linux hands out the tile state only on request (since 5.16).
  constexpr long kArchReqXcompPerm = 0x1023;
  constexpr long kXfeatureXtiledata = 18;
  return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
}

// The inner kernel: W blocks b0, b1 (16 rows each, the A operand; `w` is
// b0's first row, rows `stride` bytes apart, b1 follows) times one 16-row
// chunk of x of mc rows (the B operands: `pack` hi, then lo mc * K further
// on).
// Four accumulators, hi and lo terms apart, so no tile product waits for
// the previous one's result: tiles 0, 1 = b0 hi, lo; 2, 3 = b1 hi, lo;
// 4, 5 = W b0, b1; 6, 7 = x hi, lo. `out` receives the four tiles, each
// [W row][x row].
template <int kBlocks>
__attribute__((target("amx-tile,amx-bf16"))) void RunBlocks(
    const char* w, size_t stride, size_t K, const uint16_t* pack, size_t mc,
    bool prefetch, float* out) {
  static_assert(kBlocks == 1 || kBlocks == 2);
  _tile_zero(0);
  _tile_zero(1);
  if constexpr (kBlocks > 1) _tile_zero(2);
  if constexpr (kBlocks > 1) _tile_zero(3);
  const long st = static_cast<long>(stride);
  const size_t lo = mc * K;                  // the lo term's packing
  const long b_stride = static_cast<long>(4 * mc);  // one k pair per x row
  const char* w1 = w + kAmxRows * stride;
  const size_t rows = kBlocks * kAmxRows, row_bytes = 2 * K;
  for (size_t k = 0; k < K; k += kAmxK) {
    if (prefetch) {
      // One line per row per step; past the row's end, the same row of the
      // next group of blocks.
      size_t ahead = 2 * k + kPrefetchBytes;
      if (ahead >= row_bytes) ahead += rows * stride - row_bytes;
      for (size_t r = 0; r < rows; ++r) _mm_prefetch(w + r * stride + ahead, _MM_HINT_T0);
    }
    const uint16_t* b = pack + k * mc;  // k pairs k/2 .. k/2 + 15
    _tile_loadd(6, b, b_stride);
    _tile_loadd(7, b + lo, b_stride);
    _tile_loadd(4, w + 2 * k, st);
    if constexpr (kBlocks > 1) _tile_loadd(5, w1 + 2 * k, st);
    _tile_dpbf16ps(0, 4, 6);
    if constexpr (kBlocks > 1) _tile_dpbf16ps(2, 5, 6);
    _tile_dpbf16ps(1, 4, 7);
    if constexpr (kBlocks > 1) _tile_dpbf16ps(3, 5, 7);
  }
  constexpr size_t kTile = kAmxRows * kAmxRows;
  _tile_stored(0, out, 64);
  _tile_stored(1, out + kTile, 64);
  if constexpr (kBlocks > 1) _tile_stored(2, out + 2 * kTile, 64);
  if constexpr (kBlocks > 1) _tile_stored(3, out + 3 * kTile, 64);
}

// y[m0 + m, n0 + r] = hi[r][m] + lo[r][m] (+ bias) for the chunk's real rows.
void StoreBlock(const MatMulArgs& a, const float* hi, const float* lo, size_t n0,
                size_t m0, size_t mc) {
  for (size_t m = 0; m < mc; ++m) {
    float* yr = a.y + (m0 + m) * a.y_stride + n0;
    for (size_t r = 0; r < kAmxRows; ++r) {
      const size_t i = r * kAmxRows + m;
      yr[r] = hi[i] + lo[i] + (a.bias != nullptr ? a.bias[n0 + r] : 0.0f);
    }
  }
}

__attribute__((target("amx-tile"))) void ReleaseTiles() { _tile_release(); }

}  // namespace

void MatMulAmxTask(const MatMulArgs& a, const MatMulPlan& plan, size_t task) {
  ES_DCHECK(a.w.dtype == DType::kBF16 && a.K % kAmxK == 0 && a.K > 0);
  ES_DCHECK(plan.x_bf16 != nullptr && plan.n_tile % kAmxRows == 0);
  const size_t n0 = task * plan.n_tile, n1 = std::min(a.N, n0 + plan.n_tile);
  const size_t full_end = n0 + (n1 - n0) / kAmxRows * kAmxRows;
  const size_t K = a.K, stride = 2 * K;
  const size_t chunks = (a.M + kAmxRows - 1) / kAmxRows;
  const char* w = static_cast<const char*>(a.w.data);
  constexpr size_t kTile = kAmxRows * kAmxRows;
  alignas(64) float out[4 * kTile];
  size_t loaded_mc = 0;  // the tile config in effect
  // Pairs of W blocks; every chunk of x against the pair while it is in
  // cache (only the first pass streams it from memory).
  for (size_t nb = n0; nb < full_end; nb += 2 * kAmxRows) {
    const bool pair = full_end - nb >= 2 * kAmxRows;
    const char* wb = w + nb * stride;
    for (size_t c = 0; c < chunks; ++c) {
      const size_t m0 = c * kAmxRows, mc = std::min(kAmxRows, a.M - m0);
      if (mc != loaded_mc) {
        LoadTileConfig(mc);
        loaded_mc = mc;
      }
      const uint16_t* pack = plan.x_bf16 + 2 * m0 * K;
      if (pair) {
        RunBlocks<2>(wb, stride, K, pack, mc, c == 0, out);
      } else {
        RunBlocks<1>(wb, stride, K, pack, mc, c == 0, out);
      }
      StoreBlock(a, out, out + kTile, nb, m0, mc);
      if (pair) StoreBlock(a, out + 2 * kTile, out + 3 * kTile, nb + kAmxRows, m0, mc);
    }
  }
  if (loaded_mc != 0) ReleaseTiles();
  // The last N % 16 rows (f32 x, on the Highway kernel).
  if (full_end < n1) {
    MatMulArgs tail = a;
    tail.w.data = w + full_end * stride;
    tail.N = n1 - full_end;
    tail.y = a.y + full_end;
    if (a.bias != nullptr) tail.bias = a.bias + full_end;
    MatMulHighwaySerial(tail);
  }
}

#else  // no AMX support in this build

void MatMulAmxTask(const MatMulArgs&, const MatMulPlan&, size_t) {
  ES_CHECK(false && "AMX backend on a non-x86 build");
}

#endif

}  // namespace expertserve::kernels::internal

namespace expertserve::kernels {

bool AmxBf16Available() {
#if defined(ES_HAVE_AMX)
  static const bool available = internal::DetectAmx();
  return available;
#else
  return false;
#endif
}

}  // namespace expertserve::kernels
