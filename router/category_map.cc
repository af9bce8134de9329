#include "router/category_map.h"

#include <algorithm>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace expertserve::router {

std::string TargetName(const Target& target) {
  return target.adapter.empty() ? target.model
                                 : absl::StrCat(target.model, "+", target.adapter);
}

absl::StatusOr<CategoryMap> CategoryMap::Create(
    const std::vector<std::string>& categories,
    const std::map<std::string, Target>& routes,
    const std::optional<Target>& default_target) {
  std::vector<std::string> errors;
  std::vector<std::string> known;  // for messages: distinct, non-empty
  for (const std::string& c : categories) {
    if (!c.empty() && std::find(known.begin(), known.end(), c) == known.end()) {
      known.push_back(c);
    }
  }
  CategoryMap map;
  map.routes_.resize(categories.size());
  for (const auto& [name, target] : routes) {
    size_t index = categories.size();
    for (size_t c = 0; c < categories.size(); ++c) {
      if (categories[c] == name) index = c;
    }
    if (index == categories.size()) {
      errors.push_back(absl::StrCat("router.routes.", name, ": unknown category \"", name,
                                    "\"; expected one of: ",
                                    known.empty() ? "(no categories configured)"
                                                  : absl::StrJoin(known, ", ")));
      continue;
    }
    if (target.model.empty()) {
      errors.push_back(absl::StrCat("router.routes.", name, ".model: must not be empty"));
      continue;
    }
    map.routes_[index] = target;
  }
  if (default_target.has_value() && default_target->model.empty()) {
    errors.push_back("router.default_target.model: must not be empty");
  }
  if (!errors.empty()) {
    return absl::InvalidArgumentError(absl::StrJoin(errors, "\n"));
  }
  map.default_target_ = default_target;
  return map;
}

const Target* CategoryMap::RouteOf(size_t index) const {
  if (index >= routes_.size() || !routes_[index].has_value()) return nullptr;
  return &*routes_[index];
}

}  // namespace expertserve::router
