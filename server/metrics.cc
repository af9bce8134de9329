#include "server/metrics.h"

#include <prometheus/collectable.h>
#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <exception>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"

namespace expertserve::server {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

// vLLM v1 (vllm/v1/metrics/loggers.py) buckets.
const prometheus::Histogram::BucketBoundaries kTtftBuckets = {
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75,
    1.0,   2.5,   5.0,  7.5,  10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0};
const prometheus::Histogram::BucketBoundaries kItlBuckets = {
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2,  0.3,  0.4, 0.5,
    0.75, 1.0,   2.5,  5.0,   7.5, 10.0, 20.0, 40.0, 80.0};
const prometheus::Histogram::BucketBoundaries kRequestLatencyBuckets = {
    0.3,  0.5,  0.8,  1.0,  1.5,  2.0,   2.5,   5.0,   10.0,   15.0,  20.0,
    30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0};

ClientMetric Labelled(const std::string& model, double value, bool counter) {
  ClientMetric m;
  m.label.push_back({"model_name", model});
  if (counter) {
    m.counter.value = value;
  } else {
    m.gauge.value = value;
  }
  return m;
}

}  // namespace

// Reads engine stats, expert memory and the stream backlog at scrape time.
class ServerMetrics::StateCollector final : public prometheus::Collectable {
 public:
  StateCollector(const ModelCatalog* catalog, const std::atomic<int64_t>* stream_buffered_bytes)
      : catalog_(catalog), stream_buffered_bytes_(stream_buffered_bytes) {}

  std::vector<MetricFamily> Collect() const override {
    MetricFamily running{"expertserve:num_requests_running",
                         "Number of requests in model execution batches.",
                         MetricType::Gauge, {}};
    MetricFamily waiting{"expertserve:num_requests_waiting",
                         "Number of requests waiting to be processed.",
                         MetricType::Gauge, {}};
    MetricFamily kv{"expertserve:kv_cache_usage_perc",
                    "KV-cache usage. 1 means 100 percent usage.", MetricType::Gauge, {}};
    MetricFamily preempt{"expertserve:num_preemptions_total",
                         "Cumulative number of preemptions from the engine.",
                         MetricType::Counter, {}};
    MetricFamily pq{"expertserve:prefix_cache_queries_total",
                    "Prefix cache queries, in terms of number of queried tokens.",
                    MetricType::Counter, {}};
    MetricFamily ph{"expertserve:prefix_cache_hits_total",
                    "Prefix cache hits, in terms of number of cached tokens.",
                    MetricType::Counter, {}};
    MetricFamily slots_run{"expertserve:routed_expert_slots_total",
                           "Routed expert slots the forward passes ran, once per MoE "
                           "layer and step however many tokens chose one.",
                           MetricType::Counter, {}};
    MetricFamily bytes_run{"expertserve:expert_weight_bytes_read_total",
                           "Weight bytes of the routed and shared experts the forward "
                           "passes ran: what a memory-bound MoE step reads. Mixing ESFT "
                           "adapters in a batch raises it per token.",
                           MetricType::Counter, {}};
    MetricFamily resident{"expertserve:expert_resident_bytes",
                          "Expert weight bytes mapped per memory tier (base and adapter "
                          "expert slots).",
                          MetricType::Gauge, {}};
    MetricFamily moved{"expertserve:expert_bytes_moved_total",
                       "Expert weight bytes copied between memory tiers "
                       "(storage = the checkpoint files).",
                       MetricType::Counter, {}};
    MetricFamily slots_used{"expertserve:adapter_slots_used",
                            "ESFT adapter expert slots in use, over all MoE layers.",
                            MetricType::Gauge, {}};
    MetricFamily slots_total{"expertserve:adapter_slots_capacity",
                             "ESFT adapter expert slots reserved, over all MoE layers.",
                             MetricType::Gauge, {}};
    MetricFamily buffered{"expertserve:stream_buffered_bytes",
                          "Output bytes held for streaming clients that have not read them "
                          "yet (bounded per stream by limits.max_stream_buffer_bytes).",
                          MetricType::Gauge, {}};
    for (const ServedModel* m : catalog_->models()) {
      for (const engine::EngineStats& s : m->engine->GetStats()) {
        const std::string& name = s.model.empty() ? m->name : s.model;
        running.metric.push_back(Labelled(name, static_cast<double>(s.num_running), false));
        waiting.metric.push_back(Labelled(name, static_cast<double>(s.num_waiting), false));
        kv.metric.push_back(Labelled(name, s.kv_usage, false));
        preempt.metric.push_back(
            Labelled(name, static_cast<double>(s.num_preemptions), true));
        pq.metric.push_back(
            Labelled(name, static_cast<double>(s.prefix_cache_queries), true));
        ph.metric.push_back(Labelled(name, static_cast<double>(s.prefix_cache_hits), true));
        slots_run.metric.push_back(
            Labelled(name, static_cast<double>(s.routed_expert_slots), true));
        bytes_run.metric.push_back(
            Labelled(name, static_cast<double>(s.expert_weight_bytes), true));
      }
      if (m->expert_memory) {
        const ExpertMemoryStats e = m->expert_memory();
        for (const ExpertMemoryStats::Tier& t : e.tiers) {
          ClientMetric c = Labelled(m->name, static_cast<double>(t.resident_bytes), false);
          c.label.push_back({"tier", t.tier});
          resident.metric.push_back(std::move(c));
        }
        for (const ExpertMemoryStats::Move& mv : e.moves) {
          ClientMetric c = Labelled(m->name, static_cast<double>(mv.bytes), true);
          c.label.push_back({"from_tier", mv.from_tier});
          c.label.push_back({"to_tier", mv.to_tier});
          moved.metric.push_back(std::move(c));
        }
        slots_used.metric.push_back(
            Labelled(m->name, static_cast<double>(e.adapter_slots_used), false));
        slots_total.metric.push_back(
            Labelled(m->name, static_cast<double>(e.adapter_slots_total), false));
      }
    }
    ClientMetric b;
    b.gauge.value = stream_buffered_bytes_ == nullptr
                        ? 0.0
                        : static_cast<double>(stream_buffered_bytes_->load());
    buffered.metric.push_back(b);
    return {running, waiting,   kv,    preempt,    pq,          ph,      slots_run,
            bytes_run, resident, moved, slots_used, slots_total, buffered};
  }

