// Rotary position embedding tables for the RoPE variants of the supported
// configs: default, linear, llama3 and yarn (with DeepSeek's mscale).
#ifndef EXPERTSERVE_ENGINE_FORWARD_ROPE_H_
#define EXPERTSERVE_ENGINE_FORWARD_ROPE_H_

#include <cstdint>
#include <span>
#include <vector>

#include "engine/model/model_config.h"

namespace expertserve::engine {

// Immutable after construction: thread-safe.
class Rope {
 public:
  explicit Rope(const ModelConfig& config);

  int64_t rot_dim() const { return rot_dim_; }
  // yarn's attention factor that scales cos/sin (1 for other types).
  double cos_sin_scale() const { return cos_sin_scale_; }

  // cos, sin: [positions.size(), rot_dim / 2], as f32 from f64 angles.
  void Compute(std::span<const int32_t> positions, float* cos,
               float* sin) const;

  // [rot_dim / 2] inverse frequencies after scaling.
  const std::vector<double>& inv_freq() const { return inv_freq_; }

 private:
  int64_t rot_dim_ = 0;
  double cos_sin_scale_ = 1.0;
  std::vector<double> inv_freq_;
};

// DeepSeek's yarn_get_mscale: 0.1 * mscale * ln(scale) + 1 for scale > 1.
double YarnGetMscale(double scale, double mscale);

// The softmax scale of attention: 1/sqrt(qk_head_dim), times mscale^2 for
// DeepSeek yarn with mscale_all_dim (DeepseekV2Attention.__init__).
float AttentionSoftmaxScale(const ModelConfig& config);

}  // namespace expertserve::engine

#endif  // EXPERTSERVE_ENGINE_FORWARD_ROPE_H_
