// The engine-level text path of one model: text or chat messages in, token
// ids out, and back. Combines the model's tokenizer (engine/tokenizer) and
// its chat template (engine/chat_template) the way Hugging Face's
// apply_chat_template does: render, then encode without adding special
// tokens (the template writes BOS itself).
#ifndef EXPERTSERVE_ENGINE_TEXT_TEXT_PROCESSOR_H_
#define EXPERTSERVE_ENGINE_TEXT_TEXT_PROCESSOR_H_

#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/ids.h"
#include "engine/chat_template/chat_template.h"
#include "engine/tokenizer/incremental_detokenizer.h"
#include "engine/tokenizer/tokenizer.h"

namespace expertserve::engine {

// Immutable after Load: thread-safe.
class TextProcessor {
 public:
  // Loads tokenizer.json (+ tokenizer_config.json) from a model directory.
  // A missing chat template is not an error: EncodeChat then fails with
  // kFailedPrecondition.
  static absl::StatusOr<std::unique_ptr<TextProcessor>> Load(
      const std::filesystem::path& model_dir);

  // Plain text (BOS etc. added per the tokenizer's post-processor when
  // add_special_tokens).
  absl::StatusOr<std::vector<TokenId>> EncodeText(std::string_view text,
                                                  bool add_special_tokens) const;

  // Chat messages rendered with the model's template, then encoded.
  absl::StatusOr<std::vector<TokenId>> EncodeChat(
      std::span<const ChatMessage> messages, bool add_generation_prompt) const;
  absl::StatusOr<std::string> RenderChat(std::span<const ChatMessage> messages,
                                         bool add_generation_prompt) const;

  absl::StatusOr<std::string> Decode(std::span<const TokenId> ids,
                                     bool skip_special_tokens) const;

  // A fresh streaming detokenizer over this tokenizer.
  std::unique_ptr<IncrementalDetokenizer> NewDetokenizer(
      bool skip_special_tokens) const;

  const Tokenizer& tokenizer() const { return *tokenizer_; }
  bool has_chat_template() const { return chat_template_.has_value(); }

 private:
  TextProcessor() = default;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::optional<ChatTemplate> chat_template_;
  ChatTemplateConfig template_config_;
};

}  // namespace expertserve::engine

#endif  // EXPERTSERVE_ENGINE_TEXT_TEXT_PROCESSOR_H_
