// The backend interface of the memory manager: reserve a contiguous virtual
// range that holds no physical memory, create physical chunks, and map them
// into the range at granularity-aligned offsets. One interface, two
// implementations: host (memfd + mmap) and CUDA (cuMem* virtual memory).
#ifndef EXPERTSERVE_MEMORY_ADDRESS_SPACE_H_
#define EXPERTSERVE_MEMORY_ADDRESS_SPACE_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace expertserve::memory {

enum class BackendKind : uint8_t { kHost, kCuda };
std::string_view BackendName(BackendKind kind);  // "host", "cuda"

// A reserved virtual range. `base` is a host pointer for the host backend and
// a device address (CUdeviceptr) for CUDA; either way it is an integer the
// caller only does arithmetic on.
struct VirtualRange {
  uintptr_t base = 0;
  size_t size_bytes = 0;
};

// A physical allocation not yet (or no longer) mapped anywhere. `id` is opaque
// and meaningful only to the backend that made it.
struct PhysicalChunk {
  uint64_t id = 0;
  size_t size_bytes = 0;
};

enum class Access : uint8_t { kNone, kRead, kReadWrite };

struct AddressSpaceCounters {
  size_t reserved_bytes = 0;   // virtual, holds no memory
  size_t allocated_bytes = 0;  // physical chunks alive (mapped or not)
  size_t mapped_bytes = 0;     // physical bytes currently mapped
  size_t budget_bytes = 0;     // 0 = unlimited
};

struct AddressSpaceOptions {
  // Cap on allocated_bytes for this tier; Allocate beyond it is
  // kResourceExhausted. 0 = unlimited. Tiers/residency (later) set this.
  size_t budget_bytes = 0;
  int cuda_device = 0;  // CUDA only
};

// Thread-safe: every method may be called from any thread. Calls are meant
// for a loader thread; the engine thread only dereferences mapped memory.
class AddressSpaceInterface {
 public:
  virtual ~AddressSpaceInterface() = default;

  virtual BackendKind kind() const = 0;
  // Alignment and size unit of Reserve, Allocate, Map and Unmap (host: the
  // page size; CUDA: cuMemGetAllocationGranularity, typically 2 MiB).
  virtual size_t granularity_bytes() const = 0;
  // True when mapped memory may be dereferenced by host code (host backend).
  // Otherwise use Write / Read to copy in and out.
  virtual bool host_accessible() const = 0;

  // Reserves `size_bytes` (a multiple of the granularity) of virtual address
  // space with no access and no physical memory behind it.
  virtual absl::StatusOr<VirtualRange> Reserve(size_t size_bytes) = 0;
  // Returns a reservation. Everything in it must be unmapped first
  // (kFailedPrecondition otherwise).
  virtual absl::Status Free(VirtualRange range) = 0;

  // Creates `size_bytes` (a multiple of the granularity) of physical memory.
  // kResourceExhausted, with the numbers, when it would exceed the budget.
  virtual absl::StatusOr<PhysicalChunk> Allocate(size_t size_bytes) = 0;
  // Returns the chunk's physical memory. It must not be mapped.
  virtual absl::Status Release(PhysicalChunk chunk) = 0;

  // Maps the whole chunk at `address` (granularity-aligned, inside a
  // reservation, over no other mapping) with read-write access.
  virtual absl::Status Map(const PhysicalChunk& chunk, uintptr_t address) = 0;
  // Unmaps the mapping that starts at `address`; the range stays reserved
  // with no access. The chunk stays allocated until Release.
  virtual absl::Status Unmap(uintptr_t address) = 0;
  // Changes access of the mapping that starts at `address`.
  virtual absl::Status SetAccess(uintptr_t address, Access access) = 0;

  // Copies between host memory and mapped memory (memcpy on the host,
  // synchronous cuMemcpy on CUDA). The range must lie in one mapping.
  virtual absl::Status Write(uintptr_t dst, const void* src,
                             size_t size_bytes) = 0;
  virtual absl::Status Read(void* dst, uintptr_t src, size_t size_bytes) = 0;

  virtual AddressSpaceCounters counters() const = 0;
  // Changes the budget; lowering it below allocated_bytes frees nothing but
  // makes further Allocate calls fail.
  virtual void set_budget_bytes(size_t budget_bytes) = 0;
};

// Creates a backend. CUDA: kUnavailable when this build has no CUDA backend,
// no driver is installed or no device is present (tests skip on it).
absl::StatusOr<std::shared_ptr<AddressSpaceInterface>> CreateAddressSpace(
    BackendKind kind, const AddressSpaceOptions& options = {});

inline size_t RoundUp(size_t n, size_t multiple) {
  return (n + multiple - 1) / multiple * multiple;
}

}  // namespace expertserve::memory

#endif  // EXPERTSERVE_MEMORY_ADDRESS_SPACE_H_
