#include "memory/address_space.h"

#include <cstring>
#include <vector>

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
using ::expertserve::testing::IsOk;
using ::expertserve::testing::StatusIs;
using ::testing::HasSubstr;

using AddressSpaceTest = BackendTest;

TEST_P(AddressSpaceTest, ReserveMapWriteReadUnmap) {
  ES_ASSERT_OK_AND_ASSIGN(VirtualRange range,
                          backend_->Reserve(4 * granularity_));
  EXPECT_EQ(range.base % granularity_, 0u);
  EXPECT_EQ(backend_->counters().reserved_bytes, 4 * granularity_);
  EXPECT_EQ(backend_->counters().mapped_bytes, 0u);

  ES_ASSERT_OK_AND_ASSIGN(PhysicalChunk chunk,
                          backend_->Allocate(granularity_));
  EXPECT_EQ(backend_->counters().allocated_bytes, granularity_);
  const uintptr_t at = range.base + 2 * granularity_;
  ES_ASSERT_OK(backend_->Map(chunk, at));
  EXPECT_EQ(backend_->counters().mapped_bytes, granularity_);

  const std::vector<std::byte> data = RandomBytes(granularity_, 1);
  ES_ASSERT_OK(backend_->Write(at, data.data(), data.size()));
  std::vector<std::byte> back(granularity_);
  ES_ASSERT_OK(backend_->Read(back.data(), at, back.size()));
  EXPECT_EQ(back, data);

  ES_ASSERT_OK(backend_->Unmap(at));
  EXPECT_EQ(backend_->counters().mapped_bytes, 0u);
  EXPECT_THAT(backend_->Read(back.data(), at, back.size()),
              StatusIs(absl::StatusCode::kOutOfRange));

  // The chunk keeps its contents while allocated: map it elsewhere.
  ES_ASSERT_OK(backend_->Map(chunk, range.base));
  std::vector<std::byte> again(granularity_);
  ES_ASSERT_OK(backend_->Read(again.data(), range.base, again.size()));
  EXPECT_EQ(again, data);
  ES_ASSERT_OK(backend_->Unmap(range.base));

  ES_ASSERT_OK(backend_->Release(chunk));
  ES_ASSERT_OK(backend_->Free(range));
  const AddressSpaceCounters c = backend_->counters();
  EXPECT_EQ(c.reserved_bytes, 0u);
  EXPECT_EQ(c.allocated_bytes, 0u);
  EXPECT_EQ(c.mapped_bytes, 0u);
}

