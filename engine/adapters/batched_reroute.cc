#include "engine/adapters/batched_reroute.h"

#include "absl/strings/str_cat.h"

namespace expertserve::engine::adapters {

absl::StatusOr<PackedReroute> PackRerouteTables(
    std::span<const memory::RerouteTable* const> tables, int num_experts) {
  if (num_experts <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("reroute pack: E must be positive, got ", num_experts));
  }
  PackedReroute packed;
  packed.num_adapters = static_cast<int>(tables.size());
  packed.num_experts = num_experts;
  packed.slots.reserve(tables.size() * static_cast<size_t>(num_experts));
  for (size_t a = 0; a < tables.size(); ++a) {
    if (tables[a] == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("reroute pack: table ", a, " is null"));
    }
    if (tables[a]->num_base_experts() != num_experts) {
      return absl::InvalidArgumentError(absl::StrCat(
          "reroute pack: table ", a, " has E=", tables[a]->num_base_experts(),
          ", the layer has E=", num_experts));
    }
    const std::span<const SlotId> row = tables[a]->slots();
    packed.slots.insert(packed.slots.end(), row.begin(), row.end());
  }
  return packed;
}

absl::Status RerouteTopK(std::span<const ExpertId> topk, size_t k,
                         std::span<const int32_t> adapter_index,
                         const PackedReroute& table, std::span<SlotId> out) {
  const size_t T = adapter_index.size();
  if (topk.size() != T * k || out.size() != T * k) {
    return absl::InvalidArgumentError(absl::StrCat(
        "reroute: topk has ", topk.size(), " ids and out ", out.size(),
        ", want T*k = ", T, "*", k));
  }
  if (table.slots.size() != static_cast<size_t>(table.num_adapters) *
                                static_cast<size_t>(table.num_experts)) {
    return absl::InvalidArgumentError("reroute: packed table size is not A*E");
  }
  const size_t E = static_cast<size_t>(table.num_experts);
  for (size_t t = 0; t < T; ++t) {
    const int32_t a = adapter_index[t];
    if (a < -1 || a >= table.num_adapters) {
      return absl::InvalidArgumentError(
          absl::StrCat("reroute: token ", t, " has adapter index ", a,
                       ", outside [-1, ", table.num_adapters, ")"));
    }
    const SlotId* row =
        a < 0 ? nullptr : table.slots.data() + static_cast<size_t>(a) * E;
    for (size_t j = 0; j < k; ++j) {
      const ExpertId e = topk[t * k + j];
      if (e < 0 || static_cast<size_t>(e) >= E) {
        return absl::InvalidArgumentError(absl::StrCat(
            "reroute: token ", t, " picks expert ", e, ", outside [0, ", E,
            ")"));
      }
      out[t * k + j] = row == nullptr ? e : row[e];
    }
  }
  return absl::OkStatus();
}

}  // namespace expertserve::engine::adapters
