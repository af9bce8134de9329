#include "memory/expert_table.h"

#include <atomic>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "memory/host_backend.h"
#include "tests/fixtures/status_matchers.h"
#include "tests/memory/backend_fixture.h"

namespace expertserve::memory {
namespace {

using ::expertserve::memory::testing::BackendTest;
using ::expertserve::memory::testing::ProcStatusKb;
using ::expertserve::memory::testing::ProtectionAt;
using ::expertserve::memory::testing::RandomBytes;
using ::expertserve::testing::StatusIs;
using ::testing::HasSubstr;

// One expert's weights held by the test: the independent model of what a
// slot must read back.
struct Expert {
  std::vector<std::byte> gate, up, down;
  ExpertWeightsView view() const { return {gate, up, down}; }
};

Expert MakeExpert(size_t matrix_bytes, uint32_t seed) {
  return Expert{RandomBytes(matrix_bytes, seed * 3 + 0),
                RandomBytes(matrix_bytes, seed * 3 + 1),
                RandomBytes(matrix_bytes, seed * 3 + 2)};
}

class ExpertTableTest : public BackendTest {
 protected:
  // bf16-sized odd shapes: a matrix is not a multiple of the page size.
  static constexpr ExpertTableLayout kLayout{/*num_base_experts=*/4,
                                             /*num_adapter_slots=*/3,
                                             /*intermediate=*/24,
                                             /*hidden=*/40,
                                             /*element_bytes=*/2};
  static constexpr size_t kMatrixBytes = 24 * 40 * 2;

  std::unique_ptr<ExpertTable> MakeTable(const ExpertTableLayout& layout) {
    auto t = ExpertTable::Create(backend_, layout);
    EXPECT_TRUE(t.ok()) << t.status();
    return t.ok() ? *std::move(t) : nullptr;
  }

