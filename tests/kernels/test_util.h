// Helpers shared by the kernel tests: seeded random data in each weight dtype
// and misaligned views into it.
#ifndef EXPERTSERVE_TESTS_KERNELS_TEST_UTIL_H_
#define EXPERTSERVE_TESTS_KERNELS_TEST_UTIL_H_

#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "engine/kernels/dtype.h"
#include "hwy/highway.h"

namespace expertserve::kernels::test_util {

// Lanes of f32 in the widest vector compiled in (16 with AVX-512): the tests
// sweep sizes 0..2N+1 with this N so every target sees sizes below, at and
// above its own vector width.
inline size_t MaxF32Lanes() { return HWY_MAX_BYTES / sizeof(float); }

inline std::vector<float> RandomF32(std::mt19937& rng, size_t n, float lo = -1.0f,
                                    float hi = 1.0f) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& f : v) f = dist(rng);
  return v;
}

// Weights stored as `dtype` bytes, starting `offset_elems` elements into the
// buffer (misaligned relative to the vector width).
class WeightBuffer {
 public:
  WeightBuffer(const std::vector<float>& values, DType dtype, size_t offset_elems)
      : dtype_(dtype), offset_(offset_elems) {
    const size_t es = DTypeSize(dtype);
    bytes_.resize((values.size() + offset_elems) * es + 64);
    for (size_t i = 0; i < values.size(); ++i) {
      char* dst = bytes_.data() + (i + offset_elems) * es;
      if (dtype == DType::kF32) {
        std::memcpy(dst, &values[i], 4);
      } else {
        const uint16_t bits = dtype == DType::kBF16 ? F32ToBF16Bits(values[i])
                                                    : F32ToF16Bits(values[i]);
        std::memcpy(dst, &bits, 2);
      }
    }
  }
  WeightRef ref() const {
    return WeightRef{bytes_.data() + offset_ * DTypeSize(dtype_), dtype_};
  }

 private:
  DType dtype_;
  size_t offset_;
  std::vector<char> bytes_;
};

// f32 data at a given element offset from a 64-byte aligned base.
class F32Buffer {
 public:
  F32Buffer(const std::vector<float>& values, size_t offset_elems)
      : storage_(values.size() + offset_elems + 16), offset_(offset_elems) {
    std::copy(values.begin(), values.end(), data());
  }
  float* data() { return Base() + offset_; }
  const float* data() const { return const_cast<F32Buffer*>(this)->data(); }

 private:
  float* Base() {
    auto p = reinterpret_cast<uintptr_t>(storage_.data());
    return storage_.data() + ((64 - p % 64) % 64) / sizeof(float);
  }
  std::vector<float> storage_;
  size_t offset_;
};

}  // namespace expertserve::kernels::test_util

#endif  // EXPERTSERVE_TESTS_KERNELS_TEST_UTIL_H_
