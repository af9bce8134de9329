// expertserve-bench-serve: N concurrent streaming clients, the same greedy
// workload (i) submitted to the engine directly and (ii) through the gRPC
// server on loopback (GenerateStream, one client thread per stream), on the
// SAME engine, alternating rounds so both see the same machine state.
// Prints one JSON object per round and a summary with the ratios:
//   throughput_ratio = grpc tokens/s / direct tokens/s  (goal >= 0.95)
//   ttft_added_ms    = grpc TTFT p50 - direct TTFT p50   (goal <= 1 ms)
//
//   expertserve-bench-serve --model DIR [--streams 16] [--max-tokens 64]
//                           [--prompt-tokens 32] [--rounds 3]
#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
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

struct Sample {
  double ttft_s = 0;
  std::vector<double> itl_s;
  int tokens = 0;
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

nlohmann::json Summarise(const std::string& path, const Round& r) {
  std::vector<double> ttft, itl;
  int tokens = 0;
  for (const Sample& s : r.samples) {
    ttft.push_back(s.ttft_s * 1e3);
    for (double g : s.itl_s) itl.push_back(g * 1e3);
    tokens += s.tokens;
  }
  return {{"path", path},
          {"streams", r.samples.size()},
          {"tokens", tokens},
          {"wall_s", r.wall_s},
          {"tokens_per_s", tokens / r.wall_s},
          {"ttft_ms_p50", Percentile(ttft, 0.5)},
          {"ttft_ms_p99", Percentile(ttft, 0.99)},
          {"itl_ms_p50", Percentile(itl, 0.5)},
          {"itl_ms_p99", Percentile(itl, 0.99)}};
}

std::vector<int32_t> Prompt(int i, int n) {
  std::vector<int32_t> p;
  for (int k = 0; k < n; ++k) p.push_back(1 + (i * 131 + k * 17) % 200);
  return p;
}

// (i) Direct: sinks timestamp each delta on the engine thread.
Round Direct(eng::Engine& engine, int streams, int prompt_tokens, int max_tokens, int round) {
  struct Sink : eng::OutputSinkInterface {
    absl::Time start, last;
    Sample s;
    void OnDelta(const eng::OutputDelta& d) override {
      const absl::Time now = absl::Now();
      if (s.tokens == 0) {
        s.ttft_s = absl::ToDoubleSeconds(now - start);
      } else {
        s.itl_s.push_back(absl::ToDoubleSeconds(now - last) / d.token_ids.size());
      }
      last = now;
      s.tokens += static_cast<int>(d.token_ids.size());
    }
    void OnFinish(const eng::FinalOutput&) override {}
  };
  std::vector<std::shared_ptr<Sink>> sinks;
  const absl::Time t0 = absl::Now();
  for (int i = 0; i < streams; ++i) {
    auto sink = std::make_shared<Sink>();
    eng::GenerateRequest req;
    req.request_id = absl::StrCat("d", round, "-", i);
    req.model = engine.model_name();
    req.prompt_token_ids = Prompt(i + round * streams, prompt_tokens);
    req.sampling.temperature = 0;
    req.sampling.max_tokens = max_tokens;
    req.sampling.ignore_eos = true;
    sink->start = absl::Now();
    absl::Status st = engine.Submit(req, sink);
    if (!st.ok()) {
      std::fprintf(stderr, "submit: %s\n", std::string(st.message()).c_str());
      std::abort();
    }
    sinks.push_back(sink);
  }
  engine.WaitIdle();
  Round r;
  r.wall_s = absl::ToDoubleSeconds(absl::Now() - t0);
  for (auto& s : sinks) r.samples.push_back(s->s);
  return r;
}

// (ii) Through gRPC: one client thread per stream, timestamps on receipt.
Round Grpc(pb::Inference::Stub& stub, const std::string& model, int streams,
           int prompt_tokens, int max_tokens, int round) {
  Round r;
  r.samples.resize(streams);
  std::vector<std::thread> threads;
  const absl::Time t0 = absl::Now();
  for (int i = 0; i < streams; ++i) {
    threads.emplace_back([&, i] {
      pb::GenerateRequest req;
      req.set_model(model);
      const std::vector<int32_t> p = Prompt(i + round * streams, prompt_tokens);
      req.mutable_token_ids()->mutable_ids()->Add(p.begin(), p.end());
      req.mutable_sampling()->set_temperature(0);
      req.mutable_sampling()->set_max_tokens(max_tokens);
      req.mutable_sampling()->set_ignore_eos(true);
      grpc::ClientContext ctx;
      Sample& s = r.samples[i];
      const absl::Time start = absl::Now();
      absl::Time last = start;
      auto reader = stub.GenerateStream(&ctx, req);
      pb::GenerateStreamResponse msg;
      while (reader->Read(&msg)) {
        int n = 0;
        for (const auto& d : msg.deltas()) n += d.token_ids_size();
        if (n == 0) continue;
        const absl::Time now = absl::Now();
        if (s.tokens == 0) {
          s.ttft_s = absl::ToDoubleSeconds(now - start);
        } else {
          s.itl_s.push_back(absl::ToDoubleSeconds(now - last) / n);
        }
        last = now;
        s.tokens += n;
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
  return r;
}

int Flag(int argc, char** argv, const std::string& name, int def) {
  for (int i = 1; i + 1 < argc; ++i) {
    int v;
    if (name == argv[i] && absl::SimpleAtoi(argv[i + 1], &v)) return v;
  }
  return def;
}

}  // namespace

int main(int argc, char** argv) {
  std::string model_dir;
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::string(argv[i]) == "--model") model_dir = argv[i + 1];
  }
  if (model_dir.empty()) {
    std::fprintf(stderr,
                 "usage: expertserve-bench-serve --model DIR [--streams 16] [--max-tokens 64] "
                 "[--prompt-tokens 32] [--rounds 3]\n");
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
  auto runner = eng::TransformerRunner::Create(*std::move(model), ro);
  if (!runner.ok()) return 1;
  eng::EngineOptions eo;
  eo.model_name = "bench";
  eo.max_num_seqs = std::max(streams, 1);
  eng::Engine engine(eo, *std::move(runner), nullptr);

  es::ModelCatalog catalog;
  es::ServedModel served;
  served.name = "bench";
  served.engine = &engine;
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

  // Warm-up of both paths.
  Direct(engine, streams, prompt_tokens, 4, 1000);
  Grpc(*stub, "bench", streams, prompt_tokens, 4, 1001);

  std::vector<double> tput_ratio, ttft_added;
  for (int round = 0; round < rounds; ++round) {
    // Alternate the order so drift does not favour one path.
    Round d, g;
    if (round % 2 == 0) {
      d = Direct(engine, streams, prompt_tokens, max_tokens, 2 * round);
      g = Grpc(*stub, "bench", streams, prompt_tokens, max_tokens, 2 * round + 1);
    } else {
      g = Grpc(*stub, "bench", streams, prompt_tokens, max_tokens, 2 * round + 1);
      d = Direct(engine, streams, prompt_tokens, max_tokens, 2 * round);
    }
    nlohmann::json dj = Summarise("direct", d), gj = Summarise("grpc", g);
    dj["round"] = gj["round"] = round;
    std::printf("%s\n%s\n", dj.dump().c_str(), gj.dump().c_str());
    tput_ratio.push_back(gj["tokens_per_s"].get<double>() / dj["tokens_per_s"].get<double>());
    ttft_added.push_back(gj["ttft_ms_p50"].get<double>() - dj["ttft_ms_p50"].get<double>());
  }
  nlohmann::json summary = {{"benchmark", "serve_overhead"},
                            {"model", model_dir},
                            {"streams", streams},
                            {"max_tokens", max_tokens},
                            {"prompt_tokens", prompt_tokens},
                            {"rounds", rounds},
                            {"throughput_ratio_median", Percentile(tput_ratio, 0.5)},
                            {"ttft_added_ms_median", Percentile(ttft_added, 0.5)}};
  std::printf("%s\n", summary.dump().c_str());
  (*server)->Shutdown(absl::Seconds(5));
  return 0;
}
