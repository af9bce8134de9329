// expertserve-bench-forward: forward-pass speed of real-format checkpoints,
// each result next to its roofline measured in the same run.
//   prefill: --prefill-prompts P prompts of --prefill tokens each in one step
//            (P = 1: one long prompt; P = 4: a 2048-token scheduler budget);
//            compute-bound, so reported as a fraction of the peak FMA rate.
//   decode:  --batches B sequences with --context tokens of history each, one
//            new token per sequence per step; bandwidth-bound at small B, so
//            reported against max(bytes / bandwidth, flops / peak) where bytes
//            are the weights a step must read (non-expert weights, the
//            distinct routed experts its B tokens touched, counted by the
//            forward pass, the lm_head) plus the KV it attends over; and
//            B x bytes(batch 1) / bytes(batch B), the most batch B can gain
//            over batch 1 when both run at the same bandwidth.
// Prints one JSON object per line. The machine is shared and noisy: compare
// ratios within one run.
//
// Usage: expertserve-bench-forward --model DIR [--model DIR ...]
//          [--batches 1,4,16,64] [--context 128] [--prefill 512]
//          [--prefill-prompts 1,4] [--quick]
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "bench/common/decode_bytes.h"
#include "bench/common/roofline.h"
#include "common/thread_pool.h"
#include "engine/forward/transformer.h"

