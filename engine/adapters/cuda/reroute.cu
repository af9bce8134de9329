#include "engine/adapters/cuda/reroute.cuh"

#include <cuda_runtime.h>

namespace expertserve::engine::adapters::cuda {
namespace {

__global__ void RerouteKernel(const int32_t* __restrict__ topk,
                              const int32_t* __restrict__ adapter,
                              const int32_t* __restrict__ table,
                              int64_t total, int k, int num_adapters,
                              int num_experts, int32_t* __restrict__ out) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= total) return;
  const int32_t a = adapter[i / k];
  const int32_t e = topk[i];
  int32_t slot = -1;
  if (e >= 0 && e < num_experts) {
    if (a == -1) {
      slot = e;
    } else if (a >= 0 && a < num_adapters) {
      slot = table[static_cast<int64_t>(a) * num_experts + e];
    }
  }
  out[i] = slot;
}

// Frees device buffers on every return path.
struct DeviceBuffers {
  int32_t* p[4] = {nullptr, nullptr, nullptr, nullptr};
  ~DeviceBuffers() {
    for (int32_t* q : p) {
      if (q != nullptr) cudaFree(q);
    }
  }
};

}  // namespace

int LaunchReroute(const int32_t* topk, const int32_t* adapter,
                  const int32_t* table, int64_t num_tokens, int k,
                  int num_adapters, int num_experts, int32_t* out,
                  void* stream) {
  const int64_t total = num_tokens * k;
  if (total <= 0) return cudaSuccess;
  constexpr int kThreads = 256;
  const int64_t blocks = (total + kThreads - 1) / kThreads;
  RerouteKernel<<<static_cast<unsigned>(blocks), kThreads, 0,
                  static_cast<cudaStream_t>(stream)>>>(
      topk, adapter, table, total, k, num_adapters, num_experts, out);
  return cudaGetLastError();
}

int RerouteOnDevice(const int32_t* topk, const int32_t* adapter,
                    const int32_t* table, int64_t num_tokens, int k,
                    int num_adapters, int num_experts, int32_t* out) {
  const size_t pairs = static_cast<size_t>(num_tokens) * static_cast<size_t>(k);
  const size_t sizes[4] = {
      pairs * sizeof(int32_t), static_cast<size_t>(num_tokens) * sizeof(int32_t),
      static_cast<size_t>(num_adapters) * static_cast<size_t>(num_experts) *
          sizeof(int32_t),
      pairs * sizeof(int32_t)};
  DeviceBuffers d;
  for (int i = 0; i < 4; ++i) {
    // cudaMalloc(0) is legal but keep a valid pointer for empty inputs.
    if (cudaError_t e = cudaMalloc(&d.p[i], sizes[i] > 0 ? sizes[i] : 4);
        e != cudaSuccess) {
      return e;
    }
  }
  const int32_t* host[3] = {topk, adapter, table};
  for (int i = 0; i < 3; ++i) {
    if (sizes[i] == 0) continue;
    if (cudaError_t e = cudaMemcpy(d.p[i], host[i], sizes[i], cudaMemcpyHostToDevice);
        e != cudaSuccess) {
      return e;
    }
  }
  if (int e = LaunchReroute(d.p[0], d.p[1], d.p[2], num_tokens, k, num_adapters,
                            num_experts, d.p[3], nullptr);
      e != cudaSuccess) {
    return e;
  }
  if (cudaError_t e = cudaDeviceSynchronize(); e != cudaSuccess) return e;
  if (sizes[3] == 0) return cudaSuccess;
  return cudaMemcpy(out, d.p[3], sizes[3], cudaMemcpyDeviceToHost);
}

int DeviceCount() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver" error
    return 0;
  }
  return n;
}

const char* ErrorString(int error) {
  return cudaGetErrorString(static_cast<cudaError_t>(error));
}

}  // namespace expertserve::engine::adapters::cuda
