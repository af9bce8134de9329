// expertserve-bench-serve: N concurrent streaming requests, the same greedy
// workload (i) submitted to the engine directly and (ii) through the gRPC
// server on loopback (GenerateStream), on the SAME engine, alternating
// rounds so both see the same machine state.
//
// Both paths issue all N requests from one thread in a tight loop, so they
// reach the engine with the same spread: the gRPC client uses the callback
// API (one ClientReadReactor per stream; --client threads restores one
// blocking client thread per stream, which arrives skewed over several ms on
// a small machine and so lands in later engine steps).
//
// A probe between the server and the engine (TimedEngine) stamps when each
// request reaches the engine and when the engine emits its first token, so
// the TTFT difference splits into the server's own latency (client ->
// engine Submit, and engine first token -> client) and the engine's
// (batching: which step a request joins).
//
// The engine starts a step as soon as one request is queued, so even the
// direct path's 16 back-to-back Submits (~20 us) are split over the first
// two steps at random, and the TTFT p50 of either path jumps between one
// and two prefill steps. By default (--gate 1) the probe therefore holds a
// round's requests until all N have arrived and passes them on together,
// on both paths: every round starts with one full prefill step, and the
// gRPC path's TTFT includes its whole arrival spread. --gate 0 measures the
// raw engine behaviour instead.
//
// Prints one JSON object per path and round, and a summary:
//   throughput_ratio_median  grpc tokens/s / direct tokens/s   (goal >= 0.95)
//   ttft_added_ms_median     grpc TTFT p50 - direct TTFT p50    (goal <= 1 ms)
//   ttft_added_excl_prefill_ms_median
//                            the same with each round's first engine step
//                            (gate release -> first token of the round) taken
//                            out of every TTFT: that step is the same work on
//                            both paths and varies by +-2 ms between rounds,
//                            which swamps the median above. What remains is
//                            the arrival (start -> release), the request's
//                            place in the step's emission, and delivery.
//   server_overhead_ms_p50   (submit - client start) + (client receipt -
//                            engine first token), gRPC requests
// Per round, emit_spread_ms is first to last request's first token on the
// engine thread (what the sinks cost it) and recv_spread_ms the same at the
// client. Gated rounds whose first tokens came from two engine steps
// ("split": the engine loop took its queue between two of the gate's
// Submits) are left out of the summary and counted in split_rounds.
// --trace 1 adds one line per request: its stamps relative to its release,
// and the release in CLOCK_MONOTONIC microseconds, to line up with
// `perf sched record -k mono` (how the stalls in common/thread_pool.h were
// found).
//
//   expertserve-bench-serve --model DIR [--streams 16] [--max-tokens 64]
//                           [--prompt-tokens 32] [--rounds 3]
//                           [--client async|threads] [--gate 1|0]
//                           [--engine-threads N] [--trace 0|1]
#include <algorithm>
#include <cstdio>
#include <ctime>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "engine/forward/transformer.h"
#include "engine/runtime/engine.h"
#include "engine/runtime/transformer_runner.h"
#include "expertserve/v1/inference.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "nlohmann/json.hpp"
#include "server/server.h"

namespace {

namespace es = expertserve::server;
namespace eng = expertserve::engine;
namespace pb = expertserve::v1;

// One request as seen by the client and by the probe. Times are absl::Now()
// in this one process.
struct Sample {
  absl::Time start;         // client issues the request
  absl::Time submitted;     // the engine's Submit is called (probe)
  absl::Time released;      // the probe passes it on to the engine (gate)
  absl::Time engine_first;  // the engine emits token 1 (probe, engine thread)
  absl::Time client_first;  // the client holds token 1
  absl::Time last;
  std::vector<double> itl_s;
  int tokens = 0;
};

// Probe between the server (or the direct caller) and the engine. The
// request id's suffix after the last '/' is the sample key. Thread-safe.
class TimedEngine final : public eng::EngineInterface {
 public:
  explicit TimedEngine(eng::Engine* inner) : inner_(inner) {}