namespace expertserve::bench {
namespace {

using engine::ModelConfig;

constexpr size_t kBlockTokens = 16;

struct Options {
  std::vector<std::string> models;
  std::vector<size_t> batches = {1, 4, 16, 64};
  size_t context = 128;
  size_t prefill = 512;
  // Prompts of `prefill` tokens per prefill step: 1 is one long prompt; 4
  // is what a scheduler batches under a 2048-token budget.
  std::vector<size_t> prefill_seqs = {1, 4};
  bool quick = false;
};

// Decode inputs must not repeat: a short cycle of tokens routes to the same
// few experts every step, which then stay in the last-level cache (300 MiB
// here); with the old cycle, MoE batch-1 decode at context 16 measured
// 14.3 ms per step against 15.1 ms with these inputs.
uint64_t Mix(uint64_t x) {  // splitmix64
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

void AddSequence(engine::StepBatch& b, int32_t seq, size_t first_block,
                 size_t blocks) {
  engine::StepSequence s;
  for (size_t i = 0; i < blocks; ++i) s.block_table.push_back(static_cast<int32_t>(first_block + i));
  b.sequences.push_back(std::move(s));
  (void)seq;
}

int Run(const Options& o) {
  ThreadPool pool(0);
  const Machine mach = MeasureMachine(pool, o.quick);
  for (const std::string& dir : o.models) {
    auto loaded = engine::Transformer::Load(dir);
    if (!loaded.ok()) {
      std::fprintf(stderr, "bench-forward: %s\n", loaded.status().ToString().c_str());
      return 1;
    }
    const engine::Transformer& model = **loaded;
    const ModelConfig& c = model.config();
    const ParamCounts pc = CountParams(c);
    const double wbytes = kernels::DTypeSize(model.weights().embed.dtype);
    const double kv_token_bytes = static_cast<double>(
        engine::KvBytesPerToken(c, kernels::KvDType::kF32));
    std::printf(
        "{\"bench\":\"model\",\"model\":\"%s\",\"arch\":\"%s\",\"total_params\":%.0f,"
        "\"active_params\":%.0f,\"weight_bytes_per_param\":%.0f}\n",
        dir.c_str(), std::string(engine::ArchitectureName(c.arch)).c_str(), pc.total,
        pc.active, wbytes);

    size_t max_b = 1;
    for (size_t b : o.batches) max_b = std::max(max_b, b);
    for (size_t n : o.prefill_seqs) max_b = std::max(max_b, n);
    const size_t steps_room = 64;
    const size_t per_seq_blocks =
        (std::max(o.context + steps_room, o.prefill) + kBlockTokens - 1) / kBlockTokens;
    engine::KvStore kv(c, per_seq_blocks * max_b, kBlockTokens);
    std::vector<float> logits;

    // ---- prefill ----
    for (size_t n_seqs : o.prefill_seqs) {
      engine::StepBatch b;
      for (size_t s = 0; s < n_seqs; ++s) {
        AddSequence(b, 0, s * per_seq_blocks, per_seq_blocks);
        std::vector<TokenId> ids(o.prefill);
        for (size_t i = 0; i < ids.size(); ++i) {
          ids[i] = static_cast<TokenId>((i * 7919 + s * 13) % c.vocab_size);
        }
        b.AddTokens(static_cast<int32_t>(s), ids.data(),
                    static_cast<int32_t>(ids.size()), 0, true);
      }
      const size_t tokens = n_seqs * o.prefill;
      const Timing t = Measure(o.quick ? 0.5 : 2.0, [&](size_t) {
        (void)model.Forward(b, kv, pool, logits);
      });
      const double flops = 2.0 * pc.active * static_cast<double>(tokens);
      const double gflops = flops / t.best_s * 1e-9;
      std::printf(
          "{\"bench\":\"prefill\",\"model\":\"%s\",\"prompts\":%zu,"
          "\"tokens\":%zu,\"s_first\":%.4f,\"s_best\":%.4f,"
          "\"s_median\":%.4f,\"tokens_per_s\":%.1f,\"gflops\":%.1f,"
          "\"peak_gflops\":%.1f,\"roofline_fraction\":%.3f}\n",
          dir.c_str(), n_seqs, tokens, t.first_s, t.best_s, t.median_s, tokens / t.best_s,
          gflops, mach.peak_gflops, gflops / mach.peak_gflops);
    }

    // ---- decode ----
    for (size_t B : o.batches) {
      // Fill each sequence's history (untimed), in prefill chunks.
      for (size_t s = 0; s < B; ++s) {
        engine::StepBatch b;
        AddSequence(b, 0, s * per_seq_blocks, per_seq_blocks);
        std::vector<TokenId> ids(o.context);
        for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<TokenId>((i * 31 + s * 17) % c.vocab_size);
        b.AddTokens(0, ids.data(), static_cast<int32_t>(ids.size()), 0, true);
        if (!model.Forward(b, kv, pool, logits).ok()) return 1;
      }
      engine::StepBatch step;
      for (size_t s = 0; s < B; ++s) AddSequence(step, 0, s * per_seq_blocks, per_seq_blocks);
      std::vector<TokenId> next(B, 1);
      engine::ForwardStats stats;
      size_t calls = 0;
      const Timing t = Measure(o.quick ? 0.5 : 2.0, [&](size_t rep) {
        ++calls;
        step.tokens.clear();
        step.positions.clear();
        step.token_seq.clear();
        step.logit_tokens.clear();
        const size_t p = o.context + rep % steps_room;  // history stays ~context
        for (size_t s = 0; s < B; ++s) {
          step.AddTokens(static_cast<int32_t>(s), &next[s], 1, static_cast<int32_t>(p), true);
        }
        (void)model.Forward(step, kv, pool, logits, &stats);
        for (size_t s = 0; s < B; ++s) {
          next[s] = static_cast<TokenId>(Mix(rep * B + s) % c.vocab_size);
        }
      });
      // Routed experts per MoE layer: as counted (a trained router's choices
      // overlap more or less than these generated weights' do).
      const double distinct =
          pc.moe_layers == 0 ? 0.0
                             : static_cast<double>(stats.routed_slots) /
                                   static_cast<double>(calls * pc.moe_layers);
      const double kv_bytes = static_cast<double>(B * o.context) * kv_token_bytes;
      const double bytes = DecodeParamsRead(c, pc, B, distinct) * wbytes + kv_bytes;
      const double bytes_b1 =
          DecodeParamsRead(c, pc, 1, static_cast<double>(c.num_experts_per_tok)) * wbytes +
          static_cast<double>(o.context) * kv_token_bytes;
      const double flops = 2.0 * pc.active * static_cast<double>(B);
      const double roof_s = std::max(bytes / (mach.read_gbps * 1e9),
                                     flops / (mach.peak_gflops * 1e9));
      std::printf(
          "{\"bench\":\"decode\",\"model\":\"%s\",\"batch\":%zu,\"context\":%zu,"
          "\"step_ms_best\":%.3f,\"step_ms_median\":%.3f,\"tokens_per_s\":%.1f,"
          "\"routed_experts_per_layer\":%.1f,\"bytes_per_step\":%.0f,\"gbps\":%.2f,"
          "\"read_gbps\":%.2f,\"roofline_step_ms\":%.3f,\"roofline_fraction\":%.3f,"
          "\"max_speedup_over_batch1_at_equal_bandwidth\":%.2f}\n",
          dir.c_str(), B, o.context, t.best_s * 1e3, t.median_s * 1e3, B / t.best_s,
          distinct, bytes, bytes / t.best_s * 1e-9, mach.read_gbps, roof_s * 1e3,
          roof_s / t.best_s, static_cast<double>(B) * bytes_b1 / bytes);
    }
  }
  return 0;
}

}  // namespace
}  // namespace expertserve::bench

int main(int argc, char** argv) {
  expertserve::bench::Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "bench-forward: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--model") {
      o.models.push_back(value());
    } else if (a == "--batches") {
      o.batches.clear();
      const std::string v = value();
      if (v == "none") continue;  // prefill only (e.g. for a profile)
      for (absl::string_view s : absl::StrSplit(v, ',')) {
        size_t b;
        if (!absl::SimpleAtoi(s, &b) || b == 0) {
          std::fprintf(stderr, "bench-forward: bad --batches\n");
          return 2;
        }
        o.batches.push_back(b);
      }
    } else if (a == "--context") {
      if (!absl::SimpleAtoi(value(), &o.context)) return 2;
    } else if (a == "--prefill") {
      if (!absl::SimpleAtoi(value(), &o.prefill)) return 2;
    } else if (a == "--prefill-prompts") {
      o.prefill_seqs.clear();
      for (absl::string_view s : absl::StrSplit(value(), ',')) {
        size_t n;
        if (!absl::SimpleAtoi(s, &n) || n == 0) {
          std::fprintf(stderr, "bench-forward: bad --prefill-prompts\n");
          return 2;
        }
        o.prefill_seqs.push_back(n);
      }
    } else if (a == "--quick") {
      o.quick = true;
    } else {
      std::fprintf(stderr,
                   "usage: expertserve-bench-forward --model DIR [--model DIR ...] "
                   "[--batches 1,4,16,64|none] [--context 128] [--prefill 512] "
                   "[--prefill-prompts 1,4] [--quick]\n");
      return 2;
    }
  }
  if (o.models.empty()) {
    std::fprintf(stderr, "bench-forward: give at least one --model DIR\n");
    return 2;
  }
  return expertserve::bench::Run(o);
}
