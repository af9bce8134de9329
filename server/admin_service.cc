#include "server/admin_service.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "server/inference_service.h"
#include "server/status_convert.h"

namespace expertserve::server {
namespace {

grpc::ServerUnaryReactor* Done(grpc::CallbackServerContext* call, const absl::Status& st) {
  grpc::ServerUnaryReactor* r = call->DefaultReactor();
  r->Finish(ToGrpcStatus(st));
  return r;
}

absl::Status Unimplemented() {
  return absl::UnimplementedError(
      "adapter loading is not available in this server build (no ESFT adapter "
      "registry is wired: the engine runtime was built without engine/adapters)");
}

}  // namespace

grpc::ServerUnaryReactor* AdminService::LoadAdapter(grpc::CallbackServerContext* call,
                                                    const pb::LoadAdapterRequest* request,
                                                    pb::LoadAdapterResponse* response) {
  absl::Status st = [&]() -> absl::Status {
    ES_RETURN_IF_ERROR(ctx_->Authorize(*call, Permission::kAdmin));
    if (adapters_ == nullptr) return Unimplemented();
    if (request->name().empty()) return absl::InvalidArgumentError("name: must be set");
    if (request->path().empty()) return absl::InvalidArgumentError("path: must be set");
    if (request->base_model().empty()) {
      return absl::InvalidArgumentError("base_model: must be set");
    }
    ES_ASSIGN_OR_RETURN(AdapterLoadResult r,
                        adapters_->LoadAdapter(request->name(), request->path(),
                                               request->base_model()));
    ctx_->catalog->AddAdapter(r.base_model, r.name);
    if (ctx_->metrics != nullptr) ctx_->metrics->OnAdapterLoad(r.base_model, r.name);
    pb::AdapterInfo* info = response->mutable_adapter();
    info->set_name(r.name);
    info->set_base_model(r.base_model);
    info->set_state(pb::MODEL_STATE_READY);
    info->set_tier(pb::MEMORY_TIER_HOST);
    response->set_routed_experts_replaced(r.routed_experts_replaced);
    response->set_bytes_copied(r.bytes_copied);
    for (std::string& w : r.warnings) response->add_warnings(std::move(w));
    return absl::OkStatus();
  }();
  return Done(call, st);
}

grpc::ServerUnaryReactor* AdminService::UnloadAdapter(grpc::CallbackServerContext* call,
                                                      const pb::UnloadAdapterRequest* request,
                                                      pb::UnloadAdapterResponse* /*response*/) {
  absl::Status st = [&]() -> absl::Status {
    ES_RETURN_IF_ERROR(ctx_->Authorize(*call, Permission::kAdmin));
    if (adapters_ == nullptr) return Unimplemented();
    const std::string base = ctx_->catalog->AdapterBase(request->name());
    // Unpublish from the catalog first so no new request is routed to it.
    ctx_->catalog->RemoveAdapter(request->name());
    absl::Status s = adapters_->UnloadAdapter(request->name());
    if (!s.ok() && s.code() != absl::StatusCode::kDeadlineExceeded && !base.empty()) {
      ctx_->catalog->AddAdapter(base, request->name());  // still loaded
    }
    if (s.ok() && ctx_->metrics != nullptr) ctx_->metrics->OnAdapterUnload(base, request->name());
    return s;
  }();
  return Done(call, st);
}

grpc::ServerUnaryReactor* AdminService::GetModelStatus(grpc::CallbackServerContext* call,
                                                       const pb::GetModelStatusRequest* request,
                                                       pb::GetModelStatusResponse* response) {
  absl::Status st = ctx_->Authorize(*call, Permission::kAdmin);
  if (st.ok()) {
    FillModelInfos(*ctx_->catalog, request->model(), response->mutable_models());
    if (!request->model().empty() && response->models_size() == 0) {
      st = absl::NotFoundError(absl::StrCat("model: unknown model '", request->model(), "'"));
    }
  }
  return Done(call, st);
}

}  // namespace expertserve::server
