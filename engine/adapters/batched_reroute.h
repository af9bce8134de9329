// The batched reroute of one MoE layer, as one pass over the step: the gate's
// top-k expert ids of every token go through the reroute table of that
// token's adapter. The tables of the adapters in a step are packed into one
// dense [A, E] array, so the pass is a gather (the CUDA kernel in
// cuda/reroute.cu does the same on the device).
#ifndef EXPERTSERVE_ENGINE_ADAPTERS_BATCHED_REROUTE_H_
#define EXPERTSERVE_ENGINE_ADAPTERS_BATCHED_REROUTE_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "absl/status/statusor.h"
#include "common/ids.h"
#include "memory/reroute_table.h"

namespace expertserve::engine::adapters {

// A plain value: thread-compatible.
struct PackedReroute {
  int num_adapters = 0;       // A
  int num_experts = 0;        // E
  std::vector<SlotId> slots;  // [A, E]: row a is adapter a's RerouteTable
};

// Packs `tables` (row a = *tables[a]). kInvalidArgument when a table is null
// or its E differs from `num_experts`.
absl::StatusOr<PackedReroute> PackRerouteTables(
    std::span<const memory::RerouteTable* const> tables, int num_experts);

// out[t, j] = topk[t, j] when adapter_index[t] == -1 (the base model), else
// table.slots[adapter_index[t], topk[t, j]].
// topk: [T, k], adapter_index: [T], out: [T, k].
// kInvalidArgument (naming the token) for mismatched sizes, an adapter index
// outside [-1, A) or an expert id outside [0, E); `out` is then unspecified.
absl::Status RerouteTopK(std::span<const ExpertId> topk, size_t k,
                         std::span<const int32_t> adapter_index,
                         const PackedReroute& table, std::span<SlotId> out);

}  // namespace expertserve::engine::adapters

#endif  // EXPERTSERVE_ENGINE_ADAPTERS_BATCHED_REROUTE_H_
