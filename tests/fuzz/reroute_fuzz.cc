// Fuzzes reroute-table updates as the adapter registry performs them, on a
// host-backed expert table: fuzz bytes drive adapter loads (allocate slots,
// build a RerouteTable, validate it against the table), unloads (free the
// slots; the stale table must then fail validation), malformed tables (must
// be rejected without side effects) and batched reroutes of random top-k ids
// through the packed tables of the live adapters, checked against a plain
// std::map model of every adapter's expert -> slot map.
//
// Input: byte 0 -> E in [1, 16]; byte 1 -> S in [0, 16]; then 3-byte ops
// {opcode, a, b}.
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include "common/check.h"
#include "engine/adapters/batched_reroute.h"
#include "memory/address_space.h"
#include "memory/expert_table.h"
#include "memory/reroute_table.h"

namespace {

using expertserve::ExpertId;
using expertserve::SlotId;
using namespace expertserve::memory;  // NOLINT: test driver
namespace adapters = expertserve::engine::adapters;

struct LiveAdapter {
  RerouteTable table;
  std::vector<SlotId> slots;
  std::map<ExpertId, SlotId> model;  // replaced experts only
};

// A tiny deterministic generator seeded by fuzz bytes.
struct Prng {
  uint32_t s;
  uint32_t Next() {
    s = s * 1664525u + 1013904223u;
    return s >> 8;
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const int E = 1 + data[0] % 16;
  const int S = data[1] % 17;
  auto backend = CreateAddressSpace(BackendKind::kHost);
  ES_CHECK(backend.ok());
  ExpertTableLayout layout{E, S, 2, 4, 4};
  auto table_or = ExpertTable::Create(*backend, layout);
  ES_CHECK(table_or.ok());
  ExpertTable& table = **table_or;
  std::vector<LiveAdapter> live;
  int used_slots = 0;

  for (size_t i = 2; i + 3 <= size; i += 3) {
    const uint8_t op = data[i] % 4, a = data[i + 1], b = data[i + 2];
    Prng rng{static_cast<uint32_t>(a) << 8 | b};
    switch (op) {
      case 0: {  // load: n replacements, duplicates on purpose when b & 1
        const int n = a % (S + 1);
        std::vector<SlotId> slots;
        bool out_of_slots = false;
        for (int j = 0; j < n; ++j) {
          auto slot = table.AllocateAdapterSlot();
          if (!slot.ok()) {
            out_of_slots = true;
            break;
          }
          slots.push_back(*slot);
        }
        ES_CHECK(out_of_slots == (used_slots + n > S));
        std::vector<ExpertReplacement> repl;
        std::map<ExpertId, SlotId> model;
        bool duplicate = false;
        for (SlotId s : slots) {
          const ExpertId e = static_cast<ExpertId>(rng.Next() % static_cast<uint32_t>(E));
          duplicate |= model.count(e) > 0;
          model[e] = s;
          repl.push_back({e, s});
        }
        auto t = RerouteTable::Create(E, S, repl);
        if (out_of_slots || duplicate || !t.ok()) {
          ES_CHECK(duplicate == !t.ok());
          for (SlotId s : slots) ES_CHECK(table.FreeAdapterSlot(s).ok());
          break;
        }
        ES_CHECK(table.ValidateReroute(*t).ok());
        used_slots += static_cast<int>(slots.size());
        live.push_back({*std::move(t), std::move(slots), std::move(model)});
        break;
      }
      case 1: {  // unload
        if (live.empty()) break;
        const size_t idx = a % live.size();
        for (SlotId s : live[idx].slots) ES_CHECK(table.FreeAdapterSlot(s).ok());
        // A table whose slots are gone must never validate again.
        ES_CHECK(live[idx].slots.empty() || !table.ValidateReroute(live[idx].table).ok());
        used_slots -= static_cast<int>(live[idx].slots.size());
        live.erase(live.begin() + static_cast<ptrdiff_t>(idx));
        break;
      }
      case 2: {  // batched reroute through the packed live tables
        std::vector<const RerouteTable*> ptrs;
        for (const LiveAdapter& l : live) ptrs.push_back(&l.table);
        auto packed = adapters::PackRerouteTables(ptrs, E);
        ES_CHECK(packed.ok());
        const size_t T = a % 33, k = 1 + b % 4;
        std::vector<ExpertId> topk(T * k);
        std::vector<int32_t> who(T);
        for (auto& e : topk) e = static_cast<ExpertId>(rng.Next() % static_cast<uint32_t>(E));
        for (auto& w : who) {
          w = static_cast<int32_t>(rng.Next() % (live.size() + 1)) - 1;
        }
        std::vector<SlotId> out(T * k);
        ES_CHECK(adapters::RerouteTopK(topk, k, who, *packed, out).ok());
        for (size_t t = 0; t < T; ++t) {
          for (size_t j = 0; j < k; ++j) {
            const ExpertId e = topk[t * k + j];
            SlotId want = e;
            if (who[t] >= 0) {
              const auto& m = live[static_cast<size_t>(who[t])].model;
              if (auto it = m.find(e); it != m.end()) want = it->second;
            }
            ES_CHECK(out[t * k + j] == want);
          }
        }
        // An expert id out of range is rejected, not read.
        if (T > 0) {
          topk[0] = E + (b % 3);
          ES_CHECK(!adapters::RerouteTopK(topk, k, who, *packed, out).ok());
        }
        break;
      }
      case 3: {  // malformed tables are rejected
        const ExpertReplacement bad[] = {
            {static_cast<ExpertId>(E + a % 4), static_cast<SlotId>(E)},
            {static_cast<ExpertId>(a % E), static_cast<SlotId>(b % (E > 0 ? E : 1))},
            {static_cast<ExpertId>(a % E), static_cast<SlotId>(E + S + b % 4)},
        };
        for (const ExpertReplacement& r : bad) {
          ES_CHECK(!RerouteTable::Create(E, S, std::span(&r, 1)).ok());
        }
        break;
      }
    }
    const ExpertTableCounters c = table.counters();
    ES_CHECK(c.mapped_adapter_slots == used_slots);
    ES_CHECK(c.free_adapter_slots == S - used_slots);
    for (const LiveAdapter& l : live) ES_CHECK(table.ValidateReroute(l.table).ok());
  }
  for (const LiveAdapter& l : live) {
    for (SlotId s : l.slots) ES_CHECK(table.FreeAdapterSlot(s).ok());
  }
  ES_CHECK(table.counters().mapped_adapter_slots == 0);
  return 0;
}
