// Fuzzes the expert table's slot lifecycle on the host backend: fuzz bytes
// drive allocate / write / read / free / reroute-validate sequences, checked
// after every op against a plain model (std::map slot -> contents seed).
//
// Input: byte 0 -> adapter slot count S in [1, 8]; byte 1 -> budget in slots
// (0 = unlimited); then 2-byte ops {opcode, argument}.
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "common/check.h"
#include "memory/address_space.h"
#include "memory/expert_table.h"
#include "memory/reroute_table.h"

namespace {

using expertserve::ExpertId;
using expertserve::SlotId;
using namespace expertserve::memory;  // NOLINT: test driver

constexpr int kBase = 2;
constexpr int64_t kI = 4, kH = 8;
constexpr size_t kMatrix = kI * kH * 4;

struct Weights {
  std::vector<std::byte> gate, up, down;
};

Weights Make(uint8_t seed) {
  Weights w{std::vector<std::byte>(kMatrix), std::vector<std::byte>(kMatrix),
            std::vector<std::byte>(kMatrix)};
  for (size_t i = 0; i < kMatrix; ++i) {
    w.gate[i] = static_cast<std::byte>(seed * 31 + i);
    w.up[i] = static_cast<std::byte>(seed * 17 + 3 * i);
    w.down[i] = static_cast<std::byte>(seed ^ i);
  }
  return w;
}

bool Same(const Weights& a, const Weights& b) {
  return a.gate == b.gate && a.up == b.up && a.down == b.down;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const int num_slots = 1 + data[0] % 8;
  const int budget_slots = data[1] % 12;
  auto backend = CreateAddressSpace(BackendKind::kHost);
  ES_CHECK(backend.ok());
  auto created = ExpertTable::Create(
      *backend, ExpertTableLayout{kBase, num_slots, kI, kH, 4});
  ES_CHECK(created.ok());
  ExpertTable& table = **created;
  const size_t stride = table.slot_stride_bytes();
  for (ExpertId e = 0; e < kBase; ++e) {
    const Weights w = Make(static_cast<uint8_t>(200 + e));
    ES_CHECK(table.MapBaseExpert(e, {w.gate, w.up, w.down}).ok());
  }
  (*backend)->set_budget_bytes(static_cast<size_t>(budget_slots) * stride);

  // The model: allocated adapter slot -> seed of its contents (nullopt =
  // allocated, never written).
  std::map<SlotId, std::optional<uint8_t>> model;
  auto pick_slot = [&](uint8_t arg) {
    // Mostly adapter slots, sometimes base or out-of-range ids.
    return static_cast<SlotId>(arg % (kBase + num_slots + 2)) - 1;
  };

  for (size_t pos = 2; pos + 1 < size; pos += 2) {
    const uint8_t op = data[pos] % 6;
    const uint8_t arg = data[pos + 1];
    switch (op) {
      case 0: {  // allocate
        const bool room = static_cast<int>(model.size()) < num_slots;
        const bool budget =
            budget_slots == 0 ||
            kBase + static_cast<int>(model.size()) + 1 <= budget_slots;
        auto slot = table.AllocateAdapterSlot();
        ES_CHECK(slot.ok() == (room && budget));
        if (slot.ok()) {
          ES_CHECK(*slot >= kBase && *slot < kBase + num_slots);
          ES_CHECK(model.count(*slot) == 0);
          model[*slot] = std::nullopt;
        } else {
          ES_CHECK(slot.status().code() == absl::StatusCode::kResourceExhausted);
        }
        break;
      }
      case 1: {  // write
        const SlotId s = pick_slot(arg);
        const Weights w = Make(arg);
        const absl::Status st = table.WriteSlot(s, {w.gate, w.up, w.down});
        const bool mapped = (s >= 0 && s < kBase) || model.count(s) > 0;
        ES_CHECK(st.ok() == mapped);
        if (st.ok() && s >= kBase) model[s] = arg;
        if (st.ok() && s < kBase) {  // restore the base expert
          const Weights b = Make(static_cast<uint8_t>(200 + s));
          ES_CHECK(table.WriteSlot(s, {b.gate, b.up, b.down}).ok());
        }
        break;
      }
      case 2: {  // read
        const SlotId s = pick_slot(arg);
        Weights got{std::vector<std::byte>(kMatrix),
                    std::vector<std::byte>(kMatrix),
                    std::vector<std::byte>(kMatrix)};
        const absl::Status st = table.ReadSlot(s, {got.gate, got.up, got.down});
        const bool mapped = (s >= 0 && s < kBase) || model.count(s) > 0;
        ES_CHECK(st.ok() == mapped);
        if (!st.ok()) break;
        if (s < kBase) {
          ES_CHECK(Same(got, Make(static_cast<uint8_t>(200 + s))));
        } else if (model[s].has_value()) {
          ES_CHECK(Same(got, Make(*model[s])));
          // The raw strided array agrees with ReadSlot.
          const ExpertPointers p = table.SlotPointers(s);
          ES_CHECK(p.gate == table.base() + static_cast<size_t>(s) * stride);
          ES_CHECK(p.down[0] == got.down[0]);
        }
        break;
      }
      case 3: {  // free
        const SlotId s = pick_slot(arg);
        const absl::Status st = table.FreeAdapterSlot(s);
        ES_CHECK(st.ok() == (model.count(s) > 0));
        if (st.ok()) {
          model.erase(s);
        } else if (s >= kBase && s < kBase + num_slots) {
          ES_CHECK(st.code() == absl::StatusCode::kNotFound);
        } else {
          ES_CHECK(st.code() == absl::StatusCode::kInvalidArgument);
        }
        break;
      }
      case 4: {  // build and validate a reroute table from the next bytes
        const size_t n = arg % 4;
        std::vector<ExpertReplacement> repl;
        for (size_t k = 0; k < n && pos + 3 + k < size; ++k) {
          const uint8_t b = data[pos + 2 + k];
          repl.push_back({static_cast<ExpertId>(b % 4) - 1,
                          pick_slot(static_cast<uint8_t>(b >> 2))});
        }
        // Reference validity.
        bool valid = true;
        std::map<ExpertId, int> experts;
        std::map<SlotId, int> slots;
        for (const ExpertReplacement& r : repl) {
          valid = valid && r.expert >= 0 && r.expert < kBase &&
                  r.slot >= kBase && r.slot < kBase + num_slots &&
                  experts[r.expert]++ == 0 && slots[r.slot]++ == 0;
        }
        auto rt = RerouteTable::Create(kBase, num_slots, repl);
        ES_CHECK(rt.ok() == valid);
        if (!rt.ok()) {
          ES_CHECK(rt.status().code() == absl::StatusCode::kInvalidArgument);
          break;
        }
        bool all_mapped = true;
        for (const ExpertReplacement& r : repl) {
          all_mapped = all_mapped && model.count(r.slot) > 0;
          ES_CHECK((*rt)[r.expert] == r.slot);
        }
        for (ExpertId e = 0; e < kBase; ++e) {
          if (experts.count(e) == 0) ES_CHECK((*rt)[e] == e);
        }
        ES_CHECK(table.ValidateReroute(*rt).ok() == all_mapped);
        break;
      }
      case 5:
        break;  // counters only
    }
    const ExpertTableCounters c = table.counters();
    ES_CHECK(c.mapped_base_slots == kBase);
    ES_CHECK(c.mapped_adapter_slots == static_cast<int>(model.size()));
    ES_CHECK(c.free_adapter_slots == num_slots - static_cast<int>(model.size()));
    ES_CHECK(c.mapped_bytes == (kBase + model.size()) * stride);
    const AddressSpaceCounters bc = (*backend)->counters();
    ES_CHECK(bc.mapped_bytes == c.mapped_bytes);
    ES_CHECK(bc.allocated_bytes == c.mapped_bytes);
  }
  return 0;
}
