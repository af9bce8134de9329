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
// scrape time; per-request series are observed by the services.
#ifndef EXPERTSERVE_SERVER_METRICS_H_
#define EXPERTSERVE_SERVER_METRICS_H_

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
  // `catalog` must outlive this object.
  explicit ServerMetrics(const ModelCatalog* catalog);
  ~ServerMetrics();

  // Serves /metrics on `listen` ("host:port"). kUnavailable if it cannot bind.
  absl::Status StartExposer(const std::string& listen);
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
  class EngineCollector;
  struct Families;

  const ModelCatalog* catalog_;
  std::shared_ptr<prometheus::Registry> registry_;
  std::shared_ptr<EngineCollector> engine_collector_;
  std::unique_ptr<Families> f_;
  std::unique_ptr<prometheus::Exposer> exposer_;
};

}  // namespace expertserve::server

#endif  // EXPERTSERVE_SERVER_METRICS_H_
