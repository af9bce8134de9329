// Several models behind one EngineInterface: one Engine (loop thread,
// scheduler, KV cache) per model, dispatched by GenerateRequest::model.
// Scheduling is per model; the Composition-of-Experts work adds switching.
#ifndef EXPERTSERVE_ENGINE_RUNTIME_ENGINE_GROUP_H_
#define EXPERTSERVE_ENGINE_RUNTIME_ENGINE_GROUP_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "engine/engine_interface.h"

namespace expertserve::engine {

// Thread-safe once built: Add() only before the group is shared.
class EngineGroup final : public EngineInterface {
 public:
  // kAlreadyExists if `name` is taken.
  absl::Status Add(const std::string& name, std::unique_ptr<EngineInterface> engine);
  // Null for an unknown model.
  EngineInterface* Find(const std::string& name) const;
  std::vector<std::string> ModelNames() const;

  // kNotFound for an unknown model (naming the served ones).
  absl::Status Submit(GenerateRequest request,
                      std::shared_ptr<OutputSinkInterface> sink) override;
  // Request ids are unique per model only, so Abort reaches every model
  // (ids unknown to a model are ignored there).
  void Abort(std::string_view request_id) override;
  std::vector<EngineStats> GetStats() const override;

 private:
  std::map<std::string, std::unique_ptr<EngineInterface>> engines_;
};

}  // namespace expertserve::engine

#endif  // EXPERTSERVE_ENGINE_RUNTIME_ENGINE_GROUP_H_
