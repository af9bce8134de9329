#include "server/proto_convert.h"

#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "engine/sampler/validate.h"

namespace expertserve::server {
namespace {

absl::Status Bad(absl::string_view field, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", why));
}

}  // namespace

absl::Status ConvertSampling(const pb::SamplingParams& in,
                             const RequestLimits& limits,
                             engine::SamplingParams* out) {
  engine::SamplingParams p;
  if (in.has_temperature()) p.temperature = in.temperature();
  if (in.has_top_k()) p.top_k = in.top_k();
  if (in.has_top_p()) p.top_p = in.top_p();
  if (in.has_min_p()) p.min_p = in.min_p();
  if (in.has_repetition_penalty()) p.repetition_penalty = in.repetition_penalty();
  if (in.has_presence_penalty()) p.presence_penalty = in.presence_penalty();
  if (in.has_frequency_penalty()) p.frequency_penalty = in.frequency_penalty();
  if (in.logit_bias_size() > 0) {
    if (in.logit_bias_size() > 1024) {
      return Bad("sampling.logit_bias",
                 absl::StrCat("at most 1024 entries, found ", in.logit_bias_size()));
    }
    for (const auto& [id, bias] : in.logit_bias()) p.logit_bias.emplace_back(id, bias);
    // Map order is unspecified on the wire; sort for determinism.
    std::sort(p.logit_bias.begin(), p.logit_bias.end());
  }
  if (in.has_seed()) p.seed = in.seed();
  if (in.has_n()) p.n = in.n();
  if (in.stop_size() > limits.max_stop_strings) {
    return Bad("sampling.stop",
               absl::StrCat("at most ", limits.max_stop_strings,
                            " stop strings (limits.max_stop_strings), found ",
                            in.stop_size()));
  }
  for (const std::string& s : in.stop()) p.stop.push_back(s);
  p.include_stop_str_in_output = in.include_stop_str_in_output();
  if (in.stop_token_ids_size() > 1024) {
    return Bad("sampling.stop_token_ids",
               absl::StrCat("at most 1024 ids, found ", in.stop_token_ids_size()));
  }
  for (int32_t id : in.stop_token_ids()) p.stop_token_ids.push_back(id);
  if (in.has_max_tokens()) {
    if (in.max_tokens() < 1) {
      return Bad("sampling.max_tokens",
                 absl::StrCat("must be >= 1, found ", in.max_tokens()));
    }
    if (in.max_tokens() > limits.max_tokens) {
      return Bad("sampling.max_tokens",
                 absl::StrCat("at most ", limits.max_tokens,
                              " (limits.max_tokens), found ", in.max_tokens()));
    }
    p.max_tokens = in.max_tokens();
  } else {
    p.max_tokens = static_cast<int32_t>(std::min<int64_t>(16, limits.max_tokens));
  }
  p.ignore_eos = in.ignore_eos();
  if (in.has_logprobs()) {
    if (in.logprobs() < 0 || in.logprobs() > limits.max_logprobs) {
      return Bad("sampling.logprobs",
                 absl::StrCat("must be in [0, ", limits.max_logprobs,
                              "] (limits.max_logprobs), found ", in.logprobs()));
    }
    p.logprobs = in.logprobs();
  }
  if (in.has_prompt_logprobs()) {
    if (in.prompt_logprobs() < 0 || in.prompt_logprobs() > limits.max_logprobs) {
      return Bad("sampling.prompt_logprobs",
                 absl::StrCat("must be in [0, ", limits.max_logprobs,
                              "] (limits.max_logprobs), found ",
                              in.prompt_logprobs()));
    }
    p.prompt_logprobs = in.prompt_logprobs();
  }
  if (in.has_skip_special_tokens()) p.skip_special_tokens = in.skip_special_tokens();
  // Ranges (NaN, negative temperature, ...) as the engine checks them; ids
  // against the vocabulary are checked later by the engine.
  ES_RETURN_IF_ERROR(engine::ValidateSamplingParams(
      p, /*vocab_size=*/std::numeric_limits<int32_t>::max(), /*has_tokenizer=*/true));
  *out = std::move(p);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<engine::ChatMessage>> ConvertChat(
    const pb::ChatInput& chat, const RequestLimits& limits) {
  if (chat.messages_size() == 0) {
    return Bad("chat.messages", "at least one message is required");
  }
  if (chat.messages_size() > limits.max_chat_messages) {
    return Bad("chat.messages", absl::StrCat("at most ", limits.max_chat_messages,
                                             " messages, found ",
                                             chat.messages_size()));
  }
  std::vector<engine::ChatMessage> out;
  out.reserve(chat.messages_size());
  for (int i = 0; i < chat.messages_size(); ++i) {
    const pb::ChatMessage& m = chat.messages(i);
    if (m.role().empty()) {
      return Bad(absl::StrCat("chat.messages[", i, "].role"),
                 "must be set (e.g. \"user\")");
    }
    out.push_back({m.role(), m.content()});
  }
  return out;
}

absl::StatusOr<std::vector<TokenId>> EncodePrompt(const pb::GenerateRequest& req,
                                                  const ServedModel& model,
                                                  const RequestLimits& limits) {
  std::vector<TokenId> ids;
  switch (req.input_case()) {
    case pb::GenerateRequest::kText: {
      if (req.text().empty()) return Bad("text", "must not be empty");
      if (model.text == nullptr) {
        return absl::FailedPreconditionError(absl::StrCat(
            "text: model '", model.name,
            "' has no tokenizer; send token_ids instead"));
      }
      ES_ASSIGN_OR_RETURN(ids, model.text->EncodeText(
                                   req.text(), !req.has_add_special_tokens() ||
                                                   req.add_special_tokens()));
      break;
    }
    case pb::GenerateRequest::kChat: {
      ES_ASSIGN_OR_RETURN(std::vector<engine::ChatMessage> messages,
                          ConvertChat(req.chat(), limits));
      if (model.text == nullptr || !model.text->has_chat_template()) {
        return absl::FailedPreconditionError(absl::StrCat(
            "chat: model '", model.name,
            "' has no chat template; send text or token_ids instead"));
      }
      const bool add_generation_prompt = !req.chat().has_add_generation_prompt() ||
                                         req.chat().add_generation_prompt();
      ES_ASSIGN_OR_RETURN(ids, model.text->EncodeChat(messages, add_generation_prompt));
      break;
    }
    case pb::GenerateRequest::kTokenIds: {
      if (req.token_ids().ids_size() > limits.max_prompt_tokens) break;  // below
      ids.assign(req.token_ids().ids().begin(), req.token_ids().ids().end());
      for (size_t i = 0; i < ids.size(); ++i) {
        if (ids[i] < 0 || (model.vocab_size > 0 && ids[i] >= model.vocab_size)) {
          return Bad(absl::StrCat("token_ids.ids[", i, "]"),
                     absl::StrCat("token id ", ids[i], " is outside the vocabulary [0, ",
                                  model.vocab_size, ") of model '", model.name, "'"));
        }
      }
      if (ids.empty()) return Bad("token_ids.ids", "at least one token id is required");
      break;
    }
    case pb::GenerateRequest::INPUT_NOT_SET:
      return Bad("input", "set exactly one of text, chat or token_ids");
  }
  const int64_t n = req.input_case() == pb::GenerateRequest::kTokenIds
                        ? req.token_ids().ids_size()
                        : static_cast<int64_t>(ids.size());
  if (n == 0) {
    return Bad("input", "the prompt encodes to zero tokens");
  }
  if (n > limits.max_prompt_tokens) {
    return absl::OutOfRangeError(absl::StrCat(
        "prompt: ", n, " tokens exceed limits.max_prompt_tokens = ",
        limits.max_prompt_tokens));
  }
  return ids;
}

absl::StatusOr<engine::GenerateRequest> ToEngineRequest(
    const pb::GenerateRequest& req, const ServedModel& model,
    const RoutingDecision& target, const RequestLimits& limits,
    std::string request_id, absl::Time deadline) {
  const size_t bytes = req.ByteSizeLong();
  if (bytes > limits.max_request_bytes) {
    return Bad("request", absl::StrCat(bytes, " bytes exceed limits.max_request_bytes = ",
                                       limits.max_request_bytes));
  }
  if (req.request_id().size() > 256) {
    return Bad("request_id", "at most 256 bytes");
  }
  engine::GenerateRequest out;
  ES_RETURN_IF_ERROR(ConvertSampling(req.sampling(), limits, &out.sampling));
  ES_ASSIGN_OR_RETURN(out.prompt_token_ids, EncodePrompt(req, model, limits));
  const int64_t prompt = static_cast<int64_t>(out.prompt_token_ids.size());
  if (model.max_context_tokens > 0 &&
      prompt + out.sampling.max_tokens > model.max_context_tokens) {
    return absl::OutOfRangeError(absl::StrCat(
        "prompt: ", prompt, " prompt tokens + sampling.max_tokens ",
        out.sampling.max_tokens, " exceed the context of model '", model.name,
        "' (", model.max_context_tokens, " tokens); shorten the prompt or lower max_tokens"));
  }
  out.request_id = std::move(request_id);
  out.model = target.model;
  out.adapter = target.adapter;
  out.priority = req.priority();
  out.deadline = deadline;
  return out;
}

pb::FinishReason ToProto(engine::FinishReason reason) {
  switch (reason) {
    case engine::FinishReason::kStop:
      return pb::FINISH_REASON_STOP;
    case engine::FinishReason::kLength:
      return pb::FINISH_REASON_LENGTH;
    case engine::FinishReason::kAbort:
      return pb::FINISH_REASON_ABORT;
    case engine::FinishReason::kError:
      return pb::FINISH_REASON_ERROR;
  }
  return pb::FINISH_REASON_UNSPECIFIED;
}

void ToProto(const engine::PositionLogprobs& in, pb::PositionLogprobs* out) {
  out->mutable_chosen()->set_token_id(in.chosen.token);
  out->mutable_chosen()->set_logprob(in.chosen.logprob);
  out->set_rank(in.rank);
  for (const engine::TokenLogprob& t : in.top) {
    pb::TokenLogprob* p = out->add_top();
    p->set_token_id(t.token);
    p->set_logprob(t.logprob);
  }
}

void ToProto(const RoutingDecision& in, pb::RoutingDecision* out) {
  out->set_model(in.model);
  out->set_adapter(in.adapter);
  out->set_category(in.category);
  out->set_confidence(in.confidence);
  out->set_explicit_target(in.explicit_target);
}

void ToProto(const engine::Usage& in, pb::Usage* out) {
  out->set_prompt_tokens(in.prompt_tokens);
  out->set_completion_tokens(in.completion_tokens);
  out->set_cached_tokens(in.cached_tokens);
}

void ToProto(const engine::Timings& in, pb::Timings* out) {
  out->set_queue_seconds(absl::ToDoubleSeconds(in.queue_time));
  out->set_time_to_first_token_seconds(absl::ToDoubleSeconds(in.time_to_first_token));
  out->set_total_seconds(absl::ToDoubleSeconds(in.total));
}

}  // namespace expertserve::server
