#include "engine/sampler/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"

namespace expertserve::engine {
namespace {

void ApplyPenalties(std::vector<float>& l, const SamplingParams& p,
                    std::span<const TokenId> prompt, std::span<const TokenId> output) {
  const int32_t vocab = static_cast<int32_t>(l.size());
  auto in_vocab = [vocab](TokenId t) { return t >= 0 && t < vocab; };
  if (p.repetition_penalty != 1.0f) {
    absl::flat_hash_set<TokenId> seen;
    for (TokenId t : prompt) seen.insert(t);
    for (TokenId t : output) seen.insert(t);
    for (TokenId t : seen) {
      if (!in_vocab(t)) continue;
      float& x = l[static_cast<size_t>(t)];
      x = x > 0.0f ? x / p.repetition_penalty : x * p.repetition_penalty;
    }
  }
  if (p.frequency_penalty != 0.0f || p.presence_penalty != 0.0f) {
    absl::flat_hash_map<TokenId, int32_t> counts;
    for (TokenId t : output) ++counts[t];
    for (const auto& [t, c] : counts) {
      if (!in_vocab(t)) continue;
      l[static_cast<size_t>(t)] -=
          p.frequency_penalty * static_cast<float>(c) + p.presence_penalty;
    }
  }
}

TokenId Argmax(const std::vector<float>& l) {
  size_t best = 0;
  for (size_t i = 1; i < l.size(); ++i) {
    if (l[i] > l[best]) best = i;
  }
  return static_cast<TokenId>(best);
}

bool ByProbDesc(const std::pair<float, TokenId>& a, const std::pair<float, TokenId>& b) {
  return a.first != b.first ? a.first > b.first : a.second < b.second;
}

}  // namespace

TokenId SampleToken(std::span<const float> logits, const SamplingParams& p,
                    std::span<const TokenId> prompt, std::span<const TokenId> output,
                    SamplePrng& prng, SamplerScratch& scratch) {
  std::vector<float>& l = scratch.logits;
  l.assign(logits.begin(), logits.end());
  const int32_t vocab = static_cast<int32_t>(l.size());
  for (const auto& [t, bias] : p.logit_bias) {
    if (t >= 0 && t < vocab) l[static_cast<size_t>(t)] += bias;
  }
  ApplyPenalties(l, p, prompt, output);
  // Always draw, so a sequence's stream advances once per token whatever
  // the parameters.
  const double u = prng.NextUniform();
  if (p.temperature == 0.0f) return Argmax(l);

  const float max_logit = *std::max_element(l.begin(), l.end());
  const float inv_t = 1.0f / p.temperature;
  // Unnormalised probabilities relative to the max (max -> 1).
  auto& kept = scratch.kept;
  kept.clear();
  const float min_rel = p.min_p;  // min_p * max prob, relative to max = 1
  for (int32_t i = 0; i < vocab; ++i) {
    const float x = std::exp((l[static_cast<size_t>(i)] - max_logit) * inv_t);
    if (x > 0.0f && x >= min_rel) kept.emplace_back(x, i);
  }
  const bool top_k = p.top_k > 0 && p.top_k < static_cast<int32_t>(kept.size());
  const bool top_p = p.top_p < 1.0f;
  if (top_k || top_p) {
    if (top_k) {
      std::partial_sort(kept.begin(), kept.begin() + p.top_k, kept.end(), ByProbDesc);
      kept.resize(static_cast<size_t>(p.top_k));
    } else {
      std::sort(kept.begin(), kept.end(), ByProbDesc);
    }
    if (top_p) {
      double total = 0.0;
      for (const auto& k : kept) total += k.first;
      double cum = 0.0;
      size_t keep = kept.size();
      for (size_t i = 0; i < kept.size(); ++i) {
        cum += kept[i].first;
        if (cum >= p.top_p * total) {
          keep = i + 1;
          break;
        }
      }
      kept.resize(keep);
    }
  }
  double total = 0.0;
  for (const auto& k : kept) total += k.first;
  const double target = u * total;
  double cum = 0.0;
  for (const auto& k : kept) {
    cum += k.first;
    if (target < cum) return k.second;
  }
  return kept.back().second;  // rounding at the very top
}

PositionLogprobs ComputeLogprobs(std::span<const float> logits, TokenId chosen,
                                 int32_t top_n) {
  PositionLogprobs out;
  const float m = *std::max_element(logits.begin(), logits.end());
  double sum = 0.0;
  for (float x : logits) sum += std::exp(static_cast<double>(x - m));
  const float log_z = m + static_cast<float>(std::log(sum));
  const float c = logits[static_cast<size_t>(chosen)];
  out.chosen = {chosen, c - log_z};
  int32_t rank = 1;
  for (size_t i = 0; i < logits.size(); ++i) {
    if (logits[i] > c || (logits[i] == c && static_cast<TokenId>(i) < chosen)) ++rank;
  }
  out.rank = rank;
  if (top_n > 0) {
    std::vector<std::pair<float, TokenId>> all;
    all.reserve(logits.size());
    for (size_t i = 0; i < logits.size(); ++i) all.emplace_back(logits[i], static_cast<TokenId>(i));
    const size_t n = std::min(static_cast<size_t>(top_n), all.size());
    std::partial_sort(all.begin(), all.begin() + static_cast<long>(n), all.end(), ByProbDesc);
    for (size_t i = 0; i < n; ++i) out.top.push_back({all[i].second, all[i].first - log_z});
  }
  return out;
}

}  // namespace expertserve::engine
