// How the engine finds an ESFT adapter's routing by name (the ESFT adapter
// manager implements it; the default serves no adapters).
//
// Lifetime contract: the engine calls Resolve once per request, in Submit,
// and holds the returned shared_ptr until the request's OnFinish. So an
// adapter is in use exactly while a shared_ptr to its routing is alive:
// unloading drops the manager's own reference and frees the slots when the
// last one goes (e.g. a custom deleter, or polling a weak_ptr between steps).
// A reload publishes a new routing; in-flight requests keep the old one.
#ifndef EXPERTSERVE_ENGINE_ADAPTER_RESOLVER_H_
#define EXPERTSERVE_ENGINE_ADAPTER_RESOLVER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "engine/forward/adapter_routing.h"

namespace expertserve::engine {

struct ResolvedAdapter {
  std::shared_ptr<const AdapterRouting> routing;  // never null
  // Distinguishes loaded versions of adapters for the prefix cache (KV
  // computed under one adapter's experts is never reused by another, or by a
  // reload of the same name): unique per load, never reused, never 0.
  uint64_t cache_key = 0;
};

// Thread-safe: Resolve is called from Submit on caller threads.
class AdapterResolverInterface {
 public:
  virtual ~AdapterResolverInterface() = default;
  // kNotFound for an adapter that is not loaded (name it in the message).
  virtual absl::StatusOr<ResolvedAdapter> Resolve(std::string_view adapter) = 0;
};

// The default: the base model only.
class NoAdapters final : public AdapterResolverInterface {
 public:
  absl::StatusOr<ResolvedAdapter> Resolve(std::string_view adapter) override {
    return absl::NotFoundError(absl::StrCat(
        "adapter '", std::string(adapter), "' is not loaded (this model serves no adapters)"));
  }
};

}  // namespace expertserve::engine

#endif  // EXPERTSERVE_ENGINE_ADAPTER_RESOLVER_H_
