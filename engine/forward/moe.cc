#include "engine/forward/moe.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>

#include "common/check.h"

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

void MlpForward(const MlpWeights& w, const float* x, size_t T, size_t hidden,
                float* out, ThreadPool& pool) {
  const size_t I = static_cast<size_t>(w.intermediate);
  std::vector<float> gate(T * I), up(T * I);
  kernels::MatMul(x, T, hidden, w.gate, I, nullptr, gate.data(), pool);
  kernels::MatMul(x, T, hidden, w.up, I, nullptr, up.data(), pool);
  kernels::SiluMul(gate.data(), up.data(), T * I, gate.data());
  kernels::MatMul(gate.data(), T, I, w.down, hidden, nullptr, out, pool);
}

void MoeForward(const LayerContext& ctx, int64_t layer, const MoeWeights& w,
                const float* x, float* out) {
  const ModelConfig& c = ctx.config;
  const size_t T = ctx.batch.num_tokens();
  const size_t H = static_cast<size_t>(c.hidden_size);
  const size_t E = static_cast<size_t>(c.num_experts);
  const size_t I = static_cast<size_t>(c.moe_intermediate_size);

  std::vector<float> logits(T * E);
  kernels::MatMul(x, T, H, w.router, E, nullptr, logits.data(), ctx.pool);

  // Route, reroute through each sequence's adapter, and group by slot.
  const memory::ExpertTable& table = *w.experts;
  std::vector<std::vector<std::pair<int32_t, float>>> by_slot(
      static_cast<size_t>(table.num_slots()));  // slot -> (token, weight)
  for (size_t t = 0; t < T; ++t) {
    const ExpertChoice choice = SelectExperts(
        c, std::span<const float>(logits.data() + t * E, E), w.score_correction);
    const AdapterRouting* adapter =
        ctx.batch.sequences[ctx.batch.token_seq[t]].adapter;
    for (size_t j = 0; j < choice.experts.size(); ++j) {
      const ExpertId e = choice.experts[j];
      const SlotId slot =
          adapter == nullptr ? e : adapter->per_layer[layer][e];
      by_slot[static_cast<size_t>(slot)].emplace_back(
          static_cast<int32_t>(t), choice.weights[j]);
    }
  }

  std::fill(out, out + T * H, 0.0f);
  std::vector<float> xs, gate, up, down;
  for (size_t slot = 0; slot < by_slot.size(); ++slot) {
    const auto& users = by_slot[slot];
    if (users.empty()) continue;
    const size_t n = users.size();
    xs.resize(n * H);
    for (size_t i = 0; i < n; ++i) {
      std::copy_n(x + users[i].first * H, H, xs.data() + i * H);
    }
    const memory::ExpertPointers p = table.SlotPointers(static_cast<SlotId>(slot));
    gate.resize(n * I);
    up.resize(n * I);
    down.resize(n * H);
    kernels::MatMul(xs.data(), n, H, {p.gate, w.expert_dtype}, I, nullptr,
                    gate.data(), ctx.pool);
    kernels::MatMul(xs.data(), n, H, {p.up, w.expert_dtype}, I, nullptr,
                    up.data(), ctx.pool);
    kernels::SiluMul(gate.data(), up.data(), n * I, gate.data());
    kernels::MatMul(gate.data(), n, I, {p.down, w.expert_dtype}, H, nullptr,
                    down.data(), ctx.pool);
    for (size_t i = 0; i < n; ++i) {
      kernels::Axpy(users[i].second, down.data() + i * H,
                    out + users[i].first * H, H);
    }
  }

  if (w.shared.gate.data != nullptr) {
    std::vector<float> shared(T * H);
    // Tokens grouped by shared-expert source: -1 is the base's, s >= 1 an
    // adapter's replacement in w.shared_table.
    std::map<SlotId, std::vector<size_t>> by_shared;
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
    if (by_shared.size() == 1 && by_shared.begin()->first == -1) {
      MlpForward(w.shared, x, T, H, shared.data(), ctx.pool);
    } else {
      std::vector<float> ys;
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
        const size_t n = users.size();
        xs.resize(n * H);
        ys.resize(n * H);
        for (size_t i = 0; i < n; ++i) {
          std::copy_n(x + users[i] * H, H, xs.data() + i * H);
        }
        MlpForward(m, xs.data(), n, H, ys.data(), ctx.pool);
        for (size_t i = 0; i < n; ++i) {
          std::copy_n(ys.data() + i * H, H, shared.data() + users[i] * H);
        }
      }
    }
    if (w.shared_gate.data != nullptr) {  // qwen2_moe: sigmoid-gated
      std::vector<float> g(T);
      kernels::MatMul(x, T, H, w.shared_gate, 1, nullptr, g.data(), ctx.pool);
      for (size_t t = 0; t < T; ++t) {
        const float s = 1.0f / (1.0f + std::exp(-g[t]));
        kernels::Scale(s, shared.data() + t * H, H);
      }
    }
    kernels::AddInPlace(out, shared.data(), T * H);
  }
}

}  // namespace expertserve::engine
