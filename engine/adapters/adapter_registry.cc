#include "engine/adapters/adapter_registry.h"

#include <fstream>
#include <set>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "checkpoint/dtype.h"
#include "checkpoint/safetensors.h"
#include "common/check.h"
#include "common/status_macros.h"
#include "engine/adapters/expert_config.h"
#include "engine/model/weight_manifest.h"

namespace expertserve::engine::adapters {
namespace {

std::string ShapeString(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

absl::Status Annotate(const absl::Status& s, std::string_view prefix) {
  return absl::Status(s.code(), absl::StrCat(std::string(prefix), s.message()));
}

std::string_view KernelDTypeName(kernels::DType d) {
  switch (d) {
    case kernels::DType::kF32: return "F32";
    case kernels::DType::kBF16: return "BF16";
    case kernels::DType::kF16: return "F16";
  }
  return "?";
}

// One replacement expert to copy into a slot of `table`.
struct PlannedExpert {
  memory::ExpertTable* table = nullptr;
  int64_t layer = 0;
  ExpertId expert = 0;  // routed id, or 0 for a layer's shared expert
  bool shared = false;
  memory::ExpertWeightsView weights;
};

}  // namespace

AdapterRegistry::AdapterRegistry(const ModelConfig& config,
                                 ModelWeights& weights)
    : config_(config), weights_(weights) {}

AdapterRegistry::~AdapterRegistry() {
  absl::MutexLock admin(&admin_mu_);
  absl::MutexLock l(&mu_);
  for (auto* map : {&published_, &draining_}) {
    for (auto& [name, entry] : *map) {
      entry.routing.reset();
      FreeSlots(entry.slots);
    }
    map->clear();
  }
}

void AdapterRegistry::FreeSlots(const std::vector<SlotRef>& slots) {
  for (const SlotRef& s : slots) {
    const absl::Status st = s.table->FreeAdapterSlot(s.slot);
    ES_CHECK_MSG(st.ok(), std::string(st.message()).c_str());
  }
}

absl::StatusOr<AdapterLoadReport> AdapterRegistry::Load(
    std::string_view name, const std::filesystem::path& dir) {
  absl::MutexLock admin(&admin_mu_);
  CollectReleasedLocked();
  const std::string prefix = absl::StrCat("adapter '", std::string(name), "' (", dir.string(), "): ");
  if (name.empty()) return absl::InvalidArgumentError("adapter name is empty");
  {
    absl::MutexLock l(&mu_);
    if (published_.count(name)) {
      return absl::AlreadyExistsError(
          absl::StrCat("adapter '", std::string(name), "' is already loaded; unload it first"));
    }
    if (draining_.count(name)) {
      return absl::AlreadyExistsError(absl::StrCat(
          "adapter '", std::string(name),
          "' is unloaded but running requests still use it; retry when they finish"));
    }
  }
  if (!config_.is_moe()) {
    return absl::InvalidArgumentError(absl::StrCat(
        prefix, "the base model (", std::string(ArchitectureName(config_.arch)),
        ") is dense; ESFT adapters replace routed experts of an MoE model"));
  }

  // ---- expert_cfg.json ----
  const std::filesystem::path cfg_path = dir / "expert_cfg.json";
  std::ifstream in(cfg_path, std::ios::binary);
  if (!in.good()) {
    return absl::NotFoundError(absl::StrCat(
        prefix, "no expert_cfg.json: not an ESFT adapter directory"));
  }
  std::stringstream text;
  text << in.rdbuf();
  ES_ASSIGN_OR_RETURN(EsftExpertConfig cfg,
                      ParseExpertConfig(text.str(), cfg_path.string()));
  AdapterLoadReport report;
  report.name = std::string(name);
  report.warnings = std::move(cfg.warnings);
  if (cfg.non_expert_modules) {
    return absl::InvalidArgumentError(absl::StrCat(
        prefix,
        "expert_cfg.json sets \"non_expert_modules\": true, so the adapter also "
        "changes attention, norm or embedding weights and its requests cannot "
        "share the base model's batch. expertserve serves only expert-only ESFT "
        "adapters over a shared base: merge this adapter into a full checkpoint "
        "and serve it as its own model"));
  }
  const std::vector<int64_t> moe_layers = config_.MoeLayers();
  if (moe_layers.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        prefix, "the base model has no MoE layers for an ESFT adapter"));
  }
  const int64_t E = config_.num_experts;
  for (const auto& [layer, ids] : cfg.experts) {
    if (layer >= config_.num_hidden_layers || !config_.IsMoeLayer(layer)) {
      return absl::InvalidArgumentError(absl::StrCat(
          prefix, "expert_cfg.json lists layer ", layer,
          ", which is not an MoE layer of the base model (MoE layers: ",
          moe_layers.front(), "..", moe_layers.back(), " of ",
          config_.num_hidden_layers, "): is it an adapter of another base?"));
    }
    for (ExpertId e : ids) {
      if (e >= E) {
        return absl::InvalidArgumentError(absl::StrCat(
            prefix, "expert_cfg.json lists expert ", e, " in layer ", layer,
            ", but the base has ", E, " routed experts (ids 0..", E - 1, ")"));
      }
    }
  }
  for (int64_t l : moe_layers) {
    if (!cfg.experts.count(l)) {
      report.warnings.push_back(absl::StrCat(
          "expert_cfg.json has no key for MoE layer ", l,
          ": that layer keeps the base's experts"));
    }
  }
  if (cfg.shared_experts) {
    if (config_.shared_expert_intermediate_size == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          prefix, "expert_cfg.json sets \"shared_experts\": true but the base (",
          std::string(ArchitectureName(config_.arch)), ") has no shared experts"));
    }
    for (int64_t l : moe_layers) {
      if (weights_.layers[static_cast<size_t>(l)].moe.shared_table == nullptr) {
        return absl::ResourceExhaustedError(absl::StrCat(
            prefix, "it replaces shared experts but the model reserves no "
            "shared-expert adapter slots (shared_adapter_slots_per_layer = 0)"));
      }
    }
  }

  // ---- tensors: exactly what expert_cfg.json lists ----
  bool has_files = false;
  std::error_code ec;
  for (const auto& f : std::filesystem::directory_iterator(dir, ec)) {
    has_files |= f.path().extension() == ".safetensors";
  }
  std::unique_ptr<checkpoint::Checkpoint> files;
  if (has_files) {
    absl::StatusOr<std::unique_ptr<checkpoint::Checkpoint>> opened =
        checkpoint::Checkpoint::OpenAllFiles(dir);
    if (!opened.ok()) return Annotate(opened.status(), prefix);
    files = *std::move(opened);
  }
  std::set<std::string> used;
  // Finds a listed tensor (with or without the leading "model.") and checks
  // it against the base's shape and dtype.
  auto find = [&](const TensorSpec& spec, kernels::DType want,
                  const std::string& why) -> absl::StatusOr<std::span<const std::byte>> {
    const std::string short_name = spec.name.substr(6);  // without "model."
    checkpoint::TensorView full, brief;
    if (files != nullptr) {
      full = files->Find(spec.name);
      brief = files->Find(short_name);
    }
    if (full.info != nullptr && brief.info != nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(
          prefix, "holds both ", spec.name, " and ", short_name,
          ": ambiguous replacement for ", why));
    }
    const checkpoint::TensorView v = full.info != nullptr ? full : brief;
    if (v.info == nullptr) {
      return absl::DataLossError(absl::StrCat(
          prefix, "missing tensor ", spec.name, " ", ShapeString(spec.shape),
          " for ", why, " listed in expert_cfg.json"));
    }
    if (v.info->shape != spec.shape) {
      return absl::InvalidArgumentError(absl::StrCat(
          prefix, "tensor ", v.info->name, " has shape ",
          ShapeString(v.info->shape), ", the base has ", ShapeString(spec.shape),
          ": is it an adapter of another base model?"));
    }
    if (ToKernelDType(v.info->dtype) != want) {
      return absl::InvalidArgumentError(absl::StrCat(
          prefix, "tensor ", v.info->name, " is ",
          std::string(checkpoint::DTypeName(v.info->dtype)), ", the base's experts are ",
          std::string(KernelDTypeName(want)), ": convert it to the base's dtype"));
    }
    used.insert(v.info->name);
    return std::span<const std::byte>(v.data, v.size_bytes);
  };
  std::vector<PlannedExpert> plan;
  std::map<memory::ExpertTable*, int> need;  // slots per table
  for (const auto& [layer, ids] : cfg.experts) {
    MoeWeights& moe = weights_.layers[static_cast<size_t>(layer)].moe;
    for (ExpertId e : ids) {
      const std::vector<TensorSpec> t = RoutedExpertTensors(config_, layer, e);
      const std::string why = absl::StrCat("layer ", layer, " expert ", e);
      PlannedExpert p{moe.experts.get(), layer, e, false, {}};
      ES_ASSIGN_OR_RETURN(p.weights.gate, find(t[0], moe.expert_dtype, why));
      ES_ASSIGN_OR_RETURN(p.weights.up, find(t[1], moe.expert_dtype, why));
      ES_ASSIGN_OR_RETURN(p.weights.down, find(t[2], moe.expert_dtype, why));
      plan.push_back(p);
      ++need[p.table];
    }
  }
  if (cfg.shared_experts) {
    for (int64_t l : moe_layers) {
      MoeWeights& moe = weights_.layers[static_cast<size_t>(l)].moe;
      const std::vector<TensorSpec> t = SharedExpertTensors(config_, l);
      const std::string why = absl::StrCat("layer ", l, "'s shared expert");
      PlannedExpert p{moe.shared_table.get(), l, 0, true, {}};
      ES_ASSIGN_OR_RETURN(p.weights.gate, find(t[0], moe.shared_dtype, why));
      ES_ASSIGN_OR_RETURN(p.weights.up, find(t[1], moe.shared_dtype, why));
      ES_ASSIGN_OR_RETURN(p.weights.down, find(t[2], moe.shared_dtype, why));
      plan.push_back(p);
      ++need[p.table];
    }
  }
  if (files != nullptr) {
    std::vector<std::string> extra;
    for (const std::string& n : files->TensorNames()) {
      if (!used.count(n)) extra.push_back(n);
    }
    if (!extra.empty()) {
      const size_t shown = std::min<size_t>(extra.size(), 8);
      report.warnings.push_back(absl::StrCat(
          extra.size(), " tensor(s) in the files are not listed in "
          "expert_cfg.json and were ignored: ",
          absl::StrJoin(extra.begin(), extra.begin() + static_cast<ptrdiff_t>(shown), ", "),
          extra.size() > shown ? ", ..." : ""));
    }
  }

  // ---- capacity, before touching anything ----
  size_t loaded = 0;
  {
    absl::MutexLock l(&mu_);
    loaded = published_.size() + draining_.size();
  }
  for (const PlannedExpert& p : plan) {
    const int n = need[p.table];
    const memory::ExpertTableCounters c = p.table->counters();
    if (n > c.free_adapter_slots) {
      return absl::ResourceExhaustedError(absl::StrCat(
          prefix, "needs ", n, p.shared ? " shared-expert" : "",
          " adapter slot(s) in MoE layer ", p.layer, " but only ",
          c.free_adapter_slots, " of ", p.table->layout().num_adapter_slots,
          " are free (", loaded,
          " adapter(s) loaded): unload an adapter or reserve more slots"));
    }
  }

  // ---- allocate and copy; undo everything on failure ----
  std::vector<SlotRef> slots;
  std::map<int64_t, std::vector<memory::ExpertReplacement>> routed;  // by layer
  std::map<int64_t, SlotId> shared_slot;
  auto fail = [&](const absl::Status& s) {
    FreeSlots(slots);
    return Annotate(s, prefix);
  };
  for (const PlannedExpert& p : plan) {
    absl::StatusOr<SlotId> slot = p.table->AllocateAdapterSlot();
    if (!slot.ok()) return fail(slot.status());
    slots.push_back({p.table, *slot});
    if (absl::Status s = p.table->WriteSlot(*slot, p.weights); !s.ok()) {
      return fail(s);
    }
    report.bytes_copied +=
        p.weights.gate.size() + p.weights.up.size() + p.weights.down.size();
    report.mapped_bytes += p.table->slot_stride_bytes();
    if (p.shared) {
      shared_slot[p.layer] = *slot;
      ++report.shared_experts_replaced;
    } else {
      routed[p.layer].push_back({p.expert, *slot});
      ++report.routed_experts_replaced;
    }
  }

  // ---- reroute tables, validated against the tables before publishing ----
  auto routing = std::make_unique<AdapterRouting>();
  for (int64_t l = 0; l < config_.num_hidden_layers; ++l) {
    if (!config_.IsMoeLayer(l)) {
      routing->per_layer.push_back(memory::RerouteTable::Identity(0));
      continue;
    }
    const MoeWeights& moe = weights_.layers[static_cast<size_t>(l)].moe;
    absl::StatusOr<memory::RerouteTable> t = memory::RerouteTable::Create(
        static_cast<int>(E), moe.experts->layout().num_adapter_slots, routed[l]);
    if (!t.ok()) return fail(t.status());
    if (absl::Status s = moe.experts->ValidateReroute(*t); !s.ok()) return fail(s);
    routing->per_layer.push_back(*std::move(t));
  }
  if (cfg.shared_experts) {
    routing->shared_expert_slot.assign(
        static_cast<size_t>(config_.num_hidden_layers), -1);
    for (const auto& [l, slot] : shared_slot) {
      const memory::ExpertTable& table =
          *weights_.layers[static_cast<size_t>(l)].moe.shared_table;
      const memory::ExpertReplacement r{0, slot};
      absl::StatusOr<memory::RerouteTable> t = memory::RerouteTable::Create(
          1, table.layout().num_adapter_slots,
          std::span<const memory::ExpertReplacement>(&r, 1));
      if (!t.ok()) return fail(t.status());
      if (absl::Status s = table.ValidateReroute(*t); !s.ok()) return fail(s);
      routing->shared_expert_slot[static_cast<size_t>(l)] = slot;
    }
  }

  // ---- publish ----
  Entry entry;
  entry.cache_key = next_key_++;
  report.cache_key = entry.cache_key;
  report.id = static_cast<AdapterId>(entry.cache_key);
  routing->id = report.id;
  entry.release = std::make_shared<ReleaseSignal>();
  entry.routing = std::shared_ptr<const AdapterRouting>(
      routing.release(),
      [signal = entry.release](const AdapterRouting* r) {
        delete r;
        absl::MutexLock l(&signal->mu);
        signal->released = true;
      });
  entry.watch = entry.routing;
  entry.slots = std::move(slots);
  entry.info = AdapterInfo{report.name,
                           report.id,
                           dir,
                           report.routed_experts_replaced,
                           report.shared_experts_replaced,
                           report.mapped_bytes,
                           false};
  absl::MutexLock l(&mu_);
  published_.emplace(report.name, std::move(entry));
  return report;
}

