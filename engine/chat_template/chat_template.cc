#include "engine/chat_template/chat_template.h"

#include <fstream>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "engine/chat_template/evaluator.h"
#include "engine/chat_template/parser.h"
#include "nlohmann/json.hpp"

namespace expertserve::engine {

using chat_template::Dict;
using chat_template::Value;

absl::StatusOr<ChatTemplate> ChatTemplate::Compile(std::string_view source) {
  ES_ASSIGN_OR_RETURN(chat_template::Body body, chat_template::Parse(
      absl::string_view(source.data(), source.size())));
  return ChatTemplate(
      std::make_shared<const chat_template::Body>(std::move(body)));
}

absl::StatusOr<std::string> ChatTemplate::Render(
    std::span<const ChatMessage> messages, bool add_generation_prompt,
    const TemplateContext& extra) const {
  Value::List list;
  list.reserve(messages.size());
  for (const ChatMessage& m : messages) {
    Dict d;
    d.Set("role", Value(m.role));
    d.Set("content", Value(m.content));
    list.push_back(Value(std::move(d)));
  }
  std::vector<std::pair<std::string, Value>> vars;
  vars.emplace_back("messages", Value(std::move(list)));
  vars.emplace_back("add_generation_prompt", Value(add_generation_prompt));
  vars.emplace_back("bos_token", Value(extra.bos_token));
  vars.emplace_back("eos_token", Value(extra.eos_token));
  for (const auto& kv : extra.variables) vars.push_back(kv);
  return chat_template::Evaluate(*body_, std::move(vars), extra.limits);
}

namespace {
// A special token is a string or an AddedToken object {"content": ...}.
absl::StatusOr<std::string> TokenString(const nlohmann::json& config,
                                        const char* key) {
  auto it = config.find(key);
  if (it == config.end() || it->is_null()) return std::string();
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object()) {
    auto content = it->find("content");
    if (content != it->end() && content->is_string()) {
      return content->get<std::string>();
    }
  }
  return absl::DataLossError(absl::StrCat(
      "tokenizer_config.json: '", key,
      "' must be a string or an object with a string 'content'"));
}
}  // namespace

absl::StatusOr<ChatTemplateConfig> ParseChatTemplateConfig(
    std::string_view tokenizer_config_json) {
  nlohmann::json config = nlohmann::json::parse(
      tokenizer_config_json.begin(), tokenizer_config_json.end(), nullptr,
      /*allow_exceptions=*/false);
  if (config.is_discarded() || !config.is_object()) {
    return absl::DataLossError(
        "tokenizer_config.json is not a valid JSON object");
  }
  ChatTemplateConfig out;
  ES_ASSIGN_OR_RETURN(out.bos_token, TokenString(config, "bos_token"));
  ES_ASSIGN_OR_RETURN(out.eos_token, TokenString(config, "eos_token"));
  auto it = config.find("chat_template");
  if (it == config.end() || it->is_null()) {
    return absl::NotFoundError(
        "tokenizer_config.json has no 'chat_template'; this model cannot "
        "render chat messages");
  }
  if (it->is_string()) {
    out.source = it->get<std::string>();
    return out;
  }
  if (it->is_array()) {
    for (const nlohmann::json& entry : *it) {
      if (!entry.is_object()) continue;
      auto name = entry.find("name");
      auto tmpl = entry.find("template");
      if (name != entry.end() && name->is_string() &&
          name->get<std::string>() == "default" && tmpl != entry.end() &&
          tmpl->is_string()) {
        out.source = tmpl->get<std::string>();
        return out;
      }
    }
    return absl::NotFoundError(
        "tokenizer_config.json: 'chat_template' is a list without an entry "
        "named \"default\"");
  }
  return absl::DataLossError(
      "tokenizer_config.json: 'chat_template' must be a string or a list of "
      "{name, template}");
}

absl::StatusOr<ChatTemplateConfig> LoadChatTemplateConfig(
    std::string_view model_dir) {
  std::string path = absl::StrCat(
      absl::string_view(model_dir.data(), model_dir.size()),
      "/tokenizer_config.json");
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(absl::StrCat("cannot open ", path));
  }
  std::stringstream buffer;
  buffer << in.rdbuf();
  absl::StatusOr<ChatTemplateConfig> config =
      ParseChatTemplateConfig(buffer.str());
  if (!config.ok()) {
    return absl::Status(config.status().code(),
                        absl::StrCat(path, ": ", config.status().message()));
  }
  return config;
}

}  // namespace expertserve::engine
