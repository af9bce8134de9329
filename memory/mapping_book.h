// Bookkeeping shared by the address-space backends: which ranges are
// reserved, which chunks exist, what is mapped where, and the budget. The
// backends validate every call against it before touching the OS or driver,
// so a bad call is a Status, never a silently clobbered mapping.
#ifndef EXPERTSERVE_MEMORY_MAPPING_BOOK_H_
#define EXPERTSERVE_MEMORY_MAPPING_BOOK_H_

#include <cstddef>
#include <cstdint>
#include <map>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "memory/address_space.h"

namespace expertserve::memory::internal {

// Thread-compatible: each backend guards its book with its own mutex.
class MappingBook {
 public:
  struct Mapping {
    uint64_t chunk_id = 0;
    size_t size_bytes = 0;
    Access access = Access::kReadWrite;
  };

  MappingBook(size_t granularity_bytes, size_t budget_bytes)
      : granularity_bytes_(granularity_bytes), budget_bytes_(budget_bytes) {}

  absl::Status CheckReserve(size_t size_bytes) const;
  void AddReservation(const VirtualRange& range);
  absl::Status CheckFree(const VirtualRange& range) const;
  void RemoveReservation(const VirtualRange& range);

  absl::Status CheckAllocate(size_t size_bytes) const;
  void AddChunk(uint64_t id, size_t size_bytes);
  absl::Status CheckRelease(const PhysicalChunk& chunk) const;
  void RemoveChunk(uint64_t id);

  absl::Status CheckMap(const PhysicalChunk& chunk, uintptr_t address) const;
  void AddMapping(const PhysicalChunk& chunk, uintptr_t address);
  // The mapping that starts exactly at `address`.
  absl::StatusOr<Mapping> FindMapping(uintptr_t address) const;
  void RemoveMapping(uintptr_t address);
  void SetMappingAccess(uintptr_t address, Access access);
  // OK when [address, address + size_bytes) lies inside one mapping that
  // grants at least `needed`.
  absl::Status CheckSpan(uintptr_t address, size_t size_bytes,
                         Access needed) const;

  AddressSpaceCounters counters() const;
  void set_budget_bytes(size_t budget_bytes) { budget_bytes_ = budget_bytes; }

 private:
  struct Chunk {
    size_t size_bytes = 0;
    bool mapped = false;
  };

  const size_t granularity_bytes_;
  size_t budget_bytes_;
  std::map<uintptr_t, size_t> reservations_;  // base -> size
  std::map<uint64_t, Chunk> chunks_;          // id -> chunk
  std::map<uintptr_t, Mapping> mappings_;     // address -> mapping
  size_t reserved_bytes_ = 0;
  size_t allocated_bytes_ = 0;
  size_t mapped_bytes_ = 0;
};

}  // namespace expertserve::memory::internal

#endif  // EXPERTSERVE_MEMORY_MAPPING_BOOK_H_
