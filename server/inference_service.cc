#include "server/inference_service.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "server/generate_reactor.h"
#include "server/status_convert.h"

namespace expertserve::server {
namespace {

grpc::ServerUnaryReactor* Done(grpc::CallbackServerContext* call,
                               const absl::Status& status) {
  grpc::ServerUnaryReactor* r = call->DefaultReactor();
  r->Finish(ToGrpcStatus(status));
  return r;
}

absl::StatusOr<const ServedModel*> FindModel(const ModelCatalog& catalog,
                                             absl::string_view name) {
  if (name.empty()) return absl::InvalidArgumentError("model: must be set");
  ES_ASSIGN_OR_RETURN(RoutingDecision d, catalog.Route(name, ""));
  const ServedModel* m = catalog.Find(d.model);
  if (m == nullptr) return absl::NotFoundError(absl::StrCat("model: unknown '", name, "'"));
  return m;
}

absl::Status CheckSize(const google::protobuf::Message& m, const RequestLimits& limits) {
  const size_t bytes = m.ByteSizeLong();
  if (bytes > limits.max_request_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "request: ", bytes, " bytes exceed limits.max_request_bytes = ",
        limits.max_request_bytes));
  }
  return absl::OkStatus();
}

}  // namespace

void FillModelInfos(const ModelCatalog& catalog, absl::string_view only_model,
                    google::protobuf::RepeatedPtrField<pb::ModelInfo>* out) {
  for (const ServedModel* m : catalog.models()) {
    if (!only_model.empty() && m->name != only_model) continue;
    pb::ModelInfo* info = out->Add();
    info->set_name(m->name);
    info->set_architecture(m->architecture);
    info->set_state(pb::MODEL_STATE_READY);
    // The CPU build keeps weights in host memory (the "device" tier is host
    // memory standing in for HBM); report what is true.
    info->set_tier(pb::MEMORY_TIER_HOST);
    info->set_max_context_tokens(m->max_context_tokens);
    info->set_has_chat_template(m->text != nullptr && m->text->has_chat_template());
    for (const std::string& a : catalog.AdaptersOf(m->name)) {
      pb::AdapterInfo* ai = info->add_adapters();
      ai->set_name(a);
      ai->set_base_model(m->name);
      ai->set_state(pb::MODEL_STATE_READY);
      ai->set_tier(pb::MEMORY_TIER_HOST);
    }
  }
}

grpc::ServerUnaryReactor* InferenceService::Generate(grpc::CallbackServerContext* call,
                                                     const pb::GenerateRequest* request,
                                                     pb::GenerateResponse* response) {
  return StartGenerateUnary(ctx_, call, request, response);
}

grpc::ServerWriteReactor<pb::GenerateStreamResponse>* InferenceService::GenerateStream(
    grpc::CallbackServerContext* call, const pb::GenerateRequest* request) {
  return StartGenerateStream(ctx_, call, request);
}

grpc::ServerUnaryReactor* InferenceService::Tokenize(grpc::CallbackServerContext* call,
                                                     const pb::TokenizeRequest* request,
                                                     pb::TokenizeResponse* response) {
  absl::Status st = [&]() -> absl::Status {
    ES_RETURN_IF_ERROR(ctx_->Authorize(*call, Permission::kInference));
    ES_RETURN_IF_ERROR(CheckSize(*request, ctx_->limits));
    ES_ASSIGN_OR_RETURN(const ServedModel* m, FindModel(*ctx_->catalog, request->model()));
    if (m->text == nullptr) {
      return absl::FailedPreconditionError(
          absl::StrCat("model '", m->name, "' has no tokenizer"));
    }
    std::vector<TokenId> ids;
    switch (request->input_case()) {
      case pb::TokenizeRequest::kText: {
        ES_ASSIGN_OR_RETURN(ids, m->text->EncodeText(request->text(),
                                                     !request->has_add_special_tokens() ||
                                                         request->add_special_tokens()));
        break;
      }
      case pb::TokenizeRequest::kChat: {
        ES_ASSIGN_OR_RETURN(std::vector<engine::ChatMessage> msgs,
                            ConvertChat(request->chat(), ctx_->limits));
        if (!m->text->has_chat_template()) {
          return absl::FailedPreconditionError(
              absl::StrCat("chat: model '", m->name, "' has no chat template"));
        }
        ES_ASSIGN_OR_RETURN(ids, m->text->EncodeChat(
                                     msgs, !request->chat().has_add_generation_prompt() ||
                                               request->chat().add_generation_prompt()));
        break;
      }
      case pb::TokenizeRequest::INPUT_NOT_SET:
        return absl::InvalidArgumentError("input: set text or chat");
    }
    response->mutable_token_ids()->Add(ids.begin(), ids.end());
    return absl::OkStatus();
  }();
  return Done(call, st);
}

grpc::ServerUnaryReactor* InferenceService::Detokenize(grpc::CallbackServerContext* call,
                                                       const pb::DetokenizeRequest* request,
                                                       pb::DetokenizeResponse* response) {
  absl::Status st = [&]() -> absl::Status {
    ES_RETURN_IF_ERROR(ctx_->Authorize(*call, Permission::kInference));
    ES_RETURN_IF_ERROR(CheckSize(*request, ctx_->limits));
    ES_ASSIGN_OR_RETURN(const ServedModel* m, FindModel(*ctx_->catalog, request->model()));
    if (m->text == nullptr) {
      return absl::FailedPreconditionError(
          absl::StrCat("model '", m->name, "' has no tokenizer"));
    }
    std::vector<TokenId> ids(request->token_ids().begin(), request->token_ids().end());
    ES_ASSIGN_OR_RETURN(std::string text,
                        m->text->Decode(ids, !request->has_skip_special_tokens() ||
                                                 request->skip_special_tokens()));
    response->set_text(std::move(text));
    return absl::OkStatus();
  }();
  return Done(call, st);
}

grpc::ServerUnaryReactor* InferenceService::ListModels(grpc::CallbackServerContext* call,
                                                       const pb::ListModelsRequest* /*request*/,
                                                       pb::ListModelsResponse* response) {
  absl::Status st = ctx_->Authorize(*call, Permission::kInference);
  if (st.ok()) FillModelInfos(*ctx_->catalog, "", response->mutable_models());
  return Done(call, st);
}

grpc::ServerUnaryReactor* InferenceService::Route(grpc::CallbackServerContext* call,
                                                  const pb::RouteRequest* request,
                                                  pb::RouteResponse* response) {
  absl::Status st = [&]() -> absl::Status {
    ES_RETURN_IF_ERROR(ctx_->Authorize(*call, Permission::kInference));
    ES_RETURN_IF_ERROR(CheckSize(*request, ctx_->limits));
    std::vector<engine::ChatMessage> chat;
    if (request->has_chat()) {
      for (const pb::ChatMessage& m : request->chat().messages()) {
        chat.push_back({m.role(), m.content()});
      }
    }
    ES_ASSIGN_OR_RETURN(RoutingDecision d,
                        ctx_->catalog->Route(request->model(), request->adapter(),
                                             request->text(),
                                             request->has_chat() ? &chat : nullptr));
    ToProto(d, response->mutable_routing());
    return absl::OkStatus();
  }();
  return Done(call, st);
}

}  // namespace expertserve::server