  // With a gate of n, Submits are held until n have arrived and then passed
  // to the engine together, so its first step holds all n whatever their
  // arrival spread (the engine otherwise starts a step on the first one).
  void SetGate(int n) {
    absl::MutexLock l(&mu_);
    gate_ = n;
  }

  absl::Status Submit(eng::GenerateRequest request,
                      std::shared_ptr<eng::OutputSinkInterface> sink) override {
    const absl::Time now = absl::Now();
    const std::string key = request.request_id.substr(request.request_id.rfind('/') + 1);
    auto wrapped = std::make_shared<FirstTokenSink>(this, key, std::move(sink));
    std::vector<Held> release;
    {
      absl::MutexLock l(&mu_);
      submitted_[key] = now;
      if (gate_ <= 1) {
        released_[key] = now;
        return inner_->Submit(std::move(request), std::move(wrapped));
      }
      held_.push_back({std::move(request), std::move(wrapped), key});
      if (static_cast<int>(held_.size()) < gate_) return absl::OkStatus();
      release.swap(held_);
      const absl::Time t = absl::Now();
      for (const Held& h : release) released_[h.key] = t;
    }
    for (Held& h : release) {
      absl::Status st = inner_->Submit(std::move(h.request), std::move(h.sink));
      if (!st.ok()) {
        std::fprintf(stderr, "gated submit: %s\n", std::string(st.message()).c_str());
        std::abort();
      }
    }
    return absl::OkStatus();
  }
  void Abort(std::string_view id) override { inner_->Abort(id); }
  std::vector<eng::EngineStats> GetStats() const override { return inner_->GetStats(); }

  // Moves the probe's stamps of `key` into `s`.
  void Fill(const std::string& key, Sample* s) {
    absl::MutexLock l(&mu_);
    s->submitted = submitted_[key];
    s->released = released_[key];
    s->engine_first = first_[key];
    submitted_.erase(key);
    released_.erase(key);
    first_.erase(key);
  }

 private:
  class FirstTokenSink final : public eng::OutputSinkInterface {
   public:
    FirstTokenSink(TimedEngine* e, std::string key, std::shared_ptr<eng::OutputSinkInterface> in)
        : e_(e), key_(std::move(key)), in_(std::move(in)) {}
    void OnPromptLogprobs(const std::vector<eng::PositionLogprobs>& l) override {
      in_->OnPromptLogprobs(l);
    }
    void OnDelta(const eng::OutputDelta& d) override {
      if (!seen_) {
        seen_ = true;
        const absl::Time now = absl::Now();
        absl::MutexLock l(&e_->mu_);
        e_->first_[key_] = now;
      }
      in_->OnDelta(d);
    }
    void OnFinish(const eng::FinalOutput& f) override { in_->OnFinish(f); }

   private:
    TimedEngine* e_;
    std::string key_;
    std::shared_ptr<eng::OutputSinkInterface> in_;
    bool seen_ = false;  // engine thread only
  };

  struct Held {
    eng::GenerateRequest request;
    std::shared_ptr<eng::OutputSinkInterface> sink;
    std::string key;
  };

