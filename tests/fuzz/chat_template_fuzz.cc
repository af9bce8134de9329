// Fuzzes the chat-template compiler and renderer: the input is a template
// source, rendered against a fixed conversation with tight limits. Must never
// crash, hang or allocate without bound; errors are fine.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "engine/chat_template/chat_template.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using expertserve::engine::ChatMessage;
  using expertserve::engine::ChatTemplate;
  using expertserve::engine::TemplateContext;
  if (size > 16384) return 0;
  std::string_view source(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<ChatTemplate> tmpl = ChatTemplate::Compile(source);
  if (!tmpl.ok()) return 0;
  static const std::vector<ChatMessage> kMessages = {
      {"system", "You are terse."},
      {"user", "Hi {{ there }} <think>x</think>"},
      {"assistant", "<think>\nhm\n</think>\n\nHello."},
      {"user", "\xC3\xA9\xF0\x9F\x99\x82 bye"}};
  TemplateContext ctx;
  ctx.bos_token = "<s>";
  ctx.eos_token = "</s>";
  ctx.limits.max_output_bytes = 1 << 16;
  ctx.limits.max_loop_iterations = 5000;
  ctx.limits.max_call_depth = 16;
  for (bool add_generation_prompt : {false, true}) {
    absl::StatusOr<std::string> out =
        tmpl->Render(kMessages, add_generation_prompt, ctx);
    if (out.ok() && out->size() > ctx.limits.max_output_bytes) __builtin_trap();
  }
  return 0;
}
