// AdapterRegistry on a generated deepseek_v2 base (dense first layer, shared
// experts) and the real-format adapters of tests/adapters/make_fixtures.py:
// publication, slot contents, unloading only after the last request lets go,
// flat memory over load/unload cycles, and every class of bad adapter failing
// with a precise error while leaving the registry and memory unchanged.
#include "engine/adapters/adapter_registry.h"

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <list>
#include <thread>

#include <unistd.h>

#include "checkpoint/safetensors.h"
#include "engine/forward/transformer.h"
#include "engine/model/weight_manifest.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/fixtures/status_matchers.h"

namespace expertserve::engine::adapters {
namespace {

namespace fs = std::filesystem;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::expertserve::testing::StatusIs;

fs::path FixtureDir() {
  const char* bin = std::getenv("ES_BINARY_DIR");
  return fs::path(bin ? bin : "build") / "test-models" / "adapters";
}

// Everything a failed load must leave as it was.
struct Snapshot {
  size_t adapters = 0;
  size_t adapter_bytes = 0;
  size_t mapped_bytes = 0;
  size_t allocated_bytes = 0;
  bool operator==(const Snapshot&) const = default;
};

class AdapterRegistryTest : public ::testing::Test {
 protected:
  void SetUp() override { Open(24); }
  void TearDown() override {
    registry_.reset();
    if (!scratch_.empty()) fs::remove_all(scratch_);
  }

  void Open(int slots) {
    base_ = FixtureDir() / "deepseek_v2_f32";
    ASSERT_TRUE(fs::exists(base_ / "model" / "config.json"))
        << "fixture missing: run the adapters_fixtures test first";
    registry_.reset();
    TransformerOptions options;
    options.weights.adapter_slots_per_layer = slots;
    ES_ASSERT_OK_AND_ASSIGN(model_, Transformer::Load(base_ / "model", options));
    registry_ = std::make_unique<AdapterRegistry>(model_->config(),
                                                  model_->mutable_weights());
    layer_ = model_->config().MoeLayers().front();
    ASSERT_FALSE(model_->config().IsMoeLayer(0)) << "the fixture needs a dense layer 0";
    scratch_ = fs::temp_directory_path() /
               ("es_adapter_registry_" + std::to_string(::getpid()));
    fs::create_directories(scratch_);
  }

  Snapshot Take() const {
    const memory::AddressSpaceCounters c = model_->weights().expert_backend->counters();
    return {registry_->List().size(), registry_->mapped_adapter_bytes(),
            c.mapped_bytes, c.allocated_bytes};
  }

  fs::path Adapter(const std::string& name) const { return base_ / "adapters" / name; }

  // A copy of fixture adapter `from` that the test may damage.
  fs::path CopyOf(const std::string& from, const std::string& to) {
    const fs::path dst = scratch_ / to;
    fs::copy(Adapter(from), dst, fs::copy_options::recursive);
    return dst;
  }

  // Writes an adapter replacing `experts` of layer `layer_` (all their
  // tensors, filled with a pattern), with `edit` applied to each tensor.
  fs::path Craft(const std::string& name, const nlohmann::json& cfg,
                 const std::vector<ExpertId>& experts,
                 const std::function<void(checkpoint::TensorToWrite&)>& edit = nullptr,
                 bool short_names = false) {
    const fs::path dir = scratch_ / name;
    fs::create_directories(dir);
    std::ofstream(dir / "expert_cfg.json") << cfg.dump();
    std::vector<checkpoint::TensorToWrite> tensors;
    for (ExpertId e : experts) {
      for (const TensorSpec& s : RoutedExpertTensors(model_->config(), layer_, e)) {
        checkpoint::TensorToWrite t{short_names ? s.name.substr(6) : s.name,
                                    checkpoint::DType::kF32, s.shape, {}};
        if (edit) edit(t);
        int64_t n = 1;
        for (int64_t d : t.shape) n *= d;
        auto& buf = buffers_.emplace_back(
            static_cast<size_t>(n) * checkpoint::DTypeSize(t.dtype));
        for (size_t i = 0; i < buf.size(); ++i) {
          buf[i] = static_cast<std::byte>((i * 7 + static_cast<size_t>(e)) % 13);
        }
        t.data = buf;
        tensors.push_back(std::move(t));
      }
    }
    ES_EXPECT_OK(checkpoint::WriteSafetensors(dir / "adapter.safetensors", tensors));
    return dir;
  }

  nlohmann::json Cfg(const std::vector<ExpertId>& experts) const {
    return {{"experts", {{std::to_string(layer_), experts}}},
            {"shared_experts", false},
            {"non_expert_modules", false}};
  }

