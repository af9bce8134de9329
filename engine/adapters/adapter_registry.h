// The ESFT adapters served over one shared MoE base model: loading (parse
// expert_cfg.json, validate every listed tensor against the base, copy the
// replacement experts into adapter slots of each MoE layer's expert table,
// build and validate the reroute tables), publication to the engine, and
// unloading once no running request uses an adapter.
//
// Publication protocol (memory/README.md): an adapter becomes visible to
// Resolve only after all of its slots are written and its reroute tables are
// validated, as one immutable shared_ptr<const AdapterRouting>. The engine
// holds that pointer for a request's whole lifetime (see
// engine/adapter_resolver.h), so a request never sees a half-loaded or freed
// adapter. Unload unpublishes the pointer and frees the slots only after the
// last holder has released it: requests drop their pointer on the engine
// thread between steps, so no step still reads the slots.
//
// non_expert_modules: true is rejected. Such an adapter also changes
// attention, norms or embeddings, so its tokens cannot run through the
// base's non-expert weights in a shared batch; it must be served as its own
// model (a merged checkpoint listed under `models:`).
#ifndef EXPERTSERVE_ENGINE_ADAPTERS_ADAPTER_REGISTRY_H_
#define EXPERTSERVE_ENGINE_ADAPTERS_ADAPTER_REGISTRY_H_

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "engine/adapter_resolver.h"
#include "engine/forward/adapter_routing.h"
#include "engine/forward/model_weights.h"
#include "engine/model/model_config.h"

namespace expertserve::engine::adapters {

// What a successful Load did.
struct AdapterLoadReport {
  std::string name;
  AdapterId id = kNoAdapter;
  uint64_t cache_key = 0;
  int routed_experts_replaced = 0;  // over all MoE layers
  int shared_experts_replaced = 0;  // MoE layers whose shared expert is replaced
  size_t bytes_copied = 0;          // expert weight bytes written into slots
  size_t mapped_bytes = 0;          // slot bytes mapped for this adapter
  // Not fatal but never silently ignored: tensors in the files that
  // expert_cfg.json does not list, unknown config keys, MoE layers without a
  // key.
  std::vector<std::string> warnings;
};

struct AdapterInfo {
  std::string name;
  AdapterId id = kNoAdapter;
  std::filesystem::path dir;
  int routed_experts_replaced = 0;
  int shared_experts_replaced = 0;
  size_t mapped_bytes = 0;
  bool draining = false;  // unloaded, waiting for running requests
};

// Thread-safe. Load and Unload serialise with each other (admin operations,
// typically one loader thread); Resolve and List may run concurrently with
// them from any thread and never wait for a load in progress.
class AdapterRegistry final : public AdapterResolverInterface {
 public:
  // `config` and `weights` are the base model's and must outlive the
  // registry. The expert tables need adapter slots
  // (WeightsOptions::adapter_slots_per_layer > 0) for any adapter to fit.
  AdapterRegistry(const ModelConfig& config, ModelWeights& weights);
  // Frees the slots of every adapter. No request may still hold a routing.
  ~AdapterRegistry() override;

  AdapterRegistry(const AdapterRegistry&) = delete;
  AdapterRegistry& operator=(const AdapterRegistry&) = delete;

  // Loads the adapter in `dir` under `name` and publishes it. `dir` must
  // already be vetted (ResolveAdapterDir). On any error nothing changes:
  //   kAlreadyExists       `name` is loaded (or still draining)
  //   kInvalidArgument     bad expert_cfg.json, layer not MoE, expert id >= E,
  //                        non_expert_modules: true, shared_experts: true on a
  //                        base without shared experts, a tensor whose shape
  //                        or dtype differs from the base's (another base)
  //   kNotFound            no expert_cfg.json in `dir`
  //   kDataLoss            corrupt safetensors, a listed tensor missing
  //   kResourceExhausted   not enough free adapter slots in some layer (with
  //                        the numbers) or the backend's memory budget
  absl::StatusOr<AdapterLoadReport> Load(std::string_view name,
                                         const std::filesystem::path& dir);

  // Unpublishes `name` (new requests get kNotFound at once), waits up to
  // `timeout` for running requests to release it, then frees its slots.
  // kNotFound if not loaded; kDeadlineExceeded if requests still hold it
  // after `timeout`: the adapter stays unpublished and its slots are freed by
  // a later Load, Unload or CollectReleased once they finish.
  absl::Status Unload(std::string_view name,
                      absl::Duration timeout = absl::Seconds(30));

  // Frees the slots of unloaded adapters that no request holds any more.
  // Returns how many adapters were freed.
  int CollectReleased();

  // AdapterResolverInterface: the published routing of `adapter`.
  absl::StatusOr<ResolvedAdapter> Resolve(std::string_view adapter) override;

  std::vector<AdapterInfo> List() const;
  // Bytes mapped in adapter slots (routed + shared) over all layers.
  size_t mapped_adapter_bytes() const;

 private:
  struct SlotRef {
    memory::ExpertTable* table = nullptr;
    SlotId slot = 0;
  };
  // Signalled by the routing's deleter when its last holder lets go.
  struct ReleaseSignal {
    absl::Mutex mu;
    bool released ABSL_GUARDED_BY(mu) = false;
  };
  struct Entry {
    AdapterInfo info;
    uint64_t cache_key = 0;
    std::shared_ptr<const AdapterRouting> routing;  // null once unpublished
    std::weak_ptr<const AdapterRouting> watch;
    std::shared_ptr<ReleaseSignal> release;
    std::vector<SlotRef> slots;
  };

  static void FreeSlots(const std::vector<SlotRef>& slots);
  int CollectReleasedLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(admin_mu_);

  const ModelConfig& config_;
  ModelWeights& weights_;

  // Serialises Load / Unload / CollectReleased; held for a whole load.
  absl::Mutex admin_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  // Guards the maps; held only briefly, so Resolve never waits for a load.
  mutable absl::Mutex mu_;
  std::map<std::string, Entry, std::less<>> published_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, Entry, std::less<>> draining_ ABSL_GUARDED_BY(mu_);
  uint64_t next_key_ ABSL_GUARDED_BY(admin_mu_) = 1;
};

}  // namespace expertserve::engine::adapters

#endif  // EXPERTSERVE_ENGINE_ADAPTERS_ADAPTER_REGISTRY_H_
