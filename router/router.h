// The semantic router of the Composition-of-Experts path (the Samba-CoE
// recipe): an explicit target wins; otherwise the request text is embedded
// (EncoderInterface), classified into a category (Classifier), and the
// category mapped to a target {model, adapter} (CategoryMap). Below the
// confidence threshold, or when there is nothing to classify, the default
// target is used. Every decision carries its scores and a reason.
#ifndef EXPERTSERVE_ROUTER_ROUTER_H_
#define EXPERTSERVE_ROUTER_ROUTER_H_

#include <cstddef>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "router/category_map.h"
#include "router/classifier.h"
#include "router/encoder_interface.h"
#include "router/hashed_ngram_encoder.h"

namespace expertserve::router {

struct RouterCategory {
  std::string name;
  std::vector<std::string> examples;  // example utterances, non-empty
};

// Which part of a chat the router classifies.
enum class ChatScope {
  // The last message with role "user" (the current ask; earlier turns and
  // the system prompt describe context, not the request's domain). A chat
  // without user messages falls back to its last message.
  kLastUserMessage,
  // Every user message, oldest first, joined by newlines.
  kAllUserMessages,
  // Every message's content, joined by newlines.
  kAllMessages,
};

// Mirrors server::config::RouterConfig (the YAML `router:` section) plus
// knobs the YAML does not expose yet (their defaults are the tuned ones).
struct RouterSpec {
  std::vector<RouterCategory> categories;  // empty = explicit targets only
  std::map<std::string, Target> routes;    // category name -> target
  double confidence_threshold = 0.5;       // in [0, 1]
  std::optional<Target> default_target;    // required when categories is set

  // Texts longer than this many code points are cut to their first and last
  // max_chars/2 (TruncateHeadTail) before encoding; bounds the route cost
  // of long prompts. 0 = no limit.
  size_t max_chars = 2048;
  ChatScope chat_scope = ChatScope::kLastUserMessage;
  ClassifierOptions classifier;
  HashedNgramOptions encoder;
  // Replaces the default hashed n-gram encoder (e.g. a model-based one).
  std::shared_ptr<const EncoderInterface> custom_encoder;
};

struct ChatMessageRef {
  std::string_view role;
  std::string_view content;
};

struct RouteInput {
  // The text to classify; ignored when `messages` is non-empty.
  std::string_view text;
  std::vector<ChatMessageRef> messages;  // a chat, oldest first
  // The client's explicit target. A model of "" or "auto" means "route it";
  // an adapter needs a model (the server resolves an adapter-only request to
  // the adapter's base model before calling the router).
  std::string_view model;
  std::string_view adapter;
};

struct CategoryScore {
  std::string name;
  double similarity = 0;   // cosine-based, [-1, 1]
  double probability = 0;  // softmax over the categories
};

struct RouteDecision {
  Target target;
  // The classifier's top category; also set when its confidence was below
  // the threshold (then fell_back is true and target is the default).
  // Empty when explicit or nothing was classified.
  std::string category;
  double confidence = 0;  // probability of `category`; 1 when explicit
  double margin = 0;      // top probability minus the runner-up's
  std::vector<CategoryScore> scores;  // [num_categories] in config order;
                                      // empty when nothing was classified
  bool explicit_target = false;       // the client named the target
  bool fell_back = false;             // the default target was used
  std::string reason;                 // one line for logs and the Route RPC
};

// Thread-safe: immutable after Create; Route may be called concurrently.
class Router {
 public:
  // Validates `spec`, fits the encoder's IDF and the classifier on the
  // examples. Errors: kInvalidArgument listing every problem, one per line,
  // each naming the item (e.g. `router.categories[2] "law": no examples`).
  static absl::StatusOr<std::unique_ptr<Router>> Create(const RouterSpec& spec);

  // Errors: kInvalidArgument for an adapter without a model, or a request
  // with no target when the router has neither categories nor a default
  // target; the encoder's errors (none for the default encoder).
  absl::StatusOr<RouteDecision> Route(const RouteInput& input) const;

  // The text Route would classify for `input`, after scope and truncation.
  std::string TextToClassify(const RouteInput& input) const;

  const std::vector<std::string>& category_names() const { return names_; }
  const EncoderInterface* encoder() const { return encoder_.get(); }
  // Null when there are no categories.
  const Classifier* classifier() const {
    return classifier_.has_value() ? &*classifier_ : nullptr;
  }

 private:
  Router() = default;
  RouteDecision Fallback(std::string reason) const;

  std::vector<std::string> names_;  // [num_categories]
  double threshold_ = 0.5;
  size_t max_chars_ = 0;
  ChatScope chat_scope_ = ChatScope::kLastUserMessage;
  std::shared_ptr<const EncoderInterface> encoder_;
  std::optional<Classifier> classifier_;
  std::optional<CategoryMap> map_;
};

}  // namespace expertserve::router

#endif  // EXPERTSERVE_ROUTER_ROUTER_H_