TEST_P(AddressSpaceTest, RejectsMisuseWithSpecificCodes) {
  EXPECT_THAT(backend_->Reserve(0), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(backend_->Reserve(granularity_ + 1),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(backend_->Allocate(granularity_ / 2),
              StatusIs(absl::StatusCode::kInvalidArgument));

  ES_ASSERT_OK_AND_ASSIGN(VirtualRange range,
                          backend_->Reserve(2 * granularity_));
  ES_ASSERT_OK_AND_ASSIGN(PhysicalChunk a, backend_->Allocate(granularity_));
  ES_ASSERT_OK_AND_ASSIGN(PhysicalChunk big,
                          backend_->Allocate(2 * granularity_));

  // Misaligned, outside the reservation, past its end.
  EXPECT_THAT(backend_->Map(a, range.base + 64),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(backend_->Map(a, range.base + 2 * granularity_),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(backend_->Map(big, range.base + granularity_),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(backend_->Map(PhysicalChunk{12345678, granularity_}, range.base),
              StatusIs(absl::StatusCode::kInvalidArgument));

  ES_ASSERT_OK(backend_->Map(a, range.base + granularity_));
  // Same chunk twice; a mapping over an existing one.
  EXPECT_THAT(backend_->Map(a, range.base),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(backend_->Map(big, range.base),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  // Release while mapped; free with a mapping inside.
  EXPECT_THAT(backend_->Release(a),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(backend_->Free(range),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  // Unmap where no mapping starts; a copy straddling the mapping's end.
  EXPECT_THAT(backend_->Unmap(range.base),
              StatusIs(absl::StatusCode::kNotFound));
  std::vector<std::byte> buf(2 * granularity_);
  EXPECT_THAT(backend_->Write(range.base + granularity_, buf.data(),
                              granularity_ + 1),
              StatusIs(absl::StatusCode::kOutOfRange));

  ES_ASSERT_OK(backend_->Unmap(range.base + granularity_));
  EXPECT_THAT(backend_->Unmap(range.base + granularity_),
              StatusIs(absl::StatusCode::kNotFound));
  ES_ASSERT_OK(backend_->Release(a));
  EXPECT_THAT(backend_->Release(a),
              StatusIs(absl::StatusCode::kInvalidArgument));
  ES_ASSERT_OK(backend_->Release(big));
  ES_ASSERT_OK(backend_->Free(range));
  EXPECT_THAT(backend_->Free(range),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_P(AddressSpaceTest, OverBudgetIsResourceExhaustedWithNumbers) {
  backend_->set_budget_bytes(2 * granularity_);
  ES_ASSERT_OK_AND_ASSIGN(PhysicalChunk a, backend_->Allocate(granularity_));
  ES_ASSERT_OK_AND_ASSIGN(PhysicalChunk b, backend_->Allocate(granularity_));
  EXPECT_THAT(
      backend_->Allocate(granularity_),
      StatusIs(absl::StatusCode::kResourceExhausted,
               HasSubstr(absl::StrCat("need ", granularity_, " bytes, ",
                                      2 * granularity_, " of ",
                                      2 * granularity_))));
  EXPECT_EQ(backend_->counters().allocated_bytes, 2 * granularity_);
  ES_ASSERT_OK(backend_->Release(a));
  ES_ASSERT_OK_AND_ASSIGN(PhysicalChunk c, backend_->Allocate(granularity_));
  ES_ASSERT_OK(backend_->Release(b));
  ES_ASSERT_OK(backend_->Release(c));
  EXPECT_EQ(backend_->counters().budget_bytes, 2 * granularity_);
}

TEST_P(AddressSpaceTest, ReadOnlyAccessRejectsWrites) {
  ES_ASSERT_OK_AND_ASSIGN(VirtualRange range, backend_->Reserve(granularity_));
  ES_ASSERT_OK_AND_ASSIGN(PhysicalChunk a, backend_->Allocate(granularity_));
  ES_ASSERT_OK(backend_->Map(a, range.base));
  const std::vector<std::byte> data = RandomBytes(granularity_, 2);
  ES_ASSERT_OK(backend_->Write(range.base, data.data(), data.size()));
  ES_ASSERT_OK(backend_->SetAccess(range.base, Access::kRead));
  EXPECT_THAT(backend_->Write(range.base, data.data(), 1),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  std::vector<std::byte> back(granularity_);
  ES_ASSERT_OK(backend_->Read(back.data(), range.base, back.size()));
  EXPECT_EQ(back, data);
  ES_ASSERT_OK(backend_->Unmap(range.base));
  ES_ASSERT_OK(backend_->Release(a));
  ES_ASSERT_OK(backend_->Free(range));
}

// 1000 map/unmap cycles of several chunks: the counters, the backing file
// and the process's shared-memory RSS come back to where they started.
TEST_P(AddressSpaceTest, RepeatedCyclesLeaveNoGrowth) {
  constexpr int kChunks = 4;
  constexpr int kCycles = 1000;
  ES_ASSERT_OK_AND_ASSIGN(VirtualRange range,
                          backend_->Reserve(kChunks * granularity_));
  const std::vector<std::byte> page(granularity_, std::byte{0x5a});
  auto cycle = [&](int i) {
    std::vector<PhysicalChunk> chunks;
    // A varying subset so offsets get reused out of order.
    const int n = 1 + i % kChunks;
    for (int k = 0; k < n; ++k) {
      ES_ASSERT_OK_AND_ASSIGN(PhysicalChunk c,
                              backend_->Allocate(granularity_));
      const uintptr_t at = range.base + static_cast<uintptr_t>(k) * granularity_;
      ES_ASSERT_OK(backend_->Map(c, at));
      ES_ASSERT_OK(backend_->Write(at, page.data(), page.size()));
      chunks.push_back(c);
    }
    for (int k = n - 1; k >= 0; k -= 2) {
      ES_ASSERT_OK(backend_->Unmap(range.base + k * granularity_));
      ES_ASSERT_OK(backend_->Release(chunks[static_cast<size_t>(k)]));
    }
    for (int k = n - 2; k >= 0; k -= 2) {
      ES_ASSERT_OK(backend_->Unmap(range.base + k * granularity_));
      ES_ASSERT_OK(backend_->Release(chunks[static_cast<size_t>(k)]));
    }
  };
  for (int i = 0; i < 8; ++i) cycle(i);  // warm up
  const AddressSpaceCounters before = backend_->counters();
  const int64_t shmem_before_kb = ProcStatusKb("RssShmem");
  for (int i = 0; i < kCycles && !HasFatalFailure(); ++i) cycle(i);
  const AddressSpaceCounters after = backend_->counters();
  EXPECT_EQ(after.allocated_bytes, before.allocated_bytes);
  EXPECT_EQ(after.mapped_bytes, 0u);
  EXPECT_EQ(after.reserved_bytes, before.reserved_bytes);
  if (IsHost()) {
    auto* host = dynamic_cast<HostAddressSpace*>(backend_.get());
    ASSERT_NE(host, nullptr);
    EXPECT_EQ(host->memfd_size_bytes(), 0u) << "offsets leaked or fragmented";
    const int64_t shmem_after_kb = ProcStatusKb("RssShmem");
    ASSERT_GE(shmem_before_kb, 0);
    // Slack for lazily folded per-cpu RSS counters; one cycle leaking one
    // page would show as ~4000 kB.
    EXPECT_LE(shmem_after_kb, shmem_before_kb + 256);
  }
  ES_ASSERT_OK(backend_->Free(range));
}

TEST_P(AddressSpaceTest, HostUnmappedRangeHasNoAccess) {
  if (!IsHost()) GTEST_SKIP() << "page protections are checked on the host";
  ES_ASSERT_OK_AND_ASSIGN(VirtualRange range,
                          backend_->Reserve(3 * granularity_));
  ES_ASSERT_OK_AND_ASSIGN(PhysicalChunk a, backend_->Allocate(granularity_));
  const uintptr_t mid = range.base + granularity_;
  EXPECT_EQ(ProtectionAt(mid), "---p");
  ES_ASSERT_OK(backend_->Map(a, mid));
  EXPECT_EQ(ProtectionAt(mid), "rw-s");
  EXPECT_EQ(ProtectionAt(range.base), "---p");
  EXPECT_EQ(ProtectionAt(range.base + 2 * granularity_), "---p");
  ES_ASSERT_OK(backend_->Unmap(mid));
  // Still reserved (a PROT_NONE mapping), not a hole another mmap could take.
  EXPECT_EQ(ProtectionAt(mid), "---p");
  ES_ASSERT_OK(backend_->Release(a));
  ES_ASSERT_OK(backend_->Free(range));
  EXPECT_EQ(ProtectionAt(mid), "");
}

TEST_P(AddressSpaceTest, HostTouchingUnmappedMemoryFaults) {
  if (!IsHost()) GTEST_SKIP() << "device memory is not host-accessible";
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  ES_ASSERT_OK_AND_ASSIGN(VirtualRange range,
                          backend_->Reserve(2 * granularity_));
  ES_ASSERT_OK_AND_ASSIGN(PhysicalChunk a, backend_->Allocate(granularity_));
  ES_ASSERT_OK(backend_->Map(a, range.base));
  auto* mapped = reinterpret_cast<volatile unsigned char*>(range.base);
  auto* unmapped =
      reinterpret_cast<volatile unsigned char*>(range.base + granularity_);
  mapped[0] = 7;  // fine
  EXPECT_EQ(mapped[0], 7);
  EXPECT_DEATH({ unmapped[0] = 1; }, "");
  ES_ASSERT_OK(backend_->Unmap(range.base));
  EXPECT_DEATH({ (void)mapped[0]; }, "");
  ES_ASSERT_OK(backend_->Release(a));
  ES_ASSERT_OK(backend_->Free(range));
}

ES_INSTANTIATE_BACKEND_SUITE(AddressSpaceTest);

TEST(AddressSpaceFactoryTest, CudaIsUnavailableOrWorks) {
  auto cuda = CreateAddressSpace(BackendKind::kCuda);
  if (cuda.ok()) {
    EXPECT_EQ((*cuda)->kind(), BackendKind::kCuda);
    EXPECT_GT((*cuda)->granularity_bytes(), 0u);
  } else {
    // Never a crash or an internal error: an actionable "not here".
    EXPECT_THAT(cuda.status().code(),
                ::testing::AnyOf(absl::StatusCode::kUnavailable,
                                 absl::StatusCode::kFailedPrecondition))
        << cuda.status();
    EXPECT_FALSE(cuda.status().message().empty());
  }
}

}  // namespace
}  // namespace expertserve::memory
