#include "engine/forward/rope.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace expertserve::engine {
namespace {

bool IsDeepseek(const ModelConfig& c) {
  return c.arch == Architecture::kDeepseekV2 ||
         c.arch == Architecture::kDeepseekV3;
}

// yarn_find_correction_dim (DeepSeek modeling code; transformers' is equal).
double CorrectionDim(double num_rotations, double dim, double base,
                     double max_pos) {
  return (dim * std::log(max_pos / (num_rotations * 2.0 * std::numbers::pi))) /
         (2.0 * std::log(base));
}

}  // namespace

double YarnGetMscale(double scale, double mscale) {
  if (scale <= 1.0) return 1.0;
  return 0.1 * mscale * std::log(scale) + 1.0;
}

Rope::Rope(const ModelConfig& config) {
  rot_dim_ = config.RotaryDim();
  const int64_t half = rot_dim_ / 2;
  const double base = config.rope_theta;
  const RopeScaling& rs = config.rope_scaling;
  inv_freq_.resize(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i) {
    inv_freq_[i] = 1.0 / std::pow(base, static_cast<double>(2 * i) /
                                            static_cast<double>(rot_dim_));
  }
  switch (rs.type) {
    case RopeType::kDefault:
      break;
    case RopeType::kLinear:
      for (double& f : inv_freq_) f /= rs.factor;
      break;
    case RopeType::kLlama3: {
      // transformers _compute_llama3_parameters.
      const double old_ctx =
          static_cast<double>(rs.original_max_position_embeddings.value_or(
              config.max_position_embeddings));
      const double low_wavelen = old_ctx / rs.low_freq_factor;
      const double high_wavelen = old_ctx / rs.high_freq_factor;
      for (double& f : inv_freq_) {
        const double wavelen = 2.0 * std::numbers::pi / f;
        double scaled = wavelen > low_wavelen ? f / rs.factor : f;
        const bool medium = !(wavelen < high_wavelen) && !(wavelen > low_wavelen);
        if (medium) {
          const double smooth = (old_ctx / wavelen - rs.low_freq_factor) /
                                (rs.high_freq_factor - rs.low_freq_factor);
          scaled = (1.0 - smooth) * scaled / rs.factor + smooth * scaled;
        }
        f = scaled;
      }
      break;
    }
    case RopeType::kYarn: {
      // DeepseekV2YarnRotaryEmbedding / transformers _compute_yarn_parameters.
      const double max_pos =
          static_cast<double>(rs.original_max_position_embeddings.value_or(
              config.max_position_embeddings));
      const double dim = static_cast<double>(rot_dim_);
      double low = CorrectionDim(rs.beta_fast, dim, base, max_pos);
      double high = CorrectionDim(rs.beta_slow, dim, base, max_pos);
      if (rs.truncate) {
        low = std::floor(low);
        high = std::ceil(high);
      }
      low = std::max(low, 0.0);
      high = std::min(high, dim - 1.0);
      if (low == high) high += 0.001;
      for (int64_t i = 0; i < half; ++i) {
        const double extra = inv_freq_[i];
        const double inter = extra / rs.factor;
        const double ramp =
            std::clamp((static_cast<double>(i) - low) / (high - low), 0.0, 1.0);
        const double extrapolation_weight = 1.0 - ramp;
        inv_freq_[i] = inter * (1.0 - extrapolation_weight) +
                       extra * extrapolation_weight;
      }
      if (rs.attention_factor) {
        cos_sin_scale_ = *rs.attention_factor;
      } else if (IsDeepseek(config)) {
        // DeepSeek's own defaults: mscale 1, mscale_all_dim 0.
        cos_sin_scale_ = YarnGetMscale(rs.factor, rs.mscale.value_or(1.0)) /
                         YarnGetMscale(rs.factor, rs.mscale_all_dim.value_or(0.0));
      } else if (rs.mscale && rs.mscale_all_dim) {
        cos_sin_scale_ = YarnGetMscale(rs.factor, *rs.mscale) /
                         YarnGetMscale(rs.factor, *rs.mscale_all_dim);
      } else {
        cos_sin_scale_ = YarnGetMscale(rs.factor, 1.0);
      }
      break;
    }
  }
}

void Rope::Compute(std::span<const int32_t> positions, float* cos,
                   float* sin) const {
  const size_t half = inv_freq_.size();
  for (size_t t = 0; t < positions.size(); ++t) {
    const double p = positions[t];
    for (size_t i = 0; i < half; ++i) {
      // HF computes the angle in f32 (inv_freq f32 times position f32);
      // the reference does likewise, so the angle is rounded to f32 first.
      const float angle = static_cast<float>(inv_freq_[i]) * static_cast<float>(p);
      cos[t * half + i] = static_cast<float>(std::cos(angle) * cos_sin_scale_);
      sin[t * half + i] = static_cast<float>(std::sin(angle) * cos_sin_scale_);
    }
  }
}

float AttentionSoftmaxScale(const ModelConfig& config) {
  double scale = 1.0 / std::sqrt(static_cast<double>(config.QkHeadDim()));
  const RopeScaling& rs = config.rope_scaling;
  if ((config.arch == Architecture::kDeepseekV2 ||
       config.arch == Architecture::kDeepseekV3) &&
      rs.type == RopeType::kYarn && rs.mscale_all_dim && *rs.mscale_all_dim != 0) {
    const double m = YarnGetMscale(rs.factor, *rs.mscale_all_dim);
    scale *= m * m;
  }
  return static_cast<float>(scale);
}

}  // namespace expertserve::engine
