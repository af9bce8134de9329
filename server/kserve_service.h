// The Open Inference Protocol (KServe v2) gRPC service with Triton's
// ModelStreamInfer, over the same validation, admission and engines as
// expertserve.v1.Inference: an LLM request's tensors (text_input,
// max_tokens, sampling inputs; proto/kserve/grpc_service.proto lists them)
// are converted to an expertserve.v1.GenerateRequest first, so every limit
// and status code is shared.
#ifndef EXPERTSERVE_SERVER_KSERVE_SERVICE_H_
#define EXPERTSERVE_SERVER_KSERVE_SERVICE_H_

#include "absl/status/statusor.h"
#include "kserve/grpc_service.grpc.pb.h"
#include "server/service_context.h"

namespace expertserve::server {

// Tensors -> GenerateRequest. `stream` receives the "stream" input (false
// when absent). kInvalidArgument naming the tensor.
absl::StatusOr<pb::GenerateRequest> FromModelInfer(const inference::ModelInferRequest& req,
                                                   bool* stream);

// Thread-safe.
class KServeService final : public inference::GRPCInferenceService::CallbackService {
 public:
  explicit KServeService(ServiceContext* ctx) : ctx_(ctx) {}

  grpc::ServerUnaryReactor* ServerLive(grpc::CallbackServerContext* call,
                                       const inference::ServerLiveRequest* request,
                                       inference::ServerLiveResponse* response) override;
  grpc::ServerUnaryReactor* ServerReady(grpc::CallbackServerContext* call,
                                        const inference::ServerReadyRequest* request,
                                        inference::ServerReadyResponse* response) override;
  grpc::ServerUnaryReactor* ModelReady(grpc::CallbackServerContext* call,
                                       const inference::ModelReadyRequest* request,
                                       inference::ModelReadyResponse* response) override;
  grpc::ServerUnaryReactor* ServerMetadata(grpc::CallbackServerContext* call,
                                           const inference::ServerMetadataRequest* request,
                                           inference::ServerMetadataResponse* response) override;
  grpc::ServerUnaryReactor* ModelMetadata(grpc::CallbackServerContext* call,
                                          const inference::ModelMetadataRequest* request,
                                          inference::ModelMetadataResponse* response) override;
  grpc::ServerUnaryReactor* ModelInfer(grpc::CallbackServerContext* call,
                                       const inference::ModelInferRequest* request,
                                       inference::ModelInferResponse* response) override;
  grpc::ServerBidiReactor<inference::ModelInferRequest, inference::ModelStreamInferResponse>*
  ModelStreamInfer(grpc::CallbackServerContext* call) override;

 private:
  ServiceContext* ctx_;
};

}  // namespace expertserve::server

#endif  // EXPERTSERVE_SERVER_KSERVE_SERVICE_H_