  eng::Engine* inner_;
  absl::Mutex mu_;
  int gate_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<Held> held_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, absl::Time> submitted_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, absl::Time> released_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, absl::Time> first_ ABSL_GUARDED_BY(mu_);
};

struct Round {
  std::vector<Sample> samples;
  double wall_s = 0;
};

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

double Ms(absl::Duration d) { return absl::ToDoubleMilliseconds(d); }

// CLOCK_MONOTONIC microseconds of `t` (perf's clock with -k mono).
int64_t MonoMicros(absl::Time t) {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  const absl::Time now = absl::Now();
  return absl::ToInt64Microseconds(t - now) + ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

// One JSON line per request of a round (--trace 1), stamps relative to its
// release to the engine.
void PrintTrace(const std::string& path, int round, const Round& r) {
  for (size_t i = 0; i < r.samples.size(); ++i) {
    const Sample& s = r.samples[i];
    const nlohmann::json j = {{"trace", path},
                              {"round", round},
                              {"request", i},
                              {"start_ms", Ms(s.start - s.released)},
                              {"submitted_ms", Ms(s.submitted - s.released)},
                              {"engine_first_ms", Ms(s.engine_first - s.released)},
                              {"client_first_ms", Ms(s.client_first - s.released)},
                              {"released_mono_us", MonoMicros(s.released)}};
    std::printf("%s\n", j.dump().c_str());
  }
}

// Earliest / latest of a stamp over a round's samples.
template <class F>
std::pair<absl::Time, absl::Time> Span(const Round& r, F stamp) {
  absl::Time lo = absl::InfiniteFuture(), hi = absl::InfinitePast();
  for (const Sample& s : r.samples) {
    lo = std::min(lo, stamp(s));
    hi = std::max(hi, stamp(s));
  }
  return {lo, hi};
}

// Whether a round's first tokens came from more than one engine step.
bool Split(const nlohmann::json& summary) {
  return summary["emit_spread_ms"].get<double>() > summary["prefill_ms"].get<double>() / 4;
}

nlohmann::json Summarise(const std::string& path, const Round& r) {
  std::vector<double> ttft, ttft_excl_prefill, itl, pre, engine_ttft, delivery;
  int tokens = 0;
  absl::Time first_submit = absl::InfiniteFuture(), last_submit = absl::InfinitePast();
  const auto emit = Span(r, [](const Sample& s) { return s.engine_first; });
  const auto recv = Span(r, [](const Sample& s) { return s.client_first; });
  // The round's first engine step: the last hand-off to the engine to its
  // first token (one prefill step for all streams when gated).
  const absl::Duration prefill =
      emit.first - Span(r, [](const Sample& s) { return s.released; }).second;
  for (const Sample& s : r.samples) {
    ttft.push_back(Ms(s.client_first - s.start));
    ttft_excl_prefill.push_back(Ms(s.client_first - s.start - prefill));
    pre.push_back(Ms(s.submitted - s.start));
    engine_ttft.push_back(Ms(s.engine_first - s.submitted));
    delivery.push_back(Ms(s.client_first - s.engine_first));
    for (double g : s.itl_s) itl.push_back(g * 1e3);
    tokens += s.tokens;
    first_submit = std::min(first_submit, s.submitted);
    last_submit = std::max(last_submit, s.submitted);
  }
  return {{"path", path},
          {"streams", r.samples.size()},
          {"tokens", tokens},
          {"wall_s", r.wall_s},
          {"tokens_per_s", tokens / r.wall_s},
          {"ttft_ms_p50", Percentile(ttft, 0.5)},
          {"ttft_ms_p99", Percentile(ttft, 0.99)},
          {"prefill_ms", Ms(prefill)},
          {"ttft_excl_prefill_ms_p50", Percentile(ttft_excl_prefill, 0.5)},
          // The split of TTFT (p50 of each part).
          {"to_engine_ms_p50", Percentile(pre, 0.5)},
          {"engine_ttft_ms_p50", Percentile(engine_ttft, 0.5)},
          {"delivery_ms_p50", Percentile(delivery, 0.5)},
          {"submit_spread_ms", Ms(last_submit - first_submit)},
          {"emit_spread_ms", Ms(emit.second - emit.first)},
          {"recv_spread_ms", Ms(recv.second - recv.first)},
          {"itl_ms_p50", Percentile(itl, 0.5)},
          {"itl_ms_p99", Percentile(itl, 0.99)}};
}

std::vector<int32_t> Prompt(int i, int n) {
  std::vector<int32_t> p;
  for (int k = 0; k < n; ++k) p.push_back(1 + (i * 131 + k * 17) % 200);
  return p;
}

void OnTokens(Sample& s, int n, absl::Time now) {
  if (s.tokens == 0) {
    s.client_first = now;
  } else {
    s.itl_s.push_back(absl::ToDoubleSeconds(now - s.last) / n);
  }
  s.last = now;
  s.tokens += n;
}

// (i) Direct: sinks timestamp each delta on the engine thread.
Round Direct(TimedEngine& probe, eng::Engine& engine, int streams, int prompt_tokens,
             int max_tokens, int round) {
  struct Sink : eng::OutputSinkInterface {
    Sample s;
    void OnDelta(const eng::OutputDelta& d) override {
      OnTokens(s, static_cast<int>(d.token_ids.size()), absl::Now());
    }
    void OnFinish(const eng::FinalOutput&) override {}
  };
  std::vector<std::shared_ptr<Sink>> sinks;
  const absl::Time t0 = absl::Now();
  for (int i = 0; i < streams; ++i) {
    auto sink = std::make_shared<Sink>();
    eng::GenerateRequest req;
    req.request_id = absl::StrCat("d", round, "/", i);
    req.model = engine.model_name();
    req.prompt_token_ids = Prompt(i + round * streams, prompt_tokens);
    req.sampling.temperature = 0;
    req.sampling.max_tokens = max_tokens;
    req.sampling.ignore_eos = true;
    sink->s.start = absl::Now();
    absl::Status st = probe.Submit(req, sink);
    if (!st.ok()) {
      std::fprintf(stderr, "submit: %s\n", std::string(st.message()).c_str());
      std::abort();
    }
    sinks.push_back(sink);
  }
  engine.WaitIdle();
  Round r;
  r.wall_s = absl::ToDoubleSeconds(absl::Now() - t0);
  for (int i = 0; i < streams; ++i) {
    probe.Fill(std::to_string(i), &sinks[i]->s);
    r.samples.push_back(sinks[i]->s);
  }
  return r;
}

pb::GenerateRequest GrpcRequest(int i, int round, int streams, int prompt_tokens,
                                int max_tokens) {
  pb::GenerateRequest req;
  req.set_model("bench");
  req.set_request_id(std::to_string(i));
  const std::vector<int32_t> p = Prompt(i + round * streams, prompt_tokens);
  req.mutable_token_ids()->mutable_ids()->Add(p.begin(), p.end());
  req.mutable_sampling()->set_temperature(0);
  req.mutable_sampling()->set_max_tokens(max_tokens);
  req.mutable_sampling()->set_ignore_eos(true);
  return req;
}

// (ii-a) Through gRPC with the callback API: every stream started from this
// one thread; timestamps on receipt (gRPC's callback threads).
class StreamClient final : public grpc::ClientReadReactor<pb::GenerateStreamResponse> {
 public:
  StreamClient(pb::Inference::Stub& stub, pb::GenerateRequest req, Sample* s,
               absl::BlockingCounter* done)
      : req_(std::move(req)), s_(s), done_(done) {
    stub.async()->GenerateStream(&ctx_, &req_, this);
  }
  void Start() {
    s_->start = absl::Now();
    StartRead(&msg_);
    StartCall();
  }
  void OnReadDone(bool ok) override {
    if (!ok) return;  // OnDone follows
    int n = 0;
    for (const auto& d : msg_.deltas()) n += d.token_ids_size();
    if (n > 0) OnTokens(*s_, n, absl::Now());
    StartRead(&msg_);
  }
  void OnDone(const grpc::Status& st) override {
    if (!st.ok()) {
      std::fprintf(stderr, "GenerateStream: %s\n", st.error_message().c_str());
      std::abort();
    }
    done_->DecrementCount();
  }

 private:
  grpc::ClientContext ctx_;
  pb::GenerateRequest req_;
  pb::GenerateStreamResponse msg_;
  Sample* s_;
  absl::BlockingCounter* done_;
};

Round GrpcAsync(pb::Inference::Stub& stub, TimedEngine& probe, int streams, int prompt_tokens,
                int max_tokens, int round) {
  Round r;
  r.samples.resize(streams);
  absl::BlockingCounter done(streams);
  std::vector<std::unique_ptr<StreamClient>> clients;
  for (int i = 0; i < streams; ++i) {
    clients.push_back(std::make_unique<StreamClient>(
        stub, GrpcRequest(i, round, streams, prompt_tokens, max_tokens), &r.samples[i], &done));
  }
  const absl::Time t0 = absl::Now();
  for (auto& c : clients) c->Start();
  done.Wait();
  r.wall_s = absl::ToDoubleSeconds(absl::Now() - t0);
  for (int i = 0; i < streams; ++i) probe.Fill(std::to_string(i), &r.samples[i]);
  return r;
}

// (ii-b) Through gRPC, one blocking client thread per stream.
Round GrpcThreads(pb::Inference::Stub& stub, TimedEngine& probe, int streams,
                  int prompt_tokens, int max_tokens, int round) {
  Round r;
  r.samples.resize(streams);
  std::vector<std::thread> threads;
  const absl::Time t0 = absl::Now();
  for (int i = 0; i < streams; ++i) {
    threads.emplace_back([&, i] {
      const pb::GenerateRequest req = GrpcRequest(i, round, streams, prompt_tokens, max_tokens);
      grpc::ClientContext ctx;
      Sample& s = r.samples[i];
      s.start = absl::Now();
      auto reader = stub.GenerateStream(&ctx, req);
      pb::GenerateStreamResponse msg;
      while (reader->Read(&msg)) {
        int n = 0;
        for (const auto& d : msg.deltas()) n += d.token_ids_size();
        if (n > 0) OnTokens(s, n, absl::Now());
      }
      grpc::Status st = reader->Finish();
      if (!st.ok()) {
        std::fprintf(stderr, "GenerateStream: %s\n", st.error_message().c_str());
        std::abort();
      }
    });
  }
  for (auto& t : threads) t.join();
  r.wall_s = absl::ToDoubleSeconds(absl::Now() - t0);
  for (int i = 0; i < streams; ++i) probe.Fill(std::to_string(i), &r.samples[i]);
  return r;
}

int Flag(int argc, char** argv, const std::string& name, int def) {
  for (int i = 1; i + 1 < argc; ++i) {
    int v;
    if (name == argv[i] && absl::SimpleAtoi(argv[i + 1], &v)) return v;
  }
  return def;
}

std::string StringFlag(int argc, char** argv, const std::string& name, std::string def) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (name == argv[i]) return argv[i + 1];
  }
  return def;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string model_dir = StringFlag(argc, argv, "--model", "");
  const std::string client = StringFlag(argc, argv, "--client", "async");
  if (model_dir.empty() || (client != "async" && client != "threads")) {
    std::fprintf(stderr,
                 "usage: expertserve-bench-serve --model DIR [--streams 16] [--max-tokens 64] "
                 "[--prompt-tokens 32] [--rounds 3] [--client async|threads] "
                 "[--gate 1|0] [--engine-threads N (0 = all cores)]\n");
    return 2;
  }
  const int streams = Flag(argc, argv, "--streams", 16);
  const int max_tokens = Flag(argc, argv, "--max-tokens", 64);
  const int prompt_tokens = Flag(argc, argv, "--prompt-tokens", 32);
  const int rounds = Flag(argc, argv, "--rounds", 3);

