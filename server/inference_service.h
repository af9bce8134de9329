// expertserve.v1.Inference on the gRPC callback API.
#ifndef EXPERTSERVE_SERVER_INFERENCE_SERVICE_H_
#define EXPERTSERVE_SERVER_INFERENCE_SERVICE_H_

#include "expertserve/v1/inference.grpc.pb.h"
#include "server/service_context.h"

namespace expertserve::server {

// Thread-safe. Generation runs in reactors (generate_reactor.h); Tokenize,
// Detokenize, ListModels and Route answer inline: bounded CPU work
// (limits.max_request_bytes), no waiting.
class InferenceService final : public pb::Inference::CallbackService {
 public:
  explicit InferenceService(ServiceContext* ctx) : ctx_(ctx) {}

  grpc::ServerUnaryReactor* Generate(grpc::CallbackServerContext* call,
                                     const pb::GenerateRequest* request,
                                     pb::GenerateResponse* response) override;
  grpc::ServerWriteReactor<pb::GenerateStreamResponse>* GenerateStream(
      grpc::CallbackServerContext* call, const pb::GenerateRequest* request) override;
  grpc::ServerUnaryReactor* Tokenize(grpc::CallbackServerContext* call,
                                     const pb::TokenizeRequest* request,
                                     pb::TokenizeResponse* response) override;
  grpc::ServerUnaryReactor* Detokenize(grpc::CallbackServerContext* call,
                                       const pb::DetokenizeRequest* request,
                                       pb::DetokenizeResponse* response) override;
  grpc::ServerUnaryReactor* ListModels(grpc::CallbackServerContext* call,
                                       const pb::ListModelsRequest* request,
                                       pb::ListModelsResponse* response) override;
  grpc::ServerUnaryReactor* Route(grpc::CallbackServerContext* call,
                                  const pb::RouteRequest* request,
                                  pb::RouteResponse* response) override;

 private:
  ServiceContext* ctx_;
};

// The ModelInfo of every served model (ListModels and Admin.GetModelStatus).
void FillModelInfos(const ModelCatalog& catalog, absl::string_view only_model,
                    google::protobuf::RepeatedPtrField<pb::ModelInfo>* out);

}  // namespace expertserve::server

#endif  // EXPERTSERVE_SERVER_INFERENCE_SERVICE_H_
