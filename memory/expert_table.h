// The expert table of one MoE layer: one contiguous reserved virtual range of
// E base slots followed by S adapter slots, all of one stride, so a kernel
// indexes experts as base() + slot * slot_stride_bytes(). Physical memory is
// mapped only behind present slots. See memory/README.md for the layout and
// the thread-safety contract with the engine.
#ifndef EXPERTSERVE_MEMORY_EXPERT_TABLE_H_
#define EXPERTSERVE_MEMORY_EXPERT_TABLE_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/ids.h"
#include "memory/address_space.h"
#include "memory/reroute_table.h"

namespace expertserve::memory {

struct ExpertTableLayout {
  int num_base_experts = 0;   // E: slots [0, E) hold base expert e at slot e
  int num_adapter_slots = 0;  // S: slots [E, E + S) hold adapter experts
  int64_t intermediate = 0;   // I (moe_intermediate_size; for a shared-expert
                              // table the shared experts' intermediate size)
  int64_t hidden = 0;         // H
  size_t element_bytes = 0;   // bytes per weight (checkpoint::DTypeSize)
};

// One expert's weights, in the model dtype, row-major as in the checkpoint.
struct ExpertWeightsView {
  std::span<const std::byte> gate;  // gate_proj [I, H]
  std::span<const std::byte> up;    // up_proj   [I, H]
  std::span<const std::byte> down;  // down_proj [H, I]
};
struct ExpertWeightsSpan {
  std::span<std::byte> gate;  // [I, H]
  std::span<std::byte> up;    // [I, H]
  std::span<std::byte> down;  // [H, I]
};

// Where one slot's matrices live: host pointers for the host backend, device
// addresses for CUDA. Dereference only a slot that is mapped (see README).
struct ExpertPointers {
  std::byte* gate = nullptr;  // [I, H]
  std::byte* up = nullptr;    // [I, H]
  std::byte* down = nullptr;  // [H, I]
};

struct ExpertTableCounters {
  int mapped_base_slots = 0;
  int mapped_adapter_slots = 0;
  int free_adapter_slots = 0;
  size_t mapped_bytes = 0;  // mapped slots * slot_stride_bytes
};

// Thread-safe. Mapping calls (MapBaseExpert, AllocateAdapterSlot, WriteSlot,
// FreeAdapterSlot, ...) serialise on an internal mutex and are meant for a
// loader thread. The geometry (base, stride, offsets, SlotPointers) is
// immutable after Create and read lock-free by the engine thread. Whether the
// *memory* behind a slot may be read is a protocol, not a lock: see README.
class ExpertTable {
 public:
  // Reserves (E + S) * slot_stride_bytes of virtual memory on `backend`,
  // mapping nothing. kInvalidArgument for a bad layout.
  static absl::StatusOr<std::unique_ptr<ExpertTable>> Create(
      std::shared_ptr<AddressSpaceInterface> backend,
      const ExpertTableLayout& layout);
  // Unmaps and releases every slot and frees the reservation.
  ~ExpertTable();

  ExpertTable(const ExpertTable&) = delete;
  ExpertTable& operator=(const ExpertTable&) = delete;

  // ---- geometry: immutable, lock-free ----
  const ExpertTableLayout& layout() const { return layout_; }
  int num_slots() const {
    return layout_.num_base_experts + layout_.num_adapter_slots;
  }
  // Slot s starts at base() + s * slot_stride_bytes().
  std::byte* base() const { return reinterpret_cast<std::byte*>(range_.base); }
  size_t slot_stride_bytes() const { return slot_stride_bytes_; }
  size_t matrix_bytes() const { return matrix_bytes_; }  // I * H * elem
  // Byte offsets of the three matrices inside a slot (256-byte aligned).
  size_t gate_offset_bytes() const { return 0; }
  size_t up_offset_bytes() const { return matrix_stride_bytes_; }
  size_t down_offset_bytes() const { return 2 * matrix_stride_bytes_; }
  // Pure arithmetic; `slot` must be in [0, num_slots()) (ES_CHECK).
  ExpertPointers SlotPointers(SlotId slot) const;
  const AddressSpaceInterface& backend() const { return *backend_; }

  // ---- mapping: loader thread ----
  // Maps slot `expert` and copies the weights in (the checkpoint stays
  // mmapped elsewhere). kAlreadyExists if mapped, kInvalidArgument for a bad
  // id or sizes, kResourceExhausted over budget. On error nothing changes.
  absl::Status MapBaseExpert(ExpertId expert, const ExpertWeightsView& weights);
  absl::Status UnmapBaseExpert(ExpertId expert);
  // Maps the lowest free adapter slot. Its contents are unspecified until
  // WriteSlot. kResourceExhausted when all S slots are taken or the backend
  // budget is spent.
  absl::StatusOr<SlotId> AllocateAdapterSlot();
  // Unmaps an adapter slot and returns its physical memory. Only once no
  // published reroute table reaches it and no running step reads it.
  absl::Status FreeAdapterSlot(SlotId slot);
  // Copies weights into / out of a mapped slot (any kind).
  absl::Status WriteSlot(SlotId slot, const ExpertWeightsView& weights);
  absl::Status ReadSlot(SlotId slot, const ExpertWeightsSpan& out) const;

  bool IsMapped(SlotId slot) const;
  // OK when every replacement slot of `reroute` is a mapped adapter slot of
  // this table and its E matches: the check before publishing it.
  absl::Status ValidateReroute(const RerouteTable& reroute) const;
  ExpertTableCounters counters() const;

 private:
  ExpertTable(std::shared_ptr<AddressSpaceInterface> backend,
              const ExpertTableLayout& layout, VirtualRange range,
              size_t matrix_bytes, size_t matrix_stride_bytes,
              size_t slot_stride_bytes);

  absl::Status CheckSlotId(SlotId slot) const;
  absl::Status CheckWeights(const ExpertWeightsView& weights) const;
  uintptr_t SlotAddress(SlotId slot) const {
    return range_.base + static_cast<uintptr_t>(slot) * slot_stride_bytes_;
  }
  // Allocates and maps one slot; on error leaves nothing behind.
  absl::Status MapSlotLocked(SlotId slot) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status UnmapSlotLocked(SlotId slot) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status WriteSlotUnchecked(SlotId slot,
                                  const ExpertWeightsView& weights);

  const std::shared_ptr<AddressSpaceInterface> backend_;
  const ExpertTableLayout layout_;
  const VirtualRange range_;
  const size_t matrix_bytes_;
  const size_t matrix_stride_bytes_;
  const size_t slot_stride_bytes_;

  mutable absl::Mutex mu_;
  std::vector<std::optional<PhysicalChunk>> chunks_
      ABSL_GUARDED_BY(mu_);  // [E + S]
  std::set<SlotId> free_adapter_slots_ ABSL_GUARDED_BY(mu_);
};

}  // namespace expertserve::memory

#endif  // EXPERTSERVE_MEMORY_EXPERT_TABLE_H_
