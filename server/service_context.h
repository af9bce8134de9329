// What every service handler needs, shared by reference. The pointed-to
// objects outlive the gRPC server.
#ifndef EXPERTSERVE_SERVER_SERVICE_CONTEXT_H_
#define EXPERTSERVE_SERVER_SERVICE_CONTEXT_H_

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/strings/string_view.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "engine/engine_interface.h"
#include "grpcpp/server_context.h"
#include "server/admission.h"
#include "server/auth.h"
#include "server/metrics.h"
#include "server/model_catalog.h"
#include "server/proto_convert.h"

namespace expertserve::server {

enum class RequestLogFormat { kNone, kText, kJson };

// Thread-safe (its members are; the struct is immutable after start except
// the atomic counters).
struct ServiceContext {
  ModelCatalog* catalog = nullptr;
  AdmissionController* admission = nullptr;
  const Authenticator* auth = nullptr;
  ServerMetrics* metrics = nullptr;  // may be null
  RequestLimits limits;
  RequestLogFormat log_format = RequestLogFormat::kText;
  std::atomic<uint64_t> next_request = 1;
  // Output bytes held for streams whose client has not read them yet
  // (pending + in-flight messages), summed over all GenerateStream calls.
  std::atomic<int64_t> stream_buffered_bytes = 0;

  // Checks the call's bearer token (metadata "authorization").
  absl::Status Authorize(const grpc::ServerContextBase& ctx, Permission needed) const;
  // A process-unique engine request id (clients' ids may collide).
  std::string NewEngineId(absl::string_view client_id);
  // One line per finished request (never the prompt or the token).
  void LogRequest(absl::string_view request_id, absl::string_view method,
                  const RoutingDecision& target, const engine::FinalOutput& out) const;
  void RecordRejection(const absl::Status& status) const;
};

// The call's deadline as absl::Time (InfiniteFuture when none).
absl::Time CallDeadline(const grpc::ServerContextBase& ctx);

}  // namespace expertserve::server

#endif  // EXPERTSERVE_SERVER_SERVICE_CONTEXT_H_
