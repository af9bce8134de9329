#include "checkpoint/dtype.h"

#include <bit>
#include <cstring>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/check.h"

namespace expertserve::checkpoint {
namespace {
// Debian's Abseil is built without std::string_view aliasing, so its
// string_view is a distinct type: convert explicitly.
absl::string_view Sv(std::string_view s) { return {s.data(), s.size()}; }
}  // namespace

size_t DTypeSize(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return 4;
    case DType::kF16:
    case DType::kBF16:
      return 2;
  }
  ES_CHECK_MSG(false, "unknown DType");
}

std::string_view DTypeName(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return "F32";
    case DType::kF16:
      return "F16";
    case DType::kBF16:
      return "BF16";
  }
  ES_CHECK_MSG(false, "unknown DType");
}

absl::StatusOr<DType> ParseDType(std::string_view name) {
  if (name == "F32") return DType::kF32;
  if (name == "F16") return DType::kF16;
  if (name == "BF16") return DType::kBF16;
  return absl::InvalidArgumentError(
      absl::StrCat("unsupported tensor dtype \"", absl::CHexEscape(Sv(name)),
                   "\"; supported: F32, F16, BF16"));
}

absl::StatusOr<DType> ParseTorchDType(std::string_view name) {
  std::string lower = absl::AsciiStrToLower(Sv(name));
  if (lower == "float32" || lower == "float" || lower == "f32" ||
      lower == "torch.float32") {
    return DType::kF32;
  }
  if (lower == "float16" || lower == "half" || lower == "f16" ||
      lower == "torch.float16") {
    return DType::kF16;
  }
  if (lower == "bfloat16" || lower == "bf16" || lower == "torch.bfloat16") {
    return DType::kBF16;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unsupported dtype \"", absl::CHexEscape(Sv(name)),
                   "\"; supported: float32, float16, bfloat16 (or F32, F16, "
                   "BF16)"));
}

uint16_t F32ToBF16(float f) {
  const uint32_t bits = std::bit_cast<uint32_t>(f);
  if ((bits & 0x7FFFFFFFu) > 0x7F800000u) {
    // NaN: keep sign and the top payload bits, force the quiet bit so that
    // truncating a signalling NaN's low payload cannot produce an infinity.
    return static_cast<uint16_t>((bits >> 16) | 0x0040u);
  }
  // Round to nearest even: add 0x7FFF plus the lowest kept bit. A carry into
  // the exponent is correct (it rounds up to the next binade or to infinity).
  const uint32_t lsb = (bits >> 16) & 1u;
  return static_cast<uint16_t>((bits + 0x7FFFu + lsb) >> 16);
}

float BF16ToF32(uint16_t h) {
  return std::bit_cast<float>(static_cast<uint32_t>(h) << 16);
}

uint16_t F32ToF16(float f) {
  const uint32_t bits = std::bit_cast<uint32_t>(f);
  const uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
  const uint32_t abs = bits & 0x7FFFFFFFu;
  if (abs >= 0x7F800000u) {  // Inf or NaN
    if (abs == 0x7F800000u) return sign | 0x7C00u;
    // Quiet NaN, keeping the top 9 payload bits.
    return static_cast<uint16_t>(sign | 0x7E00u | ((abs >> 13) & 0x1FFu));
  }
  // 65520 = 65504 + half an ulp; the tie rounds to even, i.e. to infinity.
  if (abs >= 0x477FF000u) return sign | 0x7C00u;
  if (abs >= 0x38800000u) {  // >= 2^-14: a normal half
    const uint32_t exp = (abs >> 23) - 127u + 15u;
    const uint32_t mant = abs & 0x7FFFFFu;
    uint32_t half = (exp << 10) | (mant >> 13);
    const uint32_t rest = mant & 0x1FFFu;
    if (rest > 0x1000u || (rest == 0x1000u && (half & 1u))) ++half;
    return static_cast<uint16_t>(sign | half);
  }
  // Subnormal half (units of 2^-24) or zero. At or below 2^-25 (half of the
  // smallest subnormal, tie to even = 0) the result is a signed zero.
  if (abs <= 0x33000000u) return sign;
  const uint32_t exp = abs >> 23;  // biased, 102..112 here
  const uint32_t mant = (abs & 0x7FFFFFu) | 0x800000u;
  const uint32_t shift = 126u - exp;  // 14..24
  uint32_t half = mant >> shift;
  const uint32_t rest = mant & ((1u << shift) - 1u);
  const uint32_t halfway = 1u << (shift - 1u);
  if (rest > halfway || (rest == halfway && (half & 1u))) ++half;
  return static_cast<uint16_t>(sign | half);  // 0x400 is the smallest normal
}

float F16ToF32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1Fu;
  uint32_t mant = h & 0x3FFu;
  uint32_t bits;
  if (exp == 0x1Fu) {
    bits = sign | 0x7F800000u | (mant << 13);  // Inf, or NaN with its payload
  } else if (exp != 0) {
    bits = sign | ((exp - 15u + 127u) << 23) | (mant << 13);
  } else if (mant == 0) {
    bits = sign;
  } else {
    // Subnormal: normalise the mantissa into an f32 normal.
    int e = -14;
    while ((mant & 0x400u) == 0) {
      mant <<= 1;
      --e;
    }
    mant &= 0x3FFu;
    bits = sign | (static_cast<uint32_t>(e + 127) << 23) | (mant << 13);
  }
  return std::bit_cast<float>(bits);
}

void ToF32(DType dtype, const std::byte* src, size_t n, float* dst) {
  // memcpy per element: checkpoint data need not be aligned to the element.
  switch (dtype) {
    case DType::kF32:
      if (n > 0) std::memcpy(dst, src, n * sizeof(float));
      return;
    case DType::kF16:
      for (size_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        dst[i] = F16ToF32(h);
      }
      return;
    case DType::kBF16:
      for (size_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        dst[i] = BF16ToF32(h);
      }
      return;
  }
  ES_CHECK_MSG(false, "unknown DType");
}

void FromF32(DType dtype, const float* src, size_t n, std::byte* dst) {
  switch (dtype) {
    case DType::kF32:
      if (n > 0) std::memcpy(dst, src, n * sizeof(float));
      return;
    case DType::kF16:
      for (size_t i = 0; i < n; ++i) {
        const uint16_t h = F32ToF16(src[i]);
        std::memcpy(dst + 2 * i, &h, 2);
      }
      return;
    case DType::kBF16:
      for (size_t i = 0; i < n; ++i) {
        const uint16_t h = F32ToBF16(src[i]);
        std::memcpy(dst + 2 * i, &h, 2);
      }
      return;
  }
  ES_CHECK_MSG(false, "unknown DType");
}

}  // namespace expertserve::checkpoint
