// CUDA address space over the driver's virtual memory management API:
// cuMemAddressReserve / cuMemCreate / cuMemMap / cuMemSetAccess / cuMemUnmap
// / cuMemRelease / cuMemAddressFree.
//
// The driver (libcuda.so.1) is opened with dlopen at Create rather than linked:
// the toolkit ships only a link stub, and a binary linked against it would not
// even start on a machine without an NVIDIA driver (every CI machine here).
// Opening it at run time turns "no driver" and "no device" into a clean
// kUnavailable that callers and tests can act on.
#ifndef EXPERTSERVE_MEMORY_CUDA_BACKEND_H_
#define EXPERTSERVE_MEMORY_CUDA_BACKEND_H_

#include <memory>

#include "absl/status/statusor.h"
#include "memory/address_space.h"

namespace expertserve::memory {

// Creates a CUDA address space on `options.cuda_device` (thread-safe).
// kUnavailable when the driver cannot be loaded, cuInit fails or there is no
// such device; kFailedPrecondition when the device lacks virtual memory
// management.
absl::StatusOr<std::unique_ptr<AddressSpaceInterface>> CreateCudaAddressSpace(
    const AddressSpaceOptions& options);

}  // namespace expertserve::memory

#endif  // EXPERTSERVE_MEMORY_CUDA_BACKEND_H_
