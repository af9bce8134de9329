// The one fixture every memory backend test runs under: parameterised over
// {host, cuda}; the cuda instance skips when this build or machine has no
// CUDA device.
#ifndef EXPERTSERVE_TESTS_MEMORY_BACKEND_FIXTURE_H_
#define EXPERTSERVE_TESTS_MEMORY_BACKEND_FIXTURE_H_

#include <cstddef>
#include <cstdint>
#include <fstream>
#include <memory>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "memory/address_space.h"

namespace expertserve::memory {
// So failing parameterised tests print "host" / "cuda".
inline void PrintTo(BackendKind kind, std::ostream* os) {
  *os << BackendName(kind);
}
}  // namespace expertserve::memory

namespace expertserve::memory::testing {

class BackendTest : public ::testing::TestWithParam<BackendKind> {
 protected:
  void SetUp() override {
    auto backend = CreateAddressSpace(GetParam(), Options());
    if (!backend.ok() && GetParam() == BackendKind::kCuda &&
        (backend.status().code() == absl::StatusCode::kUnavailable ||
         backend.status().code() == absl::StatusCode::kFailedPrecondition)) {
      GTEST_SKIP() << "no usable CUDA device: " << backend.status();
    }
    ASSERT_TRUE(backend.ok()) << backend.status();
    backend_ = *std::move(backend);
    granularity_ = backend_->granularity_bytes();
  }

  virtual AddressSpaceOptions Options() const { return {}; }
  bool IsHost() const { return GetParam() == BackendKind::kHost; }

  std::shared_ptr<AddressSpaceInterface> backend_;
  size_t granularity_ = 0;
};

inline std::string BackendParamName(
    const ::testing::TestParamInfo<BackendKind>& info) {
  return std::string(BackendName(info.param));
}

#define ES_INSTANTIATE_BACKEND_SUITE(suite)                                 \
  INSTANTIATE_TEST_SUITE_P(                                                 \
      Backends, suite,                                                      \
      ::testing::Values(::expertserve::memory::BackendKind::kHost,          \
                        ::expertserve::memory::BackendKind::kCuda),         \
      ::expertserve::memory::testing::BackendParamName)

inline std::vector<std::byte> RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<std::byte> out(n);
  for (auto& b : out) b = static_cast<std::byte>(rng() & 0xff);
  return out;
}

// A field of /proc/self/status in kB ("RssShmem", "RssFile"); -1 if absent.
inline int64_t ProcStatusKb(const std::string& field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) == 0) {
      return std::stoll(line.substr(field.size() + 1));
    }
  }
  return -1;
}

// The permission string ("rw-s", "---p", ...) of the /proc/self/maps entry
// containing `address`, or "" when none does.
inline std::string ProtectionAt(uintptr_t address) {
  std::ifstream in("/proc/self/maps");
  std::string line;
  while (std::getline(in, line)) {
    const size_t dash = line.find('-');
    const size_t space = line.find(' ');
    const uintptr_t lo = std::stoull(line.substr(0, dash), nullptr, 16);
    const uintptr_t hi =
        std::stoull(line.substr(dash + 1, space - dash - 1), nullptr, 16);
    if (address >= lo && address < hi) return line.substr(space + 1, 4);
  }
  return "";
}

}  // namespace expertserve::memory::testing

#endif  // EXPERTSERVE_TESTS_MEMORY_BACKEND_FIXTURE_H_
