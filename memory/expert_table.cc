#include "memory/expert_table.h"

#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/check.h"
#include "common/status_macros.h"

namespace expertserve::memory {
namespace {

// Matrices start on 256-byte boundaries inside a slot: enough for any SIMD
// load and for coalesced GPU access.
constexpr size_t kMatrixAlignBytes = 256;

bool MulOverflows(size_t a, size_t b, size_t* out) {
  return __builtin_mul_overflow(a, b, out);
}

}  // namespace

absl::StatusOr<std::unique_ptr<ExpertTable>> ExpertTable::Create(
    std::shared_ptr<AddressSpaceInterface> backend,
    const ExpertTableLayout& layout) {
  if (backend == nullptr) {
    return absl::InvalidArgumentError("expert table: no backend");
  }
  if (layout.num_base_experts <= 0 || layout.num_adapter_slots < 0 ||
      layout.intermediate <= 0 || layout.hidden <= 0 ||
      layout.element_bytes == 0 ||
      static_cast<int64_t>(layout.num_base_experts) + layout.num_adapter_slots >
          std::numeric_limits<SlotId>::max()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "expert table layout: need E > 0, S >= 0, I > 0, H > 0, element "
        "bytes > 0; got E=",
        layout.num_base_experts, " S=", layout.num_adapter_slots,
        " I=", layout.intermediate, " H=", layout.hidden,
        " element_bytes=", layout.element_bytes));
  }
  size_t matrix = 0;
  size_t reserve = 0;
  size_t slot_stride = 0;
  const size_t granularity = backend->granularity_bytes();
  const size_t num_slots = static_cast<size_t>(layout.num_base_experts) +
                           static_cast<size_t>(layout.num_adapter_slots);
  bool overflow =
      MulOverflows(static_cast<size_t>(layout.intermediate),
                   static_cast<size_t>(layout.hidden), &matrix) ||
      MulOverflows(matrix, layout.element_bytes, &matrix) ||
      matrix > (size_t{1} << 48);
  size_t matrix_stride = 0;
  if (!overflow) {
    matrix_stride = RoundUp(matrix, kMatrixAlignBytes);
    slot_stride = RoundUp(2 * matrix_stride + matrix, granularity);
    overflow = MulOverflows(slot_stride, num_slots, &reserve);
  }
  if (overflow) {
    return absl::InvalidArgumentError(absl::StrCat(
        "expert table layout too large: E+S=", num_slots, " I=",
        layout.intermediate, " H=", layout.hidden, " element_bytes=",
        layout.element_bytes));
  }
  ES_ASSIGN_OR_RETURN(VirtualRange range, backend->Reserve(reserve));
  return std::unique_ptr<ExpertTable>(new ExpertTable(
      std::move(backend), layout, range, matrix, matrix_stride, slot_stride));
}

ExpertTable::ExpertTable(std::shared_ptr<AddressSpaceInterface> backend,
                         const ExpertTableLayout& layout, VirtualRange range,
                         size_t matrix_bytes, size_t matrix_stride_bytes,
                         size_t slot_stride_bytes)
    : backend_(std::move(backend)),
      layout_(layout),
      range_(range),
      matrix_bytes_(matrix_bytes),
      matrix_stride_bytes_(matrix_stride_bytes),
      slot_stride_bytes_(slot_stride_bytes),
      chunks_(static_cast<size_t>(num_slots())) {
  for (SlotId s = layout.num_base_experts; s < num_slots(); ++s) {
    free_adapter_slots_.insert(s);
  }
}

ExpertTable::~ExpertTable() {
  absl::MutexLock lock(&mu_);
  for (SlotId s = 0; s < num_slots(); ++s) {
    if (chunks_[static_cast<size_t>(s)].has_value()) {
      const absl::Status st = UnmapSlotLocked(s);
      ES_CHECK_MSG(st.ok(), std::string(st.message()).c_str());
    }
  }
  const absl::Status st = backend_->Free(range_);
  ES_CHECK_MSG(st.ok(), std::string(st.message()).c_str());
}

ExpertPointers ExpertTable::SlotPointers(SlotId slot) const {
  ES_CHECK(slot >= 0 && slot < num_slots());
  std::byte* s = base() + static_cast<size_t>(slot) * slot_stride_bytes_;
  return ExpertPointers{s + gate_offset_bytes(), s + up_offset_bytes(),
                        s + down_offset_bytes()};
}