  auto model = eng::Transformer::Load(model_dir);
  if (!model.ok()) {
    std::fprintf(stderr, "%s\n", std::string(model.status().message()).c_str());
    return 1;
  }
  eng::TransformerRunnerOptions ro;
  ro.kv_budget_bytes = size_t{256} << 20;
  ro.num_threads = static_cast<size_t>(Flag(argc, argv, "--engine-threads", 0));
  auto runner = eng::TransformerRunner::Create(*std::move(model), ro);
  if (!runner.ok()) return 1;
  eng::EngineOptions eo;
  eo.model_name = "bench";
  eo.max_num_seqs = std::max(streams, 1);
  // Both paths get the same prompts in a round, so no prefix cache: each
  // does the same prefill work.
  eo.enable_prefix_caching = false;
  eng::Engine engine(eo, *std::move(runner), nullptr);
  TimedEngine probe(&engine);
  const bool gate = Flag(argc, argv, "--gate", 1) != 0;
  const bool trace = Flag(argc, argv, "--trace", 0) != 0;

  es::ModelCatalog catalog;
  es::ServedModel served;
  served.name = "bench";
  served.engine = &probe;
  served.max_context_tokens = engine.max_model_len();
  catalog.AddModel(served);
  es::ServerOptions so;
  so.listen = {"127.0.0.1:0"};
  so.log_format = es::RequestLogFormat::kNone;
  so.limits.max_tokens = 1 << 20;
  so.limits.max_prompt_tokens = 1 << 20;
  auto server = es::Server::Start(so, &catalog, es::Authenticator({}));
  if (!server.ok()) return 1;
  auto stub = pb::Inference::NewStub(
      grpc::CreateChannel((*server)->addresses()[0], grpc::InsecureChannelCredentials()));
  auto grpc_round = [&](int max, int round) {
    Round r = client == "async" ? GrpcAsync(*stub, probe, streams, prompt_tokens, max, round)
                                : GrpcThreads(*stub, probe, streams, prompt_tokens, max, round);
    // The client may hold every final message before the engine loop is
    // idle; the next round (often the direct one) starts from an idle engine.
    engine.WaitIdle();
    return r;
  };

