#include "memory/address_space.h"

#include "common/status_macros.h"
#include "memory/host_backend.h"
#ifdef ES_MEMORY_HAVE_CUDA
#include "memory/cuda_backend.h"
#endif

namespace expertserve::memory {

std::string_view BackendName(BackendKind kind) {
  switch (kind) {
    case BackendKind::kHost:
      return "host";
    case BackendKind::kCuda:
      return "cuda";
  }
  return "unknown";
}

absl::StatusOr<std::shared_ptr<AddressSpaceInterface>> CreateAddressSpace(
    BackendKind kind, const AddressSpaceOptions& options) {
  switch (kind) {
    case BackendKind::kHost: {
      ES_ASSIGN_OR_RETURN(std::unique_ptr<HostAddressSpace> host,
                          HostAddressSpace::Create(options));
      return std::shared_ptr<AddressSpaceInterface>(std::move(host));
    }
    case BackendKind::kCuda: {
#ifdef ES_MEMORY_HAVE_CUDA
      ES_ASSIGN_OR_RETURN(std::unique_ptr<AddressSpaceInterface> cuda,
                          CreateCudaAddressSpace(options));
      return std::shared_ptr<AddressSpaceInterface>(std::move(cuda));
#else
      return absl::UnavailableError(
          "this build has no CUDA backend; reconfigure with "
          "-DEXPERTSERVE_CUDA=ON or use the host backend");
#endif
    }
  }
  return absl::InvalidArgumentError("unknown backend kind");
}

}  // namespace expertserve::memory
