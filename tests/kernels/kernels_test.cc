// Every kernel on every SIMD target compiled in and supported by this CPU,
// against the scalar reference (engine/kernels/reference.cc), over sizes
// 0..2N+1 (N = widest f32 vector), a few larger odd sizes, misalignments of
// 0..3 elements and every weight dtype.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "common/thread_pool.h"
#include "engine/kernels/cpu/backends.h"
#include "engine/kernels/kernels.h"
#include "engine/kernels/reference.h"
#include "gtest/gtest.h"
#include "hwy/targets.h"
#include "hwy/tests/hwy_gtest.h"
#include "tests/kernels/test_util.h"

namespace expertserve::kernels {
namespace {

using test_util::F32Buffer;
using test_util::MaxF32Lanes;
using test_util::RandomF32;
using test_util::WeightBuffer;

constexpr DType kAllDTypes[] = {DType::kF32, DType::kBF16, DType::kF16};

std::vector<size_t> SweepSizes() {
  std::vector<size_t> sizes;
  for (size_t n = 0; n <= 2 * MaxF32Lanes() + 1; ++n) sizes.push_back(n);
  for (size_t n : {63, 100, 257, 1031}) sizes.push_back(n);
  return sizes;
}

class KernelsTest : public hwy::TestWithParamTarget {
 protected:
  void SetUp() override {
    hwy::TestWithParamTarget::SetUp();
    // The dispatcher must really run the target under test.
    ASSERT_EQ(std::string(ActiveTargetName()), hwy::TargetName(GetParam()));
  }
  std::mt19937 rng_{1234};
};
HWY_TARGET_INSTANTIATE_TEST_SUITE_P(KernelsTest);

// Checks y against the reference with an f32-accumulation tolerance scaled
// by Σ|x||w| of each output (the size of the terms being summed).
void ExpectMatMulNear(const MatMulArgs& a, const std::vector<float>& expected,
                      const std::string& what) {
  for (size_t m = 0; m < a.M; ++m) {
    for (size_t n = 0; n < a.N; ++n) {
      double mag = a.bias ? std::fabs(a.bias[n]) : 0.0;
      for (size_t k = 0; k < a.K; ++k) {
        mag += std::fabs(a.x[m * a.x_stride + k] * LoadAsF32(a.w, n * a.K + k));
      }
      const float got = a.y[m * a.y_stride + n];
      const float want = expected[m * a.y_stride + n];
      ASSERT_NEAR(got, want, 1e-5 * mag + 1e-6)
          << what << " m=" << m << " n=" << n;
    }
  }
}

void RunMatMulCase(std::mt19937& rng, ThreadPool& pool, size_t M, size_t K,
                   size_t N, DType dtype, size_t offset, bool with_bias,
                   MatMulBackend backend) {
  const size_t x_stride = K + offset;  // padded rows when offset > 0
  const size_t y_stride = N + (offset % 2);
  F32Buffer x(RandomF32(rng, M * x_stride), offset);
  WeightBuffer w(RandomF32(rng, N * K), dtype, offset);
  F32Buffer bias(RandomF32(rng, N), offset);
  std::vector<float> y(M * y_stride + 1, -7.0f), want(M * y_stride + 1, -7.0f);
  MatMulArgs args{x.data(), x_stride, M, K, w.ref(), N,
                  with_bias ? bias.data() : nullptr, y.data(), y_stride};
  MatMul(args, pool, backend);
  MatMulArgs ref_args = args;
  ref_args.y = want.data();
  reference::MatMul(ref_args);
  ExpectMatMulNear(args, want,
                   std::string(DTypeName(dtype)) + " M=" + std::to_string(M) +
                       " K=" + std::to_string(K) + " N=" + std::to_string(N) +
                       " off=" + std::to_string(offset));
  // Padding between rows is never written.
  for (size_t m = 0; m < M; ++m) {
    for (size_t n = N; n < y_stride; ++n) ASSERT_EQ(y[m * y_stride + n], -7.0f);
  }
}

TEST_P(KernelsTest, MatMulSmallShapesAllDTypesAndOffsets) {
  ThreadPool pool(2);
  for (DType dtype : kAllDTypes) {
    for (size_t K = 0; K <= 2 * MaxF32Lanes() + 1; ++K) {
      for (size_t M : {1, 2, 3, 5}) {
        for (size_t N : {1, 4, 5, 11}) {
          const size_t offset = (K + M + N) % 4;
          RunMatMulCase(rng_, pool, M, K, N, dtype, offset, (K % 2) == 0,
                        MatMulBackend::kHighway);
        }
      }
    }
  }
}

// Shapes that exercise the tiling: several M tiles, K chunks, N tails,
// more tasks than workers.
TEST_P(KernelsTest, MatMulLargerShapes) {
  ThreadPool pool(3);
  struct Shape {
    size_t M, K, N;
  };
  for (const Shape& s : {Shape{1, 1031, 67}, Shape{4, 517, 130},
                         Shape{16, 2048, 9}, Shape{70, 1030, 21},
                         Shape{130, 301, 37}}) {
    for (DType dtype : kAllDTypes) {
      for (size_t offset : {0, 3}) {
        RunMatMulCase(rng_, pool, s.M, s.K, s.N, dtype, offset, offset == 0,
                      MatMulBackend::kHighway);
      }
    }
  }
}

TEST_P(KernelsTest, MatMulOneDnnBackendsAndAuto) {
  ThreadPool pool(2);
  for (DType dtype : kAllDTypes) {
    for (MatMulBackend backend : {MatMulBackend::kOneDnn, MatMulBackend::kOneDnnSplitBf16,
                                  MatMulBackend::kAmxSplitBf16, MatMulBackend::kAuto}) {
      RunMatMulCase(rng_, pool, 1, 129, 70, dtype, 1, true, backend);
      RunMatMulCase(rng_, pool, 67, 300, 131, dtype, 2, false, backend);
      // Split BF16: one stacked pass below 128 rows, two passes from 128.
      RunMatMulCase(rng_, pool, 130, 65, 33, dtype, 1, true, backend);
    }
  }
}

// The AMX kernel's paths: one 16-row x chunk and several (partial last
// chunks), W in block pairs and a single last block, N % 16 tail rows (on
// the Highway kernel); odd strides and unaligned weights; panels of several
// tasks.
TEST(MatMulAmx, MatchesReferenceOverItsPaths) {
  if (!AmxBf16Available()) GTEST_SKIP() << "no AMX-BF16 on this CPU";
  std::mt19937 rng(99);
  for (size_t workers : {1, 3}) {
    ThreadPool pool(workers);
    for (size_t M : {1, 5, 16, 17, 32, 33, 48, 64, 65, 100}) {
      for (size_t N : {16, 37, 64, 80, 130}) {
        for (size_t K : {32, 96, 512}) {
          RunMatMulCase(rng, pool, M, K, N, DType::kBF16, (M + N) % 3, N % 2 == 0,
                        MatMulBackend::kAmxSplitBf16);
        }
      }
    }
    // K not a multiple of 32 and other dtypes fall back (still correct).
    RunMatMulCase(rng, pool, 8, 70, 20, DType::kBF16, 1, true, MatMulBackend::kAmxSplitBf16);
    RunMatMulCase(rng, pool, 8, 64, 20, DType::kF16, 1, true, MatMulBackend::kAmxSplitBf16);
  }
}

// kAuto on one x for products that resolve to different backends (on an
// AMX machine: AMX for N >= 128, the oneDNN split below, Highway for M < 4):
// each must match the reference, so a split in one backend's layout is
// never read as another's.
TEST(MatMulAuto, ProductsOnOneXAcrossBackends) {
  ThreadPool pool(2);
  std::mt19937 rng(5);
  for (size_t M : {3, 16, 40}) {
    struct Shape {
      size_t N;
      bool bias;
    };
    const Shape shapes[] = {{128, false}, {32, true}, {200, true}, {256, false}};
    constexpr size_t K = 64;
    F32Buffer x(RandomF32(rng, M * K), 0);
    std::vector<WeightBuffer> ws;
    std::vector<std::vector<float>> biases, ys;
    std::vector<MatMulArgs> products;
    for (const Shape& s : shapes) {
      ws.emplace_back(RandomF32(rng, s.N * K), DType::kBF16, 1);
      biases.push_back(RandomF32(rng, s.N));
      ys.emplace_back(M * s.N, -7.0f);
    }
    for (size_t i = 0; i < std::size(shapes); ++i) {
      products.push_back(MatMulArgs{x.data(), K, M, K, ws[i].ref(), shapes[i].N,
                                    shapes[i].bias ? biases[i].data() : nullptr,
                                    ys[i].data(), shapes[i].N});
    }
    MatMulGroup(products, pool, MatMulBackend::kAuto);
    for (size_t i = 0; i < products.size(); ++i) {
      std::vector<float> want(ys[i].size());
      MatMulArgs ref_args = products[i];
      ref_args.y = want.data();
      reference::MatMul(ref_args);
      ExpectMatMulNear(products[i], want,
                       "M=" + std::to_string(M) + " product " + std::to_string(i));
    }
  }
}

// The split keeps f32 precision where a single bf16 rounding of x would not:
// x values with more mantissa than bf16 holds, times weights of 1.
TEST(MatMulSplitBf16, KeepsPrecisionBeyondOneBf16Rounding) {
  if (!SplitBf16Native()) GTEST_SKIP() << "no AMX / AVX512-BF16 on this CPU";
  ThreadPool pool(2);
  constexpr size_t M = 40, K = 64, N = 8;
  std::vector<float> x(M * K);
  for (size_t i = 0; i < x.size(); ++i) x[i] = 1.0f + static_cast<float>(i % 97) / 1024.0f;
  const std::vector<uint16_t> w(N * K, F32ToBF16Bits(1.0f));
  for (MatMulBackend backend :
       {MatMulBackend::kOneDnnSplitBf16, MatMulBackend::kAmxSplitBf16}) {
    std::vector<float> y(M * N);
    MatMul(x.data(), M, K, WeightRef{w.data(), DType::kBF16}, N, nullptr, y.data(), pool,
           backend);
    for (size_t m = 0; m < M; ++m) {
      double want = 0;
      for (size_t k = 0; k < K; ++k) want += x[m * K + k];
      for (size_t n = 0; n < N; ++n) {
        ASSERT_NEAR(y[m * N + n], want, 1e-5 * want) << m << " backend " << int(backend);
      }
    }
  }
}

// One parallel region for products of different shapes, dtypes and backends
// (including empty ones and ones writing into column slices of a shared y):
// each must equal its own reference.
TEST_P(KernelsTest, MatMulGroupMixedProducts) {
  struct Shape {
    size_t M, K, N;
    DType dtype;
  };
  const std::vector<Shape> shapes = {
      {1, 1031, 67, DType::kBF16}, {1, 64, 5, DType::kF32},
      {0, 64, 8, DType::kF16},     {3, 0, 9, DType::kF32},
      {2, 300, 130, DType::kF16},  {40, 130, 37, DType::kBF16},
      {1, 1, 1, DType::kF32},      {5, 17, 0, DType::kBF16}};
  for (size_t workers : {1, 2, 3}) {
    for (MatMulBackend backend :
         {MatMulBackend::kAuto, MatMulBackend::kHighway, MatMulBackend::kOneDnn,
          MatMulBackend::kOneDnnSplitBf16, MatMulBackend::kAmxSplitBf16}) {
      ThreadPool pool(workers);
      std::vector<F32Buffer> xs;
      std::vector<WeightBuffer> ws;
      std::vector<std::vector<float>> biases, ys;
      std::vector<MatMulArgs> products;
      for (const Shape& s : shapes) {
        xs.emplace_back(RandomF32(rng_, s.M * s.K), 1);
        ws.emplace_back(RandomF32(rng_, s.N * s.K), s.dtype, 2);
        biases.push_back(RandomF32(rng_, s.N));
        ys.emplace_back(s.M * s.N + 1, -7.0f);
      }
      for (size_t i = 0; i < shapes.size(); ++i) {
        const Shape& s = shapes[i];
        products.push_back(MatMulArgs{xs[i].data(), s.K, s.M, s.K, ws[i].ref(),
                                      s.N, i % 2 ? biases[i].data() : nullptr,
                                      ys[i].data(), s.N});
      }
      MatMulGroup(products, pool, backend);
      for (size_t i = 0; i < shapes.size(); ++i) {
        std::vector<float> want(ys[i].size(), -7.0f);
        MatMulArgs ref_args = products[i];
        ref_args.y = want.data();
        reference::MatMul(ref_args);
        ExpectMatMulNear(products[i], want,
                         "product " + std::to_string(i) + " workers " +
                             std::to_string(workers));
        ASSERT_EQ(ys[i].back(), -7.0f) << "product " << i << " wrote past y";
      }
    }
  }
}

// Products reading the same x (an MLP's gate and up) share one split of it;
// ones reading a different part of it (fewer rows, a narrower K) must not.
TEST_P(KernelsTest, MatMulGroupProductsSharingX) {
  ThreadPool pool(2);
  struct Shape {
    size_t M, K, N;
  };
  // Enough rows that the split itself runs as many pool tasks.
  const Shape shapes[] = {{400, 64, 20}, {400, 64, 30}, {200, 64, 24}, {400, 32, 16}};
  F32Buffer x(RandomF32(rng_, 400 * 64), 0);
  std::vector<WeightBuffer> ws;
  std::vector<std::vector<float>> ys;
  std::vector<MatMulArgs> products;
  for (const Shape& s : shapes) {
    ws.emplace_back(RandomF32(rng_, s.N * s.K), DType::kBF16, 1);
    ys.emplace_back(s.M * s.N, -7.0f);
  }
  for (size_t i = 0; i < std::size(shapes); ++i) {
    const Shape& s = shapes[i];
    products.push_back(MatMulArgs{x.data(), 64, s.M, s.K, ws[i].ref(), s.N, nullptr,
                                  ys[i].data(), s.N});
  }
  for (MatMulBackend backend : {MatMulBackend::kAuto, MatMulBackend::kOneDnnSplitBf16,
                                MatMulBackend::kAmxSplitBf16}) {
    MatMulGroup(products, pool, backend);
    for (size_t i = 0; i < products.size(); ++i) {
      std::vector<float> want(ys[i].size());
      MatMulArgs ref_args = products[i];
      ref_args.y = want.data();
      reference::MatMul(ref_args);
      ExpectMatMulNear(products[i], want, "product " + std::to_string(i));
    }
  }
}

TEST_P(KernelsTest, ConvertToF32) {
  for (DType dtype : kAllDTypes) {
    for (size_t n : SweepSizes()) {
      for (size_t offset = 0; offset < 4; ++offset) {
        // Finite in every dtype (F16 max 65504): checkpoints hold no inf.
        WeightBuffer w(RandomF32(rng_, n, -60000.0f, 60000.0f), dtype, offset);
        std::vector<float> got(n + 1, -1.0f);
        ConvertToF32(w.ref(), n, got.data());
        for (size_t i = 0; i < n; ++i) {
          ASSERT_EQ(got[i], LoadAsF32(w.ref(), i)) << DTypeName(dtype) << " i=" << i;
        }
        ASSERT_EQ(got[n], -1.0f);
      }
    }
  }
}

// The split-BF16 GEMM's input: hi = bf16(x), lo = bf16(x - hi), each rounded
// to nearest even, on every target and size, with special values mixed in.
TEST_P(KernelsTest, SplitToBf16) {
  const float specials[] = {0.0f, -0.0f, 1.0f, 1.00390625f /* a bf16 tie */,
                            1e-40f /* denormal */, 3.3895e38f /* rounds to inf */,
                            INFINITY, -INFINITY, NAN, -NAN};
  for (size_t n : SweepSizes()) {
    for (size_t offset = 0; offset < 4; ++offset) {
      std::vector<float> x = RandomF32(rng_, 2 * (n + offset), -100.0f, 100.0f);
      for (size_t i = 0; i < x.size(); i += 3) x[i] = specials[(i / 3) % std::size(specials)];
      const size_t stride = n + offset;  // two rows, `offset` floats apart
      std::vector<uint16_t> hi(2 * n + 1, 0xAAAA), lo(2 * n + 1, 0xAAAA);
      internal::SplitToBf16(x.data() + offset, stride, 2, n, hi.data(), lo.data());
      for (size_t r = 0; r < 2; ++r) {
        for (size_t k = 0; k < n; ++k) {
          const float v = x[offset + r * stride + k];
          const uint16_t want_hi = F32ToBF16Bits(v);
          const float hf = BF16BitsToF32(want_hi);
          const uint16_t want_lo = std::isfinite(hf) ? F32ToBF16Bits(v - hf) : 0;
          ASSERT_EQ(hi[r * n + k], want_hi) << "v=" << v << " k=" << k;
          ASSERT_EQ(lo[r * n + k], want_lo) << "v=" << v << " k=" << k;
          if (std::isfinite(hf)) {  // the split's promise (absolute for denormals)
            ASSERT_LE(std::fabs(hf + BF16BitsToF32(want_lo) - v),
                      std::ldexp(std::fabs(v), -17) + std::numeric_limits<float>::min());
          }
        }
      }
      ASSERT_EQ(hi[2 * n], 0xAAAA);
      ASSERT_EQ(lo[2 * n], 0xAAAA);
    }
  }
}

TEST_P(KernelsTest, RMSNorm) {
  for (DType dtype : kAllDTypes) {
    for (size_t dim : SweepSizes()) {
      for (size_t offset = 0; offset < 4; ++offset) {
        const size_t rows = 1 + offset % 3;
        F32Buffer x(RandomF32(rng_, rows * dim, -3.0f, 3.0f), offset);
        WeightBuffer w(RandomF32(rng_, dim, 0.5f, 1.5f), dtype, offset);
        std::vector<float> got(rows * dim), want(rows * dim);
        RMSNorm(x.data(), rows, dim, w.ref(), 1e-6f, got.data());
        reference::RMSNorm(x.data(), rows, dim, w.ref(), 1e-6f, want.data());
        for (size_t i = 0; i < rows * dim; ++i) {
          ASSERT_NEAR(got[i], want[i], 1e-5 * std::fabs(want[i]) + 1e-6)
              << DTypeName(dtype) << " dim=" << dim << " i=" << i;
        }
        // In place (out == x) gives the same result.
        RMSNorm(x.data(), rows, dim, w.ref(), 1e-6f, x.data());
        for (size_t i = 0; i < rows * dim; ++i) ASSERT_EQ(x.data()[i], got[i]);
      }
    }
  }
}

TEST_P(KernelsTest, AddSiluMulScaleAxpyDot) {
  for (size_t n : SweepSizes()) {
    for (size_t offset = 0; offset < 4; ++offset) {
      const std::vector<float> a = RandomF32(rng_, n, -12.0f, 12.0f);
      const std::vector<float> b = RandomF32(rng_, n, -2.0f, 2.0f);
      F32Buffer xa(a, offset), xb(b, (offset + 1) % 4);

      std::vector<float> got = b, want = b;
      AddInPlace(got.data(), xa.data(), n);
      reference::AddInPlace(want.data(), a.data(), n);
      for (size_t i = 0; i < n; ++i) ASSERT_EQ(got[i], want[i]) << "add n=" << n;

      std::vector<float> silu(n), silu_ref(n);
      SiluMul(xa.data(), xb.data(), n, silu.data());
      reference::SiluMul(a.data(), b.data(), n, silu_ref.data());
      for (size_t i = 0; i < n; ++i) {
        ASSERT_NEAR(silu[i], silu_ref[i], 2e-6 * std::fabs(silu_ref[i]) + 1e-7)
            << "silu n=" << n << " g=" << a[i];
      }

      got = b;
      want = b;
      Axpy(0.37f, xa.data(), got.data(), n);
      reference::Axpy(0.37f, a.data(), want.data(), n);
      for (size_t i = 0; i < n; ++i) {
        ASSERT_NEAR(got[i], want[i], 1e-6 * (std::fabs(a[i]) + std::fabs(b[i])))
            << "axpy n=" << n;
      }

      F32Buffer scaled(a, offset);
      Scale(-1.5f, scaled.data(), n);
      std::vector<float> scaled_ref = a;
      reference::Scale(-1.5f, scaled_ref.data(), n);
      for (size_t i = 0; i < n; ++i) ASSERT_EQ(scaled.data()[i], scaled_ref[i]);

      double mag = 0;
      for (size_t i = 0; i < n; ++i) mag += std::fabs(a[i] * b[i]);
      ASSERT_NEAR(Dot(xa.data(), xb.data(), n), reference::Dot(a.data(), b.data(), n),
                  1e-6 * mag + 1e-7)
          << "dot n=" << n;
    }
  }
}

TEST_P(KernelsTest, SiluExtremes) {
  const std::vector<float> g = {-200.0f, -88.5f, -30.0f, 0.0f, 30.0f, 200.0f,
                                -1e30f, 1e30f, -0.5f, 0.5f, -100.0f, 100.0f,
                                -87.0f, 87.0f, -5.0f, 5.0f, -150.0f, 150.0f};
  const std::vector<float> up(g.size(), 1.0f);
  std::vector<float> got(g.size()), want(g.size());
  SiluMul(g.data(), up.data(), g.size(), got.data());
  reference::SiluMul(g.data(), up.data(), g.size(), want.data());
  for (size_t i = 0; i < g.size(); ++i) {
    ASSERT_TRUE(std::isfinite(got[i])) << g[i];
    ASSERT_NEAR(got[i], want[i], 2e-6 * std::fabs(want[i]) + 1e-30) << g[i];
  }
}

TEST_P(KernelsTest, SoftmaxStableForLargeLogits) {
  for (size_t n : SweepSizes()) {
    for (size_t offset = 0; offset < 4; ++offset) {
      // A shift of 1000 overflows a naive exp.
      const float shift = offset % 2 ? 1000.0f : -50.0f;
      std::vector<float> v = RandomF32(rng_, n, shift - 20.0f, shift + 20.0f);
      F32Buffer got(v, offset);
      Softmax(got.data(), n);
      reference::Softmax(v.data(), n);
      double sum = 0;
      for (size_t i = 0; i < n; ++i) {
        ASSERT_NEAR(got.data()[i], v[i], 1e-5 * v[i] + 1e-9) << "n=" << n;
        sum += got.data()[i];
      }
      if (n > 0) {
        ASSERT_NEAR(sum, 1.0, 1e-5);
      }
    }
  }
}

TEST_P(KernelsTest, TopKMatchesStableSort) {
  for (size_t n : SweepSizes()) {
    // Few distinct values so ties are common.
    std::vector<float> x(n);
    std::uniform_int_distribution<int> d(0, 5);
    for (float& f : x) f = static_cast<float>(d(rng_));
    for (size_t k : {size_t{0}, std::min<size_t>(n, 1), std::min<size_t>(n, 2),
                     std::min<size_t>(n, 8), n}) {
      std::vector<int32_t> got(k), want(k);
      std::vector<float> got_v(k), want_v(k);
      TopK(x.data(), n, k, got.data(), got_v.data());
      reference::TopK(x.data(), n, k, want.data(), want_v.data());
      ASSERT_EQ(got, want) << "n=" << n << " k=" << k;
      ASSERT_EQ(got_v, want_v);
    }
  }
}

TEST_P(KernelsTest, RopeBothLayoutsWithPartialRotation) {
  for (RopeLayout layout : {RopeLayout::kNeox, RopeLayout::kInterleaved}) {
    for (size_t rot_dim = 0; rot_dim <= 2 * MaxF32Lanes() + 2; rot_dim += 2) {
      for (size_t extra : {0, 3}) {  // head_dim > rot_dim: partial rotary
        const size_t head_stride = rot_dim + extra, heads = 3;
        const std::vector<float> x = RandomF32(rng_, heads * head_stride);
        std::vector<float> cos(rot_dim / 2), sin(rot_dim / 2);
        for (size_t i = 0; i < rot_dim / 2; ++i) {
          const float angle = 7.0f * std::pow(10000.0f, -2.0f * i / std::max<size_t>(rot_dim, 1));
          cos[i] = std::cos(angle);
          sin[i] = std::sin(angle);
        }
        F32Buffer got(x, extra);
        std::vector<float> want = x;
        ApplyRope(got.data(), heads, head_stride, rot_dim, cos.data(), sin.data(), layout);
        reference::ApplyRope(want.data(), heads, head_stride, rot_dim, cos.data(),
                             sin.data(), layout);
        for (size_t i = 0; i < x.size(); ++i) {
          ASSERT_NEAR(got.data()[i], want[i], 1e-6) << "rot=" << rot_dim << " i=" << i;
        }
      }
    }
  }
}

// The reference itself, against hand-computed values (so a shared mistake in
// reference and SIMD code cannot pass unnoticed).
TEST(ReferenceTest, KnownValues) {
  const float x[] = {1, 2, 3, 4, 5, 6};           // [2, 3]
  const float w[] = {1, 0, -1, 0.5f, 0.5f, 0.5f};  // [2, 3]
  const float bias[] = {10, 20};
  float y[4];
  reference::MatMul(MatMulArgs{x, 3, 2, 3, WeightRef{w, DType::kF32}, 2, bias, y, 2});
  EXPECT_FLOAT_EQ(y[0], 1 - 3 + 10);
  EXPECT_FLOAT_EQ(y[1], 3 + 20);
  EXPECT_FLOAT_EQ(y[2], 4 - 6 + 10);
  EXPECT_FLOAT_EQ(y[3], 7.5f + 20);

  float r[] = {3, 4};
  const float one[] = {1, 2};
  reference::RMSNorm(r, 1, 2, WeightRef{one, DType::kF32}, 0.0f, r);
  EXPECT_NEAR(r[0], 3 / std::sqrt(12.5f), 1e-6);
  EXPECT_NEAR(r[1], 2 * 4 / std::sqrt(12.5f), 1e-6);

  float rope[] = {1, 0, 0, 1};  // neox: pairs (0,2), (1,3); 90° rotation
  const float c[] = {0, 0}, s[] = {1, 1};
  reference::ApplyRope(rope, 1, 4, 4, c, s, RopeLayout::kNeox);
  EXPECT_FLOAT_EQ(rope[0], 0);
  EXPECT_FLOAT_EQ(rope[2], 1);
  EXPECT_FLOAT_EQ(rope[1], -1);
  EXPECT_FLOAT_EQ(rope[3], 0);

  EXPECT_EQ(BF16BitsToF32(F32ToBF16Bits(1.00390625f)), 1.0f);  // ties to even
  EXPECT_EQ(F16BitsToF32(F32ToF16Bits(65504.0f)), 65504.0f);
  EXPECT_EQ(F16BitsToF32(0x0001), std::ldexp(1.0f, -24));
}

}  // namespace
}  // namespace expertserve::kernels
