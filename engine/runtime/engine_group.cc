#include "engine/runtime/engine_group.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace expertserve::engine {

absl::Status EngineGroup::Add(const std::string& name,
                              std::unique_ptr<EngineInterface> engine) {
  if (engines_.contains(name)) {
    return absl::AlreadyExistsError(absl::StrCat("model '", name, "' is already served"));
  }
  engines_.emplace(name, std::move(engine));
  return absl::OkStatus();
}

EngineInterface* EngineGroup::Find(const std::string& name) const {
  auto it = engines_.find(name);
  return it == engines_.end() ? nullptr : it->second.get();
}

std::vector<std::string> EngineGroup::ModelNames() const {
  std::vector<std::string> names;
  for (const auto& [name, e] : engines_) names.push_back(name);
  return names;
}

absl::Status EngineGroup::Submit(GenerateRequest request,
                                 std::shared_ptr<OutputSinkInterface> sink) {
  EngineInterface* e = Find(request.model);
  if (e == nullptr) {
    return absl::NotFoundError(absl::StrCat("model '", request.model,
                                            "' is not served (serving: ",
                                            absl::StrJoin(ModelNames(), ", "), ")"));
  }
  return e->Submit(std::move(request), std::move(sink));
}

void EngineGroup::Abort(std::string_view request_id) {
  for (auto& [name, e] : engines_) e->Abort(request_id);
}

std::vector<EngineStats> EngineGroup::GetStats() const {
  std::vector<EngineStats> out;
  for (const auto& [name, e] : engines_) {
    for (EngineStats& s : e->GetStats()) out.push_back(std::move(s));
  }
  return out;
}

}  // namespace expertserve::engine