  // Warm-up of both paths.
  Direct(probe, engine, streams, prompt_tokens, 4, 1000);
  grpc_round(4, 1000);
  if (gate) probe.SetGate(streams);

  std::vector<double> tput_ratio, ttft_added, ttft_added_excl_prefill, overhead;
  int split_rounds = 0;
  for (int round = 0; round < rounds; ++round) {
    // Alternate the order so drift does not favour one path.
    Round d, g;
    if (round % 2 == 0) {
      d = Direct(probe, engine, streams, prompt_tokens, max_tokens, round);
      g = grpc_round(max_tokens, round);
    } else {
      g = grpc_round(max_tokens, round);
      d = Direct(probe, engine, streams, prompt_tokens, max_tokens, round);
    }
    nlohmann::json dj = Summarise("direct", d), gj = Summarise("grpc-" + client, g);
    dj["round"] = gj["round"] = round;
    // Gated, every request should get its first token from the round's first
    // step. When the engine loop woke between two of the gate's Submits it
    // started that step with some of them, and the rest paid a second prefill:
    // a round not comparable between the paths (it happens to either).
    const bool split = gate && (Split(dj) || Split(gj));
    dj["split"] = gj["split"] = split;
    std::printf("%s\n%s\n", dj.dump().c_str(), gj.dump().c_str());
    if (trace) {
      PrintTrace("direct", round, d);
      PrintTrace("grpc-" + client, round, g);
    }
    if (split) {
      ++split_rounds;
      continue;
    }
    tput_ratio.push_back(gj["tokens_per_s"].get<double>() / dj["tokens_per_s"].get<double>());
    ttft_added.push_back(gj["ttft_ms_p50"].get<double>() - dj["ttft_ms_p50"].get<double>());
    ttft_added_excl_prefill.push_back(gj["ttft_excl_prefill_ms_p50"].get<double>() -
                                      dj["ttft_excl_prefill_ms_p50"].get<double>());
    for (const Sample& s : g.samples) {
      overhead.push_back(Ms(s.submitted - s.start) + Ms(s.client_first - s.engine_first));
    }
  }
  nlohmann::json summary = {{"benchmark", "serve_overhead"},
                            {"model", model_dir},
                            {"client", client},
                            {"gate", gate},
                            {"streams", streams},
                            {"max_tokens", max_tokens},
                            {"prompt_tokens", prompt_tokens},
                            {"rounds", rounds},
                            // left out of everything below
                            {"split_rounds", split_rounds},
                            {"throughput_ratio_median", Percentile(tput_ratio, 0.5)},
                            {"ttft_added_ms_median", Percentile(ttft_added, 0.5)},
                            {"ttft_added_excl_prefill_ms_median",
                             Percentile(ttft_added_excl_prefill, 0.5)},
                            {"server_overhead_ms_p50", Percentile(overhead, 0.5)},
                            {"server_overhead_ms_p99", Percentile(overhead, 0.99)}};
  std::printf("%s\n", summary.dump().c_str());
  (*server)->Shutdown(absl::Seconds(5));
  return 0;
}
