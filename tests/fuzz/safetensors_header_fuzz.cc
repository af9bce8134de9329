// libFuzzer target for the safetensors header parser: any byte string must
// yield a status, never a crash or an out-of-bounds read, and an accepted
// header must describe tensors that lie inside the input and tile it.
#include <cstddef>
#include <cstdint>
#include <span>

#include "checkpoint/safetensors.h"
#include "common/check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using expertserve::checkpoint::DTypeSize;
  const std::span<const std::byte> file(reinterpret_cast<const std::byte*>(data),
                                        size);
  auto parsed = expertserve::checkpoint::ParseSafetensorsHeader(file);
  if (!parsed.ok()) {
    ES_CHECK(!parsed.status().message().empty());
    return 0;
  }
  ES_CHECK(parsed->data_offset >= 8 && parsed->data_offset <= size);
  const uint64_t data_bytes = size - parsed->data_offset;
  uint64_t covered = 0;
  for (const auto& t : parsed->tensors) {
    ES_CHECK(t.data_begin == covered);  // sorted, no overlap, no hole
    ES_CHECK(t.data_end >= t.data_begin && t.data_end <= data_bytes);
    ES_CHECK(static_cast<uint64_t>(t.num_elements()) * DTypeSize(t.dtype) ==
             t.data_end - t.data_begin);
    // Touch the first and last byte so ASan flags any bad range.
    if (t.data_end > t.data_begin) {
      volatile std::byte first = file[parsed->data_offset + t.data_begin];
      volatile std::byte last = file[parsed->data_offset + t.data_end - 1];
      (void)first;
      (void)last;
    }
    covered = t.data_end;
  }
  ES_CHECK(covered == data_bytes);
  return 0;
}
