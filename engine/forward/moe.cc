#include "engine/forward/moe.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <utility>

#include "common/check.h"
#include "engine/forward/scratch.h"

namespace expertserve::engine {
namespace {

// Indices of the k largest values, descending, ties to the lower index
// (torch.topk's order on distinct values).
std::vector<int32_t> TopKIndices(std::span<const float> v, size_t k) {
  std::vector<int32_t> idx(v.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::partial_sort(idx.begin(), idx.begin() + static_cast<ptrdiff_t>(k),
                    idx.end(), [&](int32_t a, int32_t b) {
                      return v[a] > v[b] || (v[a] == v[b] && a < b);
                    });
  idx.resize(k);
  return idx;
}

void SoftmaxInPlace(std::vector<float>& v) {
  const float mx = *std::max_element(v.begin(), v.end());
  double sum = 0;
  for (float& x : v) {
    x = std::exp(x - mx);
    sum += x;
  }
  for (float& x : v) x = static_cast<float>(x / sum);
}

// Keeps the scores of the `topk_group` best groups, zeroing the rest
// (masked_fill(~mask, 0.0) in the modeling code). Group score: the max
// (group_limited_greedy) or the sum of the top two (noaux_tc).
std::vector<float> MaskGroups(const std::vector<float>& scores, int64_t n_group,
                              int64_t topk_group, bool sum_top2) {
  const size_t per = scores.size() / static_cast<size_t>(n_group);
  std::vector<float> group_score(static_cast<size_t>(n_group));
  for (size_t g = 0; g < group_score.size(); ++g) {
    std::span<const float> grp(scores.data() + g * per, per);
    if (sum_top2) {
      const std::vector<int32_t> top = TopKIndices(grp, std::min<size_t>(2, per));
      float s = 0;
      for (int32_t i : top) s += grp[i];
      group_score[g] = s;
    } else {
      group_score[g] = *std::max_element(grp.begin(), grp.end());
    }
  }
  const std::vector<int32_t> keep =
      TopKIndices(group_score, static_cast<size_t>(topk_group));
  std::vector<float> masked(scores.size(), 0.0f);
  for (int32_t g : keep) {
    for (size_t i = 0; i < per; ++i) masked[g * per + i] = scores[g * per + i];
  }
  return masked;
}

}  // namespace

ExpertChoice SelectExperts(const ModelConfig& c,
                           std::span<const float> router_logits,
                           std::span<const float> score_correction) {
  const size_t k = static_cast<size_t>(c.num_experts_per_tok);
  std::vector<float> scores(router_logits.begin(), router_logits.end());
  ExpertChoice choice;
  const bool deepseek = c.arch == Architecture::kDeepseekV2 ||
                        c.arch == Architecture::kDeepseekV3;
  if (c.scoring_func == ScoringFunc::kSigmoid) {
    for (float& s : scores) s = 1.0f / (1.0f + std::exp(-s));
  } else {
    SoftmaxInPlace(scores);
  }
  std::vector<int32_t> top;
  switch (deepseek ? c.topk_method : TopkMethod::kGreedy) {
    case TopkMethod::kGreedy:
      top = TopKIndices(scores, k);
      break;
    case TopkMethod::kGroupLimitedGreedy:
      top = TopKIndices(MaskGroups(scores, c.n_group, c.topk_group, false), k);
      break;
    case TopkMethod::kNoauxTc: {
      // The bias steers the choice only; weights come from the raw scores.
      std::vector<float> for_choice = scores;
      for (size_t e = 0; e < for_choice.size(); ++e) {
        for_choice[e] += score_correction[e];
      }
      top = TopKIndices(MaskGroups(for_choice, c.n_group, c.topk_group, true), k);
      break;
    }
  }
  for (int32_t e : top) {
    choice.experts.push_back(e);
    choice.weights.push_back(scores[e]);
  }
  float sum = 0;
  for (float w : choice.weights) sum += w;
  if (!deepseek) {
    // mixtral always renormalises; qwen2_moe / qwen3_moe when norm_topk_prob.
    if (c.arch == Architecture::kMixtral || c.norm_topk_prob) {
      for (float& w : choice.weights) w /= sum;
    }
    return choice;
  }
  const bool normalise = k > 1 && c.norm_topk_prob;
  if (normalise) {
    for (float& w : choice.weights) w /= (sum + 1e-20f);
  }
  // V2 scales only un-normalised weights; V3 always scales.
  if (c.arch == Architecture::kDeepseekV3 || !normalise) {
    for (float& w : choice.weights) {
      w *= static_cast<float>(c.routed_scaling_factor);
    }
  }
  return choice;
}

namespace {

// One SwiGLU chain to run: rows of its input, its weights, and where its
// gate/up/down results live in the step's scratch buffers.
struct ChainJob {
  const float* x;  // [rows, H], rows x_stride apart
  size_t x_stride;
  size_t rows;
  kernels::WeightRef gate, up, down;
  size_t inter;   // intermediate size
  float* gate_out;  // [rows, inter]; silu(gate) * up after phase 1
  float* up_out;    // [rows, inter]
  float* down_out;  // [rows, H]
};

// Runs every chain as two parallel regions: all gate/up products, then all
// down products (plus `extra` in the first region), so a decode step forks
// the pool twice per MoE layer rather than three times per active expert.
void RunChains(std::span<const ChainJob> jobs, size_t H,
               std::span<const kernels::MatMulArgs> extra, ThreadPool& pool) {
  std::vector<kernels::MatMulArgs> products;
  products.reserve(2 * jobs.size() + extra.size());
  for (const ChainJob& j : jobs) {
    products.push_back({j.x, j.x_stride, j.rows, H, j.gate, j.inter, nullptr,
                        j.gate_out, j.inter});
    products.push_back({j.x, j.x_stride, j.rows, H, j.up, j.inter, nullptr,
                        j.up_out, j.inter});
  }
  products.insert(products.end(), extra.begin(), extra.end());
  kernels::MatMulGroup(products, pool);
  // SiluMul in tasks of ~64K elements: per job, a dense MLP's one job at
  // prefill (512 x 4096) would be serial.
  constexpr size_t kSiluElems = size_t{1} << 16;
  struct SiluTask {
    const ChainJob* job;
    size_t r0, r1;  // rows
  };
  std::vector<SiluTask> silu;
  for (const ChainJob& j : jobs) {
    const size_t step = std::max<size_t>(1, kSiluElems / std::max<size_t>(j.inter, 1));
    for (size_t r = 0; r < j.rows; r += step) silu.push_back({&j, r, std::min(j.rows, r + step)});
  }
  pool.ParallelFor(silu.size(), [&](size_t t, size_t) {
    const SiluTask& s = silu[t];
    float* g = s.job->gate_out + s.r0 * s.job->inter;
    kernels::SiluMul(g, s.job->up_out + s.r0 * s.job->inter, (s.r1 - s.r0) * s.job->inter, g);
  });
  products.clear();
  for (const ChainJob& j : jobs) {
    products.push_back({j.gate_out, j.inter, j.rows, j.inter, j.down, H,
                        nullptr, j.down_out, H});
  }
  kernels::MatMulGroup(products, pool);
}

}  // namespace

void MlpForward(const MlpWeights& w, const float* x, size_t T, size_t hidden,
                float* out, ThreadPool& pool) {
  const size_t I = static_cast<size_t>(w.intermediate);
  thread_local Scratch gate_buf, up_buf;
  const ChainJob job{x,      hidden, T, w.gate, w.up, w.down, I,
                     gate_buf.Get(T * I), up_buf.Get(T * I), out};
  RunChains(std::span<const ChainJob>(&job, 1), hidden, {}, pool);
}

void MoeForward(const LayerContext& ctx, int64_t layer, const MoeWeights& w,
                const float* x, float* out) {
  const ModelConfig& c = ctx.config;
  const size_t T = ctx.batch.num_tokens();
  const size_t H = static_cast<size_t>(c.hidden_size);
  const size_t E = static_cast<size_t>(c.num_experts);
  const size_t I = static_cast<size_t>(c.moe_intermediate_size);

  thread_local Scratch logits_buf;
  float* logits = logits_buf.Get(T * E);
  kernels::MatMul(x, T, H, w.router, E, nullptr, logits, ctx.pool);

  // Route, reroute through each sequence's adapter, and group by slot.
  const memory::ExpertTable& table = *w.experts;
  std::vector<std::vector<std::pair<int32_t, float>>> by_slot(
      static_cast<size_t>(table.num_slots()));  // slot -> (token, weight)
  size_t routed_rows = 0;
  for (size_t t = 0; t < T; ++t) {
    const ExpertChoice choice = SelectExperts(
        c, std::span<const float>(logits + t * E, E), w.score_correction);
    const AdapterRouting* adapter =
        ctx.batch.sequences[ctx.batch.token_seq[t]].adapter;
    for (size_t j = 0; j < choice.experts.size(); ++j) {
      const ExpertId e = choice.experts[j];
      const SlotId slot =
          adapter == nullptr ? e : adapter->per_layer[layer][e];
      by_slot[static_cast<size_t>(slot)].emplace_back(
          static_cast<int32_t>(t), choice.weights[j]);
      ++routed_rows;
    }
  }

  // Shared experts: tokens grouped by source, -1 the base's and s >= 1 an
  // adapter's replacement in w.shared_table.
  const bool has_shared = w.shared.gate.data != nullptr;
  std::map<SlotId, std::vector<size_t>> by_shared;
  if (has_shared) {
    for (size_t t = 0; t < T; ++t) {
      const AdapterRouting* adapter =
          ctx.batch.sequences[ctx.batch.token_seq[t]].adapter;
      SlotId s = -1;
      if (adapter != nullptr &&
          static_cast<size_t>(layer) < adapter->shared_expert_slot.size()) {
        s = adapter->shared_expert_slot[static_cast<size_t>(layer)];
      }
      by_shared[s].push_back(t);
    }
  }
  const size_t SI = has_shared ? static_cast<size_t>(w.shared.intermediate) : 0;
  const bool shared_is_all_base =
      by_shared.size() == 1 && by_shared.begin()->first == -1;

  // Gathered inputs: routed rows slot by slot, then shared rows when they
  // are split by adapter. Scratch for every chain's intermediates.
  const size_t shared_rows = has_shared ? T : 0;
  const size_t gathered_shared = shared_is_all_base ? 0 : shared_rows;
  const size_t inter_floats = routed_rows * I + shared_rows * SI;
  thread_local Scratch xs_buf, gate_buf, up_buf, down_buf;
  float* xs = xs_buf.Get((routed_rows + gathered_shared) * H);
  float* gate = gate_buf.Get(inter_floats);
  float* up = up_buf.Get(inter_floats);
  float* down = down_buf.Get((routed_rows + shared_rows) * H);
  std::vector<ChainJob> jobs;
  // Gathered row -> its token (copied in parallel below), and each token's
  // routed rows with their weights, in slot order (the combine's order).
  std::vector<int32_t> row_token;
  row_token.reserve(routed_rows + gathered_shared);
  std::vector<std::vector<std::pair<size_t, float>>> token_rows(T);
  size_t row = 0;
  for (size_t slot = 0; slot < by_slot.size(); ++slot) {
    const auto& users = by_slot[slot];
    if (users.empty()) continue;
    for (size_t i = 0; i < users.size(); ++i) {
      row_token.push_back(users[i].first);
      token_rows[static_cast<size_t>(users[i].first)].emplace_back(row + i, users[i].second);
    }
    const memory::ExpertPointers p = table.SlotPointers(static_cast<SlotId>(slot));
    jobs.push_back({xs + row * H, H, users.size(),
                    {p.gate, w.expert_dtype}, {p.up, w.expert_dtype},
                    {p.down, w.expert_dtype}, I, gate + row * I,
                    up + row * I, down + row * H});
    row += users.size();
  }
  // Shared rows follow the routed ones: [routed_rows, routed_rows + T).
  size_t srow = 0;
  for (const auto& [s, users] : by_shared) {
    MlpWeights m = w.shared;
    if (s >= 0) {
      ES_CHECK(w.shared_table != nullptr && s >= 1 &&
               s < w.shared_table->num_slots());
      const memory::ExpertPointers p = w.shared_table->SlotPointers(s);
      m.gate = {p.gate, w.shared_dtype};
      m.up = {p.up, w.shared_dtype};
      m.down = {p.down, w.shared_dtype};
    }
    const float* in = x;
    if (!shared_is_all_base) {
      for (size_t t : users) row_token.push_back(static_cast<int32_t>(t));
      in = xs + (routed_rows + srow) * H;
    }
    jobs.push_back({in, H, users.size(), m.gate, m.up, m.down, SI,
                    gate + routed_rows * I + srow * SI,
                    up + routed_rows * I + srow * SI,
                    down + (routed_rows + srow) * H});
    srow += users.size();
  }
  if (ctx.stats != nullptr) {
    const uint64_t routed_jobs = jobs.size() - by_shared.size();
    const uint64_t routed_bytes = 3 * H * I * kernels::DTypeSize(w.expert_dtype);
    ctx.stats->routed_slots += routed_jobs;
    ctx.stats->expert_weight_bytes += routed_jobs * routed_bytes;
    for (const auto& [s, users] : by_shared) {
      ctx.stats->expert_weight_bytes +=
          3 * H * SI * kernels::DTypeSize(s >= 0 ? w.shared_dtype : w.shared.gate.dtype);
    }
  }
  // qwen2_moe's sigmoid gate of the shared expert rides in the first region.
  std::vector<float> shared_gate;
  std::vector<kernels::MatMulArgs> extra;
  if (has_shared && w.shared_gate.data != nullptr) {
    shared_gate.resize(T);
    extra.push_back({x, H, T, H, w.shared_gate, 1, nullptr, shared_gate.data(), 1});
  }
  // The gather, the SwiGLU chains, and the combine are all parallel: at
  // prefill sizes the copies alone move tens of MB per layer.
  constexpr size_t kRowsPerTask = 32;
  ctx.pool.ParallelFor((row_token.size() + kRowsPerTask - 1) / kRowsPerTask,
                       [&](size_t task, size_t) {
    const size_t r1 = std::min(row_token.size(), (task + 1) * kRowsPerTask);
    for (size_t r = task * kRowsPerTask; r < r1; ++r) {
      std::copy_n(x + static_cast<size_t>(row_token[r]) * H, H, xs + r * H);
    }
  });
  RunChains(jobs, H, extra, ctx.pool);

  // Combine per token: routed experts weighted (in slot order), then its
  // shared expert (gated).
  std::vector<size_t> shared_row(has_shared ? T : 0);
  srow = 0;
  for (const auto& [s, users] : by_shared) {
    for (size_t t : users) shared_row[t] = routed_rows + srow++;
  }
  ctx.pool.ParallelFor((T + kRowsPerTask - 1) / kRowsPerTask, [&](size_t task, size_t) {
    const size_t t1 = std::min(T, (task + 1) * kRowsPerTask);
    for (size_t t = task * kRowsPerTask; t < t1; ++t) {
      float* o = out + t * H;
      std::fill(o, o + H, 0.0f);
      for (const auto& [r, weight] : token_rows[t]) {
        kernels::Axpy(weight, down + r * H, o, H);
      }
      if (has_shared) {
        const float scale =
            shared_gate.empty() ? 1.0f : 1.0f / (1.0f + std::exp(-shared_gate[t]));
        kernels::Axpy(scale, down + shared_row[t] * H, o, H);
      }
    }
  });
}

}  // namespace expertserve::engine
