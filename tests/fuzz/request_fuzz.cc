// Fuzzes the server's request validation and conversion: arbitrary bytes
// parsed as an expertserve.v1.GenerateRequest, then routed and converted to
// an engine request under tight limits. Invariants checked on success: the
// limits hold, ids are in the vocabulary, the prompt fits the context.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "absl/time/clock.h"
#include "server/model_catalog.h"
#include "server/proto_convert.h"

namespace {

namespace es = expertserve::server;

const es::ModelCatalog& Catalog() {
  static es::ModelCatalog* catalog = [] {
    auto* c = new es::ModelCatalog();
    es::ServedModel m;
    m.name = "m";
    m.max_context_tokens = 128;
    m.vocab_size = 512;
    c->AddModel(m);
    c->AddAdapter("m", "a");
    return c;
  }();
  return *catalog;
}

void Check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  es::pb::GenerateRequest req;
  if (!req.ParseFromArray(data, static_cast<int>(size))) return 0;
  es::RequestLimits limits;
  limits.max_request_bytes = 4096;
  limits.max_prompt_tokens = 64;
  limits.max_tokens = 32;
  limits.max_stop_strings = 4;
  limits.max_logprobs = 5;
  const es::ModelCatalog& catalog = Catalog();
  absl::StatusOr<es::RoutingDecision> target = catalog.Route(req.model(), req.adapter());
  if (!target.ok()) return 0;
  const es::ServedModel* model = catalog.Find(target->model);
  Check(model != nullptr);
  absl::StatusOr<expertserve::engine::GenerateRequest> out =
      es::ToEngineRequest(req, *model, *target, limits, "id", absl::InfiniteFuture());
  if (!out.ok()) {
    Check(!out.status().message().empty());
    return 0;
  }
  Check(!out->prompt_token_ids.empty());
  Check(static_cast<int64_t>(out->prompt_token_ids.size()) <= limits.max_prompt_tokens);
  for (int32_t id : out->prompt_token_ids) Check(id >= 0 && id < model->vocab_size);
  Check(out->sampling.max_tokens >= 1 && out->sampling.max_tokens <= limits.max_tokens);
  Check(static_cast<int64_t>(out->sampling.stop.size()) <= limits.max_stop_strings);
  Check(!out->sampling.logprobs || *out->sampling.logprobs <= limits.max_logprobs);
  Check(static_cast<int64_t>(out->prompt_token_ids.size()) + out->sampling.max_tokens <=
        model->max_context_tokens);
  Check(out->model == "m");
  return 0;
}
