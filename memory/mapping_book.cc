#include "memory/mapping_book.h"

#include <iterator>

#include "absl/strings/str_cat.h"

namespace expertserve::memory::internal {
namespace {

std::string Hex(uintptr_t v) { return absl::StrCat("0x", absl::Hex(v)); }

}  // namespace

absl::Status MappingBook::CheckReserve(size_t size_bytes) const {
  if (size_bytes == 0 || size_bytes % granularity_bytes_ != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("reserve: size ", size_bytes,
                     " bytes is not a positive multiple of the granularity ",
                     granularity_bytes_));
  }
  return absl::OkStatus();
}

void MappingBook::AddReservation(const VirtualRange& range) {
  reservations_[range.base] = range.size_bytes;
  reserved_bytes_ += range.size_bytes;
}

absl::Status MappingBook::CheckFree(const VirtualRange& range) const {
  auto it = reservations_.find(range.base);
  if (it == reservations_.end() || it->second != range.size_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("free: no reservation of ", range.size_bytes,
                     " bytes at ", Hex(range.base)));
  }
  auto m = mappings_.lower_bound(range.base);
  if (m != mappings_.end() && m->first < range.base + range.size_bytes) {
    return absl::FailedPreconditionError(
        absl::StrCat("free: reservation at ", Hex(range.base),
                     " still has a mapping at ", Hex(m->first),
                     "; unmap it first"));
  }
  return absl::OkStatus();
}

void MappingBook::RemoveReservation(const VirtualRange& range) {
  reservations_.erase(range.base);
  reserved_bytes_ -= range.size_bytes;
}

absl::Status MappingBook::CheckAllocate(size_t size_bytes) const {
  if (size_bytes == 0 || size_bytes % granularity_bytes_ != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("allocate: size ", size_bytes,
                     " bytes is not a positive multiple of the granularity ",
                     granularity_bytes_));
  }
  if (budget_bytes_ != 0 && (size_bytes > budget_bytes_ ||
                             allocated_bytes_ > budget_bytes_ - size_bytes)) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "memory budget: need ", size_bytes, " bytes, ", allocated_bytes_,
        " of ", budget_bytes_, " already allocated; raise the tier budget or "
        "unload adapters"));
  }
  return absl::OkStatus();
}

void MappingBook::AddChunk(uint64_t id, size_t size_bytes) {
  chunks_[id] = Chunk{size_bytes, false};
  allocated_bytes_ += size_bytes;
}

absl::Status MappingBook::CheckRelease(const PhysicalChunk& chunk) const {
  auto it = chunks_.find(chunk.id);
  if (it == chunks_.end()) {
    return absl::InvalidArgumentError(
        absl::StrCat("release: unknown chunk ", chunk.id));
  }
  if (it->second.mapped) {
    return absl::FailedPreconditionError(
        absl::StrCat("release: chunk ", chunk.id, " is still mapped"));
  }
  return absl::OkStatus();
}

void MappingBook::RemoveChunk(uint64_t id) {
  auto it = chunks_.find(id);
  allocated_bytes_ -= it->second.size_bytes;
  chunks_.erase(it);
}

absl::Status MappingBook::CheckMap(const PhysicalChunk& chunk,
                                   uintptr_t address) const {
  auto c = chunks_.find(chunk.id);
  if (c == chunks_.end() || c->second.size_bytes != chunk.size_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("map: unknown chunk ", chunk.id));
  }
  if (c->second.mapped) {
    return absl::FailedPreconditionError(
        absl::StrCat("map: chunk ", chunk.id, " is already mapped"));
  }
  if (address % granularity_bytes_ != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("map: address ", Hex(address),
                     " is not aligned to the granularity ", granularity_bytes_));
  }
  const uintptr_t end = address + chunk.size_bytes;
  auto r = reservations_.upper_bound(address);
  if (r == reservations_.begin() ||
      std::prev(r)->first + std::prev(r)->second < end) {
    return absl::InvalidArgumentError(
        absl::StrCat("map: [", Hex(address), ", ", Hex(end),
                     ") is not inside one reservation"));
  }
  auto m = mappings_.upper_bound(address);
  if (m != mappings_.begin()) {
    auto prev = std::prev(m);
    if (prev->first + prev->second.size_bytes > address) {
      return absl::FailedPreconditionError(absl::StrCat(
          "map: ", Hex(address), " overlaps the mapping at ",
          Hex(prev->first)));
    }
  }
  if (m != mappings_.end() && m->first < end) {
    return absl::FailedPreconditionError(absl::StrCat(
        "map: [", Hex(address), ", ", Hex(end), ") overlaps the mapping at ",
        Hex(m->first)));
  }
  return absl::OkStatus();
}

void MappingBook::AddMapping(const PhysicalChunk& chunk, uintptr_t address) {
  mappings_[address] = Mapping{chunk.id, chunk.size_bytes, Access::kReadWrite};
  chunks_[chunk.id].mapped = true;
  mapped_bytes_ += chunk.size_bytes;
}

absl::StatusOr<MappingBook::Mapping> MappingBook::FindMapping(
    uintptr_t address) const {
  auto it = mappings_.find(address);
  if (it == mappings_.end()) {
    return absl::NotFoundError(
        absl::StrCat("no mapping starts at ", Hex(address)));
  }
  return it->second;
}

void MappingBook::RemoveMapping(uintptr_t address) {
  auto it = mappings_.find(address);
  chunks_[it->second.chunk_id].mapped = false;
  mapped_bytes_ -= it->second.size_bytes;
  mappings_.erase(it);
}

void MappingBook::SetMappingAccess(uintptr_t address, Access access) {
  mappings_[address].access = access;
}

absl::Status MappingBook::CheckSpan(uintptr_t address, size_t size_bytes,
                                    Access needed) const {
  auto m = mappings_.upper_bound(address);
  if (m == mappings_.begin() ||
      std::prev(m)->first + std::prev(m)->second.size_bytes <
          address + size_bytes ||
      address + size_bytes < address) {
    return absl::OutOfRangeError(
        absl::StrCat("[", Hex(address), ", +", size_bytes,
                     ") is not inside one mapping"));
  }
  if (static_cast<int>(std::prev(m)->second.access) <
      static_cast<int>(needed)) {
    return absl::FailedPreconditionError(
        absl::StrCat("the mapping at ", Hex(std::prev(m)->first),
                     " does not grant the access this copy needs"));
  }
  return absl::OkStatus();
}

AddressSpaceCounters MappingBook::counters() const {
  return AddressSpaceCounters{reserved_bytes_, allocated_bytes_, mapped_bytes_,
                              budget_bytes_};
}

}  // namespace expertserve::memory::internal