  fs::path base_, scratch_;
  std::unique_ptr<Transformer> model_;
  std::unique_ptr<AdapterRegistry> registry_;
  int64_t layer_ = 0;
  std::list<std::vector<std::byte>> buffers_;
};

TEST_F(AdapterRegistryTest, LoadPublishesReroutesAndCopiesTheListedExperts) {
  ES_ASSERT_OK_AND_ASSIGN(AdapterLoadReport rep, registry_->Load("a", Adapter("a")));
  EXPECT_TRUE(rep.warnings.empty());
  EXPECT_GT(rep.routed_experts_replaced, 0);
  EXPECT_EQ(rep.shared_experts_replaced, 0);
  EXPECT_GT(rep.bytes_copied, 0u);
  EXPECT_EQ(registry_->mapped_adapter_bytes(), rep.mapped_bytes);
  ES_ASSERT_OK_AND_ASSIGN(ResolvedAdapter r, registry_->Resolve("a"));
  EXPECT_EQ(r.cache_key, rep.cache_key);
  EXPECT_NE(r.cache_key, 0u);
  const ModelConfig& c = model_->config();
  ASSERT_EQ(r.routing->per_layer.size(), static_cast<size_t>(c.num_hidden_layers));
  EXPECT_TRUE(r.routing->shared_expert_slot.empty());

  // Every listed expert's slot holds exactly the adapter's tensors; every
  // other expert stays the base's slot.
  std::ifstream in(Adapter("a") / "expert_cfg.json");
  const nlohmann::json cfg = nlohmann::json::parse(in);
  ES_ASSERT_OK_AND_ASSIGN(auto files, checkpoint::Checkpoint::OpenAllFiles(Adapter("a")));
  int checked = 0;
  for (int64_t l : c.MoeLayers()) {
    const auto ids = cfg["experts"][std::to_string(l)].get<std::vector<ExpertId>>();
    const memory::RerouteTable& t = r.routing->per_layer[static_cast<size_t>(l)];
    const memory::ExpertTable& table = *model_->weights().layers[static_cast<size_t>(l)].moe.experts;
    for (ExpertId e = 0; e < c.num_experts; ++e) {
      const bool replaced = std::find(ids.begin(), ids.end(), e) != ids.end();
      if (!replaced) {
        EXPECT_EQ(t[e], e);
        continue;
      }
      ASSERT_GE(t[e], c.num_experts);
      const auto specs = RoutedExpertTensors(c, l, e);
      std::vector<std::byte> gate(table.matrix_bytes()), up(gate.size()), down(gate.size());
      ES_ASSERT_OK(table.ReadSlot(t[e], {gate, up, down}));
      const std::vector<std::byte>* got[] = {&gate, &up, &down};
      for (int m = 0; m < 3; ++m) {
        const checkpoint::TensorView v = files->Find(specs[m].name);
        ASSERT_NE(v.info, nullptr);
        ASSERT_EQ(v.size_bytes, got[m]->size());
        EXPECT_EQ(std::memcmp(v.data, got[m]->data(), v.size_bytes), 0) << specs[m].name;
      }
      ++checked;
    }
  }
  EXPECT_EQ(checked, rep.routed_experts_replaced);
}

TEST_F(AdapterRegistryTest, SharedExpertAdapterGetsASharedSlotInEveryMoeLayer) {
  ES_ASSERT_OK_AND_ASSIGN(AdapterLoadReport rep, registry_->Load("s", Adapter("s")));
  const ModelConfig& c = model_->config();
  EXPECT_EQ(rep.shared_experts_replaced, static_cast<int>(c.MoeLayers().size()));
  ES_ASSERT_OK_AND_ASSIGN(ResolvedAdapter r, registry_->Resolve("s"));
  ASSERT_EQ(r.routing->shared_expert_slot.size(), static_cast<size_t>(c.num_hidden_layers));
  EXPECT_EQ(r.routing->shared_expert_slot[0], -1);  // dense layer
  for (int64_t l : c.MoeLayers()) {
    const SlotId s = r.routing->shared_expert_slot[static_cast<size_t>(l)];
    EXPECT_GE(s, 1);
    EXPECT_TRUE(model_->weights().layers[static_cast<size_t>(l)].moe.shared_table->IsMapped(s));
  }
}

TEST_F(AdapterRegistryTest, LoadUnloadReloadCyclesKeepMappedMemoryFlat) {
  const Snapshot empty = Take();
  uint64_t last_key = 0;
  for (int cycle = 0; cycle < 25; ++cycle) {
    for (const char* n : {"a", "b", "s"}) {
      ES_ASSERT_OK_AND_ASSIGN(AdapterLoadReport rep, registry_->Load(n, Adapter(n)));
      EXPECT_GT(rep.cache_key, last_key) << "cache keys are never reused";
      last_key = rep.cache_key;
    }
    EXPECT_EQ(registry_->List().size(), 3u);
    EXPECT_GT(Take().mapped_bytes, empty.mapped_bytes);
    for (const char* n : {"b", "a", "s"}) ES_ASSERT_OK(registry_->Unload(n));
    ASSERT_EQ(Take(), empty) << "cycle " << cycle;
  }
  EXPECT_THAT(registry_->Resolve("a"), StatusIs(absl::StatusCode::kNotFound,
                                                HasSubstr("'a' is not loaded")));
  EXPECT_THAT(registry_->Unload("a"), StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(AdapterRegistryTest, UnloadFreesSlotsOnlyAfterTheLastRunningRequest) {
  const Snapshot empty = Take();
  ES_ASSERT_OK(registry_->Load("a", Adapter("a")).status());
  const Snapshot loaded = Take();
  ES_ASSERT_OK_AND_ASSIGN(ResolvedAdapter request, registry_->Resolve("a"));
  EXPECT_THAT(registry_->Unload("a", absl::Milliseconds(20)),
              StatusIs(absl::StatusCode::kDeadlineExceeded,
                       HasSubstr("1 running request(s) still use it")));
  // Unpublished at once, but the slots stay until the request lets go.
  EXPECT_THAT(registry_->Resolve("a"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_EQ(Take().mapped_bytes, loaded.mapped_bytes);
  EXPECT_THAT(registry_->Load("a", Adapter("a")),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("still use it")));
  EXPECT_EQ(registry_->CollectReleased(), 0);
  request.routing.reset();
  EXPECT_EQ(registry_->CollectReleased(), 1);
  EXPECT_EQ(Take(), empty);

  // A waiting Unload returns as soon as the request finishes.
  ES_ASSERT_OK(registry_->Load("a", Adapter("a")).status());
  ES_ASSERT_OK_AND_ASSIGN(request, registry_->Resolve("a"));
  std::atomic<bool> finished{false};
  absl::Status unload;
  std::thread t([&] {
    unload = registry_->Unload("a", absl::Seconds(60));
    finished = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_FALSE(finished.load());
  EXPECT_EQ(Take().mapped_bytes, loaded.mapped_bytes);
  request.routing.reset();
  t.join();
  ES_EXPECT_OK(unload);
  EXPECT_EQ(Take(), empty);
}

class BadAdapterTest : public AdapterRegistryTest {
 protected:
  void SetUp() override {
    AdapterRegistryTest::SetUp();
    ES_ASSERT_OK(registry_->Load("a", Adapter("a")).status());
    before_ = Take();
  }
  // The failed load changed nothing and the registry still works.
  void TearDown() override {
    EXPECT_EQ(Take(), before_);
    ES_EXPECT_OK(registry_->Resolve("a").status());
    ES_EXPECT_OK(registry_->Load("b", Adapter("b")).status());
    AdapterRegistryTest::TearDown();
  }
  Snapshot before_;
};

TEST_F(BadAdapterTest, CorruptSafetensors) {
  const fs::path dir = CopyOf("b", "corrupt");
  for (const auto& f : fs::directory_iterator(dir)) {
    if (f.path().extension() == ".safetensors") {
      fs::resize_file(f.path(), fs::file_size(f.path()) / 2);
    }
  }
  EXPECT_THAT(registry_->Load("x", dir), StatusIs(absl::StatusCode::kDataLoss,
                                                  HasSubstr("adapter 'x'")));
}

TEST_F(BadAdapterTest, MissingTensor) {
  const fs::path dir = Craft("missing", Cfg({1, 2}), {1});
  EXPECT_THAT(registry_->Load("x", dir),
              StatusIs(absl::StatusCode::kDataLoss,
                       HasSubstr("missing tensor model.layers." + std::to_string(layer_) +
                                 ".mlp.experts.2.gate_proj.weight")));
}

TEST_F(BadAdapterTest, WrongShape) {
  const fs::path dir = Craft("shape", Cfg({3}), {3}, [](checkpoint::TensorToWrite& t) {
    if (t.name.find("down_proj") != std::string::npos) std::swap(t.shape[0], t.shape[1]);
  });
  EXPECT_THAT(registry_->Load("x", dir),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("down_proj.weight has shape"),
                             HasSubstr("another base model"))));
}

TEST_F(BadAdapterTest, WrongDtype) {
  const fs::path dir = Craft("dtype", Cfg({3}), {3}, [](checkpoint::TensorToWrite& t) {
    t.dtype = checkpoint::DType::kBF16;
  });
  EXPECT_THAT(registry_->Load("x", dir),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("is BF16, the base's experts are F32")));
}

TEST_F(BadAdapterTest, ExpertIdNotBelowE) {
  const ExpertId E = static_cast<ExpertId>(model_->config().num_experts);
  const fs::path dir = Craft("range", Cfg({1, E}), {1});
  EXPECT_THAT(registry_->Load("x", dir),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("lists expert " + std::to_string(E) + " in layer")));
}

TEST_F(BadAdapterTest, LayerThatIsNotMoe) {
  nlohmann::json cfg = Cfg({1});
  cfg["experts"]["0"] = {1};  // the dense first layer
  EXPECT_THAT(registry_->Load("x", Craft("dense", cfg, {1})),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("lists layer 0, which is not an MoE layer")));
  cfg = Cfg({1});
  cfg["experts"][std::to_string(model_->config().num_hidden_layers)] = {1};
  EXPECT_THAT(registry_->Load("x", Craft("beyond", cfg, {1})),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not an MoE layer")));
}

TEST_F(BadAdapterTest, NonExpertModulesNeedTheirOwnModel) {
  nlohmann::json cfg = Cfg({1});
  cfg["non_expert_modules"] = true;
  EXPECT_THAT(registry_->Load("x", Craft("nonexpert", cfg, {1})),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("non_expert_modules"),
                             HasSubstr("serve it as its own model"))));
}

TEST_F(BadAdapterTest, NoExpertConfig) {
  const fs::path dir = CopyOf("b", "nocfg");
  fs::remove(dir / "expert_cfg.json");
  EXPECT_THAT(registry_->Load("x", dir),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("no expert_cfg.json")));
}

