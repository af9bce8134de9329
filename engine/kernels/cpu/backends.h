// Internal: the GEMM backends behind MatMul and the rule choosing between
// them. Not part of the public API (kernels.h).
#ifndef EXPERTSERVE_ENGINE_KERNELS_CPU_BACKENDS_H_
#define EXPERTSERVE_ENGINE_KERNELS_CPU_BACKENDS_H_

#include "common/thread_pool.h"
#include "engine/kernels/kernels.h"

namespace expertserve::kernels {

// The backend kAuto resolves to for this shape (see README.md for the
// measurements behind it).
MatMulBackend ChooseMatMulBackend(const MatMulArgs& args);

namespace internal {
// OpenBLAS sgemm, single-threaded per task on `pool` (N panels); 16-bit
// weights are widened panel by panel into per-thread scratch first.
void MatMulOpenBlas(const MatMulArgs& args, ThreadPool& pool);
}  // namespace internal

}  // namespace expertserve::kernels

#endif  // EXPERTSERVE_ENGINE_KERNELS_CPU_BACKENDS_H_
