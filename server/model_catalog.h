// The models the server serves, as the services see them: a name, the
// engine that runs it (through EngineInterface only), its text path and its
// adapters. Engines are owned elsewhere (ModelHost for real checkpoints,
// fakes in tests); the catalog only points at them.
#ifndef EXPERTSERVE_SERVER_MODEL_CATALOG_H_
#define EXPERTSERVE_SERVER_MODEL_CATALOG_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "engine/engine_interface.h"
#include "engine/text/text_processor.h"
#include "router/router.h"

namespace expertserve::server {

// Where a model's expert weights live and what moved them (metrics and
// ListModels). A snapshot; byte counts of moves are cumulative since start.
struct ExpertMemoryStats {
  struct Tier {
    std::string tier;  // "host", "cuda"
    uint64_t resident_bytes = 0;  // expert slots mapped in this tier
  };
  struct Move {
    std::string from_tier;  // "storage" = the checkpoint files
    std::string to_tier;
    uint64_t bytes = 0;  // weight bytes copied, cumulative
  };
  std::vector<Tier> tiers;
  std::vector<Move> moves;
  int64_t adapter_slots_used = 0;   // ESFT adapter slots mapped, all MoE layers
  int64_t adapter_slots_total = 0;  // reserved
};

struct ServedModel {
  std::string name;
  std::string architecture;  // config.json model_type
  engine::EngineInterface* engine = nullptr;     // never null
  const engine::TextProcessor* text = nullptr;   // null: token ids only
  int32_t max_context_tokens = 0;
  int32_t vocab_size = 0;  // 0 = unknown (ids are then checked by the engine)
  // Thread-safe snapshot of the expert memory; null for models without
  // expert tables (dense models, fakes).
  std::function<ExpertMemoryStats()> expert_memory;
};

// What a request runs on, and why (the proto's RoutingDecision).
struct RoutingDecision {
  std::string model;
  std::string adapter;
  std::string category;
  float confidence = 1.0f;
  bool explicit_target = true;
};

// Thread-safe. Models are fixed at start; adapters may be added and removed
// at run time (Admin service).
class ModelCatalog {
 public:
  // `default_model` / `default_adapter`: where "auto" or an empty model
  // goes. Empty default_model = the first model added.
  void AddModel(ServedModel model);
  void SetDefaultTarget(std::string model, std::string adapter);
  // The semantic router for "auto" requests (router/); without one they go
  // to the default target.
  void SetRouter(std::unique_ptr<router::Router> router);
  void AddAdapter(absl::string_view model, std::string adapter);
  bool RemoveAdapter(absl::string_view adapter);

  // nullptr if unknown. The pointer stays valid for the catalog's life.
  const ServedModel* Find(absl::string_view name) const;
  std::vector<const ServedModel*> models() const;
  // Adapters of `model`, sorted.
  std::vector<std::string> AdaptersOf(absl::string_view model) const;
  // The model an adapter belongs to, or empty.
  std::string AdapterBase(absl::string_view adapter) const;

  // Resolves a request's target. An explicit model (and adapter) is checked
  // and used as is. An empty model or "auto" is classified by the router
  // from `text` or `chat` (the Samba-CoE two steps: category, then the
  // category's target; below the confidence threshold the default target);
  // without a router it goes to the default target (explicit_target =
  // false, no category, confidence 0). Errors: kNotFound naming the unknown
  // model or adapter; kInvalidArgument for an adapter without a model.
  absl::StatusOr<RoutingDecision> Route(
      absl::string_view model, absl::string_view adapter, absl::string_view text = {},
      const std::vector<engine::ChatMessage>* chat = nullptr) const;

 private:
  mutable absl::Mutex mu_;
  // Stable addresses: ServedModel pointers are handed out.
  std::vector<std::unique_ptr<ServedModel>> models_ ABSL_GUARDED_BY(mu_);
  std::vector<std::pair<std::string, std::string>> adapters_
      ABSL_GUARDED_BY(mu_);  // (adapter, base model)
  std::string default_model_ ABSL_GUARDED_BY(mu_);
  std::string default_adapter_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<router::Router> router_;  // set before serving; immutable
};

}  // namespace expertserve::server

#endif  // EXPERTSERVE_SERVER_MODEL_CATALOG_H_
