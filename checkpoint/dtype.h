// Element types of checkpoint tensors and conversions between them.
#ifndef EXPERTSERVE_CHECKPOINT_DTYPE_H_
#define EXPERTSERVE_CHECKPOINT_DTYPE_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "absl/status/statusor.h"

namespace expertserve::checkpoint {

enum class DType : uint8_t { kF32, kF16, kBF16 };

size_t DTypeSize(DType dtype);           // bytes per element
std::string_view DTypeName(DType dtype);  // "F32", "F16", "BF16" (safetensors)
// Parses a safetensors dtype string; any other (I8, F64, F8_E4M3, ...) is
// kInvalidArgument naming it and listing the supported ones.
absl::StatusOr<DType> ParseDType(std::string_view name);
// Parses a config dtype ("float32", "float16", "bfloat16", also "F32" etc.).
absl::StatusOr<DType> ParseTorchDType(std::string_view name);

// Scalar conversions. F32 -> BF16/F16 round to nearest even; NaN stays NaN.
uint16_t F32ToBF16(float f);
float BF16ToF32(uint16_t h);
uint16_t F32ToF16(float f);
float F16ToF32(uint16_t h);

// Converts `src` (n elements of `dtype`) to float.
void ToF32(DType dtype, const std::byte* src, size_t n, float* dst);
// Converts n floats to `dtype` into `dst` (n * DTypeSize bytes).
void FromF32(DType dtype, const float* src, size_t n, std::byte* dst);

}  // namespace expertserve::checkpoint

#endif  // EXPERTSERVE_CHECKPOINT_DTYPE_H_
