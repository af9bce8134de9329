#include "memory/reroute_table.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace expertserve::memory {

absl::StatusOr<RerouteTable> RerouteTable::Create(
    int num_base_experts, int num_adapter_slots,
    std::span<const ExpertReplacement> replaced) {
  if (num_base_experts <= 0 || num_adapter_slots < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "reroute table: need E > 0 and S >= 0, got E=", num_base_experts,
        " S=", num_adapter_slots));
  }
  const int64_t slot_end =
      static_cast<int64_t>(num_base_experts) + num_adapter_slots;
  RerouteTable t = Identity(num_base_experts);
  std::vector<bool> slot_used(static_cast<size_t>(num_adapter_slots), false);
  for (size_t i = 0; i < replaced.size(); ++i) {
    const ExpertReplacement& r = replaced[i];
    if (r.expert < 0 || r.expert >= num_base_experts) {
      return absl::InvalidArgumentError(absl::StrCat(
          "reroute table entry ", i, ": expert id ", r.expert,
          " is outside [0, ", num_base_experts, ") of this MoE layer"));
    }
    if (r.slot < num_base_experts || r.slot >= slot_end) {
      return absl::InvalidArgumentError(absl::StrCat(
          "reroute table entry ", i, " (expert ", r.expert, "): slot ", r.slot,
          " is outside the adapter slots [", num_base_experts, ", ", slot_end,
          ")"));
    }
    SlotId& target = t.slots_[static_cast<size_t>(r.expert)];
    if (target != r.expert) {
      return absl::InvalidArgumentError(
          absl::StrCat("reroute table entry ", i, ": expert ", r.expert,
                       " is replaced twice (slots ", target, " and ", r.slot,
                       ")"));
    }
    const size_t k = static_cast<size_t>(r.slot - num_base_experts);
    if (slot_used[k]) {
      return absl::InvalidArgumentError(absl::StrCat(
          "reroute table entry ", i, ": slot ", r.slot,
          " already holds another replaced expert"));
    }
    slot_used[k] = true;
    target = r.slot;
    t.replacements_.push_back(r);
  }
  std::sort(t.replacements_.begin(), t.replacements_.end(),
            [](const ExpertReplacement& a, const ExpertReplacement& b) {
              return a.expert < b.expert;
            });
  return t;
}

RerouteTable RerouteTable::Identity(int num_base_experts) {
  RerouteTable t;
  t.slots_.resize(static_cast<size_t>(std::max(num_base_experts, 0)));
  for (size_t e = 0; e < t.slots_.size(); ++e) {
    t.slots_[e] = static_cast<SlotId>(e);
  }
  return t;
}

}  // namespace expertserve::memory
