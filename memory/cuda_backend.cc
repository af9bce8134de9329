#include "memory/cuda_backend.h"

#include <cuda.h>
#include <dlfcn.h>

#include <cstdint>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "common/status_macros.h"
#include "memory/mapping_book.h"

namespace expertserve::memory {
namespace {

// cuda.h maps some names to versioned symbols (cuMemcpyHtoD ->
// cuMemcpyHtoD_v2); stringizing after expansion gives the symbol to dlsym.
#define ES_CU_STR_(x) #x
#define ES_CU_XSTR_(x) ES_CU_STR_(x)

// The driver entry points this backend uses, resolved once per process.
struct DriverApi {
#define ES_CU_FN_(name) decltype(&::name) name = nullptr
  ES_CU_FN_(cuGetErrorName);
  ES_CU_FN_(cuInit);
  ES_CU_FN_(cuDeviceGetCount);
  ES_CU_FN_(cuDeviceGet);
  ES_CU_FN_(cuDeviceGetAttribute);
  ES_CU_FN_(cuDevicePrimaryCtxRetain);
  ES_CU_FN_(cuDevicePrimaryCtxRelease);
  ES_CU_FN_(cuCtxSetCurrent);
  ES_CU_FN_(cuMemGetAllocationGranularity);
  ES_CU_FN_(cuMemAddressReserve);
  ES_CU_FN_(cuMemAddressFree);
  ES_CU_FN_(cuMemCreate);
  ES_CU_FN_(cuMemRelease);
  ES_CU_FN_(cuMemMap);
  ES_CU_FN_(cuMemUnmap);
  ES_CU_FN_(cuMemSetAccess);
  ES_CU_FN_(cuMemcpyHtoD);
  ES_CU_FN_(cuMemcpyDtoH);
#undef ES_CU_FN_
};

absl::StatusOr<const DriverApi*> LoadDriver() {
  static const absl::StatusOr<DriverApi>* const api =
      new absl::StatusOr<DriverApi>([]() -> absl::StatusOr<DriverApi> {
        void* lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
        if (lib == nullptr) {
          return absl::UnavailableError(absl::StrCat(
              "no CUDA driver: cannot load libcuda.so.1 (", dlerror(),
              "); install the NVIDIA driver or use the host backend"));
        }
        DriverApi d;
        std::string missing;
#define ES_CU_LOAD_(name)                                               \
  d.name = reinterpret_cast<decltype(d.name)>(                          \
      dlsym(lib, ES_CU_XSTR_(name)));                                   \
  if (d.name == nullptr) absl::StrAppend(&missing, " ", ES_CU_XSTR_(name))
        ES_CU_LOAD_(cuGetErrorName);
        ES_CU_LOAD_(cuInit);
        ES_CU_LOAD_(cuDeviceGetCount);
        ES_CU_LOAD_(cuDeviceGet);
        ES_CU_LOAD_(cuDeviceGetAttribute);
        ES_CU_LOAD_(cuDevicePrimaryCtxRetain);
        ES_CU_LOAD_(cuDevicePrimaryCtxRelease);
        ES_CU_LOAD_(cuCtxSetCurrent);
        ES_CU_LOAD_(cuMemGetAllocationGranularity);
        ES_CU_LOAD_(cuMemAddressReserve);
        ES_CU_LOAD_(cuMemAddressFree);
        ES_CU_LOAD_(cuMemCreate);
        ES_CU_LOAD_(cuMemRelease);
        ES_CU_LOAD_(cuMemMap);
        ES_CU_LOAD_(cuMemUnmap);
        ES_CU_LOAD_(cuMemSetAccess);
        ES_CU_LOAD_(cuMemcpyHtoD);
        ES_CU_LOAD_(cuMemcpyDtoH);
#undef ES_CU_LOAD_
        if (!missing.empty()) {
          return absl::UnavailableError(absl::StrCat(
              "CUDA driver too old: libcuda.so.1 lacks", missing));
        }
        return d;
      }());
  if (!api->ok()) return api->status();
  return &api->value();
}

absl::Status CuError(const DriverApi& api, CUresult r, absl::string_view what) {
  const char* name = nullptr;
  if (api.cuGetErrorName(r, &name) != CUDA_SUCCESS || name == nullptr) {
    name = "unknown CUDA error";
  }
  const std::string msg = absl::StrCat(what, ": ", name, " (", r, ")");
  switch (r) {
    case CUDA_ERROR_OUT_OF_MEMORY:
      return absl::ResourceExhaustedError(msg);
    case CUDA_ERROR_NO_DEVICE:
    case CUDA_ERROR_INVALID_DEVICE:
    case CUDA_ERROR_NOT_INITIALIZED:
    case CUDA_ERROR_DEINITIALIZED:
    case CUDA_ERROR_STUB_LIBRARY:
    case CUDA_ERROR_SYSTEM_DRIVER_MISMATCH:
      return absl::UnavailableError(msg);
    case CUDA_ERROR_NOT_SUPPORTED:
      return absl::FailedPreconditionError(msg);
    default:
      return absl::InternalError(msg);
  }
}

#define ES_CU_RETURN_IF_ERROR_(api, call, what)         \
  do {                                                  \
    const CUresult es_cu_r_ = (call);                   \
    if (es_cu_r_ != CUDA_SUCCESS) {                     \
      return CuError((api), es_cu_r_, (what));          \
    }                                                   \
  } while (false)

// Thread-safe (one mutex). Sets the device's primary context current on the
// calling thread before each driver call, so any thread may call.
class CudaAddressSpace final : public AddressSpaceInterface {
 public:
  CudaAddressSpace(const DriverApi* api, CUdevice device, CUcontext ctx,
                   size_t granularity, size_t budget_bytes)
      : api_(*api),
        device_(device),
        ctx_(ctx),
        granularity_(granularity),
        book_(granularity, budget_bytes) {}

