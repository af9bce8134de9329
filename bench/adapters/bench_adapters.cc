// ESFT adapter benchmarks over one shared base (one JSON object per line):
//   memory      N adapters loaded (N = 1, 5, 20, 50): bytes served vs the base
//               + replaced experts, vs N merged copies, and process RSS
//   load        adapter load rate (bytes/s) and unload time
//   throughput  the same decode workload with 20 adapters mixed uniformly in
//               every batch vs the base alone (forward-pass level), measured
//               interleaved in one run, reported as a ratio
//   engine      the same comparison through the continuous-batching Engine
//               (requests submitted at once, greedy, 32 new tokens each)
//   kv          KV tokens that fit one memory budget: 20 adapters on one base
//               vs one merged model per adapter
// usage: expertserve-bench-adapters --model DIR --adapters DIR [--batch 40]
//        [--decode-steps 16] [--rounds 3]
// DIR of --adapters holds subdirectories a00, a01, ... (>= 50).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "bench/common/decode_bytes.h"
#include "common/thread_pool.h"
#include "engine/adapters/adapter_registry.h"
#include "engine/forward/transformer.h"
#include "engine/runtime/engine.h"
#include "engine/runtime/transformer_runner.h"

namespace {

namespace fs = std::filesystem;
using namespace expertserve;          // NOLINT: benchmark driver
using namespace expertserve::engine;  // NOLINT

double Now() {
  return std::chrono::duration<double>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

size_t RssBytes() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::strtoull(line.c_str() + 6, nullptr, 10) * 1024;
  }
  return 0;
}

size_t SafetensorsBytes(const fs::path& dir) {
  size_t total = 0;
  for (const auto& f : fs::directory_iterator(dir)) {
    if (f.path().extension() == ".safetensors") total += fs::file_size(f.path());
  }
  return total;
}

[[noreturn]] void Die(const std::string& msg) {
  std::fprintf(stderr, "expertserve-bench-adapters: %s\n", msg.c_str());
  std::exit(2);
}

// Decodes `steps` tokens for `batch` sequences after a 16-token prefill;
// sequence i runs routings[i % routings.size()] (null = base). Returns the
// decode seconds; the decode steps' expert reads are added to *stats when set.
double RunWorkload(const Transformer& model, const std::vector<const AdapterRouting*>& routings,
                   size_t batch, int steps, ThreadPool& pool,
                   engine::ForwardStats* stats = nullptr) {
  constexpr size_t kBlockTokens = 16, kPrompt = 16;
  const size_t per_seq = (kPrompt + static_cast<size_t>(steps) + kBlockTokens) / kBlockTokens;
  KvStore kv(model.config(), batch * per_seq, kBlockTokens);
  const int32_t vocab = static_cast<int32_t>(model.config().vocab_size);
  std::vector<StepSequence> seqs(batch);
  for (size_t s = 0; s < batch; ++s) {
    for (size_t b = 0; b < per_seq; ++b) seqs[s].block_table.push_back(static_cast<int32_t>(s * per_seq + b));
    seqs[s].adapter = routings[s % routings.size()];
  }
  std::vector<TokenId> last(batch);
  {
    StepBatch prefill;
    prefill.sequences = seqs;
    for (size_t s = 0; s < batch; ++s) {
      std::vector<TokenId> prompt(kPrompt);
      for (size_t i = 0; i < kPrompt; ++i) prompt[i] = static_cast<TokenId>((s * 131 + i * 17) % vocab);
      prefill.AddTokens(static_cast<int32_t>(s), prompt.data(), kPrompt, 0, true);
    }
    std::vector<float> logits;
    if (!model.Forward(prefill, kv, pool, logits).ok()) Die("prefill failed");
    for (size_t s = 0; s < batch; ++s) {
      const float* row = logits.data() + s * static_cast<size_t>(vocab);
      last[s] = static_cast<TokenId>(std::max_element(row, row + vocab) - row);
    }
  }
  const double t0 = Now();
  for (int step = 0; step < steps; ++step) {
    StepBatch b;
    b.sequences = seqs;
    for (size_t s = 0; s < batch; ++s) {
      b.AddTokens(static_cast<int32_t>(s), &last[s], 1, static_cast<int32_t>(kPrompt) + step, true);
    }
    std::vector<float> logits;
    if (!model.Forward(b, kv, pool, logits, stats).ok()) Die("decode failed");
    for (size_t s = 0; s < batch; ++s) {
      const float* row = logits.data() + s * static_cast<size_t>(vocab);
      last[s] = static_cast<TokenId>(std::max_element(row, row + vocab) - row);
    }
  }
  return Now() - t0;
}

