// Expert residency and tier traffic of one model, read from memory/'s
// expert tables and address-space counters: bytes mapped per tier, adapter
// slots used, and weight bytes copied from storage (the checkpoint files)
// into the host tier — the base experts at model load, adapter experts at
// each LoadAdapter. Today every expert table lives on one backend (host, or
// cuda once a GPU forward pass exists); moves between host and device are
// added here when memory/ gains residency.
#ifndef EXPERTSERVE_SERVER_EXPERT_MEMORY_H_
#define EXPERTSERVE_SERVER_EXPERT_MEMORY_H_

#include <atomic>
#include <cstdint>

#include "engine/forward/model_weights.h"
#include "server/model_catalog.h"

namespace expertserve::server {

// Thread-safe: the tables and backend counters are; the move counter is
// atomic. `weights` must outlive it (it lives in the model's runner).
class ExpertMemoryTracker {
 public:
  // Counts the base experts already copied in as a storage -> tier move.
  explicit ExpertMemoryTracker(const engine::ModelWeights& weights);

  // An adapter load copied `bytes` of expert weights from storage.
  void OnAdapterLoaded(uint64_t bytes) {
    moved_from_storage_bytes_.fetch_add(bytes, std::memory_order_relaxed);
  }
  ExpertMemoryStats Stats() const;

 private:
  const engine::ModelWeights& weights_;
  std::atomic<uint64_t> moved_from_storage_bytes_ = 0;
};

}  // namespace expertserve::server

#endif  // EXPERTSERVE_SERVER_EXPERT_MEMORY_H_
