// Host address space: one memfd provides the physical pages; reservations are
// PROT_NONE anonymous NORESERVE mappings; Map places memfd pages into a
// reservation with mmap(MAP_FIXED | MAP_SHARED), Unmap puts a PROT_NONE
// anonymous mapping back over them (so the hole stays reserved), Release
// punches the pages out of the memfd (fallocate PUNCH_HOLE) and returns the
// offset range to a coalescing free list.
#ifndef EXPERTSERVE_MEMORY_HOST_BACKEND_H_
#define EXPERTSERVE_MEMORY_HOST_BACKEND_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "memory/address_space.h"
#include "memory/mapping_book.h"

namespace expertserve::memory {

// Thread-safe (one mutex around the bookkeeping and the syscalls).
class HostAddressSpace final : public AddressSpaceInterface {
 public:
  static absl::StatusOr<std::unique_ptr<HostAddressSpace>> Create(
      const AddressSpaceOptions& options = {});
  ~HostAddressSpace() override;

  HostAddressSpace(const HostAddressSpace&) = delete;
  HostAddressSpace& operator=(const HostAddressSpace&) = delete;

  BackendKind kind() const override { return BackendKind::kHost; }
  size_t granularity_bytes() const override { return page_bytes_; }
  bool host_accessible() const override { return true; }

  absl::StatusOr<VirtualRange> Reserve(size_t size_bytes) override;
  absl::Status Free(VirtualRange range) override;
  absl::StatusOr<PhysicalChunk> Allocate(size_t size_bytes) override;
  absl::Status Release(PhysicalChunk chunk) override;
  absl::Status Map(const PhysicalChunk& chunk, uintptr_t address) override;
  absl::Status Unmap(uintptr_t address) override;
  absl::Status SetAccess(uintptr_t address, Access access) override;
  absl::Status Write(uintptr_t dst, const void* src,
                     size_t size_bytes) override;
  absl::Status Read(void* dst, uintptr_t src, size_t size_bytes) override;
  AddressSpaceCounters counters() const override;
  void set_budget_bytes(size_t budget_bytes) override;

  // Length of the memfd: the high-water mark of live offsets. Free extents at
  // its end are truncated away, so with uniform chunks it never grows past
  // the peak number of live chunks (no fragmentation).
  size_t memfd_size_bytes() const;
  // Physical pages the memfd holds (fstat st_blocks): the kernel's own count,
  // to check that Release really returns pages.
  absl::StatusOr<size_t> memfd_allocated_bytes() const;

 private:
  HostAddressSpace(int memfd, size_t page_bytes, size_t budget_bytes);

  const int memfd_;
  const size_t page_bytes_;
  mutable absl::Mutex mu_;
  internal::MappingBook book_ ABSL_GUARDED_BY(mu_);
  uint64_t next_chunk_id_ ABSL_GUARDED_BY(mu_) = 1;
  std::map<uint64_t, size_t> chunk_offsets_ ABSL_GUARDED_BY(mu_);  // id -> off
  std::map<size_t, size_t> free_extents_ ABSL_GUARDED_BY(mu_);  // off -> size
  size_t file_bytes_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace expertserve::memory

#endif  // EXPERTSERVE_MEMORY_HOST_BACKEND_H_
