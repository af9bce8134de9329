#include "checkpoint/dtype.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/fixtures/status_matchers.h"

namespace expertserve::checkpoint {
namespace {

using ::expertserve::testing::StatusIs;
using ::testing::HasSubstr;

float Bits(uint32_t b) { return std::bit_cast<float>(b); }
uint32_t BitsOf(float f) { return std::bit_cast<uint32_t>(f); }

// Independent reference for half -> double: the IEEE 754 binary16 formula,
// value = (-1)^s * 2^(e-15) * (1 + m/1024), subnormal 2^-14 * m/1024.
double HalfValue(uint16_t h) {
  const int s = h >> 15, e = (h >> 10) & 0x1F, m = h & 0x3FF;
  const double mag = e == 0 ? std::ldexp(m, -24) : std::ldexp(1024 + m, e - 25);
  return s ? -mag : mag;
}

TEST(DTypeTest, SizesNamesAndParsing) {
  EXPECT_EQ(DTypeSize(DType::kF32), 4u);
  EXPECT_EQ(DTypeSize(DType::kF16), 2u);
  EXPECT_EQ(DTypeSize(DType::kBF16), 2u);
  for (DType d : {DType::kF32, DType::kF16, DType::kBF16}) {
    auto parsed = ParseDType(DTypeName(d));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, d);
  }
  EXPECT_THAT(ParseDType("I8"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("I8"), HasSubstr("F32, F16, BF16"))));
  EXPECT_THAT(ParseDType("f32"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(*ParseTorchDType("bfloat16"), DType::kBF16);
  EXPECT_EQ(*ParseTorchDType("float16"), DType::kF16);
  EXPECT_EQ(*ParseTorchDType("float32"), DType::kF32);
  EXPECT_EQ(*ParseTorchDType("BF16"), DType::kBF16);
  EXPECT_THAT(ParseTorchDType("int8"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("int8")));
}

// Expected bits below are derived by hand from the formats: bf16 keeps the top
// 16 bits of the f32; f16 has bias 15 and a 10-bit mantissa.
TEST(DTypeTest, BF16KnownBits) {
  EXPECT_EQ(F32ToBF16(1.0f), 0x3F80);
  EXPECT_EQ(F32ToBF16(-2.0f), 0xC000);
  EXPECT_EQ(F32ToBF16(0.0f), 0x0000);
  EXPECT_EQ(F32ToBF16(-0.0f), 0x8000);
  // 1 + 2^-8 is exactly between 0x3F80 and 0x3F81: ties to even (0x3F80).
  EXPECT_EQ(F32ToBF16(Bits(0x3F808000)), 0x3F80);
  // 1 + 3*2^-8 is between 0x3F81 and 0x3F82: ties to even (0x3F82).
  EXPECT_EQ(F32ToBF16(Bits(0x3F818000)), 0x3F82);
  EXPECT_EQ(F32ToBF16(Bits(0x3F808001)), 0x3F81);  // just above the tie
  EXPECT_EQ(F32ToBF16(Bits(0x3F807FFF)), 0x3F80);  // just below
  // pi = 0x40490FDB -> 0x4049 (0x0FDB < 0x8000).
  EXPECT_EQ(F32ToBF16(3.14159265f), 0x4049);
  // FLT_MAX rounds up past the largest bf16 (0x7F7F) to +Inf.
  EXPECT_EQ(F32ToBF16(std::numeric_limits<float>::max()), 0x7F80);
  EXPECT_EQ(F32ToBF16(std::numeric_limits<float>::infinity()), 0x7F80);
  EXPECT_EQ(F32ToBF16(-std::numeric_limits<float>::infinity()), 0xFF80);
  // f32 subnormals: smallest (2^-149) rounds to zero; 0x00018000 ties up to
  // 0x0002 (odd 0x0001 -> even 0x0002).
  EXPECT_EQ(F32ToBF16(Bits(0x00000001)), 0x0000);
  EXPECT_EQ(F32ToBF16(Bits(0x00018000)), 0x0002);
  // NaNs stay NaN, including a signalling NaN whose payload is all low bits
  // (plain truncation would turn it into Inf), and keep their sign.
  const uint16_t nan = F32ToBF16(Bits(0x7F800001));
  EXPECT_EQ(nan & 0x7F80, 0x7F80);
  EXPECT_NE(nan & 0x007F, 0);
  EXPECT_EQ(F32ToBF16(Bits(0xFFC00000)), 0xFFC0);
  EXPECT_TRUE(std::isnan(BF16ToF32(0x7FC0)));
  EXPECT_EQ(BitsOf(BF16ToF32(0x3F80)), 0x3F800000u);
  EXPECT_EQ(BitsOf(BF16ToF32(0x8001)), 0x80010000u);
}

TEST(DTypeTest, F16KnownBits) {
  EXPECT_EQ(F32ToF16(1.0f), 0x3C00);
  EXPECT_EQ(F32ToF16(-2.0f), 0xC000);
  EXPECT_EQ(F32ToF16(0.5f), 0x3800);
  EXPECT_EQ(F32ToF16(-0.0f), 0x8000);
  EXPECT_EQ(F32ToF16(65504.0f), 0x7BFF);  // largest half
  EXPECT_EQ(F32ToF16(65519.0f), 0x7BFF);  // below the tie
  EXPECT_EQ(F32ToF16(65520.0f), 0x7C00);  // tie to even -> Inf
  EXPECT_EQ(F32ToF16(1e6f), 0x7C00);
  EXPECT_EQ(F32ToF16(-1e6f), 0xFC00);
  EXPECT_EQ(F32ToF16(std::ldexp(1.0f, -14)), 0x0400);  // smallest normal
  EXPECT_EQ(F32ToF16(std::ldexp(1.0f, -24)), 0x0001);  // smallest subnormal
  EXPECT_EQ(F32ToF16(std::ldexp(1.0f, -25)), 0x0000);  // tie to even -> 0
  EXPECT_EQ(F32ToF16(-std::ldexp(1.0f, -25)), 0x8000);
  EXPECT_EQ(F32ToF16(std::ldexp(1.5f, -25)), 0x0001);  // above the tie
  EXPECT_EQ(F32ToF16(std::ldexp(3.0f, -25)), 0x0002);  // 1.5 ulp: tie -> 2
  EXPECT_EQ(F32ToF16(std::ldexp(5.0f, -25)), 0x0002);  // 2.5 ulp: tie -> 2
  // 2^-14 - 2^-25 = 1023.5 subnormal ulps: tie -> 1024 = smallest normal.
  EXPECT_EQ(F32ToF16(std::ldexp(2047.0f, -25)), 0x0400);
  EXPECT_EQ(F32ToF16(std::ldexp(1.0f, -30)), 0x0000);
  // 1 + 2^-11 ties to 0x3C00; 1 + 3*2^-11 ties to 0x3C02.
  EXPECT_EQ(F32ToF16(1.0f + std::ldexp(1.0f, -11)), 0x3C00);
  EXPECT_EQ(F32ToF16(1.0f + std::ldexp(3.0f, -11)), 0x3C02);
  EXPECT_EQ(F32ToF16(0.1f), 0x2E66);  // 0.1 -> 0.0999755859375
  EXPECT_EQ(F32ToF16(std::numeric_limits<float>::infinity()), 0x7C00);
  const uint16_t nan = F32ToF16(Bits(0x7F800001));
  EXPECT_EQ(nan & 0x7C00, 0x7C00);
  EXPECT_NE(nan & 0x03FF, 0);
  EXPECT_EQ(F32ToF16(Bits(0xFFC00000)) & 0x8000, 0x8000);
  EXPECT_EQ(F16ToF32(0x3C00), 1.0f);
  EXPECT_EQ(F16ToF32(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(F16ToF32(0x7BFF), 65504.0f);
  EXPECT_EQ(F16ToF32(0xFC00), -std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(F16ToF32(0x7E00)));
  EXPECT_TRUE(std::isnan(F16ToF32(0x7C01)));
  EXPECT_EQ(BitsOf(F16ToF32(0x8000)), 0x80000000u);
}

// Every half value decodes to the binary16 formula and re-encodes to itself.
TEST(DTypeTest, F16ExhaustiveDecodeAndRoundTrip) {
  for (uint32_t h = 0; h <= 0xFFFF; ++h) {
    const uint16_t half = static_cast<uint16_t>(h);
    const float f = F16ToF32(half);
    if (((h >> 10) & 0x1F) == 0x1F) {
      EXPECT_EQ(std::isnan(f), (h & 0x3FF) != 0) << std::hex << h;
      if ((h & 0x3FF) == 0) {
        EXPECT_EQ(F32ToF16(f), half);
      }
      continue;
    }
    ASSERT_EQ(static_cast<double>(f), HalfValue(half)) << std::hex << h;
    ASSERT_EQ(F32ToF16(f), half) << std::hex << h;
  }
}

TEST(DTypeTest, BF16ExhaustiveRoundTrip) {
  for (uint32_t h = 0; h <= 0xFFFF; ++h) {
    const uint16_t b = static_cast<uint16_t>(h);
    const float f = BF16ToF32(b);
    if (std::isnan(f)) continue;
    ASSERT_EQ(F32ToBF16(f), b) << std::hex << h;
  }
}

// Random floats against a rounding reference that searches the sorted table of
// all finite halves for the nearest one (ties to the even encoding).
TEST(DTypeTest, F16RoundingMatchesNearestSearch) {
  std::vector<std::pair<double, uint16_t>> table;  // non-negative finite
  for (uint32_t h = 0; h < 0x7C00; ++h) {
    table.emplace_back(HalfValue(static_cast<uint16_t>(h)),
                       static_cast<uint16_t>(h));
  }
  auto reference = [&](float f) -> uint16_t {
    const double a = std::fabs(static_cast<double>(f));
    const uint16_t sign = std::signbit(f) ? 0x8000 : 0;
    // Past 65504 + half an ulp (65520) the result is Inf; 65520 itself ties
    // to the even encoding 0x7C00.
    if (a >= 65520.0) return sign | 0x7C00;
    auto hi = std::lower_bound(
        table.begin(), table.end(), a,
        [](const auto& e, double v) { return e.first < v; });
    if (hi == table.end()) return sign | 0x7BFF;
    if (hi->first == a || hi == table.begin()) return sign | hi->second;
    auto lo = hi - 1;
    const double dlo = a - lo->first, dhi = hi->first - a;
    if (dlo < dhi) return sign | lo->second;
    if (dhi < dlo) return sign | hi->second;
    return sign | ((lo->second & 1) ? hi->second : lo->second);
  };
  std::mt19937 rng(1234);
  std::uniform_int_distribution<uint32_t> any;
  std::uniform_real_distribution<float> exp_dist(-27.0f, 17.0f);
  for (int i = 0; i < 200000; ++i) {
    float f;
    if (i % 2 == 0) {
      // Uniform over the magnitudes a half can represent, incl. subnormals.
      f = std::exp2(exp_dist(rng)) * ((any(rng) & 1) ? -1.0f : 1.0f);
    } else {
      // Exact ties and neighbours: a half value plus half an ulp, +-1 f32 ulp.
      const uint16_t h = static_cast<uint16_t>(any(rng) % 0x7BFF);
      const double mid = (HalfValue(h) + HalfValue(h + 1)) / 2;
      f = static_cast<float>(mid);
      const int nudge = static_cast<int>(any(rng) % 3) - 1;
      if (nudge != 0) f = std::nextafter(f, nudge * 1e9f);
    }
    ASSERT_EQ(F32ToF16(f), reference(f)) << std::hexfloat << f;
  }
}

// Same for bf16: the two neighbouring bf16 values of x are its truncation and
// the next one up in magnitude; pick the nearer, ties to the even encoding.
TEST(DTypeTest, BF16RoundingMatchesNearestNeighbour) {
  std::mt19937 rng(99);
  std::uniform_int_distribution<uint32_t> any;
  for (int i = 0; i < 200000; ++i) {
    uint32_t bits = any(rng);
    if (i % 4 == 0) bits = (bits & 0xFFFF0000u) | 0x8000u;  // exact ties
    const float f = Bits(bits);
    if (std::isnan(f) || std::isinf(f)) continue;
    const uint16_t lo = static_cast<uint16_t>(bits >> 16);
    const uint16_t hi = static_cast<uint16_t>(lo + 1);
    const double a = std::fabs(static_cast<double>(f));
    const double vlo = std::fabs(static_cast<double>(BF16ToF32(lo)));
    // hi may be the Inf encoding: treat it as the value 2^128 it rounds to.
    const double vhi = (hi & 0x7FFF) == 0x7F80
                           ? std::ldexp(1.0, 128)
                           : std::fabs(static_cast<double>(BF16ToF32(hi)));
    uint16_t expected;
    if (a - vlo < vhi - a) {
      expected = lo;
    } else if (vhi - a < a - vlo) {
      expected = hi;
    } else {
      expected = (lo & 1) ? hi : lo;
    }
    ASSERT_EQ(F32ToBF16(f), expected) << std::hex << bits;
  }
}

TEST(DTypeTest, BulkConversionsUnaligned) {
  const std::vector<float> src = {1.0f, -2.5f, 0.0f, 65504.0f, 1e-8f};
  for (DType d : {DType::kF32, DType::kF16, DType::kBF16}) {
    std::vector<std::byte> buf(src.size() * DTypeSize(d) + 1);
    FromF32(d, src.data(), src.size(), buf.data() + 1);  // misaligned on purpose
    std::vector<float> back(src.size());
    ToF32(d, buf.data() + 1, src.size(), back.data());
    for (size_t i = 0; i < src.size(); ++i) {
      float expected = src[i];
      if (d == DType::kF16) expected = F16ToF32(F32ToF16(src[i]));
      if (d == DType::kBF16) expected = BF16ToF32(F32ToBF16(src[i]));
      EXPECT_EQ(back[i], expected) << DTypeName(d) << " " << i;
    }
  }
  // Spot values with known encodings, through the bulk path.
  std::vector<std::byte> b(2);
  const float one = 1.0f;
  FromF32(DType::kF16, &one, 1, b.data());
  EXPECT_EQ(b[0], std::byte{0x00});
  EXPECT_EQ(b[1], std::byte{0x3C});  // little-endian 0x3C00
}

}  // namespace
}  // namespace expertserve::checkpoint