TEST_F(BadAdapterTest, AdapterOfAnotherBase) {
  EXPECT_THAT(registry_->Load("x", FixtureDir() / "qwen3_moe_f32" / "adapters" / "a"),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(BadAdapterTest, DuplicateName) {
  EXPECT_THAT(registry_->Load("a", Adapter("b")),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("already loaded")));
}

TEST_F(BadAdapterTest, MemoryBudgetRunsOutHalfwayAndEverythingIsRolledBack) {
  // Room for two slots: the third allocation fails after two succeeded.
  const auto& table = *model_->weights().layers[static_cast<size_t>(layer_)].moe.experts;
  auto& backend = *model_->mutable_weights().expert_backend;
  backend.set_budget_bytes(backend.counters().allocated_bytes + 2 * table.slot_stride_bytes());
  EXPECT_THAT(registry_->Load("x", Craft("budget", Cfg({4, 5, 6}), {4, 5, 6})),
              StatusIs(absl::StatusCode::kResourceExhausted));
  backend.set_budget_bytes(0);
}

TEST_F(AdapterRegistryTest, OutOfSlotsSaysHowManyAreNeededAndFree) {
  Open(2);  // this model reserves only 2 adapter slots a layer
  const Snapshot empty = Take();
  const std::string L = std::to_string(layer_);
  EXPECT_THAT(registry_->Load("x", Craft("big", Cfg({1, 2, 3}), {1, 2, 3})),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       HasSubstr("needs 3 adapter slot(s) in MoE layer " + L +
                                 " but only 2 of 2 are free")));
  EXPECT_EQ(Take(), empty);
  ES_ASSERT_OK(registry_->Load("y", Craft("two", Cfg({1, 2}), {1, 2})).status());
  const Snapshot one = Take();
  EXPECT_THAT(registry_->Load("z", Craft("one", Cfg({3}), {3})),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       HasSubstr("only 0 of 2 are free (1 adapter(s) loaded)")));
  EXPECT_EQ(Take(), one);
}

TEST_F(AdapterRegistryTest, ShortNamesAreAcceptedAndUnlistedTensorsReported) {
  const fs::path dir = Craft("short", Cfg({2}), {2, 9}, nullptr, /*short_names=*/true);
  ES_ASSERT_OK_AND_ASSIGN(AdapterLoadReport rep, registry_->Load("short", dir));
  EXPECT_EQ(rep.routed_experts_replaced, 1);
  // Expert 9 is in the files but not listed; the other MoE layers have no key.
  EXPECT_THAT(rep.warnings,
              ::testing::UnorderedElementsAre(
                  AllOf(HasSubstr("3 tensor(s)"), HasSubstr("not listed"),
                        HasSubstr("mlp.experts.9.")),
                  HasSubstr("no key for MoE layer")));
}

}  // namespace
}  // namespace expertserve::engine::adapters