 private:
  const ModelCatalog* catalog_;
  const std::atomic<int64_t>* stream_buffered_bytes_;
};

struct ServerMetrics::Families {
  prometheus::Family<prometheus::Histogram>* ttft;
  prometheus::Family<prometheus::Histogram>* itl;
  prometheus::Family<prometheus::Histogram>* e2e;
  prometheus::Family<prometheus::Histogram>* queue;
  prometheus::Family<prometheus::Counter>* prompt_tokens;
  prometheus::Family<prometheus::Counter>* generation_tokens;
  prometheus::Family<prometheus::Counter>* success;
  prometheus::Family<prometheus::Counter>* failed;
  prometheus::Family<prometheus::Counter>* rejected;
  prometheus::Family<prometheus::Counter>* routed;
  prometheus::Family<prometheus::Counter>* adapter_loads;
  prometheus::Family<prometheus::Counter>* adapter_unloads;
};

ServerMetrics::ServerMetrics(const ModelCatalog* catalog,
                             const std::atomic<int64_t>* stream_buffered_bytes)
    : registry_(std::make_shared<prometheus::Registry>()),
      state_collector_(std::make_shared<StateCollector>(catalog, stream_buffered_bytes)),
      f_(std::make_unique<Families>()) {
  auto& r = *registry_;
  f_->ttft = &prometheus::BuildHistogram()
                  .Name("expertserve:time_to_first_token_seconds")
                  .Help("Histogram of time to first token in seconds.")
                  .Register(r);
  f_->itl = &prometheus::BuildHistogram()
                 .Name("expertserve:inter_token_latency_seconds")
                 .Help("Histogram of inter-token latency in seconds.")
                 .Register(r);
  f_->e2e = &prometheus::BuildHistogram()
                 .Name("expertserve:e2e_request_latency_seconds")
                 .Help("Histogram of e2e request latency in seconds.")
                 .Register(r);
  f_->queue = &prometheus::BuildHistogram()
                   .Name("expertserve:request_queue_time_seconds")
                   .Help("Histogram of time spent in WAITING phase for request.")
                   .Register(r);
  f_->prompt_tokens = &prometheus::BuildCounter()
                           .Name("expertserve:prompt_tokens_total")
                           .Help("Number of prefill tokens processed.")
                           .Register(r);
  f_->generation_tokens = &prometheus::BuildCounter()
                               .Name("expertserve:generation_tokens_total")
                               .Help("Number of generation tokens processed.")
                               .Register(r);
  f_->success = &prometheus::BuildCounter()
                     .Name("expertserve:request_success_total")
                     .Help("Count of successfully processed requests.")
                     .Register(r);
  f_->failed = &prometheus::BuildCounter()
                    .Name("expertserve:request_failure_total")
                    .Help("Requests that reached the engine and ended with an "
                          "error status, by gRPC code name.")
                    .Register(r);
  f_->rejected = &prometheus::BuildCounter()
                      .Name("expertserve:request_rejected_total")
                      .Help("Requests refused before reaching the engine "
                            "(admission, auth, validation), by reason.")
                      .Register(r);
  f_->routed = &prometheus::BuildCounter()
                    .Name("expertserve:router_decisions_total")
                    .Help("Routing decisions by category and target.")
                    .Register(r);
  f_->adapter_loads = &prometheus::BuildCounter()
                           .Name("expertserve:adapter_loads_total")
                           .Help("ESFT adapter loads.")
                           .Register(r);
  f_->adapter_unloads = &prometheus::BuildCounter()
                             .Name("expertserve:adapter_unloads_total")
                             .Help("ESFT adapter unloads.")
                             .Register(r);
}

