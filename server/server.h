// The gRPC server: services, health, reflection, TLS, transport limits,
// admission and graceful shutdown. main.cc builds the models and calls this.
#ifndef EXPERTSERVE_SERVER_SERVER_H_
#define EXPERTSERVE_SERVER_SERVER_H_

#include <memory>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/config/config.h"
#include "server/service_context.h"

namespace grpc {
class Server;
class Service;
}  // namespace grpc

namespace expertserve::server {

struct ServerOptions {
  std::vector<std::string> listen = {"127.0.0.1:50051"};  // host:port (port 0 = any)
  config::GrpcLimits grpc;
  std::optional<config::TlsConfig> tls;
  bool reflection = true;
  RequestLimits limits;
  int64_t admission_capacity = 1088;  // max_num_seqs + max_waiting_requests
  absl::Duration retry_after = absl::Seconds(1);
  RequestLogFormat log_format = RequestLogFormat::kText;
  std::string metrics_listen;  // empty: no metrics endpoint
};

// Extra services (e.g. Admin, KServe) registered next to Inference; they are
// given the server's ServiceContext.
using ServiceFactory =
    std::function<std::unique_ptr<grpc::Service>(ServiceContext* ctx)>;

// Thread-safe.
class Server {
 public:
  // Starts serving. `catalog` and the engines behind it must outlive the
  // server. kUnavailable if a port cannot be bound, kInvalidArgument /
  // kNotFound for bad TLS files.
  static absl::StatusOr<std::unique_ptr<Server>> Start(
      ServerOptions options, ModelCatalog* catalog, Authenticator auth,
      std::vector<ServiceFactory> extra_services = {});
  ~Server();

  // The bound "host:port" per listen address, in order.
  const std::vector<std::string>& addresses() const { return addresses_; }
  int metrics_port() const;
  ServiceContext& context() { return ctx_; }

  // Graceful shutdown: stop admitting (new requests get UNAVAILABLE), report
  // NOT_SERVING on health, let in-flight requests finish for up to `grace`,
  // then cancel the rest (their engine requests are aborted) and stop.
  // Returns the number of requests cancelled at the end of the grace period.
  int64_t Shutdown(absl::Duration grace);

 private:
  Server() = default;

  ServerOptions options_;
  std::unique_ptr<AdmissionController> admission_;
  std::unique_ptr<Authenticator> auth_;
  std::unique_ptr<ServerMetrics> metrics_;
  ServiceContext ctx_;
  std::vector<std::unique_ptr<grpc::Service>> services_;
  std::unique_ptr<grpc::Server> server_;
  std::vector<std::string> addresses_;
  std::vector<std::string> health_names_;
  bool shut_down_ = false;
};

}  // namespace expertserve::server

#endif  // EXPERTSERVE_SERVER_SERVER_H_