  void ExpectSlotHolds(const ExpertTable& table, SlotId slot,
                       const Expert& want) {
    Expert got{std::vector<std::byte>(want.gate.size()),
               std::vector<std::byte>(want.up.size()),
               std::vector<std::byte>(want.down.size())};
    ES_ASSERT_OK(table.ReadSlot(slot, {got.gate, got.up, got.down}));
    EXPECT_EQ(got.gate, want.gate) << "slot " << slot;
    EXPECT_EQ(got.up, want.up) << "slot " << slot;
    EXPECT_EQ(got.down, want.down) << "slot " << slot;
    if (IsHost()) {
      // And through the raw strided array a kernel would use.
      const std::byte* s =
          table.base() + static_cast<size_t>(slot) * table.slot_stride_bytes();
      EXPECT_EQ(std::memcmp(s + table.gate_offset_bytes(), want.gate.data(),
                            want.gate.size()), 0);
      EXPECT_EQ(std::memcmp(s + table.up_offset_bytes(), want.up.data(),
                            want.up.size()), 0);
      EXPECT_EQ(std::memcmp(s + table.down_offset_bytes(), want.down.data(),
                            want.down.size()), 0);
    }
  }
};

TEST_P(ExpertTableTest, GeometryIsOneStridedArray) {
  auto table = MakeTable(kLayout);
  ASSERT_NE(table, nullptr);
  EXPECT_EQ(table->num_slots(), 7);
  EXPECT_EQ(table->matrix_bytes(), kMatrixBytes);
  EXPECT_EQ(table->slot_stride_bytes() % granularity_, 0u);
  EXPECT_GE(table->slot_stride_bytes(),
            table->down_offset_bytes() + kMatrixBytes);
  EXPECT_EQ(table->up_offset_bytes() % 256, 0u);
  EXPECT_EQ(table->down_offset_bytes() % 256, 0u);
  EXPECT_GE(table->up_offset_bytes(), kMatrixBytes);
  EXPECT_GE(table->down_offset_bytes(),
            table->up_offset_bytes() + kMatrixBytes);
  for (SlotId s = 0; s < table->num_slots(); ++s) {
    const ExpertPointers p = table->SlotPointers(s);
    EXPECT_EQ(p.gate, table->base() + s * table->slot_stride_bytes());
    EXPECT_EQ(p.up, p.gate + table->up_offset_bytes());
    EXPECT_EQ(p.down, p.gate + table->down_offset_bytes());
  }
  // Reserved, nothing mapped.
  EXPECT_EQ(backend_->counters().reserved_bytes,
            7 * table->slot_stride_bytes());
  EXPECT_EQ(backend_->counters().mapped_bytes, 0u);
  EXPECT_EQ(table->counters().free_adapter_slots, 3);
}

TEST_P(ExpertTableTest, BaseAndAdapterSlotsReadBackExactly) {
  auto table = MakeTable(kLayout);
  ASSERT_NE(table, nullptr);
  std::vector<Expert> base;
  for (int e = 0; e < 4; ++e) {
    base.push_back(MakeExpert(kMatrixBytes, static_cast<uint32_t>(e)));
    ES_ASSERT_OK(table->MapBaseExpert(e, base.back().view()));
  }
  ES_ASSERT_OK_AND_ASSIGN(SlotId a, table->AllocateAdapterSlot());
  ES_ASSERT_OK_AND_ASSIGN(SlotId b, table->AllocateAdapterSlot());
  EXPECT_EQ(a, 4);  // lowest free adapter slot first
  EXPECT_EQ(b, 5);
  const Expert xa = MakeExpert(kMatrixBytes, 100);
  const Expert xb = MakeExpert(kMatrixBytes, 101);
  ES_ASSERT_OK(table->WriteSlot(a, xa.view()));
  ES_ASSERT_OK(table->WriteSlot(b, xb.view()));
  for (int e = 0; e < 4; ++e) ExpectSlotHolds(*table, e, base[e]);
  ExpectSlotHolds(*table, a, xa);
  ExpectSlotHolds(*table, b, xb);

  const ExpertTableCounters c = table->counters();
  EXPECT_EQ(c.mapped_base_slots, 4);
  EXPECT_EQ(c.mapped_adapter_slots, 2);
  EXPECT_EQ(c.free_adapter_slots, 1);
  EXPECT_EQ(c.mapped_bytes, 6 * table->slot_stride_bytes());
  EXPECT_EQ(backend_->counters().mapped_bytes, c.mapped_bytes);
  EXPECT_FALSE(table->IsMapped(6));

  // Freeing a neighbour leaves the others intact; the slot is reused.
  ES_ASSERT_OK(table->FreeAdapterSlot(a));
  ExpectSlotHolds(*table, b, xb);
  ExpectSlotHolds(*table, 3, base[3]);
  ES_ASSERT_OK_AND_ASSIGN(SlotId again, table->AllocateAdapterSlot());
  EXPECT_EQ(again, a);
}

TEST_P(ExpertTableTest, HostUnmappedSlotsAreProtNone) {
  if (!IsHost()) GTEST_SKIP() << "page protections are checked on the host";
  auto table = MakeTable(kLayout);
  ASSERT_NE(table, nullptr);
  // The adapter slot first, so its pages are not at the memfd's end and
  // only punching a hole (not truncation) can return them.
  ES_ASSERT_OK_AND_ASSIGN(SlotId a, table->AllocateAdapterSlot());
  ES_ASSERT_OK(table->MapBaseExpert(1, MakeExpert(kMatrixBytes, 1).view()));
  auto at = [&](SlotId s) {
    return reinterpret_cast<uintptr_t>(table->SlotPointers(s).gate);
  };
  EXPECT_EQ(ProtectionAt(at(0)), "---p");
  EXPECT_EQ(ProtectionAt(at(1)), "rw-s");
  EXPECT_EQ(ProtectionAt(at(1) + table->slot_stride_bytes() - 1), "rw-s");
  EXPECT_EQ(ProtectionAt(at(2)), "---p");
  EXPECT_EQ(ProtectionAt(at(a)), "rw-s");
  EXPECT_EQ(ProtectionAt(at(a + 1)), "---p");
  // The slot's pages were touched (written), so the memfd holds them...
  auto* host = dynamic_cast<HostAddressSpace*>(backend_.get());
  ASSERT_NE(host, nullptr);
  ES_ASSERT_OK(table->WriteSlot(a, MakeExpert(kMatrixBytes, 2).view()));
  ES_ASSERT_OK_AND_ASSIGN(size_t held, host->memfd_allocated_bytes());
  EXPECT_EQ(held, 2 * table->slot_stride_bytes());
  ES_ASSERT_OK(table->FreeAdapterSlot(a));
  EXPECT_EQ(ProtectionAt(at(a)), "---p");
  // ...and gives them back to the kernel when the slot is freed.
  ES_ASSERT_OK_AND_ASSIGN(held, host->memfd_allocated_bytes());
  EXPECT_EQ(held, table->slot_stride_bytes());
}

// Load/unload cycles of varying adapter sets: mapped bytes, the backing
// memfd and the process's shared RSS stay flat (uniform slots, no
// fragmentation, pages really returned).
TEST_P(ExpertTableTest, AllocateFreeCyclesLeaveMemoryFlat) {
  // ~100 KiB slots so a leak of one slot shows in RssShmem.
  const ExpertTableLayout layout{2, 4, 64, 128, 4};
  auto table = MakeTable(layout);
  ASSERT_NE(table, nullptr);
  const size_t matrix = 64 * 128 * 4;
  const Expert x = MakeExpert(matrix, 7);
  ES_ASSERT_OK(table->MapBaseExpert(0, x.view()));
  ES_ASSERT_OK(table->MapBaseExpert(1, x.view()));
  auto cycle = [&](int i) {
    std::vector<SlotId> slots;
    const int n = 1 + i % 4;
    for (int k = 0; k < n; ++k) {
      ES_ASSERT_OK_AND_ASSIGN(SlotId s, table->AllocateAdapterSlot());
      ES_ASSERT_OK(table->WriteSlot(s, x.view()));
      slots.push_back(s);
    }
    // Free in a rotated order (a permutation differing from allocation).
    for (size_t k = 0; k < slots.size(); ++k) {
      ES_ASSERT_OK(table->FreeAdapterSlot(slots[(k + static_cast<size_t>(i)) % slots.size()]));
    }
  };
  for (int i = 0; i < 8; ++i) cycle(i);
  const ExpertTableCounters before = table->counters();
  const AddressSpaceCounters backend_before = backend_->counters();
  const int64_t shmem_before_kb = ProcStatusKb("RssShmem");
  for (int i = 0; i < 1000 && !HasFatalFailure(); ++i) cycle(i);
  const ExpertTableCounters after = table->counters();
  EXPECT_EQ(after.mapped_bytes, before.mapped_bytes);
  EXPECT_EQ(after.mapped_bytes, 2 * table->slot_stride_bytes());
  EXPECT_EQ(after.free_adapter_slots, 4);
  EXPECT_EQ(backend_->counters().mapped_bytes, backend_before.mapped_bytes);
  EXPECT_EQ(backend_->counters().allocated_bytes,
            backend_before.allocated_bytes);
  ExpectSlotHolds(*table, 0, x);
  if (IsHost()) {
    auto* host = dynamic_cast<HostAddressSpace*>(backend_.get());
    ASSERT_NE(host, nullptr);
    EXPECT_EQ(host->memfd_size_bytes(), 2 * table->slot_stride_bytes());
    // Exactly the two base slots' pages remain in the kernel's count.
    ES_ASSERT_OK_AND_ASSIGN(size_t held, host->memfd_allocated_bytes());
    EXPECT_EQ(held, 2 * table->slot_stride_bytes());
    EXPECT_LE(ProcStatusKb("RssShmem"), shmem_before_kb + 64);
  }
}

TEST_P(ExpertTableTest, SlotsAndBudgetExhaustAsResourceExhausted) {
  auto table = MakeTable(kLayout);
  ASSERT_NE(table, nullptr);
  for (int k = 0; k < 3; ++k) ES_ASSERT_OK(table->AllocateAdapterSlot().status());
  EXPECT_THAT(table->AllocateAdapterSlot(),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       HasSubstr("free 0 of 3 adapter slots")));
  ES_ASSERT_OK(table->FreeAdapterSlot(5));

