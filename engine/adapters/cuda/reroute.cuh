// The fused batched reroute on a CUDA device: one thread per (token, k) pair
// gathers slot = table[adapter[t], topk[t, j]] (identity for adapter -1).
// Plain C++17 (nvcc) interface without absl; engine/adapters/reroute_cuda.h
// wraps it in absl::Status for the rest of the engine.
#ifndef EXPERTSERVE_ENGINE_ADAPTERS_CUDA_REROUTE_CUH_
#define EXPERTSERVE_ENGINE_ADAPTERS_CUDA_REROUTE_CUH_

#include <cstdint>

namespace expertserve::engine::adapters::cuda {

// Device pointers: topk [T, k], adapter [T], table [A, E], out [T, k].
// Entries with an adapter index outside [-1, A) or an expert id outside
// [0, E) get slot -1 (the host validated them already; this keeps a bad
// entry from reading out of bounds). `stream` is a cudaStream_t (0: default).
// Returns the cudaError_t of the launch (0 on success).
int LaunchReroute(const int32_t* topk, const int32_t* adapter,
                  const int32_t* table, int64_t num_tokens, int k,
                  int num_adapters, int num_experts, int32_t* out,
                  void* stream);

// Host arrays in and out: copies to the device, launches, copies back and
// synchronises. For tests and benchmarks. Returns a cudaError_t.
int RerouteOnDevice(const int32_t* topk, const int32_t* adapter,
                    const int32_t* table, int64_t num_tokens, int k,
                    int num_adapters, int num_experts, int32_t* out);

// Number of usable devices; 0 (not an error) when there is no driver.
int DeviceCount();

const char* ErrorString(int error);

}  // namespace expertserve::engine::adapters::cuda

#endif  // EXPERTSERVE_ENGINE_ADAPTERS_CUDA_REROUTE_CUH_
