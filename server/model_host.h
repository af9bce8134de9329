// Loads the configured checkpoints into real engines: for each model a
// Transformer (mmap'd safetensors), a TransformerRunner with its KV budget,
// an engine::Engine loop thread and a TextProcessor, and registers them in
// the ModelCatalog. Owns them all; destroy it after the gRPC server.
#ifndef EXPERTSERVE_SERVER_MODEL_HOST_H_
#define EXPERTSERVE_SERVER_MODEL_HOST_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/runtime/engine.h"
#include "engine/text/text_processor.h"
#include "server/config/config.h"
#include "server/model_catalog.h"

namespace expertserve::server {

// Thread-compatible (built once at start, then only read through the catalog).
class ModelHost {
 public:
  // kNotFound / kInvalidArgument / kDataLoss from loading, naming the model.
  static absl::StatusOr<std::unique_ptr<ModelHost>> Load(const config::ServerConfig& config,
                                                         ModelCatalog* catalog);
  ~ModelHost();

  // For tests and benchmarks: the engine of `model`, or null.
  engine::Engine* engine(std::string_view model) const;

 private:
  struct Loaded {
    std::string name;
    std::unique_ptr<engine::TextProcessor> text;
    std::unique_ptr<engine::Engine> engine;
  };
  std::vector<Loaded> models_;
};

}  // namespace expertserve::server

#endif  // EXPERTSERVE_SERVER_MODEL_HOST_H_
