// Renders a Hugging Face `chat_template` (a Jinja subset) for a conversation.
//
//   ES_ASSIGN_OR_RETURN(auto config, LoadChatTemplateConfig(model_dir));
//   ES_ASSIGN_OR_RETURN(ChatTemplate tmpl, ChatTemplate::Compile(config.source));
//   TemplateContext ctx{.bos_token = config.bos_token,
//                       .eos_token = config.eos_token};
//   ES_ASSIGN_OR_RETURN(std::string prompt, tmpl.Render(messages, true, ctx));
//
// Semantics follow Python Jinja as transformers configures it (trim_blocks,
// lstrip_blocks, keep_trailing_newline=False, loopcontrols, HF's tojson and
// raise_exception), and rendering of real templates is checked byte for byte
// against @huggingface/jinja. Any construct outside the supported subset is
// an error with a line and column, never silently different output.
//
// Where @huggingface/jinja departs from Python Jinja we follow Python:
// `{{ true }}` prints "True", `{{ none }}` "None", lists and dicts print as
// Python reprs, `undefined ~ 'x'` is "x", `'ab' * 2` works, `""` != false.
// Deliberate departures from Python: an attribute or item of an undefined
// value is undefined (as in @huggingface/jinja) instead of an error;
// upper/lower/title/capitalize map ASCII letters only; `is sameas` compares
// by value; tuples are lists. Not supported (clear errors): {% call %},
// {% filter %}, {% raw %}, include/import/extends/block, recursive loops,
// chained comparisons, str % formatting, format specs in str.format.
#ifndef EXPERTSERVE_ENGINE_CHAT_TEMPLATE_CHAT_TEMPLATE_H_
#define EXPERTSERVE_ENGINE_CHAT_TEMPLATE_CHAT_TEMPLATE_H_

#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/chat_template/ast.h"
#include "engine/chat_template/builtins.h"
#include "engine/chat_template/value.h"

namespace expertserve::engine {

struct ChatMessage {
  std::string role;     // "system", "user", "assistant", "tool", ...
  std::string content;
};

struct TemplateContext {
  std::string bos_token;  // "" when the model has none
  std::string eos_token;
  // Further template variables, e.g. {"enable_thinking", false}; they override
  // bos_token/eos_token/messages/add_generation_prompt if the names clash.
  std::vector<std::pair<std::string, chat_template::Value>> variables;
  chat_template::RenderLimits limits;
};

// A compiled template. Immutable after Compile, so Render is thread-safe and
// may run concurrently on one instance; copies share the parsed tree.
class ChatTemplate {
 public:
  // Parses `source`; syntax errors, unknown tags/filters/tests are
  // kInvalidArgument naming the line and column.
  static absl::StatusOr<ChatTemplate> Compile(std::string_view source);

  // Errors: raise_exception(msg) → kInvalidArgument with exactly `msg`;
  // other render errors → kInvalidArgument with line and column.
  absl::StatusOr<std::string> Render(std::span<const ChatMessage> messages,
                                     bool add_generation_prompt,
                                     const TemplateContext& extra) const;

 private:
  explicit ChatTemplate(std::shared_ptr<const chat_template::Body> body)
      : body_(std::move(body)) {}
  std::shared_ptr<const chat_template::Body> body_;
};

// What a model directory's tokenizer_config.json says about chat rendering.
struct ChatTemplateConfig {
  std::string source;     // the Jinja source ("default" when several)
  std::string bos_token;  // "" if absent or null
  std::string eos_token;
};

// Reads `<model_dir>/tokenizer_config.json`. chat_template may be a string or
// a list of {"name", "template"} (the one named "default" is used); tokens
// may be strings or AddedToken objects ({"content": ...}). kNotFound when the
// file or the template is missing, kDataLoss when the JSON is malformed.
absl::StatusOr<ChatTemplateConfig> LoadChatTemplateConfig(
    std::string_view model_dir);
// The same from the file's text (for tests and callers that already read it).
absl::StatusOr<ChatTemplateConfig> ParseChatTemplateConfig(
    std::string_view tokenizer_config_json);

}  // namespace expertserve::engine

#endif  // EXPERTSERVE_ENGINE_CHAT_TEMPLATE_CHAT_TEMPLATE_H_
