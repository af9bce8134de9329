#include "router/router.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "common/status_macros.h"
#include "router/text_util.h"

namespace expertserve::router {
namespace {

bool IsBlank(std::string_view s) {
  std::vector<char32_t> cps;
  DecodeUtf8(s, &cps);
  return std::all_of(cps.begin(), cps.end(), IsSpaceOrControl);
}

// For error messages: at most 60 bytes of an utterance, cut on a code point.
std::string Quote(std::string_view s) {
  if (s.size() <= 60) return absl::StrCat("\"", std::string(s), "\"");
  size_t cut = 57;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;
  return absl::StrCat("\"", std::string(s.substr(0, cut)), "...\"");
}

}  // namespace

absl::StatusOr<std::unique_ptr<Router>> Router::Create(const RouterSpec& spec) {
  std::vector<std::string> errors;
  std::map<std::string, size_t> seen_names;
  std::map<std::string, size_t, std::less<>> seen_examples;  // text -> category
  for (size_t i = 0; i < spec.categories.size(); ++i) {
    const RouterCategory& cat = spec.categories[i];
    const std::string where = absl::StrCat("router.categories[", i, "]");
    if (cat.name.empty()) {
      errors.push_back(absl::StrCat(where, ".name: must not be empty"));
    } else if (auto [it, inserted] = seen_names.emplace(cat.name, i); !inserted) {
      errors.push_back(absl::StrCat(where, ".name: duplicate category \"", cat.name,
                                    "\" (first at router.categories[", it->second, "])"));
    }
    if (cat.examples.empty()) {
      errors.push_back(absl::StrCat(where, " \"", cat.name,
                                    "\": no examples; give at least one example "
                                    "utterance (a few dozen route best)"));
    }
    for (size_t j = 0; j < cat.examples.size(); ++j) {
      const std::string& ex = cat.examples[j];
      if (IsBlank(ex)) {
        errors.push_back(absl::StrCat(where, ".examples[", j, "]: empty utterance"));
        continue;
      }
      auto [it, inserted] = seen_examples.emplace(ex, i);
      if (!inserted && it->second != i) {
        errors.push_back(absl::StrCat(
            where, ".examples[", j, "]: utterance ", Quote(ex),
            " also belongs to category \"", spec.categories[it->second].name,
            "\"; an utterance may teach one category only"));
      }
    }
  }
  if (!(spec.confidence_threshold >= 0 && spec.confidence_threshold <= 1)) {
    errors.push_back(absl::StrCat("router.confidence_threshold: must be in [0, 1], got ",
                                  spec.confidence_threshold));
  }
  if (!spec.categories.empty() && !spec.default_target.has_value()) {
    errors.push_back(
        "router.default_target: required when router.categories is set (it takes "
        "requests the classifier is unsure about)");
  }
  auto router = std::unique_ptr<Router>(new Router());
  for (const RouterCategory& cat : spec.categories) router->names_.push_back(cat.name);
  auto map = CategoryMap::Create(router->names_, spec.routes, spec.default_target);
  if (!map.ok()) {
    for (absl::string_view line : absl::StrSplit(map.status().message(), '\n')) {
      errors.emplace_back(line);
    }
  }
  if (!errors.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "invalid router spec: ", errors.size(), errors.size() == 1 ? " error" : " errors",
        "\n", absl::StrJoin(errors, "\n")));
  }
  router->map_ = *std::move(map);
  router->threshold_ = spec.confidence_threshold;
  router->max_chars_ = spec.max_chars;
  router->chat_scope_ = spec.chat_scope;
  if (spec.categories.empty()) return router;

  std::vector<std::vector<std::string>> examples;
  std::vector<std::string> all_examples;
  for (const RouterCategory& cat : spec.categories) {
    examples.push_back(cat.examples);
    all_examples.insert(all_examples.end(), cat.examples.begin(), cat.examples.end());
  }
  if (spec.custom_encoder != nullptr) {
    router->encoder_ = spec.custom_encoder;
  } else {
    ES_ASSIGN_OR_RETURN(auto encoder,
                        HashedNgramEncoder::Create(spec.encoder, all_examples));
    router->encoder_ = std::move(encoder);
  }
  ES_ASSIGN_OR_RETURN(Classifier classifier,
                      Classifier::Fit(*router->encoder_, examples, spec.classifier));
  router->classifier_ = std::move(classifier);
  return router;
}

