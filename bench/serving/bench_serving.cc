// Offline serving benchmark: N requests with ShareGPT-like prompt/output
// length distributions (log-normal, clipped), arriving at a Poisson rate or
// all at once, through the real Engine on a checkpoint. In one run it
// measures, as JSON lines:
//   - one_at_a_time: the same requests run strictly one after another;
//   - continuous: all of them through continuous batching;
//   - prefix_cache: time to first token of a long prompt, cold vs repeated;
//   - summary: the ratios (throughput, ITL p99, TTFT speedup).
//
// usage: expertserve-bench-serving --model DIR [--requests 16] [--rate 0]
//          [--prompt-mean 128] [--output-mean 64] [--prefix-len 1024]
//          [--threads 0] [--kv-mb 1024] [--max-batched-tokens 512]
//          [--max-num-seqs 64] [--seed 1] [--decode-tokens 32]
//   - decode_*: N short-prompt requests with equal outputs, one at a time vs
//     all at once (steady-state decode throughput and ITL at N streams);
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "engine/runtime/engine_loader.h"
#include "nlohmann/json.hpp"

namespace {

using namespace expertserve;          // NOLINT: benchmark driver
using namespace expertserve::engine;  // NOLINT

// Records the wall time of every streamed token. Thread-safe.
class TimingSink final : public OutputSinkInterface {
 public:
  explicit TimingSink(absl::Time submitted) : submitted_(submitted) {}
  void OnDelta(const OutputDelta& d) override {
    absl::MutexLock l(&mu_);
    for (size_t i = 0; i < d.token_ids.size(); ++i) times_.push_back(absl::Now());
  }
  void OnFinish(const FinalOutput& out) override {
    absl::MutexLock l(&mu_);
    done_ = true;
    status_ = out.status;
    cached_ = out.usage.cached_tokens;
  }
  bool done() {
    absl::MutexLock l(&mu_);
    return done_;
  }
  double TtftMs() {
    absl::MutexLock l(&mu_);
    return times_.empty() ? 0.0 : absl::ToDoubleMilliseconds(times_[0] - submitted_);
  }
  std::vector<double> ItlMs() {
    absl::MutexLock l(&mu_);
    std::vector<double> out;
    for (size_t i = 1; i < times_.size(); ++i) {
      out.push_back(absl::ToDoubleMilliseconds(times_[i] - times_[i - 1]));
    }
    return out;
  }
  size_t tokens() {
    absl::MutexLock l(&mu_);
    return times_.size();
  }
  absl::Status status() {
    absl::MutexLock l(&mu_);
    return status_;
  }

 private:
  absl::Mutex mu_;
  const absl::Time submitted_;
  std::vector<absl::Time> times_ ABSL_GUARDED_BY(mu_);
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status status_ ABSL_GUARDED_BY(mu_);
  int32_t cached_ ABSL_GUARDED_BY(mu_) = 0;
};

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  const double idx = p / 100.0 * static_cast<double>(v.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(idx));
  const size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (idx - static_cast<double>(lo));
}

struct Job {
  std::vector<TokenId> prompt;
  int32_t max_tokens;
  double arrival_s;  // offset from the start
};

struct RunResult {
  double wall_s = 0;
  int64_t prompt_tokens = 0;
  int64_t output_tokens = 0;
  std::vector<double> ttft_ms, itl_ms;
  int64_t preemptions = 0;
  int64_t expert_bytes = 0;  // expert weight bytes the run's steps read
};

GenerateRequest MakeRequest(const std::string& id, const Job& j) {
  GenerateRequest r;
  r.request_id = id;
  r.prompt_token_ids = j.prompt;
  r.sampling.temperature = 0.0f;
  r.sampling.max_tokens = j.max_tokens;
  r.sampling.ignore_eos = true;  // fixed output lengths
  return r;
}

RunResult Run(Engine& engine, const std::vector<Job>& jobs, bool one_at_a_time,
              const std::string& tag) {
  RunResult res;
  std::vector<std::shared_ptr<TimingSink>> sinks;
  const int64_t preempt0 = engine.GetStats()[0].num_preemptions;
  const int64_t bytes0 = engine.GetStats()[0].expert_weight_bytes;
  const absl::Time start = absl::Now();
  for (size_t i = 0; i < jobs.size(); ++i) {
    if (!one_at_a_time) {
      const absl::Time at = start + absl::Seconds(jobs[i].arrival_s);
      if (absl::Now() < at) absl::SleepFor(at - absl::Now());
    }
    auto sink = std::make_shared<TimingSink>(absl::Now());
    absl::Status s = engine.Submit(MakeRequest(tag + std::to_string(i), jobs[i]), sink);
    if (!s.ok()) {
      std::fprintf(stderr, "submit failed: %s\n", s.ToString().c_str());
      std::exit(1);
    }
    sinks.push_back(sink);
    if (one_at_a_time) engine.WaitIdle();
  }
  engine.WaitIdle();
  res.wall_s = absl::ToDoubleSeconds(absl::Now() - start);
  for (size_t i = 0; i < jobs.size(); ++i) {
    res.prompt_tokens += static_cast<int64_t>(jobs[i].prompt.size());
    res.output_tokens += static_cast<int64_t>(sinks[i]->tokens());
    res.ttft_ms.push_back(sinks[i]->TtftMs());
    for (double x : sinks[i]->ItlMs()) res.itl_ms.push_back(x);
  }
  res.preemptions = engine.GetStats()[0].num_preemptions - preempt0;
  res.expert_bytes = engine.GetStats()[0].expert_weight_bytes - bytes0;
  return res;
}

