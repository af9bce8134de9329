// Validation of SamplingParams, naming the offending parameter.
#ifndef EXPERTSERVE_ENGINE_SAMPLER_VALIDATE_H_
#define EXPERTSERVE_ENGINE_SAMPLER_VALIDATE_H_

#include <cstdint>

#include "absl/status/status.h"
#include "engine/sampling_params.h"

namespace expertserve::engine {

// kInvalidArgument with "sampling.<name>: ..." for the first bad parameter.
// `vocab_size` bounds token ids; stop strings need a tokenizer.
absl::Status ValidateSamplingParams(const SamplingParams& params,
                                    int32_t vocab_size, bool has_tokenizer);

}  // namespace expertserve::engine

#endif  // EXPERTSERVE_ENGINE_SAMPLER_VALIDATE_H_
