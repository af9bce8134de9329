#include "memory/host_backend.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iterator>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/check.h"
#include "common/status_macros.h"

namespace expertserve::memory {
namespace {

absl::Status ErrnoError(absl::string_view what, int err) {
  const std::string msg = absl::StrCat(what, ": ", std::strerror(err));
  if (err == ENOMEM || err == ENOSPC || err == EMFILE || err == ENFILE) {
    return absl::ResourceExhaustedError(msg);
  }
  return absl::InternalError(msg);
}

int ProtOf(Access access) {
  switch (access) {
    case Access::kNone:
      return PROT_NONE;
    case Access::kRead:
      return PROT_READ;
    case Access::kReadWrite:
      return PROT_READ | PROT_WRITE;
  }
  return PROT_NONE;
}

// Puts a no-access, no-memory anonymous mapping over [address, +size). With
// MAP_FIXED this replaces whatever was there atomically, so no other mmap can
// land in the hole.
int ReserveFixed(uintptr_t address, size_t size_bytes) {
  void* p = mmap(reinterpret_cast<void*>(address), size_bytes, PROT_NONE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1,
                 0);
  return p == MAP_FAILED ? errno : 0;
}

}  // namespace

absl::StatusOr<std::unique_ptr<HostAddressSpace>> HostAddressSpace::Create(
    const AddressSpaceOptions& options) {
  const long page = sysconf(_SC_PAGESIZE);
  if (page <= 0) return ErrnoError("sysconf(_SC_PAGESIZE)", errno);
  const int fd = memfd_create("expertserve-experts", MFD_CLOEXEC);
  if (fd < 0) return ErrnoError("memfd_create", errno);
  return std::unique_ptr<HostAddressSpace>(new HostAddressSpace(
      fd, static_cast<size_t>(page), options.budget_bytes));
}

HostAddressSpace::HostAddressSpace(int memfd, size_t page_bytes,
                                   size_t budget_bytes)
    : memfd_(memfd),
      page_bytes_(page_bytes),
      book_(page_bytes, budget_bytes) {}

HostAddressSpace::~HostAddressSpace() {
  // Reservations still alive are the owner's leak; their pages die with the
  // memfd once every mapping of it is gone.
  close(memfd_);
}

absl::StatusOr<VirtualRange> HostAddressSpace::Reserve(size_t size_bytes) {
  absl::MutexLock lock(&mu_);
  ES_RETURN_IF_ERROR(book_.CheckReserve(size_bytes));
  void* p = mmap(nullptr, size_bytes, PROT_NONE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) {
    return ErrnoError(absl::StrCat("reserve ", size_bytes, " bytes"), errno);
  }
  VirtualRange range{reinterpret_cast<uintptr_t>(p), size_bytes};
  book_.AddReservation(range);
  return range;
}

absl::Status HostAddressSpace::Free(VirtualRange range) {
  absl::MutexLock lock(&mu_);
  ES_RETURN_IF_ERROR(book_.CheckFree(range));
  if (munmap(reinterpret_cast<void*>(range.base), range.size_bytes) != 0) {
    return ErrnoError("free reservation", errno);
  }
  book_.RemoveReservation(range);
  return absl::OkStatus();
}

absl::StatusOr<PhysicalChunk> HostAddressSpace::Allocate(size_t size_bytes) {
  absl::MutexLock lock(&mu_);
  ES_RETURN_IF_ERROR(book_.CheckAllocate(size_bytes));
  // First fit over the free extents; uniform slots make every fit exact.
  size_t offset = file_bytes_;
  auto fit = free_extents_.begin();
  for (; fit != free_extents_.end(); ++fit) {
    if (fit->second >= size_bytes) break;
  }
  if (fit != free_extents_.end()) {
    offset = fit->first;
    const size_t rest = fit->second - size_bytes;
    free_extents_.erase(fit);
    if (rest > 0) free_extents_[offset + size_bytes] = rest;
  } else {
    // ftruncate only sets the length: tmpfs allocates pages on first touch.
    if (ftruncate(memfd_, static_cast<off_t>(file_bytes_ + size_bytes)) != 0) {
      return ErrnoError(absl::StrCat("grow memfd by ", size_bytes, " bytes"),
                        errno);
    }
    file_bytes_ += size_bytes;
  }
  const uint64_t id = next_chunk_id_++;
  chunk_offsets_[id] = offset;
  book_.AddChunk(id, size_bytes);
  return PhysicalChunk{id, size_bytes};
}

absl::Status HostAddressSpace::Release(PhysicalChunk chunk) {
  absl::MutexLock lock(&mu_);
  ES_RETURN_IF_ERROR(book_.CheckRelease(chunk));
  auto it = chunk_offsets_.find(chunk.id);
  size_t offset = it->second;
  size_t size = chunk.size_bytes;
  // Gives the pages back to the kernel now; the offsets are reused later.
  if (fallocate(memfd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                static_cast<off_t>(offset), static_cast<off_t>(size)) != 0) {
    return ErrnoError("punch hole in memfd", errno);
  }
  chunk_offsets_.erase(it);
  book_.RemoveChunk(chunk.id);
  // Coalesce with neighbours.
  auto next = free_extents_.lower_bound(offset);
  if (next != free_extents_.end() && offset + size == next->first) {
    size += next->second;
    next = free_extents_.erase(next);
  }
  if (next != free_extents_.begin()) {
    auto prev = std::prev(next);
    if (prev->first + prev->second == offset) {
      offset = prev->first;
      size += prev->second;
      free_extents_.erase(prev);
    }
  }
  if (offset + size == file_bytes_ &&
      ftruncate(memfd_, static_cast<off_t>(offset)) == 0) {
    file_bytes_ = offset;
  } else {
    free_extents_[offset] = size;
  }
  return absl::OkStatus();
}

absl::Status HostAddressSpace::Map(const PhysicalChunk& chunk,
                                   uintptr_t address) {
  absl::MutexLock lock(&mu_);
  ES_RETURN_IF_ERROR(book_.CheckMap(chunk, address));
  const size_t offset = chunk_offsets_.at(chunk.id);
  void* p = mmap(reinterpret_cast<void*>(address), chunk.size_bytes,
                 PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, memfd_,
                 static_cast<off_t>(offset));
  if (p == MAP_FAILED) {
    const int err = errno;
    // A failed MAP_FIXED may have unmapped the old range: restore the hole.
    ES_CHECK(ReserveFixed(address, chunk.size_bytes) == 0);
    return ErrnoError("map chunk", err);
  }
  book_.AddMapping(chunk, address);
  return absl::OkStatus();
}

absl::Status HostAddressSpace::Unmap(uintptr_t address) {
  absl::MutexLock lock(&mu_);
  ES_ASSIGN_OR_RETURN(internal::MappingBook::Mapping m,
                      book_.FindMapping(address));
  if (const int err = ReserveFixed(address, m.size_bytes); err != 0) {
    return ErrnoError("unmap", err);
  }
  book_.RemoveMapping(address);
  return absl::OkStatus();
}

absl::Status HostAddressSpace::SetAccess(uintptr_t address, Access access) {
  absl::MutexLock lock(&mu_);
  ES_ASSIGN_OR_RETURN(internal::MappingBook::Mapping m,
                      book_.FindMapping(address));
  if (mprotect(reinterpret_cast<void*>(address), m.size_bytes,
               ProtOf(access)) != 0) {
    return ErrnoError("mprotect", errno);
  }
  book_.SetMappingAccess(address, access);
  return absl::OkStatus();
}

absl::Status HostAddressSpace::Write(uintptr_t dst, const void* src,
                                     size_t size_bytes) {
  {
    absl::MutexLock lock(&mu_);
    ES_RETURN_IF_ERROR(book_.CheckSpan(dst, size_bytes, Access::kReadWrite));
  }
  // The copy runs unlocked: the caller owns the slot it writes.
  if (size_bytes > 0) {
    std::memcpy(reinterpret_cast<void*>(dst), src, size_bytes);
  }
  return absl::OkStatus();
}

absl::Status HostAddressSpace::Read(void* dst, uintptr_t src,
                                    size_t size_bytes) {
  {
    absl::MutexLock lock(&mu_);
    ES_RETURN_IF_ERROR(book_.CheckSpan(src, size_bytes, Access::kRead));
  }
  if (size_bytes > 0) {
    std::memcpy(dst, reinterpret_cast<const void*>(src), size_bytes);
  }
  return absl::OkStatus();
}

AddressSpaceCounters HostAddressSpace::counters() const {
  absl::MutexLock lock(&mu_);
  return book_.counters();
}

void HostAddressSpace::set_budget_bytes(size_t budget_bytes) {
  absl::MutexLock lock(&mu_);
  book_.set_budget_bytes(budget_bytes);
}

size_t HostAddressSpace::memfd_size_bytes() const {
  absl::MutexLock lock(&mu_);
  return file_bytes_;
}

absl::StatusOr<size_t> HostAddressSpace::memfd_allocated_bytes() const {
  struct stat st;
  if (fstat(memfd_, &st) != 0) return ErrnoError("fstat memfd", errno);
  return static_cast<size_t>(st.st_blocks) * 512;
}

}  // namespace expertserve::memory