nlohmann::json ToJson(const std::string& mode, const RunResult& r) {
  nlohmann::json j;
  j["bench"] = "serving";
  j["mode"] = mode;
  j["wall_s"] = r.wall_s;
  j["requests"] = r.ttft_ms.size();
  j["prompt_tokens"] = r.prompt_tokens;
  j["output_tokens"] = r.output_tokens;
  j["output_tokens_per_s"] = static_cast<double>(r.output_tokens) / r.wall_s;
  j["total_tokens_per_s"] = static_cast<double>(r.output_tokens + r.prompt_tokens) / r.wall_s;
  j["ttft_ms"] = {{"p50", Percentile(r.ttft_ms, 50)},
                  {"p90", Percentile(r.ttft_ms, 90)},
                  {"p99", Percentile(r.ttft_ms, 99)}};
  j["itl_ms"] = {{"p50", Percentile(r.itl_ms, 50)},
                 {"p90", Percentile(r.itl_ms, 90)},
                 {"p99", Percentile(r.itl_ms, 99)}};
  j["preemptions"] = r.preemptions;
  j["expert_bytes_per_output_token"] =
      r.output_tokens > 0 ? static_cast<double>(r.expert_bytes) / r.output_tokens : 0.0;
  return j;
}

double TimeToFirstToken(Engine& engine, const std::vector<TokenId>& prompt,
                        const std::string& id) {
  Job j{prompt, 1, 0.0};
  auto sink = std::make_shared<TimingSink>(absl::Now());
  if (!engine.Submit(MakeRequest(id, j), sink).ok()) std::exit(1);
  engine.WaitIdle();
  return sink->TtftMs();
}

}  // namespace