absl::Status AdapterRegistry::Unload(std::string_view name,
                                     absl::Duration timeout) {
  absl::MutexLock admin(&admin_mu_);
  CollectReleasedLocked();
  Entry entry;
  {
    absl::MutexLock l(&mu_);
    auto it = published_.find(name);
    if (it != published_.end()) {
      entry = std::move(it->second);
      published_.erase(it);
    } else if (auto d = draining_.find(name); d != draining_.end()) {
      entry = std::move(d->second);
      draining_.erase(d);
    } else {
      return absl::NotFoundError(
          absl::StrCat("adapter '", std::string(name), "' is not loaded"));
    }
  }
  entry.routing.reset();  // new requests can no longer resolve it
  entry.info.draining = true;
  bool released = entry.release->mu.LockWhenWithTimeout(
      absl::Condition(&entry.release->released), timeout);
  entry.release->mu.Unlock();
  if (released) {
    FreeSlots(entry.slots);
    return absl::OkStatus();
  }
  const long users = entry.watch.use_count();
  absl::MutexLock l(&mu_);
  draining_.emplace(std::string(name), std::move(entry));
  return absl::DeadlineExceededError(absl::StrCat(
      "adapter '", std::string(name), "' is unloaded but ", users,
      " running request(s) still use it after ", absl::FormatDuration(timeout),
      "; its slots are freed once they finish"));
}