// Counts finished requests; thread-safe.
class CountingSink : public OutputSinkInterface {
 public:
  explicit CountingSink(std::atomic<int>* done) : done_(done) {}
  void OnDelta(const OutputDelta&) override {}
  void OnFinish(const FinalOutput& out) override {
    if (!out.status.ok()) Die(std::string(out.status.message()));
    done_->fetch_add(1);
  }

 private:
  std::atomic<int>* done_;
};

// Submits `batch` requests (16-token prompts, 32 greedy tokens), request i
// on adapters[i % size] ("" = base), and waits. Returns seconds.
double RunEngine(Engine& engine, const std::vector<std::string>& adapters, size_t batch,
                 int round, int32_t vocab) {
  std::atomic<int> done{0};
  const double t0 = Now();
  for (size_t i = 0; i < batch; ++i) {
    GenerateRequest r;
    r.request_id = "r" + std::to_string(round) + "_" + std::to_string(i);
    r.adapter = adapters[i % adapters.size()];
    for (size_t j = 0; j < 16; ++j) {
      // Distinct prompts per round so the prefix cache does not skip prefill.
      r.prompt_token_ids.push_back(static_cast<TokenId>(
          (i * 131 + j * 17 + static_cast<size_t>(round + 1) * 7919) % static_cast<size_t>(vocab)));
    }
    r.sampling.temperature = 0;
    r.sampling.max_tokens = 32;
    const absl::Status s = engine.Submit(std::move(r), std::make_shared<CountingSink>(&done));
    if (!s.ok()) Die(std::string(s.message()));
  }
  engine.WaitIdle();
  if (done.load() != static_cast<int>(batch)) Die("engine lost requests");
  return Now() - t0;
}

}  // namespace