ServerMetrics::~ServerMetrics() = default;

absl::Status ServerMetrics::StartExposer(const std::string& listen) {
  // prometheus-cpp (CivetWeb) throws when it cannot bind: contain it here.
  try {
    exposer_ = std::make_unique<prometheus::Exposer>(listen, /*num_threads=*/1);
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat("metrics: cannot listen on ", listen,
                                               ": ", e.what()));
  }
  exposer_->RegisterCollectable(registry_);
  exposer_->RegisterCollectable(state_collector_);
  return absl::OkStatus();
}

void ServerMetrics::StopExposer() { exposer_.reset(); }

int ServerMetrics::port() const {
  if (exposer_ == nullptr) return 0;
  std::vector<int> ports = exposer_->GetListeningPorts();
  return ports.empty() ? 0 : ports.front();
}

void ServerMetrics::OnRequestFinished(absl::string_view model, absl::string_view adapter,
                                      const engine::FinalOutput& output) {
  const prometheus::Labels labels = {{"model_name", std::string(model)},
                                     {"adapter", std::string(adapter)}};
  f_->prompt_tokens->Add(labels).Increment(output.usage.prompt_tokens);
  f_->generation_tokens->Add(labels).Increment(output.usage.completion_tokens);
  if (output.status.ok()) {
    // Per sample, like vLLM's per-sequence finished_reason.
    for (const engine::SampleResult& s : output.samples) {
      prometheus::Labels l = labels;
      l["finished_reason"] = engine::FinishReasonName(s.finish_reason);
      f_->success->Add(l).Increment();
    }
    f_->ttft->Add(labels, kTtftBuckets)
        .Observe(absl::ToDoubleSeconds(output.timings.time_to_first_token));
    f_->queue->Add(labels, kRequestLatencyBuckets)
        .Observe(absl::ToDoubleSeconds(output.timings.queue_time));
  } else {
    prometheus::Labels l = labels;
    l["code"] = std::string(absl::StatusCodeToString(output.status.code()));
    f_->failed->Add(l).Increment();
  }
  f_->e2e->Add(labels, kRequestLatencyBuckets)
      .Observe(absl::ToDoubleSeconds(output.timings.total));
}

void ServerMetrics::ObserveInterTokenLatency(absl::string_view model,
                                             absl::string_view adapter, double seconds) {
  f_->itl
      ->Add({{"model_name", std::string(model)}, {"adapter", std::string(adapter)}},
            kItlBuckets)
      .Observe(seconds);
}

void ServerMetrics::OnRouted(const RoutingDecision& d) {
  f_->routed
      ->Add({{"category", d.category},
             {"model_name", d.model},
             {"adapter", d.adapter},
             {"explicit", d.explicit_target ? "true" : "false"}})
      .Increment();
}

void ServerMetrics::OnAdapterLoad(absl::string_view model, absl::string_view adapter) {
  f_->adapter_loads
      ->Add({{"model_name", std::string(model)}, {"adapter", std::string(adapter)}})
      .Increment();
}

void ServerMetrics::OnAdapterUnload(absl::string_view model, absl::string_view adapter) {
  f_->adapter_unloads
      ->Add({{"model_name", std::string(model)}, {"adapter", std::string(adapter)}})
      .Increment();
}

void ServerMetrics::OnRejected(absl::string_view reason) {
  f_->rejected->Add({{"reason", std::string(reason)}}).Increment();
}

std::string ServerMetrics::Scrape() const {
  std::vector<MetricFamily> families = registry_->Collect();
  std::vector<MetricFamily> state = state_collector_->Collect();
  families.insert(families.end(), state.begin(), state.end());
  return prometheus::TextSerializer().Serialize(families);
}

}  // namespace expertserve::server