  ~CudaAddressSpace() override { api_.cuDevicePrimaryCtxRelease(device_); }

  BackendKind kind() const override { return BackendKind::kCuda; }
  size_t granularity_bytes() const override { return granularity_; }
  bool host_accessible() const override { return false; }

  absl::StatusOr<VirtualRange> Reserve(size_t size_bytes) override {
    absl::MutexLock lock(&mu_);
    ES_RETURN_IF_ERROR(book_.CheckReserve(size_bytes));
    ES_RETURN_IF_ERROR(MakeCurrent());
    CUdeviceptr ptr = 0;
    ES_CU_RETURN_IF_ERROR_(
        api_, api_.cuMemAddressReserve(&ptr, size_bytes, granularity_, 0, 0),
        absl::StrCat("cuMemAddressReserve(", size_bytes, " bytes)"));
    VirtualRange range{static_cast<uintptr_t>(ptr), size_bytes};
    book_.AddReservation(range);
    return range;
  }

  absl::Status Free(VirtualRange range) override {
    absl::MutexLock lock(&mu_);
    ES_RETURN_IF_ERROR(book_.CheckFree(range));
    ES_RETURN_IF_ERROR(MakeCurrent());
    ES_CU_RETURN_IF_ERROR_(
        api_, api_.cuMemAddressFree(range.base, range.size_bytes),
        "cuMemAddressFree");
    book_.RemoveReservation(range);
    return absl::OkStatus();
  }

  absl::StatusOr<PhysicalChunk> Allocate(size_t size_bytes) override {
    absl::MutexLock lock(&mu_);
    ES_RETURN_IF_ERROR(book_.CheckAllocate(size_bytes));
    ES_RETURN_IF_ERROR(MakeCurrent());
    CUmemAllocationProp prop = Prop();
    CUmemGenericAllocationHandle handle = 0;
    ES_CU_RETURN_IF_ERROR_(api_, api_.cuMemCreate(&handle, size_bytes, &prop, 0),
                           absl::StrCat("cuMemCreate(", size_bytes, " bytes)"));
    book_.AddChunk(handle, size_bytes);
    return PhysicalChunk{handle, size_bytes};
  }

  absl::Status Release(PhysicalChunk chunk) override {
    absl::MutexLock lock(&mu_);
    ES_RETURN_IF_ERROR(book_.CheckRelease(chunk));
    ES_RETURN_IF_ERROR(MakeCurrent());
    ES_CU_RETURN_IF_ERROR_(api_, api_.cuMemRelease(chunk.id), "cuMemRelease");
    book_.RemoveChunk(chunk.id);
    return absl::OkStatus();
  }

  absl::Status Map(const PhysicalChunk& chunk, uintptr_t address) override {
    absl::MutexLock lock(&mu_);
    ES_RETURN_IF_ERROR(book_.CheckMap(chunk, address));
    ES_RETURN_IF_ERROR(MakeCurrent());
    ES_CU_RETURN_IF_ERROR_(
        api_, api_.cuMemMap(address, chunk.size_bytes, 0, chunk.id, 0),
        "cuMemMap");
    const CUmemAccessDesc desc = Desc(Access::kReadWrite);
    const CUresult r = api_.cuMemSetAccess(address, chunk.size_bytes, &desc, 1);
    if (r != CUDA_SUCCESS) {
      api_.cuMemUnmap(address, chunk.size_bytes);
      return CuError(api_, r, "cuMemSetAccess");
    }
    book_.AddMapping(chunk, address);
    return absl::OkStatus();
  }

  absl::Status Unmap(uintptr_t address) override {
    absl::MutexLock lock(&mu_);
    ES_ASSIGN_OR_RETURN(internal::MappingBook::Mapping m,
                        book_.FindMapping(address));
    ES_RETURN_IF_ERROR(MakeCurrent());
    ES_CU_RETURN_IF_ERROR_(api_, api_.cuMemUnmap(address, m.size_bytes),
                           "cuMemUnmap");
    book_.RemoveMapping(address);
    return absl::OkStatus();
  }

  absl::Status SetAccess(uintptr_t address, Access access) override {
    absl::MutexLock lock(&mu_);
    ES_ASSIGN_OR_RETURN(internal::MappingBook::Mapping m,
                        book_.FindMapping(address));
    ES_RETURN_IF_ERROR(MakeCurrent());
    const CUmemAccessDesc desc = Desc(access);
    ES_CU_RETURN_IF_ERROR_(
        api_, api_.cuMemSetAccess(address, m.size_bytes, &desc, 1),
        "cuMemSetAccess");
    book_.SetMappingAccess(address, access);
    return absl::OkStatus();
  }