int main(int argc, char** argv) {
  std::map<std::string, std::string> args = {
      {"--batch", "40"}, {"--decode-steps", "16"}, {"--rounds", "3"}, {"--threads", "2"}};
  for (int i = 1; i + 1 < argc; i += 2) args[argv[i]] = argv[i + 1];
  if (!args.count("--model") || !args.count("--adapters")) {
    Die("usage: --model DIR --adapters DIR [--batch 40] [--decode-steps 16] [--rounds 3]");
  }
  const fs::path model_dir = args["--model"], adapters_dir = args["--adapters"];
  std::vector<fs::path> adapter_dirs;
  for (const auto& f : fs::directory_iterator(adapters_dir)) {
    if (fs::exists(f.path() / "expert_cfg.json")) adapter_dirs.push_back(f.path());
  }
  std::sort(adapter_dirs.begin(), adapter_dirs.end());
  if (adapter_dirs.size() < 50) Die("need >= 50 adapters in --adapters");

  const size_t rss_start = RssBytes();
  TransformerOptions options;
  options.weights.adapter_slots_per_layer = 320;  // 50 adapters x <= 6 experts
  options.weights.shared_adapter_slots_per_layer = 0;
  auto model_or = Transformer::Load(model_dir, options);
  if (!model_or.ok()) Die(std::string(model_or.status().message()));
  std::unique_ptr<Transformer> model = *std::move(model_or);
  const ModelConfig& c = model->config();
  adapters::AdapterRegistry registry(c, model->mutable_weights());
  const size_t base_bytes = SafetensorsBytes(model_dir);
  const size_t rss_base = RssBytes();
  std::printf("{\"bench\":\"setup\",\"model\":\"%s\",\"arch\":\"%s\",\"layers\":%ld,\"hidden\":%ld,"
              "\"experts\":%ld,\"moe_intermediate\":%ld,\"base_bytes\":%zu,\"rss_after_load_bytes\":%zu,"
              "\"rss_at_start_bytes\":%zu}\n",
              model_dir.string().c_str(), std::string(ArchitectureName(c.arch)).c_str(),
              static_cast<long>(c.num_hidden_layers), static_cast<long>(c.hidden_size),
              static_cast<long>(c.num_experts), static_cast<long>(c.moe_intermediate_size),
              base_bytes, rss_base, rss_start);

  // ---- memory and load time ----
  size_t copied = 0;
  double load_seconds = 0;
  int replaced = 0;
  size_t loaded = 0;
  for (size_t n : {size_t{1}, size_t{5}, size_t{20}, size_t{50}}) {
    for (; loaded < n; ++loaded) {
      const std::string name = adapter_dirs[loaded].filename().string();
      const double t0 = Now();
      auto rep = registry.Load(name, adapter_dirs[loaded]);
      load_seconds += Now() - t0;
      if (!rep.ok()) Die(std::string(rep.status().message()));
      copied += rep->bytes_copied;
      replaced += rep->routed_experts_replaced;
    }
    const size_t mapped = registry.mapped_adapter_bytes();
    const size_t served = base_bytes + mapped;
    std::printf("{\"bench\":\"memory\",\"adapters\":%zu,\"replaced_experts\":%d,"
                "\"base_bytes\":%zu,\"replaced_expert_bytes\":%zu,\"adapter_mapped_bytes\":%zu,"
                "\"slack_bytes\":%zu,\"served_bytes\":%zu,\"merged_copies_bytes\":%zu,"
                "\"served_over_merged\":%.4f,\"served_over_base\":%.4f,\"rss_delta_bytes\":%ld}\n",
                n, replaced, base_bytes, copied, mapped, mapped - copied, served,
                n * base_bytes, static_cast<double>(served) / static_cast<double>(n * base_bytes),
                static_cast<double>(served) / static_cast<double>(base_bytes),
                static_cast<long>(RssBytes()) - static_cast<long>(rss_base));
  }
  std::printf("{\"bench\":\"load\",\"adapters\":%zu,\"bytes_copied\":%zu,\"seconds\":%.4f,"
              "\"bytes_per_second\":%.0f,\"ms_per_adapter\":%.3f}\n",
              loaded, copied, load_seconds, static_cast<double>(copied) / load_seconds,
              1e3 * load_seconds / static_cast<double>(loaded));

  // ---- unload time (30 adapters; no request holds them) ----
  {
    const double t0 = Now();
    for (size_t i = 20; i < 50; ++i) {
      const absl::Status s = registry.Unload(adapter_dirs[i].filename().string());
      if (!s.ok()) Die(std::string(s.message()));
    }
    const double dt = Now() - t0;
    std::printf("{\"bench\":\"unload\",\"adapters\":30,\"seconds\":%.4f,\"ms_per_adapter\":%.3f,"
                "\"adapter_mapped_bytes_after\":%zu}\n",
                dt, 1e3 * dt / 30, registry.mapped_adapter_bytes());
  }

  // ---- throughput: 20 adapters mixed uniformly vs base alone ----
  const size_t batch = std::stoul(args["--batch"]);
  const int steps = std::stoi(args["--decode-steps"]);
  const int rounds = std::stoi(args["--rounds"]);
  ThreadPool pool(std::stoi(args["--threads"]));
  std::vector<ResolvedAdapter> held;
  std::vector<const AdapterRouting*> mixed;
  for (size_t i = 0; i < 20; ++i) {
    auto r = registry.Resolve(adapter_dirs[i].filename().string());
    if (!r.ok()) Die(std::string(r.status().message()));
    held.push_back(*r);
    mixed.push_back(held.back().routing.get());
  }
  const std::vector<const AdapterRouting*> base = {nullptr};
  // 20 adapters that replace nothing (identity reroute tables): the same
  // weight bytes as the base, so their cost is the mechanism's alone
  // (per-token table lookups, per-sequence grouping).
  std::vector<AdapterRouting> identity(20);
  std::vector<const AdapterRouting*> identity_mixed;
  for (AdapterRouting& a : identity) {
    for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
      a.per_layer.push_back(memory::RerouteTable::Identity(
          c.IsMoeLayer(l) ? static_cast<int>(c.num_experts) : 0));
    }
    identity_mixed.push_back(&a);
  }
  // What a memory-bound step must read: every weight but the routed experts,
  // plus the routed experts the forward pass ran (counted). These adapters
  // replace no shared expert (shared_adapter_slots_per_layer is 0 above).
  engine::ForwardStats base_stats, mixed_stats;
  RunWorkload(*model, base, batch, steps, pool, &base_stats);
  RunWorkload(*model, mixed, batch, steps, pool, &mixed_stats);
  const bench::ParamCounts pc = bench::CountParams(c);
  const double per_layer_step = static_cast<double>(steps) * static_cast<double>(pc.moe_layers);
  const double base_routed = static_cast<double>(base_stats.routed_slots) / per_layer_step;
  const double mixed_routed = static_cast<double>(mixed_stats.routed_slots) / per_layer_step;
  const double elem = static_cast<double>(kernels::DTypeSize(model->weights().embed.dtype));
  const double base_step = bench::DecodeParamsRead(c, pc, batch, base_routed) * elem;
  const double mixed_step = bench::DecodeParamsRead(c, pc, batch, mixed_routed) * elem;
  std::printf("{\"bench\":\"step_bytes\",\"batch\":%zu,\"adapters_mixed\":20,"
              "\"base_routed_experts_per_layer\":%.1f,\"mixed_routed_experts_per_layer\":%.1f,"
              "\"base_bytes_per_step\":%.0f,\"mixed_bytes_per_step\":%.0f,"
              "\"mixed_over_base_bytes\":%.4f}\n",
              batch, base_routed, mixed_routed, base_step, mixed_step, mixed_step / base_step);
  RunWorkload(*model, base, batch, 2, pool);  // warm-up
  std::vector<double> t_base, t_mixed, ratios, identity_ratios;
  for (int r = 0; r < rounds; ++r) {
    const double b = RunWorkload(*model, base, batch, steps, pool);
    const double i = RunWorkload(*model, identity_mixed, batch, steps, pool);
    const double m = RunWorkload(*model, mixed, batch, steps, pool);
    t_base.push_back(b);
    t_mixed.push_back(m);
    ratios.push_back(m / b);
    identity_ratios.push_back(i / b);
  }
  std::sort(ratios.begin(), ratios.end());
  std::sort(identity_ratios.begin(), identity_ratios.end());
  const double tokens = static_cast<double>(batch) * steps;
  std::printf("{\"bench\":\"throughput\",\"batch\":%zu,\"decode_steps\":%d,\"rounds\":%d,"
              "\"adapters_mixed\":20,\"base_tokens_per_s\":%.1f,\"mixed_tokens_per_s\":%.1f,"
              "\"median_mixed_over_base_time\":%.4f,\"min_ratio\":%.4f,\"max_ratio\":%.4f,"
              "\"best_mixed_over_best_base_time\":%.4f,"
              "\"median_identity_adapters_over_base_time\":%.4f,"
              "\"identity_min_ratio\":%.4f,\"identity_max_ratio\":%.4f}\n",
              batch, steps, rounds, tokens / *std::min_element(t_base.begin(), t_base.end()),
              tokens / *std::min_element(t_mixed.begin(), t_mixed.end()),
              ratios[ratios.size() / 2], ratios.front(), ratios.back(),
              *std::min_element(t_mixed.begin(), t_mixed.end()) /
                  *std::min_element(t_base.begin(), t_base.end()),
              identity_ratios[identity_ratios.size() / 2], identity_ratios.front(),
              identity_ratios.back());
  held.clear();

  // ---- KV capacity under one budget: 20 adapters ----
  KvStore one_block(c, 1, 16);
  const double kv_per_token = static_cast<double>(one_block.total_bytes()) / 16.0;
  const size_t adapters20 = registry.mapped_adapter_bytes();  // 20 loaded now
  for (double budget_in_bases : {24.0, 40.0}) {
    const double budget = budget_in_bases * static_cast<double>(base_bytes);
    const double shared = (budget - static_cast<double>(base_bytes + adapters20)) / kv_per_token;
    const double merged = std::max(0.0, (budget - 20.0 * static_cast<double>(base_bytes)) / kv_per_token);
    std::printf("{\"bench\":\"kv\",\"adapters\":20,\"budget_bytes\":%.0f,\"kv_bytes_per_token\":%.0f,"
                "\"shared_base_kv_tokens\":%.0f,\"merged_per_adapter_kv_tokens\":%.0f,"
                "\"ratio\":%.2f}\n",
                budget, kv_per_token, shared, merged, merged > 0 ? shared / merged : 0.0);
  }
  // ---- the same comparison through the continuous-batching engine ----
  {
    auto runner = TransformerRunner::Create(std::move(model), {.num_threads = 2});
    if (!runner.ok()) Die(std::string(runner.status().message()));
    // Not owned: the registry outlives the engine's use of it.
    std::shared_ptr<adapters::AdapterRegistry> resolver(&registry,
                                                        [](adapters::AdapterRegistry*) {});
    EngineOptions eo;
    eo.model_name = "bench";
    Engine engine(std::move(eo), *std::move(runner), nullptr, resolver);
    std::vector<std::string> names;
    for (size_t i = 0; i < 20; ++i) names.push_back(adapter_dirs[i].filename().string());
    const std::vector<std::string> base_only = {""};
    const int32_t vocab = static_cast<int32_t>(c.vocab_size);
    RunEngine(engine, base_only, batch, -1, vocab);  // warm-up
    std::vector<double> eb, em, er;
    for (int r = 0; r < rounds; ++r) {
      eb.push_back(RunEngine(engine, base_only, batch, 2 * r, vocab));
      em.push_back(RunEngine(engine, names, batch, 2 * r + 1, vocab));
      er.push_back(em.back() / eb.back());
    }
    std::sort(er.begin(), er.end());
    const double gen = static_cast<double>(batch) * 32;
    std::printf("{\"bench\":\"engine\",\"requests\":%zu,\"new_tokens_each\":32,\"rounds\":%d,"
                "\"adapters_mixed\":20,\"base_tokens_per_s\":%.1f,\"mixed_tokens_per_s\":%.1f,"
                "\"median_mixed_over_base_time\":%.4f,\"min_ratio\":%.4f,\"max_ratio\":%.4f,"
                "\"best_mixed_over_best_base_time\":%.4f}\n",
                batch, rounds, gen / *std::min_element(eb.begin(), eb.end()),
                gen / *std::min_element(em.begin(), em.end()), er[er.size() / 2], er.front(),
                er.back(),
                *std::min_element(em.begin(), em.end()) / *std::min_element(eb.begin(), eb.end()));
    // The registry frees slots in the model's tables: unload everything
    // before the engine destroys the model.
    for (const auto& a : registry.List()) {
      if (!registry.Unload(a.name).ok()) Die("unload failed");
    }
  }
  return 0;
}
