#include "server/expert_memory.h"

#include <string>

#include "memory/address_space.h"

namespace expertserve::server {

ExpertMemoryTracker::ExpertMemoryTracker(const engine::ModelWeights& weights)
    : weights_(weights) {
  uint64_t base_bytes = 0;
  for (const engine::LayerWeights& l : weights_.layers) {
    if (!l.is_moe || l.moe.experts == nullptr) continue;
    const memory::ExpertTable& t = *l.moe.experts;
    // gate, up and down: three [I, H] matrices per expert.
    base_bytes += static_cast<uint64_t>(t.counters().mapped_base_slots) * 3 * t.matrix_bytes();
  }
  moved_from_storage_bytes_.store(base_bytes, std::memory_order_relaxed);
}

ExpertMemoryStats ExpertMemoryTracker::Stats() const {
  ExpertMemoryStats s;
  const std::string tier = weights_.expert_backend != nullptr
                               ? std::string(memory::BackendName(weights_.expert_backend->kind()))
                               : "host";
  if (weights_.expert_backend != nullptr) {
    s.tiers.push_back({tier, weights_.expert_backend->counters().mapped_bytes});
  }
  s.moves.push_back({"storage", tier, moved_from_storage_bytes_.load(std::memory_order_relaxed)});
  for (const engine::LayerWeights& l : weights_.layers) {
    if (!l.is_moe) continue;
    for (const memory::ExpertTable* t : {l.moe.experts.get(), l.moe.shared_table.get()}) {
      if (t == nullptr) continue;
      const memory::ExpertTableCounters c = t->counters();
      s.adapter_slots_used += c.mapped_adapter_slots;
      s.adapter_slots_total += c.mapped_adapter_slots + c.free_adapter_slots;
    }
  }
  return s;
}

}  // namespace expertserve::server
