// Prometheus metrics (prometheus-cpp), served on their own port.
//
// Names follow vLLM's where the concept matches, with the "expertserve:"
// prefix instead of "vllm:", the same type and the same histogram buckets,
// so dashboards and autoscaling rules carry over by changing the prefix.
// prometheus-cpp 1.0 does not append "_total" to counters, so counter names
// carry it. Labels: model_name (vLLM's) and adapter ("" = base model).
//
// Engine gauges and engine-wide counters (running/waiting, KV usage,
// preemptions, prefix cache) are read from EngineInterface::GetStats at
// scrape time, expert residency and tier traffic from each model's
// ExpertMemoryStats, and the unsent stream backlog from an atomic the
// reactors keep; per-request series are observed by the services.
#ifndef EXPERTSERVE_SERVER_METRICS_H_
#define EXPERTSERVE_SERVER_METRICS_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/strings/string_view.h"
#include "absl/status/status.h"
#include "engine/engine_interface.h"
#include "server/model_catalog.h"

namespace prometheus {
class Exposer;
class Registry;
}  // namespace prometheus

namespace expertserve::server {

// Thread-safe.
class ServerMetrics {
 public:
  // `catalog` (and `stream_buffered_bytes`, may be null) must outlive
  // this object, or at least StopExposer.
  explicit ServerMetrics(const ModelCatalog* catalog,
                         const std::atomic<int64_t>* stream_buffered_bytes = nullptr);
  ~ServerMetrics();

  // Serves /metrics on `listen` ("host:port"). kUnavailable if it cannot bind.
  absl::Status StartExposer(const std::string& listen);
  // Stops serving (before the engines behind the catalog go away).
  void StopExposer();
  // The bound port (useful with port 0), or 0.
  int port() const;

  // One finished request (any outcome).
  void OnRequestFinished(absl::string_view model, absl::string_view adapter,
                         const engine::FinalOutput& output);
  void ObserveInterTokenLatency(absl::string_view model, absl::string_view adapter,
                                double seconds);
  void OnRouted(const RoutingDecision& decision);
  void OnAdapterLoad(absl::string_view model, absl::string_view adapter);
  void OnAdapterUnload(absl::string_view model, absl::string_view adapter);
  // A request refused before reaching the engine, by gRPC status code name.
  void OnRejected(absl::string_view reason);

  // The text exposition of everything (tests; the exposer serves the same).
  std::string Scrape() const;

 private:
  class StateCollector;
  struct Families;

  std::shared_ptr<prometheus::Registry> registry_;
  std::shared_ptr<StateCollector> state_collector_;
  std::unique_ptr<Families> f_;
  std::unique_ptr<prometheus::Exposer> exposer_;
};

}  // namespace expertserve::server

#endif  // EXPERTSERVE_SERVER_METRICS_H_