absl::Status ExpertTable::CheckSlotId(SlotId slot) const {
  if (slot < 0 || slot >= num_slots()) {
    return absl::InvalidArgumentError(
        absl::StrCat("slot ", slot, " is outside [0, ", num_slots(),
                     ") of this expert table"));
  }
  return absl::OkStatus();
}

absl::Status ExpertTable::CheckWeights(const ExpertWeightsView& w) const {
  if (w.gate.size() != matrix_bytes_ || w.up.size() != matrix_bytes_ ||
      w.down.size() != matrix_bytes_) {
    return absl::InvalidArgumentError(absl::StrCat(
        "expert weights: gate/up/down hold ", w.gate.size(), "/", w.up.size(),
        "/", w.down.size(), " bytes; this layer needs ", matrix_bytes_,
        " each (I=", layout_.intermediate, " H=", layout_.hidden,
        " element_bytes=", layout_.element_bytes, ")"));
  }
  return absl::OkStatus();
}

absl::Status ExpertTable::MapSlotLocked(SlotId slot) {
  ES_ASSIGN_OR_RETURN(PhysicalChunk chunk,
                      backend_->Allocate(slot_stride_bytes_));
  if (absl::Status st = backend_->Map(chunk, SlotAddress(slot)); !st.ok()) {
    const absl::Status released = backend_->Release(chunk);
    ES_CHECK_MSG(released.ok(), std::string(released.message()).c_str());
    return st;
  }
  chunks_[static_cast<size_t>(slot)] = chunk;
  return absl::OkStatus();
}

absl::Status ExpertTable::UnmapSlotLocked(SlotId slot) {
  std::optional<PhysicalChunk>& chunk = chunks_[static_cast<size_t>(slot)];
  ES_RETURN_IF_ERROR(backend_->Unmap(SlotAddress(slot)));
  ES_RETURN_IF_ERROR(backend_->Release(*chunk));
  chunk.reset();
  return absl::OkStatus();
}

absl::Status ExpertTable::WriteSlotUnchecked(SlotId slot,
                                             const ExpertWeightsView& w) {
  const uintptr_t s = SlotAddress(slot);
  ES_RETURN_IF_ERROR(
      backend_->Write(s + gate_offset_bytes(), w.gate.data(), matrix_bytes_));
  ES_RETURN_IF_ERROR(
      backend_->Write(s + up_offset_bytes(), w.up.data(), matrix_bytes_));
  return backend_->Write(s + down_offset_bytes(), w.down.data(),
                         matrix_bytes_);
}

absl::Status ExpertTable::MapBaseExpert(ExpertId expert,
                                        const ExpertWeightsView& weights) {
  if (expert < 0 || expert >= layout_.num_base_experts) {
    return absl::InvalidArgumentError(
        absl::StrCat("base expert ", expert, " is outside [0, ",
                     layout_.num_base_experts, ")"));
  }
  ES_RETURN_IF_ERROR(CheckWeights(weights));
  absl::MutexLock lock(&mu_);
  if (chunks_[static_cast<size_t>(expert)].has_value()) {
    return absl::AlreadyExistsError(
        absl::StrCat("base expert ", expert, " is already mapped"));
  }
  ES_RETURN_IF_ERROR(MapSlotLocked(expert));
  if (absl::Status st = WriteSlotUnchecked(expert, weights); !st.ok()) {
    ES_CHECK(UnmapSlotLocked(expert).ok());
    return st;
  }
  return absl::OkStatus();
}

absl::Status ExpertTable::UnmapBaseExpert(ExpertId expert) {
  if (expert < 0 || expert >= layout_.num_base_experts) {
    return absl::InvalidArgumentError(
        absl::StrCat("base expert ", expert, " is outside [0, ",
                     layout_.num_base_experts, ")"));
  }
  absl::MutexLock lock(&mu_);
  if (!chunks_[static_cast<size_t>(expert)].has_value()) {
    return absl::NotFoundError(
        absl::StrCat("base expert ", expert, " is not mapped"));
  }
  return UnmapSlotLocked(expert);
}

absl::StatusOr<SlotId> ExpertTable::AllocateAdapterSlot() {
  absl::MutexLock lock(&mu_);
  if (free_adapter_slots_.empty()) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "expert slots: need 1, free 0 of ", layout_.num_adapter_slots,
        " adapter slots in this layer; unload an adapter or raise "
        "num_adapter_slots"));
  }
  const SlotId slot = *free_adapter_slots_.begin();
  ES_RETURN_IF_ERROR(MapSlotLocked(slot));
  free_adapter_slots_.erase(free_adapter_slots_.begin());
  return slot;
}

