// A checkpoint that does not match its config.json fails to load with an
// error naming the tensor. Starts from a generated fixture checkpoint and
// rewrites it with one defect at a time.
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "checkpoint/safetensors.h"
#include "engine/forward/transformer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/fixtures/status_matchers.h"

namespace expertserve::engine {
namespace {

using ::expertserve::testing::StatusIs;
using ::testing::HasSubstr;
namespace fs = std::filesystem;

fs::path Fixture(const char* variant) {
  const char* bin = std::getenv("ES_BINARY_DIR");
  return fs::path(bin ? bin : "build") / "test-models" / "forward" / variant / "model";
}

// Copies `variant`'s checkpoint into a temp dir, letting `edit` change the
// tensor list first. Returns the new directory.
fs::path Rewrite(const char* variant, const std::string& tag,
                 const std::function<void(std::vector<checkpoint::TensorToWrite>&,
                                          std::vector<std::vector<std::byte>>&)>& edit) {
  const fs::path src = Fixture(variant);
  auto ckpt = checkpoint::Checkpoint::Open(src);
  EXPECT_TRUE(ckpt.ok()) << ckpt.status();
  std::vector<checkpoint::TensorToWrite> tensors;
  std::vector<std::vector<std::byte>> storage;
  for (const std::string& name : (*ckpt)->TensorNames()) {
    const checkpoint::TensorView v = (*ckpt)->Find(name);
    tensors.push_back({name, v.info->dtype, v.info->shape,
                       std::span<const std::byte>(v.data, v.size_bytes)});
  }
  edit(tensors, storage);
  const fs::path dst = fs::temp_directory_path() /
                       ("es_weights_" + tag + "_" + std::to_string(::getpid()));
  fs::remove_all(dst);
  fs::create_directories(dst);
  fs::copy_file(src / "config.json", dst / "config.json");
  EXPECT_TRUE(checkpoint::WriteCheckpointTensors(dst, tensors, 1ull << 40).ok());
  return dst;
}

TEST(ModelWeightsTest, FixtureLoads) {
  ES_EXPECT_OK(Transformer::Load(Fixture("qwen3_f32")));
}

TEST(ModelWeightsTest, MissingTensorIsNamed) {
  const fs::path dir = Rewrite("qwen3_f32", "missing", [](auto& t, auto&) {
    std::erase_if(t, [](const auto& x) {
      return x.name == "model.layers.1.self_attn.k_norm.weight";
    });
  });
  EXPECT_THAT(Transformer::Load(dir),
              StatusIs(absl::StatusCode::kDataLoss,
                       HasSubstr("missing tensor model.layers.1.self_attn.k_norm.weight")));
  fs::remove_all(dir);
}

TEST(ModelWeightsTest, MisShapedTensorIsNamed) {
  const fs::path dir = Rewrite("qwen3_f32", "shape", [](auto& t, auto&) {
    for (auto& x : t) {
      if (x.name == "model.norm.weight") {
        x.shape = {x.shape[0] / 2};
        x.data = x.data.first(x.data.size() / 2);
      }
    }
  });
  EXPECT_THAT(Transformer::Load(dir),
              StatusIs(absl::StatusCode::kDataLoss,
                       HasSubstr("tensor model.norm.weight has shape")));
  fs::remove_all(dir);
}

TEST(ModelWeightsTest, UnusedTensorIsNamed) {
  const fs::path dir = Rewrite("qwen3_f32", "extra", [](auto& t, auto& storage) {
    storage.emplace_back(16);
    t.push_back({"model.layers.0.self_attn.o_proj.bias", checkpoint::DType::kF32,
                 {4}, storage.back()});
  });
  EXPECT_THAT(Transformer::Load(dir),
              StatusIs(absl::StatusCode::kDataLoss,
                       HasSubstr("model.layers.0.self_attn.o_proj.bias")));
  fs::remove_all(dir);
}

TEST(ModelWeightsTest, ExpertsOfOneLayerMustShareADtype) {
  const fs::path dir = Rewrite("mixtral_f32", "dtype", [](auto& t, auto& storage) {
    for (auto& x : t) {
      if (x.name == "model.layers.0.block_sparse_moe.experts.1.w2.weight") {
        storage.emplace_back(x.data.size() / 2);  // same values, as BF16 bits
        x.dtype = checkpoint::DType::kBF16;
        x.data = storage.back();
      }
    }
  });
  EXPECT_THAT(Transformer::Load(dir),
              StatusIs(absl::StatusCode::kDataLoss,
                       HasSubstr("model.layers.0.block_sparse_moe.experts.1.w2.weight is BF16")));
  fs::remove_all(dir);
}

}  // namespace
}  // namespace expertserve::engine
