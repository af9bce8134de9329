// Builds an Engine for a Hugging Face checkpoint directory: the Transformer,
// its tokenizer (when tokenizer.json exists) and EOS ids
// (generation_config.json, else config.json, else the tokenizer's).
#ifndef EXPERTSERVE_ENGINE_RUNTIME_ENGINE_LOADER_H_
#define EXPERTSERVE_ENGINE_RUNTIME_ENGINE_LOADER_H_

#include <filesystem>
#include <memory>

#include "absl/status/statusor.h"
#include "engine/adapter_resolver.h"
#include "engine/runtime/engine.h"
#include "engine/runtime/transformer_runner.h"

namespace expertserve::engine {

// Prints "<model>: KV cache N blocks = M tokens" to stderr at start-up.
absl::StatusOr<std::unique_ptr<Engine>> LoadEngine(
    const std::filesystem::path& dir, EngineOptions options,
    const TransformerRunnerOptions& runner_options,
    std::shared_ptr<AdapterResolverInterface> adapters = nullptr);

}  // namespace expertserve::engine

#endif  // EXPERTSERVE_ENGINE_RUNTIME_ENGINE_LOADER_H_