absl::Status ExpertTable::FreeAdapterSlot(SlotId slot) {
  ES_RETURN_IF_ERROR(CheckSlotId(slot));
  if (slot < layout_.num_base_experts) {
    return absl::InvalidArgumentError(absl::StrCat(
        "slot ", slot, " is a base slot; use UnmapBaseExpert"));
  }
  absl::MutexLock lock(&mu_);
  if (!chunks_[static_cast<size_t>(slot)].has_value()) {
    return absl::NotFoundError(
        absl::StrCat("adapter slot ", slot, " is not allocated"));
  }
  ES_RETURN_IF_ERROR(UnmapSlotLocked(slot));
  free_adapter_slots_.insert(slot);
  return absl::OkStatus();
}

absl::Status ExpertTable::WriteSlot(SlotId slot,
                                    const ExpertWeightsView& weights) {
  ES_RETURN_IF_ERROR(CheckSlotId(slot));
  ES_RETURN_IF_ERROR(CheckWeights(weights));
  // The copy runs under the lock so a concurrent Free cannot unmap the slot
  // mid-copy.
  absl::MutexLock lock(&mu_);
  if (!chunks_[static_cast<size_t>(slot)].has_value()) {
    return absl::FailedPreconditionError(
        absl::StrCat("slot ", slot, " is not mapped; allocate it first"));
  }
  return WriteSlotUnchecked(slot, weights);
}

absl::Status ExpertTable::ReadSlot(SlotId slot,
                                   const ExpertWeightsSpan& out) const {
  ES_RETURN_IF_ERROR(CheckSlotId(slot));
  if (out.gate.size() != matrix_bytes_ || out.up.size() != matrix_bytes_ ||
      out.down.size() != matrix_bytes_) {
    return absl::InvalidArgumentError(absl::StrCat(
        "read slot: buffers must hold ", matrix_bytes_, " bytes each"));
  }
  absl::MutexLock lock(&mu_);
  if (!chunks_[static_cast<size_t>(slot)].has_value()) {
    return absl::FailedPreconditionError(
        absl::StrCat("slot ", slot, " is not mapped"));
  }
  const uintptr_t s = SlotAddress(slot);
  ES_RETURN_IF_ERROR(
      backend_->Read(out.gate.data(), s + gate_offset_bytes(), matrix_bytes_));
  ES_RETURN_IF_ERROR(
      backend_->Read(out.up.data(), s + up_offset_bytes(), matrix_bytes_));
  return backend_->Read(out.down.data(), s + down_offset_bytes(),
                        matrix_bytes_);
}

bool ExpertTable::IsMapped(SlotId slot) const {
  if (slot < 0 || slot >= num_slots()) return false;
  absl::MutexLock lock(&mu_);
  return chunks_[static_cast<size_t>(slot)].has_value();
}

absl::Status ExpertTable::ValidateReroute(const RerouteTable& reroute) const {
  if (reroute.num_base_experts() != layout_.num_base_experts) {
    return absl::InvalidArgumentError(absl::StrCat(
        "reroute table covers ", reroute.num_base_experts(),
        " experts; this layer has ", layout_.num_base_experts));
  }
  absl::MutexLock lock(&mu_);
  for (const ExpertReplacement& r : reroute.replacements()) {
    if (r.slot < layout_.num_base_experts || r.slot >= num_slots() ||
        !chunks_[static_cast<size_t>(r.slot)].has_value()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "reroute: expert ", r.expert, " -> slot ", r.slot,
          " is not a mapped adapter slot; load the adapter's experts before "
          "publishing its reroute table"));
    }
  }
  return absl::OkStatus();
}

ExpertTableCounters ExpertTable::counters() const {
  absl::MutexLock lock(&mu_);
  ExpertTableCounters c;
  for (SlotId s = 0; s < num_slots(); ++s) {
    if (!chunks_[static_cast<size_t>(s)].has_value()) continue;
    if (s < layout_.num_base_experts) {
      ++c.mapped_base_slots;
    } else {
      ++c.mapped_adapter_slots;
    }
  }
  c.free_adapter_slots = static_cast<int>(free_adapter_slots_.size());
  c.mapped_bytes =
      static_cast<size_t>(c.mapped_base_slots + c.mapped_adapter_slots) *
      slot_stride_bytes_;
  return c;
}

}  // namespace expertserve::memory
