// The per-sequence random stream of the sampler.
#ifndef EXPERTSERVE_ENGINE_SAMPLER_PRNG_H_
#define EXPERTSERVE_ENGINE_SAMPLER_PRNG_H_

#include <cstdint>

namespace expertserve::engine {

// SplitMix64 stream seeded from (request seed, sample index). Each generated
// token draws exactly one number, so a sequence's output depends only on its
// seed, its index and its own logits, never on the rest of the batch.
// Thread-compatible value type.
class SamplePrng {
 public:
  SamplePrng(uint64_t seed, uint64_t sample_index)
      : state_(Mix(seed ^ Mix(sample_index + 0x632be59bd9b4e019ULL))) {}

  uint64_t Next() { return Mix(state_ += 0x9e3779b97f4a7c15ULL); }
  // Uniform in [0, 1) with 53 random bits.
  double NextUniform() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }

 private:
  static uint64_t Mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  uint64_t state_;
};

}  // namespace expertserve::engine

#endif  // EXPERTSERVE_ENGINE_SAMPLER_PRNG_H_