int main(int argc, char** argv) {
  std::map<std::string, std::string> a = {
      {"--requests", "16"},   {"--rate", "0"},         {"--prompt-mean", "128"},
      {"--output-mean", "64"}, {"--prefix-len", "1024"}, {"--threads", "0"},
      {"--kv-mb", "1024"},    {"--max-batched-tokens", "512"},
      {"--max-num-seqs", "64"}, {"--seed", "1"}, {"--decode-tokens", "32"}};
  std::string model;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::string(argv[i]) == "--model") {
      model = argv[i + 1];
    } else if (a.count(argv[i])) {
      a[argv[i]] = argv[i + 1];
    } else {
      std::fprintf(stderr, "unknown flag %s\n", argv[i]);
      return 2;
    }
  }
  if (model.empty()) {
    std::fprintf(stderr,
                 "usage: expertserve-bench-serving --model DIR [--requests N] [--rate R/s, 0 = "
                 "all at once] [--prompt-mean T] [--output-mean T] [--prefix-len T] "
                 "[--threads N] [--kv-mb MB] [--max-batched-tokens T] [--max-num-seqs N] "
                 "[--seed S] [--decode-tokens T, 0 = skip]\n");
    return 2;
  }
  auto num = [&](const char* k) { return std::atof(a[k].c_str()); };
  EngineOptions eo;
  eo.max_batched_tokens = static_cast<int32_t>(num("--max-batched-tokens"));
  eo.max_num_seqs = static_cast<int32_t>(num("--max-num-seqs"));
  eo.max_waiting_requests = 1 << 20;
  TransformerRunnerOptions ro;
  ro.kv_budget_bytes = static_cast<size_t>(num("--kv-mb") * 1024 * 1024);
  ro.num_threads = static_cast<size_t>(num("--threads"));
  auto engine_or = LoadEngine(model, eo, ro);
  if (!engine_or.ok()) {
    std::fprintf(stderr, "%s\n", engine_or.status().ToString().c_str());
    return 1;
  }
  Engine& engine = **engine_or;

  // ShareGPT-like: log-normal lengths around the means (sigma 0.6), clipped.
  std::mt19937_64 rng(static_cast<uint64_t>(num("--seed")));
  const int n = static_cast<int>(num("--requests"));
  const double rate = num("--rate");
  const int32_t vocab = 200;  // ids every generated checkpoint has
  auto lognormal = [&](double mean) {
    std::lognormal_distribution<double> d(std::log(mean) - 0.18, 0.6);
    return std::clamp(static_cast<int32_t>(d(rng)), 4, static_cast<int32_t>(mean * 4));
  };
  std::vector<Job> jobs;
  double t = 0;
  std::exponential_distribution<double> gap(rate > 0 ? rate : 1.0);
  for (int i = 0; i < n; ++i) {
    Job j;
    const int32_t plen = lognormal(num("--prompt-mean"));
    for (int32_t k = 0; k < plen; ++k) j.prompt.push_back(static_cast<TokenId>(1 + rng() % (vocab - 1)));
    j.max_tokens = lognormal(num("--output-mean"));
    j.arrival_s = t;
    if (rate > 0) t += gap(rng);
    jobs.push_back(std::move(j));
  }

  // The two runs use the same lengths and arrivals but different tokens, so
  // the second never hits blocks the first left in the prefix cache.
  auto shifted = [&](std::vector<Job> js, TokenId by) {
    for (Job& j : js) {
      for (TokenId& t : j.prompt) t = 1 + (t + by) % (vocab - 1);
    }
    return js;
  };
  // Warm-up (page in weights, spin up the pool).
  Run(engine, shifted({jobs[0]}, 101), true, "warm");
  const RunResult single = Run(engine, jobs, /*one_at_a_time=*/true, "s");
  const RunResult batched = Run(engine, shifted(jobs, 37), /*one_at_a_time=*/false, "c");
  nlohmann::json js = ToJson("one_at_a_time", single);
  nlohmann::json jc = ToJson("continuous", batched);
  jc["arrival_rate_per_s"] = rate;
  std::printf("%s\n%s\n", js.dump().c_str(), jc.dump().c_str());

  // Decode streams: the same N requests with short prompts and equal output
  // lengths, so the runs are decode-dominated: N concurrent streams vs one.
  std::vector<Job> decode_jobs;
  const int32_t decode_tokens = static_cast<int32_t>(num("--decode-tokens"));
  for (int i = 0; i < n; ++i) {
    Job j;
    for (int k = 0; k < 8; ++k) j.prompt.push_back(static_cast<TokenId>(1 + rng() % (vocab - 1)));
    j.max_tokens = decode_tokens;
    j.arrival_s = 0;
    decode_jobs.push_back(std::move(j));
  }
  RunResult decode_single, decode_batched;
  if (decode_tokens > 0) {
    decode_single = Run(engine, decode_jobs, true, "ds");
    decode_batched = Run(engine, shifted(decode_jobs, 53), false, "dc");
    std::printf("%s\n%s\n", ToJson("decode_one_at_a_time", decode_single).dump().c_str(),
                ToJson("decode_concurrent", decode_batched).dump().c_str());
  }

  // Prefix cache: the same long prompt twice (second = cache hit).
  std::vector<TokenId> long_prompt;
  for (int k = 0; k < static_cast<int>(num("--prefix-len")); ++k) {
    long_prompt.push_back(static_cast<TokenId>(1 + rng() % (vocab - 1)));
  }
  const double cold = TimeToFirstToken(engine, long_prompt, "p0");
  const double warm = TimeToFirstToken(engine, long_prompt, "p1");
  nlohmann::json jp = {{"bench", "serving"}, {"mode", "prefix_cache"},
                       {"prompt_tokens", long_prompt.size()}, {"ttft_cold_ms", cold},
                       {"ttft_cached_ms", warm}, {"ttft_speedup", cold / warm}};
  std::printf("%s\n", jp.dump().c_str());

  nlohmann::json sum = {
      {"bench", "serving"},
      {"mode", "summary"},
      {"kv_cache", engine.KvCapacityString()},
      {"requests", n},
      {"output_throughput_ratio",
       (static_cast<double>(batched.output_tokens) / batched.wall_s) /
           (static_cast<double>(single.output_tokens) / single.wall_s)},
      {"itl_p99_ratio", Percentile(batched.itl_ms, 99) / Percentile(single.itl_ms, 99)},
      {"ttft_p50_ratio", Percentile(batched.ttft_ms, 50) / Percentile(single.ttft_ms, 50)},
      {"prefix_ttft_speedup", cold / warm}};
  if (decode_tokens > 0) {
    sum["decode_streams"] = n;
    sum["decode_throughput_ratio"] =
        (static_cast<double>(decode_batched.output_tokens) / decode_batched.wall_s) /
        (static_cast<double>(decode_single.output_tokens) / decode_single.wall_s);
    sum["decode_itl_p99_ratio"] =
        Percentile(decode_batched.itl_ms, 99) / Percentile(decode_single.itl_ms, 99);
    // Expert bytes per generated token, one stream over n streams (prefill
    // steps included): how much less each token of the concurrent run reads.
    if (decode_batched.expert_bytes > 0) {
      sum["decode_expert_bytes_per_token_ratio"] =
          (static_cast<double>(decode_single.expert_bytes) / decode_single.output_tokens) /
          (static_cast<double>(decode_batched.expert_bytes) / decode_batched.output_tokens);
    }
  }
  std::printf("%s\n", sum.dump().c_str());
  return 0;
}