std::string Router::TextToClassify(const RouteInput& input) const {
  if (input.messages.empty()) return TruncateHeadTail(input.text, max_chars_);
  std::string text;
  switch (chat_scope_) {
    case ChatScope::kLastUserMessage: {
      auto it = std::find_if(input.messages.rbegin(), input.messages.rend(),
                             [](const ChatMessageRef& m) { return m.role == "user"; });
      text = it != input.messages.rend() ? it->content : input.messages.back().content;
      break;
    }
    case ChatScope::kAllUserMessages:
    case ChatScope::kAllMessages:
      for (const ChatMessageRef& m : input.messages) {
        if (chat_scope_ == ChatScope::kAllUserMessages && m.role != "user") continue;
        if (!text.empty()) text.push_back('\n');
        text.append(m.content);
      }
      break;
  }
  return TruncateHeadTail(text, max_chars_);
}

RouteDecision Router::Fallback(std::string reason) const {
  RouteDecision d;
  d.target = *map_->default_target();
  d.fell_back = true;
  d.reason = std::move(reason);
  return d;
}

absl::StatusOr<RouteDecision> Router::Route(const RouteInput& input) const {
  if (!input.model.empty() && input.model != "auto") {
    RouteDecision d;
    d.target = Target{std::string(input.model), std::string(input.adapter)};
    d.confidence = 1;
    d.explicit_target = true;
    d.reason = "explicit target";
    return d;
  }
  if (!input.adapter.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "adapter \"", std::string(input.adapter),
        "\" given without a model: name the adapter's base model, or leave both "
        "empty to let the router choose"));
  }
  if (!classifier_.has_value()) {
    if (!map_->default_target().has_value()) {
      return absl::InvalidArgumentError(
          "no target: the request names no model and the router has no categories "
          "or default target; name a model");
    }
    return Fallback("router has no categories; default target");
  }
  const std::string text = TextToClassify(input);
  std::vector<float> embedding(encoder_->dim());  // [dim]
  ES_RETURN_IF_ERROR(encoder_->Encode(text, absl::MakeSpan(embedding)));
  const Classification cls = classifier_->Classify(embedding);
  if (cls.empty_embedding) {
    return Fallback("nothing to classify (empty or whitespace-only text); default target");
  }
  RouteDecision d;
  d.category = names_[cls.top];
  d.confidence = cls.confidence;
  d.margin = cls.margin;
  d.scores.reserve(names_.size());
  for (size_t c = 0; c < names_.size(); ++c) {
    d.scores.push_back(CategoryScore{names_[c], cls.similarity[c], cls.probability[c]});
  }
  if (cls.confidence < threshold_) {
    d.target = *map_->default_target();
    d.fell_back = true;
    d.reason = absl::StrFormat("fell back to default: confidence %.3f < threshold %.3f (top category %s)",
                               cls.confidence, threshold_, d.category);
    return d;
  }
  if (const Target* route = map_->RouteOf(cls.top); route != nullptr) {
    d.target = *route;
    d.reason = absl::StrFormat("category %s: confidence %.3f >= threshold %.3f",
                               d.category, cls.confidence, threshold_);
  } else {
    d.target = *map_->default_target();
    d.fell_back = true;
    d.reason = absl::StrFormat("category %s has no route; default target (confidence %.3f)",
                               d.category, cls.confidence);
  }
  return d;
}

}  // namespace expertserve::router
