// Jinja's built-in filters, tests, globals and the Python methods chat
// templates call on strings, dicts and lists. Pure functions of their inputs.
#ifndef EXPERTSERVE_ENGINE_CHAT_TEMPLATE_BUILTINS_H_
#define EXPERTSERVE_ENGINE_CHAT_TEMPLATE_BUILTINS_H_

#include <cstddef>
#include <string>
#include "absl/strings/string_view.h"
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/chat_template/value.h"

namespace expertserve::engine::chat_template {

// Bounds that keep a hostile template from exhausting memory or time.
struct RenderLimits {
  size_t max_output_bytes = size_t{64} << 20;  // also caps any one string
  size_t max_loop_iterations = 1'000'000;      // summed over all loops
  int max_call_depth = 32;                     // nested macro calls
};

// Payload key marking a status that came from raise_exception(): its message
// is the template author's and is passed on unchanged.
inline constexpr absl::string_view kRaisePayload =
    "expertserve.chat_template.raise_exception";

bool IsKnownFilter(absl::string_view name);
bool IsKnownTest(absl::string_view name);

absl::StatusOr<Value> ApplyFilter(absl::string_view name, const Value& input,
                                  CallArgs& args, const RenderLimits& limits);
absl::StatusOr<bool> ApplyTest(absl::string_view name, const Value& input,
                               CallArgs& args);

// `obj.name`: Python attribute (bound method) first, then item. Missing →
// undefined (also for any attribute of undefined, as in @huggingface/jinja).
// Methods that build strings refuse results over `max_bytes`.
Value GetAttr(const Value& obj, absl::string_view name,
              size_t max_bytes = size_t{64} << 20);
// `obj[key]`: item first, then attribute.
absl::StatusOr<Value> GetItem(const Value& obj, const Value& key,
                              size_t max_bytes = size_t{64} << 20);
// `obj[start:stop:step]` on lists and strings (by code point).
absl::StatusOr<Value> SliceValue(const Value& obj, const Value& start,
                                 const Value& stop, const Value& step);

// Values a for loop visits: list items, dict keys, string characters;
// undefined iterates as empty.
absl::StatusOr<std::vector<Value>> Iterate(const Value& v);

// The global functions: namespace, raise_exception, range, dict,
// strftime_now.
std::vector<std::pair<std::string, Value>> MakeGlobals(
    const RenderLimits& limits);

// json.dumps(v, ensure_ascii, indent, separators, sort_keys) as the HF tojson.
absl::StatusOr<std::string> ToJson(const Value& v, bool ensure_ascii,
                                   int indent, bool sort_keys,
                                   size_t max_bytes = size_t{64} << 20);

// UTF-8 <-> code points (invalid bytes map to U+FFFD).
std::vector<std::string> SplitCodePoints(absl::string_view s);

}  // namespace expertserve::engine::chat_template

#endif  // EXPERTSERVE_ENGINE_CHAT_TEMPLATE_BUILTINS_H_
