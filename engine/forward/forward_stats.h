// What one forward step read from its experts: the quantity a memory-bound
// MoE decode step's time follows, so benchmarks report it measured (not
// estimated) and the cost of mixing ESFT adapters in a batch can be stated
// in bytes.
#ifndef EXPERTSERVE_ENGINE_FORWARD_FORWARD_STATS_H_
#define EXPERTSERVE_ENGINE_FORWARD_FORWARD_STATS_H_

#include <cstdint>

namespace expertserve::engine {

// Plain counters, summed over a step's MoE layers (and over steps when the
// caller passes the same object again). Thread-compatible.
struct ForwardStats {
  // Routed expert slots that ran (base experts and adapter replacements;
  // each counted once per layer however many tokens chose it).
  uint64_t routed_slots = 0;
  // Weight bytes of those slots plus the shared experts that ran (a shared
  // expert replaced by an adapter counts as one more).
  uint64_t expert_weight_bytes = 0;
};

}  // namespace expertserve::engine

#endif  // EXPERTSERVE_ENGINE_FORWARD_FORWARD_STATS_H_