int AdapterRegistry::CollectReleased() {
  absl::MutexLock admin(&admin_mu_);
  return CollectReleasedLocked();
}

int AdapterRegistry::CollectReleasedLocked() {
  std::vector<Entry> done;
  {
    absl::MutexLock l(&mu_);
    for (auto it = draining_.begin(); it != draining_.end();) {
      bool released = false;
      {
        absl::MutexLock r(&it->second.release->mu);
        released = it->second.release->released;
      }
      if (released) {
        done.push_back(std::move(it->second));
        it = draining_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (const Entry& e : done) FreeSlots(e.slots);
  return static_cast<int>(done.size());
}

absl::StatusOr<ResolvedAdapter> AdapterRegistry::Resolve(
    std::string_view adapter) {
  absl::MutexLock l(&mu_);
  auto it = published_.find(adapter);
  if (it == published_.end()) {
    std::vector<std::string> names;
    for (const auto& [n, e] : published_) names.push_back(n);
    return absl::NotFoundError(absl::StrCat(
        "adapter '", std::string(adapter), "' is not loaded (loaded: ",
        names.empty() ? "none" : absl::StrJoin(names, ", "), ")"));
  }
  return ResolvedAdapter{it->second.routing, it->second.cache_key};
}

std::vector<AdapterInfo> AdapterRegistry::List() const {
  absl::MutexLock l(&mu_);
  std::vector<AdapterInfo> out;
  for (const auto& [n, e] : published_) out.push_back(e.info);
  for (const auto& [n, e] : draining_) out.push_back(e.info);
  return out;
}

size_t AdapterRegistry::mapped_adapter_bytes() const {
  size_t total = 0;
  for (const LayerWeights& lw : weights_.layers) {
    if (!lw.is_moe) continue;
    for (const memory::ExpertTable* t :
         {lw.moe.experts.get(), lw.moe.shared_table.get()}) {
      if (t == nullptr) continue;
      total += static_cast<size_t>(t->counters().mapped_adapter_slots) *
               t->slot_stride_bytes();
    }
  }
  return total;
}

}  // namespace expertserve::engine::adapters
