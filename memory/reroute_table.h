// Per adapter, per MoE layer: the dense map base expert id -> slot id that the
// MoE layer applies to the gate's top-k ids. Identity where the adapter does
// not replace an expert; an adapter slot (>= E) where it does.
#ifndef EXPERTSERVE_MEMORY_REROUTE_TABLE_H_
#define EXPERTSERVE_MEMORY_REROUTE_TABLE_H_

#include <span>
#include <vector>

#include "absl/status/statusor.h"
#include "common/check.h"
#include "common/ids.h"

namespace expertserve::memory {

struct ExpertReplacement {
  ExpertId expert = 0;  // base expert the adapter replaces, in [0, E)
  SlotId slot = 0;      // adapter slot holding the replacement, in [E, E + S)
};

// An immutable value: thread-compatible, so any number of threads may read
// one concurrently. Publish it by pointer (e.g. shared_ptr<const>) between
// engine steps; never mutate a published table.
class RerouteTable {
 public:
  // Validates and builds. kInvalidArgument naming the offending entry when an
  // expert id is outside [0, E), a slot is outside the adapter range
  // [E, E + S), or an expert or a slot appears twice.
  static absl::StatusOr<RerouteTable> Create(
      int num_base_experts, int num_adapter_slots,
      std::span<const ExpertReplacement> replaced);
  // The base model: slot e for every expert e.
  static RerouteTable Identity(int num_base_experts);

  SlotId operator[](ExpertId expert) const {
    ES_DCHECK(expert >= 0 && static_cast<size_t>(expert) < slots_.size());
    return slots_[static_cast<size_t>(expert)];
  }
  std::span<const SlotId> slots() const { return slots_; }  // [E]
  int num_base_experts() const { return static_cast<int>(slots_.size()); }
  // The replaced experts, sorted by expert id.
  std::span<const ExpertReplacement> replacements() const {
    return replacements_;
  }

 private:
  RerouteTable() = default;

  std::vector<SlotId> slots_;                     // [E]
  std::vector<ExpertReplacement> replacements_;  // [num_replaced]
};

}  // namespace expertserve::memory

#endif  // EXPERTSERVE_MEMORY_REROUTE_TABLE_H_
