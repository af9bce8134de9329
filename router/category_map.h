// Category -> target: the second step of the Samba-CoE recipe.
#ifndef EXPERTSERVE_ROUTER_CATEGORY_MAP_H_
#define EXPERTSERVE_ROUTER_CATEGORY_MAP_H_

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace expertserve::router {

// What a request runs on: a model, optionally with one of its ESFT adapters.
struct Target {
  std::string model;
  std::string adapter;  // empty = the base model alone
  bool operator==(const Target&) const = default;
};

// "model" or "model+adapter", for logs and metric labels.
std::string TargetName(const Target& target);

// Thread-safe: immutable after Create.
class CategoryMap {
 public:
  // `categories` in classifier order; `routes` keyed by category name.
  // Categories without a route use the default target. Errors:
  // kInvalidArgument listing every problem, one per line (a route naming an
  // unknown category, a target without a model).
  static absl::StatusOr<CategoryMap> Create(const std::vector<std::string>& categories,
                                            const std::map<std::string, Target>& routes,
                                            const std::optional<Target>& default_target);

  // The route of category `index`, nullptr when it has none.
  const Target* RouteOf(size_t index) const;
  const std::optional<Target>& default_target() const { return default_target_; }

 private:
  std::vector<std::optional<Target>> routes_;  // [num_categories]
  std::optional<Target> default_target_;
};

}  // namespace expertserve::router

#endif  // EXPERTSERVE_ROUTER_CATEGORY_MAP_H_