  absl::Status Write(uintptr_t dst, const void* src,
                     size_t size_bytes) override {
    absl::MutexLock lock(&mu_);
    ES_RETURN_IF_ERROR(book_.CheckSpan(dst, size_bytes, Access::kReadWrite));
    if (size_bytes == 0) return absl::OkStatus();
    ES_RETURN_IF_ERROR(MakeCurrent());
    ES_CU_RETURN_IF_ERROR_(api_, api_.cuMemcpyHtoD(dst, src, size_bytes),
                           "cuMemcpyHtoD");
    return absl::OkStatus();
  }

  absl::Status Read(void* dst, uintptr_t src, size_t size_bytes) override {
    absl::MutexLock lock(&mu_);
    ES_RETURN_IF_ERROR(book_.CheckSpan(src, size_bytes, Access::kRead));
    if (size_bytes == 0) return absl::OkStatus();
    ES_RETURN_IF_ERROR(MakeCurrent());
    ES_CU_RETURN_IF_ERROR_(api_, api_.cuMemcpyDtoH(dst, src, size_bytes),
                           "cuMemcpyDtoH");
    return absl::OkStatus();
  }

  AddressSpaceCounters counters() const override {
    absl::MutexLock lock(&mu_);
    return book_.counters();
  }

  void set_budget_bytes(size_t budget_bytes) override {
    absl::MutexLock lock(&mu_);
    book_.set_budget_bytes(budget_bytes);
  }

  CUmemAllocationProp Prop() const {
    CUmemAllocationProp prop = {};
    prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
    prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
    prop.location.id = device_;
    return prop;
  }

 private:
  absl::Status MakeCurrent() const {
    ES_CU_RETURN_IF_ERROR_(api_, api_.cuCtxSetCurrent(ctx_), "cuCtxSetCurrent");
    return absl::OkStatus();
  }

  CUmemAccessDesc Desc(Access access) const {
    CUmemAccessDesc desc = {};
    desc.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
    desc.location.id = device_;
    switch (access) {
      case Access::kNone:
        desc.flags = CU_MEM_ACCESS_FLAGS_PROT_NONE;
        break;
      case Access::kRead:
        desc.flags = CU_MEM_ACCESS_FLAGS_PROT_READ;
        break;
      case Access::kReadWrite:
        desc.flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
        break;
    }
    return desc;
  }

  const DriverApi& api_;
  const CUdevice device_;
  const CUcontext ctx_;
  const size_t granularity_;
  mutable absl::Mutex mu_;
  internal::MappingBook book_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

absl::StatusOr<std::unique_ptr<AddressSpaceInterface>> CreateCudaAddressSpace(
    const AddressSpaceOptions& options) {
  ES_ASSIGN_OR_RETURN(const DriverApi* api, LoadDriver());
  ES_CU_RETURN_IF_ERROR_(*api, api->cuInit(0), "cuInit");
  int count = 0;
  ES_CU_RETURN_IF_ERROR_(*api, api->cuDeviceGetCount(&count),
                         "cuDeviceGetCount");
  if (options.cuda_device < 0 || options.cuda_device >= count) {
    return absl::UnavailableError(
        absl::StrCat("no CUDA device ", options.cuda_device, " (", count,
                     " present)"));
  }
  CUdevice device = 0;
  ES_CU_RETURN_IF_ERROR_(*api, api->cuDeviceGet(&device, options.cuda_device),
                         "cuDeviceGet");
  int vmm = 0;
  ES_CU_RETURN_IF_ERROR_(
      *api,
      api->cuDeviceGetAttribute(
          &vmm, CU_DEVICE_ATTRIBUTE_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED,
          device),
      "cuDeviceGetAttribute");
  if (vmm == 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "CUDA device ", options.cuda_device,
        " does not support virtual memory management (cuMemMap)"));
  }
  CUcontext ctx = nullptr;
  ES_CU_RETURN_IF_ERROR_(*api, api->cuDevicePrimaryCtxRetain(&ctx, device),
                         "cuDevicePrimaryCtxRetain");
  CUmemAllocationProp prop = {};
  prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
  prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
  prop.location.id = device;
  size_t granularity = 0;
  const CUresult r = api->cuMemGetAllocationGranularity(
      &granularity, &prop, CU_MEM_ALLOC_GRANULARITY_MINIMUM);
  if (r != CUDA_SUCCESS || granularity == 0) {
    api->cuDevicePrimaryCtxRelease(device);
    if (r == CUDA_SUCCESS) {
      return absl::InternalError("cuMemGetAllocationGranularity returned 0");
    }
    return CuError(*api, r, "cuMemGetAllocationGranularity");
  }
  return std::unique_ptr<AddressSpaceInterface>(new CudaAddressSpace(
      api, device, ctx, granularity, options.budget_bytes));
}

}  // namespace expertserve::memory
