#include "server/model_catalog.h"

#include <algorithm>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace expertserve::server {

void ModelCatalog::AddModel(ServedModel model) {
  absl::MutexLock lock(&mu_);
  models_.push_back(std::make_unique<ServedModel>(std::move(model)));
}

void ModelCatalog::SetDefaultTarget(std::string model, std::string adapter) {
  absl::MutexLock lock(&mu_);
  default_model_ = std::move(model);
  default_adapter_ = std::move(adapter);
}

void ModelCatalog::AddAdapter(absl::string_view model, std::string adapter) {
  absl::MutexLock lock(&mu_);
  for (auto& [name, base] : adapters_) {
    if (name == adapter) {
      base = std::string(model);
      return;
    }
  }
  adapters_.emplace_back(std::move(adapter), std::string(model));
}

bool ModelCatalog::RemoveAdapter(absl::string_view adapter) {
  absl::MutexLock lock(&mu_);
  auto it = std::find_if(adapters_.begin(), adapters_.end(),
                         [&](const auto& a) { return a.first == adapter; });
  if (it == adapters_.end()) return false;
  adapters_.erase(it);
  return true;
}

const ServedModel* ModelCatalog::Find(absl::string_view name) const {
  absl::MutexLock lock(&mu_);
  for (const auto& m : models_) {
    if (m->name == name) return m.get();
  }
  return nullptr;
}

std::vector<const ServedModel*> ModelCatalog::models() const {
  absl::MutexLock lock(&mu_);
  std::vector<const ServedModel*> out;
  for (const auto& m : models_) out.push_back(m.get());
  return out;
}

std::vector<std::string> ModelCatalog::AdaptersOf(absl::string_view model) const {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> out;
  for (const auto& [name, base] : adapters_) {
    if (base == model) out.push_back(name);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string ModelCatalog::AdapterBase(absl::string_view adapter) const {
  absl::MutexLock lock(&mu_);
  for (const auto& [name, base] : adapters_) {
    if (name == adapter) return base;
  }
  return "";
}

void ModelCatalog::SetRouter(std::unique_ptr<router::Router> router) {
  router_ = std::move(router);
}

absl::StatusOr<RoutingDecision> ModelCatalog::Route(
    absl::string_view model, absl::string_view adapter, absl::string_view text,
    const std::vector<engine::ChatMessage>* chat) const {
  RoutingDecision d;
  if (model.empty() || model == "auto") {
    if (!adapter.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "adapter: '", adapter,
          "' was given without a model; set model to the adapter's base model"));
    }
    if (router_ != nullptr) {
      router::RouteInput in;
      in.text = std::string_view(text.data(), text.size());
      if (chat != nullptr) {
        for (const engine::ChatMessage& m : *chat) in.messages.push_back({m.role, m.content});
      }
      absl::StatusOr<router::RouteDecision> r = router_->Route(in);
      if (!r.ok()) return r.status();
      d.model = r->target.model;
      d.adapter = r->target.adapter;
      d.category = r->category;
      d.confidence = static_cast<float>(r->confidence);
      d.explicit_target = false;
      // The config validated every route's target; check anyway so a stale
      // adapter yields NOT_FOUND rather than an engine error.
      if (Find(d.model) == nullptr) {
        return absl::NotFoundError(absl::StrCat("router chose unknown model '", d.model, "'"));
      }
      return d;
    }
  }
  absl::MutexLock lock(&mu_);
  if (model.empty() || model == "auto") {
    if (models_.empty()) return absl::UnavailableError("no model is loaded");
    d.model = default_model_.empty() ? models_.front()->name : default_model_;
    d.adapter = default_model_.empty() ? "" : default_adapter_;
    d.explicit_target = false;
    d.confidence = 0.0f;
    return d;
  }
  bool found = false;
  std::vector<std::string> names;
  for (const auto& m : models_) {
    names.push_back(m->name);
    if (m->name == model) found = true;
  }
  if (!found) {
    return absl::NotFoundError(absl::StrCat("model: unknown model '", model,
                                            "'; served models: ",
                                            absl::StrJoin(names, ", ")));
  }
  if (!adapter.empty()) {
    bool adapter_found = false;
    std::vector<std::string> of_model;
    for (const auto& [name, base] : adapters_) {
      if (base == model) of_model.push_back(name);
      if (name == adapter && base == model) adapter_found = true;
    }
    if (!adapter_found) {
      return absl::NotFoundError(absl::StrCat(
          "adapter: unknown adapter '", adapter, "' of model '", model,
          "'; its adapters: ",
          of_model.empty() ? "(none)" : absl::StrJoin(of_model, ", ")));
    }
  }
  d.model = std::string(model);
  d.adapter = std::string(adapter);
  d.explicit_target = true;
  d.confidence = 1.0f;
  return d;
}

}  // namespace expertserve::server
