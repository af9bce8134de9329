// A fixed pseudo-random generator for test checkpoints. std:: distributions
// differ between standard libraries, so the generator and the normal
// transform are spelled out here: the same seed gives the same bytes
// everywhere.
#ifndef EXPERTSERVE_TOOLS_MKMODEL_PRNG_H_
#define EXPERTSERVE_TOOLS_MKMODEL_PRNG_H_

#include <cmath>
#include <cstdint>
#include <string_view>

namespace expertserve::mkmodel {

// splitmix64 (Steele, Lea, Flood 2014). Not thread-safe; cheap to copy.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}

  uint64_t Next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  // Uniform in (0, 1): never 0, so log() in Box-Muller is finite.
  double Uniform() {
    return (static_cast<double>(Next() >> 11) + 0.5) * (1.0 / 9007199254740992.0);
  }
  // Uniform integer in [0, n).
  uint64_t Below(uint64_t n) { return n == 0 ? 0 : Next() % n; }

  // Standard normal by Box-Muller; both values of each pair are used.
  double Normal() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    const double r = std::sqrt(-2.0 * std::log(Uniform()));
    const double theta = 6.283185307179586 * Uniform();
    spare_ = r * std::sin(theta);
    has_spare_ = true;
    return r * std::cos(theta);
  }

 private:
  uint64_t state_;
  double spare_ = 0;
  bool has_spare_ = false;
};

// FNV-1a, to derive one independent stream per tensor name.
inline uint64_t HashName(std::string_view s) {
  uint64_t h = 0xCBF29CE484222325ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001B3ull;
  }
  return h;
}

// The stream for tensor `name` of a checkpoint generated with `seed`.
inline SplitMix64 StreamFor(uint64_t seed, std::string_view name) {
  SplitMix64 mix(seed ^ HashName(name));
  return SplitMix64(mix.Next());
}

}  // namespace expertserve::mkmodel

#endif  // EXPERTSERVE_TOOLS_MKMODEL_PRNG_H_
