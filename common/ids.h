// Strongly named integer ids shared by every layer.
#ifndef EXPERTSERVE_COMMON_IDS_H_
#define EXPERTSERVE_COMMON_IDS_H_

#include <cstdint>

namespace expertserve {

using TokenId = int32_t;    // index into a model's vocabulary
using SeqId = int64_t;      // one sequence (a request may fork n of them)
using AdapterId = int32_t;  // ESFT adapter of a base model; kNoAdapter = base
using ExpertId = int32_t;   // routed expert index as the gate numbers it
using SlotId = int32_t;     // row of a layer's expert table (base or adapter)

inline constexpr AdapterId kNoAdapter = -1;

}  // namespace expertserve

#endif  // EXPERTSERVE_COMMON_IDS_H_
