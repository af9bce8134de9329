// Byte-for-byte parity of ChatTemplate against @huggingface/jinja, the
// reference Jinja Hugging Face uses in JavaScript, for every model template in
// parity/models.json × every conversation in parity/conversations.json × with
// and without add_generation_prompt. The reference outputs come from the CTest
// fixture chat_template_parity_reference (parity/make_reference.sh), which
// runs node at test time; if it did not run, this test fails.
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "engine/chat_template/chat_template.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/fixtures/status_matchers.h"

namespace expertserve::engine {
namespace {

using chat_template::Value;
// ordered_json keeps key order, which tojson output depends on.
using json = nlohmann::ordered_json;

std::string EnvOr(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v != nullptr ? std::string(v) : fallback;
}

json ReadJson(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    ADD_FAILURE() << "cannot open " << path;
    return json();
  }
  std::stringstream buffer;
  buffer << in.rdbuf();
  json j = json::parse(buffer.str(), nullptr, /*allow_exceptions=*/false);
  EXPECT_FALSE(j.is_discarded()) << path << " is not valid JSON";
  return j;
}

Value ToValue(const json& j) {
  if (j.is_boolean()) return Value(j.get<bool>());
  if (j.is_number_integer()) return Value(j.get<int64_t>());
  if (j.is_number()) return Value(j.get<double>());
  if (j.is_string()) return Value(j.get<std::string>());
  if (j.is_array()) {
    Value::List list;
    for (const json& x : j) list.push_back(ToValue(x));
    return Value(std::move(list));
  }
  if (j.is_object()) {
    chat_template::Dict dict;
    for (const auto& [k, v] : j.items()) dict.Set(k, ToValue(v));
    return Value(std::move(dict));
  }
  return Value(chat_template::None{});
}

TEST(ChatTemplateParityTest, MatchesHuggingFaceJinja) {
  const std::string root = EnvOr("ES_SOURCE_DIR", ".");
  const std::string reference_path =
      EnvOr("ES_BINARY_DIR", "build") + "/chat_template_reference.json";
  json models = ReadJson(root + "/tests/chat_template/parity/models.json");
  json conversations =
      ReadJson(root + "/tests/chat_template/parity/conversations.json");
  json reference = ReadJson(reference_path);
  ASSERT_TRUE(reference.is_array())
      << reference_path
      << " is missing: run the test through ctest so the fixture "
         "chat_template_parity_reference (node + @huggingface/jinja) makes it";
  ASSERT_EQ(reference.size(), models.size() * conversations.size() * 2)
      << "reference does not cover every model × conversation × flag";

  std::map<std::string, std::pair<ChatTemplate, TemplateContext>> compiled;
  for (const json& m : models) {
    const std::string name = m["name"];
    absl::StatusOr<ChatTemplateConfig> config =
        LoadChatTemplateConfig(root + "/" + m["dir"].get<std::string>());
    ASSERT_TRUE(config.ok()) << name << ": " << config.status();
    absl::StatusOr<ChatTemplate> t = ChatTemplate::Compile(config->source);
    ASSERT_TRUE(t.ok()) << name << ": " << t.status();
    TemplateContext ctx;
    ctx.bos_token = config->bos_token;
    ctx.eos_token = config->eos_token;
    compiled.emplace(name, std::make_pair(*t, ctx));
  }
  std::map<std::string, const json*> by_name;
  for (const json& c : conversations) by_name[c["name"]] = &c;

  int outputs = 0, errors = 0;
  for (const json& ref : reference) {
    const std::string model = ref["model"];
    const std::string conv_name = ref["conversation"];
    const bool add_generation_prompt = ref["add_generation_prompt"];
    SCOPED_TRACE(model + " × " + conv_name +
                 (add_generation_prompt ? " + generation prompt" : ""));
    ASSERT_TRUE(compiled.count(model)) << "unknown model in reference";
    ASSERT_TRUE(by_name.count(conv_name)) << "unknown conversation";
    const json& conv = *by_name[conv_name];
    std::vector<ChatMessage> messages;
    for (const json& msg : conv["messages"]) {
      messages.push_back({msg["role"], msg["content"]});
    }
    auto& [tmpl, base_ctx] = compiled.at(model);
    TemplateContext ctx = base_ctx;
    if (conv.contains("vars")) {
      for (const auto& [k, v] : conv["vars"].items()) {
        ctx.variables.emplace_back(k, ToValue(v));
      }
    }
    absl::StatusOr<std::string> ours =
        tmpl.Render(messages, add_generation_prompt, ctx);
    if (ref.contains("error")) {
      ++errors;
      ASSERT_FALSE(ours.ok()) << "reference raised '" << ref["error"]
                              << "' but we rendered:\n" << *ours;
      EXPECT_EQ(ours.status().code(), absl::StatusCode::kInvalidArgument);
      // raise_exception() messages pass through verbatim on both sides.
      const std::string message(ours.status().message());
      if (message.rfind("chat template: ", 0) != 0) {
        EXPECT_EQ(message, ref["error"].get<std::string>());
      }
    } else {
      ++outputs;
      ASSERT_TRUE(ours.ok()) << ours.status();
      EXPECT_EQ(*ours, ref["output"].get<std::string>());
    }
  }
  // Guard against a reference that silently stopped exercising one side.
  EXPECT_GT(outputs, 200);
  EXPECT_GT(errors, 20);
}

}  // namespace
}  // namespace expertserve::engine
