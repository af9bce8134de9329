#include "engine/text/text_processor.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace expertserve::engine {

absl::StatusOr<std::unique_ptr<TextProcessor>> TextProcessor::Load(
    const std::filesystem::path& model_dir) {
  auto p = std::unique_ptr<TextProcessor>(new TextProcessor());
  ES_ASSIGN_OR_RETURN(p->tokenizer_, Tokenizer::FromDirectory(model_dir));
  absl::StatusOr<ChatTemplateConfig> config =
      LoadChatTemplateConfig(model_dir.string());
  if (config.ok()) {
    p->template_config_ = *std::move(config);
    absl::StatusOr<ChatTemplate> compiled =
        ChatTemplate::Compile(p->template_config_.source);
    if (!compiled.ok()) {
      return absl::Status(compiled.status().code(),
                          absl::StrCat(model_dir.string(),
                                       ": chat_template: ", compiled.status().message()));
    }
    p->chat_template_ = *std::move(compiled);
  } else if (config.status().code() != absl::StatusCode::kNotFound) {
    return config.status();
  }
  return p;
}

absl::StatusOr<std::vector<TokenId>> TextProcessor::EncodeText(
    std::string_view text, bool add_special_tokens) const {
  return tokenizer_->Encode(text, add_special_tokens);
}

absl::StatusOr<std::string> TextProcessor::RenderChat(
    std::span<const ChatMessage> messages, bool add_generation_prompt) const {
  if (!chat_template_) {
    return absl::FailedPreconditionError(
        "this model has no chat_template in tokenizer_config.json: send text "
        "or token ids instead of chat messages");
  }
  TemplateContext ctx;
  ctx.bos_token = template_config_.bos_token;
  ctx.eos_token = template_config_.eos_token;
  return chat_template_->Render(messages, add_generation_prompt, ctx);
}

absl::StatusOr<std::vector<TokenId>> TextProcessor::EncodeChat(
    std::span<const ChatMessage> messages, bool add_generation_prompt) const {
  ES_ASSIGN_OR_RETURN(std::string prompt,
                      RenderChat(messages, add_generation_prompt));
  // apply_chat_template(tokenize=True) encodes without special tokens.
  return tokenizer_->Encode(prompt, /*add_special_tokens=*/false);
}

absl::StatusOr<std::string> TextProcessor::Decode(std::span<const TokenId> ids,
                                                  bool skip_special_tokens) const {
  return tokenizer_->Decode(ids, skip_special_tokens);
}

std::unique_ptr<IncrementalDetokenizer> TextProcessor::NewDetokenizer(
    bool skip_special_tokens) const {
  return std::make_unique<IncrementalDetokenizer>(*tokenizer_,
                                                  skip_special_tokens);
}

}  // namespace expertserve::engine
