// expertserve.v1.Admin: adapter lifecycle and model status, authorised by
// the "admin" permission. Adapter work goes through AdapterManagerInterface
// (ModelHost implements it over the ESFT adapter registry), so the service
// itself needs no engine internals.
#ifndef EXPERTSERVE_SERVER_ADMIN_SERVICE_H_
#define EXPERTSERVE_SERVER_ADMIN_SERVICE_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "expertserve/v1/admin.grpc.pb.h"
#include "server/service_context.h"

namespace expertserve::server {

struct AdapterLoadResult {
  std::string name;
  std::string base_model;
  int routed_experts_replaced = 0;
  uint64_t bytes_copied = 0;
  std::vector<std::string> warnings;
};

// Thread-safe.
class AdapterManagerInterface {
 public:
  virtual ~AdapterManagerInterface() = default;
  // `path` must resolve inside the configured adapter_roots
  // (kPermissionDenied otherwise). kNotFound for an unknown or non-MoE base.
  virtual absl::StatusOr<AdapterLoadResult> LoadAdapter(absl::string_view name,
                                                        absl::string_view path,
                                                        absl::string_view base_model) = 0;
  virtual absl::Status UnloadAdapter(absl::string_view name) = 0;
};

// Thread-safe. Load/Unload block while the registry copies or waits for
// running requests; that work runs on gRPC's callback thread (an admin
// operation, rare, bounded by the adapter size and the unload timeout).
class AdminService final : public pb::Admin::CallbackService {
 public:
  // `adapters` may be null: the adapter RPCs then return UNIMPLEMENTED.
  AdminService(ServiceContext* ctx, AdapterManagerInterface* adapters)
      : ctx_(ctx), adapters_(adapters) {}

  grpc::ServerUnaryReactor* LoadAdapter(grpc::CallbackServerContext* call,
                                        const pb::LoadAdapterRequest* request,
                                        pb::LoadAdapterResponse* response) override;
  grpc::ServerUnaryReactor* UnloadAdapter(grpc::CallbackServerContext* call,
                                          const pb::UnloadAdapterRequest* request,
                                          pb::UnloadAdapterResponse* response) override;
  grpc::ServerUnaryReactor* GetModelStatus(grpc::CallbackServerContext* call,
                                           const pb::GetModelStatusRequest* request,
                                           pb::GetModelStatusResponse* response) override;

 private:
  ServiceContext* ctx_;
  AdapterManagerInterface* adapters_;
};

}  // namespace expertserve::server

#endif  // EXPERTSERVE_SERVER_ADMIN_SERVICE_H_
