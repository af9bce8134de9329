// expertserve-bench-kernels: MatMul backends (Highway vs oneDNN) on the
// shapes that matter, next to this machine's measured memory bandwidth and
// peak FMA rate from the same run, plus the ThreadPool's per-call overhead.
// Prints one JSON object per line. The machine is shared and noisy: compare
// ratios within one run, not absolute numbers across runs.
//
// Usage: expertserve-bench-kernels [--quick] [--only=SECTION]

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "bench/common/roofline.h"
#include "common/thread_pool.h"
#include "engine/kernels/kernels.h"

namespace expertserve::bench {
void MeasurePoolOverhead(ThreadPool& pool) {
  const size_t calls = 20000;
  std::vector<size_t> dummy(pool.NumWorkers() * 16);
  const Timing t = Measure(0.2, [&](size_t) {
    for (size_t i = 0; i < calls; ++i) {
      pool.ParallelFor(pool.NumWorkers(), [&](size_t task, size_t w) { dummy[w * 16] += task; });
    }
  });
  // With ~2 us of work per task every worker must really join: the excess
  // over 2 us is the fork-join cost a decode step pays per parallel region.
  const auto spin_2us = [](size_t) {
    const auto t0 = Clock::now();
    while (Seconds(t0, Clock::now()) < 2e-6) {
    }
  };
  const size_t work_calls = 2000;
  const Timing tw = Measure(0.2, [&](size_t) {
    for (size_t i = 0; i < work_calls; ++i) {
      pool.ParallelFor(pool.NumWorkers(), [&](size_t task, size_t) { spin_2us(task); });
    }
  });
  std::printf(
      "{\"bench\":\"thread_pool\",\"workers\":%zu,\"empty_parallel_for_us_best\":%.3f,"
      "\"empty_parallel_for_us_median\":%.3f,\"parallel_for_2us_tasks_us_best\":%.3f,"
      "\"parallel_for_2us_tasks_us_median\":%.3f}\n",
      pool.NumWorkers(), t.best_s / calls * 1e6, t.median_s / calls * 1e6,
      tw.best_s / work_calls * 1e6, tw.median_s / work_calls * 1e6);
}

const char* BackendName(kernels::MatMulBackend b) {
  switch (b) {
    case kernels::MatMulBackend::kAuto: return "auto";
    case kernels::MatMulBackend::kHighway: return "highway";
    case kernels::MatMulBackend::kOneDnn: return "onednn";
    case kernels::MatMulBackend::kOneDnnSplitBf16: return "onednn_split_bf16";
    case kernels::MatMulBackend::kAmxSplitBf16: return "amx_split_bf16";
  }
  return "?";
}

// Times the backends interleaved rep by rep (so they see the same
// machine load), next to a parallel read of as many cold bytes as the weights
// and an FMA loop of as many flops: the roofline time measured right there.
void BenchMatMul(ThreadPool& pool, const char* regime, size_t M, size_t K,
                 size_t N, kernels::DType dtype, bool quick,
                 std::vector<float>& cold) {
  const size_t w_bytes = N * K * kernels::DTypeSize(dtype);
  // Enough weight copies to exceed the caches, so decode streams from DRAM
  // as it does with a real model.
  const size_t copies = std::clamp<size_t>((128u << 20) / std::max<size_t>(w_bytes, 1), 1, 64);
  std::vector<std::vector<char>> w(copies, std::vector<char>(w_bytes));
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  for (size_t i = 0; i < N * K; ++i) {
    const float f = dist(rng);
    if (dtype == kernels::DType::kF32) {
      std::memcpy(w[0].data() + 4 * i, &f, 4);
    } else {
      const uint16_t bits = dtype == kernels::DType::kBF16 ? kernels::F32ToBF16Bits(f)
                                                           : kernels::F32ToF16Bits(f);
      std::memcpy(w[0].data() + 2 * i, &bits, 2);
    }
  }
  for (size_t c = 1; c < copies; ++c) w[c] = w[0];
  std::vector<float> x(M * K), y(M * N);
  for (float& f : x) f = dist(rng);

  const double flops = 2.0 * M * N * K;
  const size_t workers = pool.NumWorkers();
  const size_t read_floats = std::min(cold.size(), w_bytes / 4);
  const size_t read_slots = std::max<size_t>(1, cold.size() / std::max<size_t>(read_floats, 1));
  const size_t lanes_flops = static_cast<size_t>(
      FmaLoop(1, &y[0]));  // flops per iteration
  const size_t fma_iters = static_cast<size_t>(flops / lanes_flops / workers) + 1;
  std::vector<float> sink(workers * 16);

  const kernels::MatMulBackend backends[] = {
      kernels::MatMulBackend::kHighway, kernels::MatMulBackend::kOneDnn,
      kernels::MatMulBackend::kOneDnnSplitBf16, kernels::MatMulBackend::kAmxSplitBf16,
      kernels::MatMulBackend::kAuto};
  constexpr size_t kBackends = std::size(backends);
  // One slot per backend, then the cold read and the FMA loop.
  std::vector<double> times[kBackends + 2];
  const size_t kRead = kBackends, kFma = kBackends + 1;
  const double budget = quick ? 0.1 : 0.6;
  const auto start = Clock::now();
  for (size_t rep = 0; rep < 4 || Seconds(start, Clock::now()) < budget; ++rep) {
    for (size_t b = 0; b < kBackends; ++b) {
      const auto t0 = Clock::now();
      kernels::MatMul(x.data(), M, K,
                      kernels::WeightRef{w[(kBackends * rep + b) % copies].data(), dtype}, N,
                      nullptr, y.data(), pool, backends[b]);
      if (rep > 0) times[b].push_back(Seconds(t0, Clock::now()));
    }
    const float* rd = cold.data() + (rep % read_slots) * read_floats;
    const size_t chunk = (read_floats + workers - 1) / workers;
    auto t0 = Clock::now();
    pool.ParallelFor(workers, [&](size_t t, size_t wk) {
      const size_t b0 = std::min(read_floats, t * chunk);
      const size_t b1 = std::min(read_floats, b0 + chunk);
      sink[wk * 16] += ReadSum(rd + b0, b1 - b0);
    });
    if (rep > 0) times[kRead].push_back(Seconds(t0, Clock::now()));
    t0 = Clock::now();
    pool.ParallelFor(workers, [&](size_t, size_t wk) {
      FmaLoop(fma_iters, &sink[wk * 16 + 1]);
    });
    if (rep > 0) times[kFma].push_back(Seconds(t0, Clock::now()));
  }
  double best[kBackends + 2];
  for (size_t i = 0; i < kBackends + 2; ++i) {
    best[i] = *std::min_element(times[i].begin(), times[i].end());
  }
  const double roof_s = std::max(best[kRead], best[kFma]);
  const double bytes = static_cast<double>(w_bytes) + 4.0 * (M * K + M * N);
  for (size_t b = 0; b < kBackends; ++b) {
    std::vector<double>& t = times[b];
    std::sort(t.begin(), t.end());
    std::printf(
        "{\"bench\":\"matmul\",\"regime\":\"%s\",\"backend\":\"%s\",\"dtype\":\"%s\","
        "\"M\":%zu,\"K\":%zu,\"N\":%zu,\"reps\":%zu,\"us_best\":%.1f,\"us_median\":%.1f,"
        "\"gflops\":%.2f,\"gbps\":%.2f,\"bound\":\"%s\",\"local_read_gbps\":%.2f,"
        "\"local_fma_gflops\":%.1f,\"roofline_fraction\":%.3f}\n",
        regime, BackendName(backends[b]), kernels::DTypeName(dtype), M, K, N, t.size(),
        t.front() * 1e6, t[t.size() / 2] * 1e6, flops / t.front() * 1e-9,
        bytes / t.front() * 1e-9, best[kFma] > best[kRead] ? "compute" : "memory",
        read_floats * 4.0 / best[kRead] * 1e-9,
        fma_iters * lanes_flops * workers / best[kFma] * 1e-9,
        roof_s / t.front());
  }
  std::fflush(stdout);
}

// Decode attention: one query token per sequence over a long context, the
// memory-bound case (each K/V byte is read once per token).
// `mla`: DeepSeek's latent cache instead (16 q heads over one latent "head"
// of 256 + 32, V read as its first 256: the absorbed decode form), which is
// compute-bound (16 heads per key).
void BenchAttention(ThreadPool& pool, const Machine& mach, size_t num_seqs,
                    size_t ctx, kernels::KvDType dtype, bool mla, bool quick) {
  kernels::PagedKvLayout L;
  L.block_tokens = 16;
  L.num_kv_heads = mla ? 1 : 8;
  L.k_head_dim = mla ? 288 : 128;
  L.v_head_dim = mla ? 0 : 128;
  L.dtype = dtype;
  const size_t q_heads = mla ? 16 : 32;
  const size_t v_dim = mla ? 256 : 128;
  const size_t blocks_per_seq = (ctx + L.block_tokens - 1) / L.block_tokens;
  L.num_blocks = num_seqs * blocks_per_seq;
  // Realistic magnitudes (a constant byte pattern would be denormal and hit
  // the slow microcode path).
  std::vector<char> k(L.LayerKElems() * kernels::KvDTypeSize(dtype));
  std::vector<char> v(L.LayerVElems() * kernels::KvDTypeSize(dtype));
  for (std::vector<char>* store : {&k, &v}) {
    const size_t n = store->size() / kernels::KvDTypeSize(dtype);
    for (size_t i = 0; i < n; ++i) {
      const float f = 0.001f * static_cast<float>(i % 1000) - 0.5f;
      if (dtype == kernels::KvDType::kF32) {
        std::memcpy(store->data() + 4 * i, &f, 4);
      } else {
        const uint16_t bits = kernels::F32ToBF16Bits(f);
        std::memcpy(store->data() + 2 * i, &bits, 2);
      }
    }
  }
  std::vector<int32_t> ids(L.num_blocks);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int32_t>(i);
  std::shuffle(ids.begin(), ids.end(), std::mt19937(3));
  std::vector<kernels::SeqBlockTable> tables(num_seqs);
  std::vector<int32_t> token_seq(num_seqs), token_pos(num_seqs);
  for (size_t s = 0; s < num_seqs; ++s) {
    tables[s] = kernels::SeqBlockTable{ids.data() + s * blocks_per_seq, blocks_per_seq};
    token_seq[s] = static_cast<int32_t>(s);
    token_pos[s] = static_cast<int32_t>(ctx - 1);
  }
  std::vector<float> q(num_seqs * q_heads * L.k_head_dim, 0.01f),
      out(num_seqs * q_heads * v_dim);
  kernels::PagedAttentionArgs a;
  a.q = q.data();
  a.q_token_stride = q_heads * L.k_head_dim;
  a.num_tokens = num_seqs;
  a.num_q_heads = q_heads;
  a.token_seq = token_seq.data();
  a.token_pos = token_pos.data();
  a.seqs = tables.data();
  a.num_seqs = num_seqs;
  a.scale = 0.088f;
  a.out = out.data();
  a.out_token_stride = q_heads * v_dim;
  const kernels::PagedKvView view{L, k.data(), v.data(), mla, mla ? v_dim : 0};
  const Timing t = Measure(quick ? 0.05 : 0.3, [&](size_t) { kernels::PagedAttention(a, view, pool); });
  const double bytes = static_cast<double>(k.size() + v.size());
  const double flops = 2.0 * num_seqs * ctx * q_heads * (L.k_head_dim + v_dim);
  std::printf(
      "{\"bench\":\"paged_attention\",\"shape\":\"%s\",\"kv_dtype\":\"%s\",\"seqs\":%zu,"
      "\"ctx\":%zu,\"q_heads\":%zu,\"kv_heads\":%zu,\"k_dim\":%zu,\"v_dim\":%zu,"
      "\"us_best\":%.1f,\"us_median\":%.1f,\"gbps\":%.2f,\"gflops\":%.1f,"
      "\"roofline_fraction\":%.3f}\n",
      mla ? "mla_absorbed" : "gqa", dtype == kernels::KvDType::kF32 ? "F32" : "BF16",
      num_seqs, ctx, q_heads, L.num_kv_heads, L.k_head_dim, v_dim, t.best_s * 1e6,
      t.median_s * 1e6, bytes / t.best_s * 1e-9, flops / t.best_s * 1e-9,
      // memory-bound for GQA, compute-bound for MLA's 16 heads per key
      mla ? flops / t.best_s * 1e-9 / mach.peak_gflops
          : bytes / t.best_s * 1e-9 / mach.read_gbps);
  std::fflush(stdout);
}

// Prefill attention: one sequence's `tokens` query tokens over themselves
// (causal), the compute-bound case, for a GQA shape and MLA's expanded shape.
void BenchPrefillAttention(ThreadPool& pool, const Machine& mach, const char* shape,
                           size_t q_heads, size_t kv_heads, size_t dk, size_t dv,
                           size_t tokens, bool quick) {
  kernels::PagedKvLayout L;
  L.block_tokens = 16;
  L.num_kv_heads = kv_heads;
  L.k_head_dim = dk;
  L.v_head_dim = dv;
  L.num_blocks = (tokens + L.block_tokens - 1) / L.block_tokens;
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> k(L.LayerKElems()), v(L.LayerVElems());
  std::vector<float> q(tokens * q_heads * dk), out(tokens * q_heads * dv);
  for (std::vector<float>* a : {&k, &v, &q}) {
    for (float& f : *a) f = dist(rng);
  }
  std::vector<int32_t> ids(L.num_blocks), token_seq(tokens, 0), token_pos(tokens);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int32_t>(i);
  for (size_t t = 0; t < tokens; ++t) token_pos[t] = static_cast<int32_t>(t);
  const kernels::SeqBlockTable table{ids.data(), ids.size()};
  kernels::PagedAttentionArgs a;
  a.q = q.data();
  a.q_token_stride = q_heads * dk;
  a.num_tokens = tokens;
  a.num_q_heads = q_heads;
  a.token_seq = token_seq.data();
  a.token_pos = token_pos.data();
  a.seqs = &table;
  a.num_seqs = 1;
  a.scale = 0.1f;
  a.out = out.data();
  a.out_token_stride = q_heads * dv;
  const kernels::PagedKvView view{L, k.data(), v.data(), false, 0};
  const Timing t = Measure(quick ? 0.1 : 0.5, [&](size_t) { kernels::PagedAttention(a, view, pool); });
  // Causal: tokens (tokens + 1) / 2 query-key pairs per head.
  const double flops = 2.0 * q_heads * (dk + dv) * tokens * (tokens + 1) / 2.0;
  std::printf(
      "{\"bench\":\"prefill_attention\",\"shape\":\"%s\",\"tokens\":%zu,\"q_heads\":%zu,"
      "\"kv_heads\":%zu,\"k_dim\":%zu,\"v_dim\":%zu,\"us_best\":%.1f,\"us_median\":%.1f,"
      "\"gflops\":%.1f,\"roofline_fraction\":%.3f}\n",
      shape, tokens, q_heads, kv_heads, dk, dv, t.best_s * 1e6, t.median_s * 1e6,
      flops / t.best_s * 1e-9, flops / t.best_s * 1e-9 / mach.peak_gflops);
  std::fflush(stdout);
}

// One MoE layer's routed experts at decode: `tokens` tokens each pick `top_k`
// of `experts` experts ([inter, hidden] gate and up, [hidden, inter] down,
// BF16), and the touched experts run as the engine runs them (all gate/up
// products in one MatMulGroup, then all downs). Layers rotate through a pool
// larger than the caches, so every rep streams its experts from DRAM as a
// decode step does. Reports the weight bytes read per second against the
// same run's measured DRAM read rate.
void BenchExpertGroup(ThreadPool& pool, const Machine& mach, size_t tokens,
                      size_t experts, size_t top_k, size_t hidden, size_t inter,
                      bool quick) {
  const size_t mat = hidden * inter;  // elements per matrix
  const size_t expert_bytes = 3 * mat * 2;
  const size_t layers = std::max<size_t>(
      2, ((quick ? 512u : 1536u) << 20) / (experts * expert_bytes));
  std::vector<uint16_t> w(layers * experts * 3 * mat);
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> dist(-0.05f, 0.05f);
  for (size_t i = 0; i < 3 * mat; ++i) w[i] = kernels::F32ToBF16Bits(dist(rng));
  for (size_t l = 1; l < layers * experts; ++l) {
    std::copy_n(w.begin(), 3 * mat, w.begin() + static_cast<ptrdiff_t>(l * 3 * mat));
  }
  std::vector<float> x(tokens * top_k * hidden, 0.01f), g(tokens * top_k * inter),
      u(g.size()), d(tokens * top_k * hidden);
  size_t touched_sum = 0, reps = 0;
  const Timing t = Measure(quick ? 0.3 : 1.5, [&](size_t rep) {
    // Rows per expert from a uniform top-k routing of every token.
    std::vector<size_t> rows(experts, 0);
    for (size_t tk = 0; tk < tokens; ++tk) {
      std::vector<size_t> ids(experts);
      for (size_t e = 0; e < experts; ++e) ids[e] = e;
      for (size_t j = 0; j < top_k; ++j) {
        std::swap(ids[j], ids[j + rng() % (experts - j)]);
        ++rows[ids[j]];
      }
    }
    const uint16_t* layer = w.data() + (rep % layers) * experts * 3 * mat;
    std::vector<kernels::MatMulArgs> up_products, down_products;
    size_t row = 0, touched = 0;
    for (size_t e = 0; e < experts; ++e) {
      if (rows[e] == 0) continue;
      ++touched;
      const uint16_t* we = layer + e * 3 * mat;
      const kernels::WeightRef gate{we, kernels::DType::kBF16},
          upw{we + mat, kernels::DType::kBF16}, down{we + 2 * mat, kernels::DType::kBF16};
      float* xr = x.data() + row * hidden;
      up_products.push_back({xr, hidden, rows[e], hidden, gate, inter, nullptr,
                             g.data() + row * inter, inter});
      up_products.push_back({xr, hidden, rows[e], hidden, upw, inter, nullptr,
                             u.data() + row * inter, inter});
      down_products.push_back({g.data() + row * inter, inter, rows[e], inter, down, hidden,
                               nullptr, d.data() + row * hidden, hidden});
      row += rows[e];
    }
    kernels::MatMulGroup(up_products, pool);
    kernels::MatMulGroup(down_products, pool);
    touched_sum += touched;
    ++reps;
  });
  const double touched = static_cast<double>(touched_sum) / static_cast<double>(reps);
  const double bytes = touched * static_cast<double>(expert_bytes);
  std::printf(
      "{\"bench\":\"expert_group\",\"dtype\":\"BF16\",\"tokens\":%zu,\"experts\":%zu,"
      "\"top_k\":%zu,\"hidden\":%zu,\"inter\":%zu,\"experts_touched\":%.1f,"
      "\"us_best\":%.1f,\"us_median\":%.1f,\"gbps\":%.2f,\"read_gbps\":%.2f,"
      "\"roofline_fraction\":%.3f}\n",
      tokens, experts, top_k, hidden, inter, touched, t.best_s * 1e6, t.median_s * 1e6,
      bytes / t.median_s * 1e-9, mach.read_gbps, bytes / t.median_s * 1e-9 / mach.read_gbps);
  std::fflush(stdout);
}

int Main(int argc, char** argv) {
  bool quick = false;
  std::string only;  // a section, or all
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--quick") {
      quick = true;
    } else if (arg.rfind("--only=", 0) == 0) {
      only = arg.substr(7);
    } else {
      std::fprintf(stderr,
                   "usage: expertserve-bench-kernels [--quick] "
                   "[--only=prefill_attention|paged_attention|expert_group|matmul]\n");
      return 2;
    }
  }
  const auto wanted = [&](const char* section) { return only.empty() || only == section; };
  ThreadPool pool;
  const Machine mach = MeasureMachine(pool, quick);
  MeasurePoolOverhead(pool);
  if (wanted("prefill_attention")) {
    BenchPrefillAttention(pool, mach, "gqa", 16, 8, 64, 64, 512, quick);
    BenchPrefillAttention(pool, mach, "mla_expanded", 16, 16, 96, 64, 512, quick);
  }
  for (kernels::KvDType kv : {kernels::KvDType::kF32, kernels::KvDType::kBF16}) {
    if (!wanted("paged_attention")) break;
    BenchAttention(pool, mach, 1, quick ? 512 : 4096, kv, false, quick);
    BenchAttention(pool, mach, 16, quick ? 256 : 1024, kv, false, quick);
    if (kv == kernels::KvDType::kF32) {  // the engine's KV cache is f32
      BenchAttention(pool, mach, 1, quick ? 512 : 4096, kv, true, quick);
      BenchAttention(pool, mach, 16, quick ? 256 : 1024, kv, true, quick);
    }
  }
  if (wanted("expert_group")) {
    // The bench-moe checkpoint's layer (DeepSeek-V2 shape: 64 experts, top 6).
    for (size_t tokens : {1, 4, 16, 64}) {
      BenchExpertGroup(pool, mach, tokens, 64, 6, 1024, 512, quick);
    }
  }
  if (!wanted("matmul")) return 0;
  using kernels::DType;
  std::vector<float> cold((quick ? 16u : 64u) << 20, 1.0f);  // 64/256 MiB
  const std::vector<size_t> dims =
      quick ? std::vector<size_t>{1024} : std::vector<size_t>{1024, 2048, 4096};
  for (DType dt : {DType::kBF16, DType::kF32}) {
    for (size_t d : dims) {
      for (size_t M : {1, 4, 16, 64}) BenchMatMul(pool, "decode", M, d, d, dt, quick, cold);
    }
    for (size_t M : {1, 2, 4, 8, 16, 24, 32, 48}) {
      BenchMatMul(pool, "expert", M, 2048, 1408, dt, quick, cold);
    }
    BenchMatMul(pool, "prefill", 512, 2048, quick ? 512 : 2048, dt, quick, cold);
  }
  return 0;
}

}  // namespace expertserve::bench

int main(int argc, char** argv) { return expertserve::bench::Main(argc, argv); }
