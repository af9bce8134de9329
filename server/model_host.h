// Loads the configured checkpoints into real engines: for each model a
// Transformer (mmap'd safetensors), a TransformerRunner with its KV budget,
// an engine::Engine loop thread and a TextProcessor, and registers them in
// the ModelCatalog. Owns them all; destroy it after the gRPC server.
#ifndef EXPERTSERVE_SERVER_MODEL_HOST_H_
#define EXPERTSERVE_SERVER_MODEL_HOST_H_

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/runtime/engine.h"
#include "engine/text/text_processor.h"
#include "server/admin_service.h"
#include "server/config/config.h"
#include "server/expert_memory.h"
#include "server/model_catalog.h"

namespace expertserve::server {

// Thread-safe after Load: the catalog reads it; the Admin service calls the
// adapter methods (serialised by each model's adapter registry).
class ModelHost final : public AdapterManagerInterface {
 public:
  // kNotFound / kInvalidArgument / kDataLoss from loading, naming the model.
  static absl::StatusOr<std::unique_ptr<ModelHost>> Load(const config::ServerConfig& config,
                                                         ModelCatalog* catalog);
  ~ModelHost() override;

  absl::StatusOr<AdapterLoadResult> LoadAdapter(absl::string_view name,
                                                absl::string_view path,
                                                absl::string_view base_model) override;
  absl::Status UnloadAdapter(absl::string_view name) override;

  // For tests and benchmarks: the engine of `model`, or null.
  engine::Engine* engine(std::string_view model) const;

 private:
  struct Loaded {
    std::string name;
    std::unique_ptr<engine::TextProcessor> text;
    // The ESFT adapter registry of an MoE model (else null); the engine
    // resolves adapters through it and shares its ownership (see
    // ~ModelHost for the destruction order).
    std::shared_ptr<engine::AdapterResolverInterface> adapters;
    // Expert residency and tier traffic (MoE models; else null).
    std::shared_ptr<ExpertMemoryTracker> memory;
    std::unique_ptr<engine::Engine> engine;
  };
  Loaded* Find(absl::string_view model);
  absl::StatusOr<AdapterLoadResult> LoadWithRoots(
      absl::string_view name, absl::string_view path, absl::string_view base_model,
      const std::vector<std::filesystem::path>& roots);

  std::vector<Loaded> models_;
  std::vector<std::filesystem::path> adapter_roots_;
};

}  // namespace expertserve::server

#endif  // EXPERTSERVE_SERVER_MODEL_HOST_H_
