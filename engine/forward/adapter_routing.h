// An ESFT adapter as the forward pass sees it: for every MoE layer, the map
// from the gate's expert ids to expert-table slots.
#ifndef EXPERTSERVE_ENGINE_FORWARD_ADAPTER_ROUTING_H_
#define EXPERTSERVE_ENGINE_FORWARD_ADAPTER_ROUTING_H_

#include <vector>

#include "common/ids.h"
#include "memory/reroute_table.h"

namespace expertserve::engine {

// Immutable once published to the engine: thread-compatible.
struct AdapterRouting {
  AdapterId id = kNoAdapter;
  // [num_hidden_layers]; entries of dense layers are empty Identity(0)
  // placeholders and never read.
  std::vector<memory::RerouteTable> per_layer;
  // [num_hidden_layers] or empty: per layer, the slot of the replacement
  // shared expert in MoeWeights::shared_table, or -1 for the base's own.
  std::vector<SlotId> shared_expert_slot;
};

}  // namespace expertserve::engine

#endif  // EXPERTSERVE_ENGINE_FORWARD_ADAPTER_ROUTING_H_
