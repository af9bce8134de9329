// Element types of weights and their scalar conversions to/from f32. Scalar
// and dependency-free on purpose: the reference kernels and the tests use
// these, independently of Highway's vector conversions.
#ifndef EXPERTSERVE_ENGINE_KERNELS_DTYPE_H_
#define EXPERTSERVE_ENGINE_KERNELS_DTYPE_H_

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace expertserve::kernels {

enum class DType : uint8_t { kF32, kBF16, kF16 };

inline size_t DTypeSize(DType t) { return t == DType::kF32 ? 4 : 2; }
inline const char* DTypeName(DType t) {
  switch (t) {
    case DType::kF32: return "F32";
    case DType::kBF16: return "BF16";
    case DType::kF16: return "F16";
  }
  return "?";
}

// A read-only tensor of `dtype` elements used in place (e.g. inside a mmapped
// checkpoint); need not be aligned at all (a safetensors offset may be odd): the
// kernels use unaligned loads. Thread-compatible value type, not owning.
struct WeightRef {
  const void* data = nullptr;
  DType dtype = DType::kF32;
};

inline float BF16BitsToF32(uint16_t bits) {
  const uint32_t u = uint32_t{bits} << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Round to nearest even, NaN stays NaN (as torch's .to(bfloat16)).
inline uint16_t F32ToBF16Bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

inline float F16BitsToF32(uint16_t h) {
  const uint32_t sign = (h >> 15) & 1u;
  const uint32_t exp = (h >> 10) & 0x1fu;
  const uint32_t mant = h & 0x3ffu;
  float mag;
  if (exp == 0) {
    mag = std::ldexp(static_cast<float>(mant), -24);  // subnormal (or zero)
  } else if (exp == 31) {
    mag = mant == 0 ? INFINITY : NAN;
  } else {
    mag = std::ldexp(static_cast<float>(mant | 0x400u), static_cast<int>(exp) - 25);
  }
  return sign ? -mag : mag;
}

// Round to nearest even; used only to generate test data, so overflow
// saturates to infinity and subnormals are handled via the generic path.
inline uint16_t F32ToF16Bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  const float a = std::fabs(f);
  if (std::isnan(f)) return sign | 0x7e00u;
  if (a >= 65520.0f) return sign | 0x7c00u;
  if (a < 6.103515625e-05f) {  // subnormal half: multiples of 2^-24
    const float q = std::nearbyint(a * 16777216.0f);
    return sign | static_cast<uint16_t>(q);
  }
  int e;
  const float m = std::frexp(a, &e);  // a = m * 2^e, m in [0.5, 1)
  float q = std::nearbyint(m * 2048.0f);  // 11 significant bits
  if (q >= 2048.0f) {
    q /= 2.0f;
    ++e;
  }
  const uint32_t exp_bits = static_cast<uint32_t>(e - 1 + 15);
  return sign | static_cast<uint16_t>((exp_bits << 10) | (static_cast<uint32_t>(q) & 0x3ffu));
}

// Element i of `w` as f32.
inline float LoadAsF32(WeightRef w, size_t i) {
  uint16_t bits;
  switch (w.dtype) {
    case DType::kF32: {
      float f;
      std::memcpy(&f, static_cast<const char*>(w.data) + 4 * i, 4);
      return f;
    }
    case DType::kBF16:
      std::memcpy(&bits, static_cast<const char*>(w.data) + 2 * i, 2);
      return BF16BitsToF32(bits);
    case DType::kF16:
      std::memcpy(&bits, static_cast<const char*>(w.data) + 2 * i, 2);
      return F16BitsToF32(bits);
  }
  return 0.0f;
}

}  // namespace expertserve::kernels

#endif  // EXPERTSERVE_ENGINE_KERNELS_DTYPE_H_
