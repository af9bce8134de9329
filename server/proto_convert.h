// Protobuf <-> engine structs, and the server's request validation: the
// configured limits (request size, prompt length, max_tokens, stop strings,
// logprobs), the input oneof, the sampling ranges. Errors are
// kInvalidArgument naming the field as the client spells it
// ("sampling.max_tokens: ..."), kOutOfRange for a prompt beyond the model's
// context.
//
// Thread-safe (pure functions over immutable inputs).
#ifndef EXPERTSERVE_SERVER_PROTO_CONVERT_H_
#define EXPERTSERVE_SERVER_PROTO_CONVERT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "engine/chat_template/chat_template.h"
#include "engine/engine_interface.h"
#include "expertserve/v1/inference.pb.h"
#include "server/model_catalog.h"

namespace expertserve::server {

namespace pb = ::expertserve::v1;

struct RequestLimits {
  uint64_t max_request_bytes = 1 << 20;
  int64_t max_prompt_tokens = 8192;
  int64_t max_tokens = 4096;
  int64_t max_stop_strings = 16;
  int64_t max_logprobs = 20;
  int64_t max_chat_messages = 1024;
  // Output bytes a GenerateStream may hold for a client that does not read
  // (see generate_reactor.h); beyond it the stream ends RESOURCE_EXHAUSTED.
  int64_t max_stream_buffer_bytes = 1 << 20;
};

// Checks that do not need the model: size, input oneof, sampling ranges and
// the configured limits. Fills `out` (engine defaults for unset fields).
absl::Status ConvertSampling(const pb::SamplingParams& in,
                             const RequestLimits& limits,
                             engine::SamplingParams* out);

absl::StatusOr<std::vector<engine::ChatMessage>> ConvertChat(
    const pb::ChatInput& chat, const RequestLimits& limits);

// The request's prompt as token ids (text and chat through the model's text
// processor). kFailedPrecondition for text input on a model without a
// tokenizer or chat on one without a chat template.
absl::StatusOr<std::vector<TokenId>> EncodePrompt(const pb::GenerateRequest& req,
                                                  const ServedModel& model,
                                                  const RequestLimits& limits);

// The full conversion: validation, prompt encoding, the prompt length
// against limits and the model's context.
absl::StatusOr<engine::GenerateRequest> ToEngineRequest(
    const pb::GenerateRequest& req, const ServedModel& model,
    const RoutingDecision& target, const RequestLimits& limits,
    std::string request_id, absl::Time deadline);

pb::FinishReason ToProto(engine::FinishReason reason);
void ToProto(const engine::PositionLogprobs& in, pb::PositionLogprobs* out);
void ToProto(const RoutingDecision& in, pb::RoutingDecision* out);
void ToProto(const engine::Usage& in, pb::Usage* out);
void ToProto(const engine::Timings& in, pb::Timings* out);

}  // namespace expertserve::server

#endif  // EXPERTSERVE_SERVER_PROTO_CONVERT_H_