  // Budget: exactly the 2 slots mapped now plus one more.
  backend_->set_budget_bytes(3 * table->slot_stride_bytes());
  ES_ASSERT_OK(table->MapBaseExpert(0, MakeExpert(kMatrixBytes, 0).view()));
  const ExpertTableCounters before = table->counters();
  EXPECT_THAT(table->AllocateAdapterSlot(),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       HasSubstr("memory budget")));
  EXPECT_THAT(table->MapBaseExpert(1, MakeExpert(kMatrixBytes, 1).view()),
              StatusIs(absl::StatusCode::kResourceExhausted));
  // A failed call changes nothing.
  const ExpertTableCounters after = table->counters();
  EXPECT_EQ(after.mapped_bytes, before.mapped_bytes);
  EXPECT_EQ(after.free_adapter_slots, before.free_adapter_slots);
  EXPECT_FALSE(table->IsMapped(1));
  EXPECT_EQ(backend_->counters().allocated_bytes, before.mapped_bytes);
}

TEST_P(ExpertTableTest, RejectsBadCalls) {
  EXPECT_THAT(ExpertTable::Create(backend_, {0, 1, 8, 8, 2}),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ExpertTable::Create(backend_, {4, -1, 8, 8, 2}),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ExpertTable::Create(backend_, {4, 1, 0, 8, 2}),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ExpertTable::Create(backend_, {4, 1, int64_t{1} << 40,
                                             int64_t{1} << 40, 2}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("large")));
  EXPECT_THAT(ExpertTable::Create(nullptr, kLayout),
              StatusIs(absl::StatusCode::kInvalidArgument));

  auto table = MakeTable(kLayout);
  ASSERT_NE(table, nullptr);
  const Expert x = MakeExpert(kMatrixBytes, 3);
  const Expert short_down{x.gate, x.up,
                          std::vector<std::byte>(kMatrixBytes - 2)};
  EXPECT_THAT(table->MapBaseExpert(0, short_down.view()),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("needs 1920 each")));
  EXPECT_THAT(table->MapBaseExpert(4, x.view()),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(table->MapBaseExpert(-1, x.view()),
              StatusIs(absl::StatusCode::kInvalidArgument));
  ES_ASSERT_OK(table->MapBaseExpert(0, x.view()));
  EXPECT_THAT(table->MapBaseExpert(0, x.view()),
              StatusIs(absl::StatusCode::kAlreadyExists));
  EXPECT_THAT(table->FreeAdapterSlot(0),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(table->FreeAdapterSlot(4), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(table->FreeAdapterSlot(7),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(table->WriteSlot(5, x.view()),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(table->UnmapBaseExpert(1), StatusIs(absl::StatusCode::kNotFound));
  ES_ASSERT_OK(table->UnmapBaseExpert(0));
  EXPECT_FALSE(table->IsMapped(0));
  EXPECT_EQ(backend_->counters().mapped_bytes, 0u);
}

TEST_P(ExpertTableTest, ValidateRerouteRequiresMappedAdapterSlots) {
  auto table = MakeTable(kLayout);
  ASSERT_NE(table, nullptr);
  ES_ASSERT_OK_AND_ASSIGN(SlotId a, table->AllocateAdapterSlot());
  const ExpertReplacement mapped[] = {{2, a}};
  ES_ASSERT_OK_AND_ASSIGN(RerouteTable ok, RerouteTable::Create(4, 3, mapped));
  ES_EXPECT_OK(table->ValidateReroute(ok));
  const ExpertReplacement unmapped[] = {{2, a}, {0, a + 1}};
  ES_ASSERT_OK_AND_ASSIGN(RerouteTable bad,
                          RerouteTable::Create(4, 3, unmapped));
  EXPECT_THAT(table->ValidateReroute(bad),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("expert 0 -> slot 5")));
  EXPECT_THAT(table->ValidateReroute(RerouteTable::Identity(5)),
              StatusIs(absl::StatusCode::kInvalidArgument));
  ES_EXPECT_OK(table->ValidateReroute(RerouteTable::Identity(4)));
}

// Shared experts use the same machinery: a second table per layer whose E is
// the number of shared experts and whose I is theirs.
TEST_P(ExpertTableTest, SharedExpertTableIsASecondTable) {
  auto routed = MakeTable(kLayout);
  const ExpertTableLayout shared_layout{1, 2, 48, 40, 2};
  auto shared = MakeTable(shared_layout);
  ASSERT_NE(routed, nullptr);
  ASSERT_NE(shared, nullptr);
  const size_t shared_matrix = 48 * 40 * 2;
  const Expert base_shared = MakeExpert(shared_matrix, 50);
  const Expert tuned_shared = MakeExpert(shared_matrix, 51);
  ES_ASSERT_OK(shared->MapBaseExpert(0, base_shared.view()));
  ES_ASSERT_OK_AND_ASSIGN(SlotId s, shared->AllocateAdapterSlot());
  EXPECT_EQ(s, 1);
  ES_ASSERT_OK(shared->WriteSlot(s, tuned_shared.view()));
  const ExpertReplacement r[] = {{0, s}};
  ES_ASSERT_OK_AND_ASSIGN(RerouteTable reroute, RerouteTable::Create(1, 2, r));
  ES_EXPECT_OK(shared->ValidateReroute(reroute));
  ExpectSlotHolds(*shared, reroute[0], tuned_shared);
  ExpectSlotHolds(*shared, 0, base_shared);
}

TEST_P(ExpertTableTest, DestructionReturnsEverything) {
  {
    auto table = MakeTable(kLayout);
    ASSERT_NE(table, nullptr);
    ES_ASSERT_OK(table->MapBaseExpert(2, MakeExpert(kMatrixBytes, 2).view()));
    ES_ASSERT_OK(table->AllocateAdapterSlot().status());
    EXPECT_GT(backend_->counters().mapped_bytes, 0u);
  }
  const AddressSpaceCounters c = backend_->counters();
  EXPECT_EQ(c.reserved_bytes, 0u);
  EXPECT_EQ(c.allocated_bytes, 0u);
  EXPECT_EQ(c.mapped_bytes, 0u);
}

// The contract in memory/README.md, exercised: a loader thread maps and
// writes an adapter's slots, then publishes its reroute table; the engine
// thread reads only through published tables and acknowledges retirement
// before the loader frees the slots.
TEST_P(ExpertTableTest, HostLoaderAndEngineThreadsFollowThePublishProtocol) {
  if (!IsHost()) GTEST_SKIP() << "the engine side reads host memory directly";
  auto table = MakeTable(kLayout);
  ASSERT_NE(table, nullptr);
  const Expert base = MakeExpert(kMatrixBytes, 9);
  for (int e = 0; e < 4; ++e) ES_ASSERT_OK(table->MapBaseExpert(e, base.view()));

  struct Published {
    std::shared_ptr<const RerouteTable> reroute;
    uint8_t fill = 0;  // every byte of the adapter's experts
  };
  absl::Mutex mu;
  Published published;                   // guarded by mu
  int64_t engine_acked_generation = -1;  // guarded by mu
  int64_t generation = 0;                // guarded by mu
  std::atomic<bool> done{false};
  std::atomic<int64_t> mismatches{0};

  std::thread engine([&] {
    while (!done.load()) {
      Published p;
      int64_t gen;
      {
        absl::MutexLock lock(&mu);
        p = published;
        gen = generation;
      }
      // A step: read every replaced expert through the reroute table.
      if (p.reroute != nullptr) {
        for (const ExpertReplacement& r : p.reroute->replacements()) {
          const ExpertPointers ptr = table->SlotPointers((*p.reroute)[r.expert]);
          for (size_t i = 0; i < kMatrixBytes; i += 97) {
            if (ptr.down[i] != static_cast<std::byte>(p.fill)) ++mismatches;
          }
        }
      }
      // Step boundary: the tables this step used are no longer referenced.
      absl::MutexLock lock(&mu);
      engine_acked_generation = gen;
    }
  });

  for (int round = 0; round < 50; ++round) {
    const uint8_t fill = static_cast<uint8_t>(round + 1);
    const Expert x{std::vector<std::byte>(kMatrixBytes, std::byte{fill}),
                   std::vector<std::byte>(kMatrixBytes, std::byte{fill}),
                   std::vector<std::byte>(kMatrixBytes, std::byte{fill})};
    std::vector<ExpertReplacement> repl;
    for (ExpertId e : {1, 3}) {
      ES_ASSERT_OK_AND_ASSIGN(SlotId s, table->AllocateAdapterSlot());
      ES_ASSERT_OK(table->WriteSlot(s, x.view()));
      repl.push_back({e, s});
    }
    ES_ASSERT_OK_AND_ASSIGN(RerouteTable rt, RerouteTable::Create(4, 3, repl));
    ES_ASSERT_OK(table->ValidateReroute(rt));
    {
      absl::MutexLock lock(&mu);
      published = {std::make_shared<const RerouteTable>(std::move(rt)), fill};
      ++generation;
    }
    // Unload: unpublish, wait for a step that started after it, then free.
    {
      absl::MutexLock lock(&mu);
      published = {};
      std::pair<const int64_t*, int64_t> wait{&engine_acked_generation,
                                              ++generation};
      mu.Await(absl::Condition(
          +[](std::pair<const int64_t*, int64_t>* w) {
            return *w->first >= w->second;
          },
          &wait));
    }
    for (const ExpertReplacement& r : repl) {
      ES_ASSERT_OK(table->FreeAdapterSlot(r.slot));
    }
  }
  done = true;
  engine.join();
  EXPECT_EQ(mismatches.load(), 0);
  EXPECT_EQ(table->counters().free_adapter_slots, 3);
}

ES_INSTANTIATE_BACKEND_SUITE(ExpertTableTest);

}  // namespace
}  // namespace expertserve::memory
