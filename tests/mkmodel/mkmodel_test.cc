// Tests of the checkpoint generator. The safetensors files are read back
// with a small header parser written here, independent of checkpoint/.
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "checkpoint/dtype.h"
#include "checkpoint/safetensors.h"
#include "engine/model/model_config.h"
#include "engine/model/weight_manifest.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/fixtures/status_matchers.h"
#include "tools/mkmodel/generator.h"
#include "tools/mkmodel/tokenizer_gen.h"

namespace expertserve::mkmodel {
namespace {

namespace fs = std::filesystem;
using ::expertserve::testing::IsOk;
using ::expertserve::testing::StatusIs;
using ::testing::HasSubstr;
using checkpoint::DType;
using engine::ModelConfig;
using engine::TensorSpec;
using Json = nlohmann::json;

const std::vector<std::string> kArchs = {"llama",     "qwen2",     "qwen3",
                                         "mixtral",   "qwen2_moe", "qwen3_moe",
                                         "deepseek_v2", "deepseek_v3"};

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Json ReadJson(const fs::path& p) { return Json::parse(ReadFile(p)); }

class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TEST_TMPDIR");
    std::string tmpl =
        (fs::path(base ? base : "/tmp") / "mkmodel_test_XXXXXX").string();
    path_ = mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// A tensor as stored in a file: header entry plus its raw bytes.
struct StoredTensor {
  std::string dtype;
  std::vector<int64_t> shape;
  std::string bytes;
};

// Reads every tensor of one safetensors file, checking the layout rules
// (8-byte little-endian header length, offsets contiguous and in range).
std::map<std::string, StoredTensor> ReadSafetensors(const fs::path& p) {
  std::map<std::string, StoredTensor> out;
  const std::string file = ReadFile(p);
  EXPECT_GE(file.size(), 8u);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(file[i]);
  EXPECT_LE(8 + n, file.size());
  EXPECT_EQ((8 + n) % 8, 0u) << "header not padded to 8 bytes";
  Json header = Json::parse(file.substr(8, n));
  const std::string data = file.substr(8 + n);
  uint64_t covered = 0;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") continue;
    StoredTensor t;
    t.dtype = it.value()["dtype"].get<std::string>();
    t.shape = it.value()["shape"].get<std::vector<int64_t>>();
    const uint64_t begin = it.value()["data_offsets"][0].get<uint64_t>();
    const uint64_t end = it.value()["data_offsets"][1].get<uint64_t>();
    EXPECT_LE(begin, end);
    EXPECT_LE(end, data.size());
    t.bytes = data.substr(begin, end - begin);
    covered += end - begin;
    out[it.key()] = std::move(t);
  }
  EXPECT_EQ(covered, data.size()) << "unreferenced bytes in " << p;
  return out;
}

// All tensors of a checkpoint directory (single file or index + shards).
std::map<std::string, StoredTensor> ReadCheckpoint(const fs::path& dir) {
  if (fs::exists(dir / "model.safetensors")) {
    EXPECT_FALSE(fs::exists(dir / "model.safetensors.index.json"));
    return ReadSafetensors(dir / "model.safetensors");
  }
  Json index = ReadJson(dir / "model.safetensors.index.json");
  std::map<std::string, StoredTensor> out;
  std::set<std::string> files;
  for (auto it = index["weight_map"].begin(); it != index["weight_map"].end();
       ++it) {
    files.insert(it.value().get<std::string>());
  }
  uint64_t total = 0;
  for (const std::string& f : files) {
    for (auto& [name, t] : ReadSafetensors(dir / f)) {
      EXPECT_EQ(index["weight_map"][name].get<std::string>(), f) << name;
      total += t.bytes.size();
      out[name] = std::move(t);
    }
  }
  EXPECT_EQ(index["metadata"]["total_size"].get<uint64_t>(), total);
  return out;
}

std::vector<float> ToFloats(const StoredTensor& t) {
  DType dtype = *checkpoint::ParseDType(t.dtype);
  const size_t n = t.bytes.size() / checkpoint::DTypeSize(dtype);
  std::vector<float> out(n);
  checkpoint::ToF32(dtype, reinterpret_cast<const std::byte*>(t.bytes.data()),
                    n, out.data());
  return out;
}

void MeanStd(const std::vector<float>& v, double* mean, double* stddev) {
  double s = 0, s2 = 0;
  for (float x : v) s += x;
  *mean = s / v.size();
  for (float x : v) s2 += (x - *mean) * (x - *mean);
  *stddev = std::sqrt(s2 / v.size());
}

ModelOptions Tiny(const std::string& arch, DType dtype = DType::kF32,
                  uint64_t seed = 1) {
  ModelOptions o;
  o.arch = arch;
  o.dtype = dtype;
  o.seed = seed;
  return o;
}

// The checkpoint holds exactly the manifest's tensors, with its shapes and
// the requested dtype.
void ExpectMatchesManifest(const fs::path& dir, DType dtype) {
  ES_ASSERT_OK_AND_ASSIGN(ModelConfig config, engine::LoadModelConfig(dir));
  auto stored = ReadCheckpoint(dir);
  std::vector<TensorSpec> expected = engine::ExpectedTensors(config);
  EXPECT_EQ(stored.size(), expected.size());
  for (const TensorSpec& t : expected) {
    auto it = stored.find(t.name);
    ASSERT_NE(it, stored.end()) << "missing " << t.name;
    EXPECT_EQ(it->second.shape, t.shape) << t.name;
    EXPECT_EQ(it->second.dtype, checkpoint::DTypeName(dtype)) << t.name;
    EXPECT_EQ(it->second.bytes.size(),
              t.num_elements() * checkpoint::DTypeSize(dtype))
        << t.name;
  }
}

class EveryArchTest : public ::testing::TestWithParam<std::string> {};

TEST_P(EveryArchTest, WritesTheManifestsTensorsAndAReparsableConfig) {
  TempDir tmp;
  for (DType dtype : {DType::kF32, DType::kBF16, DType::kF16}) {
    const fs::path dir = tmp.path() / std::string(checkpoint::DTypeName(dtype));
    ASSERT_THAT(WriteModel(Tiny(GetParam(), dtype), dir), IsOk());
    ES_ASSERT_OK_AND_ASSIGN(ModelConfig config, engine::LoadModelConfig(dir));
    EXPECT_EQ(engine::ArchitectureName(config.arch), GetParam());
    Json raw = ReadJson(dir / "config.json");
    EXPECT_EQ(raw["architectures"][0].get<std::string>(),
              engine::ArchitectureClassName(config.arch));
    EXPECT_EQ(raw["torch_dtype"].get<std::string>(),
              dtype == DType::kF32    ? "float32"
              : dtype == DType::kBF16 ? "bfloat16"
                                      : "float16");
    ExpectMatchesManifest(dir, dtype);
    ES_ASSERT_OK_AND_ASSIGN(auto ckpt, checkpoint::Checkpoint::Open(dir));
    ES_ASSERT_OK_AND_ASSIGN(std::vector<std::string> extra,
                            engine::ValidateCheckpointTensors(config, *ckpt));
    EXPECT_THAT(extra, ::testing::IsEmpty());
    for (const char* f : {"generation_config.json", "tokenizer.json",
                          "tokenizer_config.json"}) {
      EXPECT_TRUE(fs::exists(dir / f)) << f;
    }
  }
}

TEST_P(EveryArchTest, SameSeedSameBytesOtherSeedOtherWeights) {
  TempDir tmp;
  ASSERT_THAT(WriteModel(Tiny(GetParam(), DType::kBF16, 7), tmp.path() / "a"),
              IsOk());
  ASSERT_THAT(WriteModel(Tiny(GetParam(), DType::kBF16, 7), tmp.path() / "b"),
              IsOk());
  ASSERT_THAT(WriteModel(Tiny(GetParam(), DType::kBF16, 8), tmp.path() / "c"),
              IsOk());
  for (const char* f : {"config.json", "generation_config.json",
                        "tokenizer.json", "tokenizer_config.json",
                        "model.safetensors"}) {
    EXPECT_EQ(ReadFile(tmp.path() / "a" / f), ReadFile(tmp.path() / "b" / f))
        << f;
  }
  EXPECT_EQ(ReadFile(tmp.path() / "a" / "config.json"),
            ReadFile(tmp.path() / "c" / "config.json"));
  auto a = ReadCheckpoint(tmp.path() / "a");
  auto c = ReadCheckpoint(tmp.path() / "c");
  for (const auto& [name, t] : a) {
    EXPECT_NE(t.bytes, c[name].bytes) << name << " did not change with seed";
  }
}

INSTANTIATE_TEST_SUITE_P(Archs, EveryArchTest, ::testing::ValuesIn(kArchs));

TEST(MkmodelTest, WeightStatisticsKeepActivationsOrderOne) {
  TempDir tmp;
  ASSERT_THAT(WriteModel(Tiny("qwen2_moe"), tmp.path()), IsOk());
  ES_ASSERT_OK_AND_ASSIGN(ModelConfig config, engine::LoadModelConfig(tmp.path()));
  auto stored = ReadCheckpoint(tmp.path());
  for (const TensorSpec& t : engine::ExpectedTensors(config)) {
    double mean, stddev;
    std::vector<float> v = ToFloats(stored[t.name]);
    MeanStd(v, &mean, &stddev);
    for (float x : v) ASSERT_TRUE(std::isfinite(x)) << t.name;
    switch (t.role) {
      case engine::TensorRole::kEmbedding:
        EXPECT_NEAR(stddev, 1.0, 0.05) << t.name;
        break;
      case engine::TensorRole::kNorm:
        EXPECT_NEAR(mean, 1.0, 0.05) << t.name;
        EXPECT_GT(stddev, 0.02) << t.name;  // not all ones: norms matter
        break;
      case engine::TensorRole::kProjection:
      case engine::TensorRole::kRoutedExpert:
      case engine::TensorRole::kSharedExpert:
        if (v.size() >= 1024) {
          EXPECT_NEAR(stddev * std::sqrt(double(t.shape[1])), 1.0, 0.15)
              << t.name;
          EXPECT_NEAR(mean, 0.0, 0.05) << t.name;
        }
        break;
      case engine::TensorRole::kRouterGate:
        // Gate logits of a unit-RMS hidden state spread by ~2: routing
        // varies from token to token.
        EXPECT_NEAR(stddev * std::sqrt(double(t.shape[1])), 2.0, 0.4)
            << t.name;
        break;
      default:
        break;
    }
  }
}

TEST(MkmodelTest, TiedEmbeddingsDropTheLmHead) {
  TempDir tmp;
  ModelOptions o = Tiny("qwen2");
  o.tie_embeddings = true;
  ASSERT_THAT(WriteModel(o, tmp.path()), IsOk());
  ES_ASSERT_OK_AND_ASSIGN(ModelConfig c, engine::LoadModelConfig(tmp.path()));
  EXPECT_TRUE(c.tie_word_embeddings);
  auto stored = ReadCheckpoint(tmp.path());
  EXPECT_EQ(stored.count("lm_head.weight"), 0u);
  ExpectMatchesManifest(tmp.path(), DType::kF32);
  // Small rows: a unit-scale tied embedding would make each token predict
  // itself.
  double mean, stddev;
  MeanStd(ToFloats(stored["model.embed_tokens.weight"]), &mean, &stddev);
  EXPECT_NEAR(stddev * std::sqrt(double(c.hidden_size)), 1.0, 0.05);
}

TEST(MkmodelTest, ShardedCheckpointHasAConsistentIndex) {
  TempDir tmp;
  ModelOptions o = Tiny("deepseek_v3", DType::kBF16);
  o.max_shard_bytes = 64 * 1024;
  ASSERT_THAT(WriteModel(o, tmp.path()), IsOk());
  EXPECT_FALSE(fs::exists(tmp.path() / "model.safetensors"));
  Json index = ReadJson(tmp.path() / "model.safetensors.index.json");
  std::set<std::string> files;
  for (auto it = index["weight_map"].begin(); it != index["weight_map"].end();
       ++it) {
    files.insert(it.value().get<std::string>());
  }
  EXPECT_GT(files.size(), 2u);
  EXPECT_TRUE(files.count("model-00001-of-" +
                          std::string(5 - std::to_string(files.size()).size(),
                                      '0') +
                          std::to_string(files.size()) + ".safetensors"));
  ExpectMatchesManifest(tmp.path(), DType::kBF16);
  // The project's reader opens it too.
  ES_ASSERT_OK_AND_ASSIGN(auto ckpt, checkpoint::Checkpoint::Open(tmp.path()));
  EXPECT_EQ(ckpt->TensorNames().size(), index["weight_map"].size());
  // Same tensors, same bytes as the unsharded checkpoint.
  o.max_shard_bytes = 0;
  ASSERT_THAT(WriteModel(o, tmp.path() / "single"), IsOk());
  auto single = ReadCheckpoint(tmp.path() / "single");
  auto sharded = ReadCheckpoint(tmp.path());
  ASSERT_EQ(single.size(), sharded.size());
  for (const auto& [name, t] : single) EXPECT_EQ(t.bytes, sharded[name].bytes);
}

TEST(MkmodelTest, StreamingPathWritesTheSameTensors) {
  TempDir tmp;
  ModelOptions o = Tiny("qwen2_moe", DType::kF16);
  ASSERT_THAT(WriteModel(o, tmp.path() / "memory"), IsOk());
  o.in_memory_limit_bytes = 0;  // shard by shard, in parallel
  o.max_shard_bytes = 100 * 1024;
  ASSERT_THAT(WriteModel(o, tmp.path() / "streamed"), IsOk());
  ASSERT_THAT(WriteModel(o, tmp.path() / "streamed2"), IsOk());
  EXPECT_TRUE(fs::exists(tmp.path() / "streamed/model.safetensors.index.json"));
  auto a = ReadCheckpoint(tmp.path() / "memory");
  auto b = ReadCheckpoint(tmp.path() / "streamed");
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [name, t] : a) EXPECT_EQ(t.bytes, b[name].bytes) << name;
  for (const auto& e : fs::directory_iterator(tmp.path() / "streamed")) {
    EXPECT_EQ(ReadFile(e.path()),
              ReadFile(tmp.path() / "streamed2" / e.path().filename()))
        << e.path();
  }
  ExpectMatchesManifest(tmp.path() / "streamed", DType::kF16);
}

TEST(MkmodelTest, DeepseekVariants) {
  TempDir tmp;
  ModelOptions o = Tiny("deepseek_v2");
  o.q_lora_rank = 24;
  o.topk_method = "group_limited_greedy";
  o.rope_scaling = "none";
  ASSERT_THAT(WriteModel(o, tmp.path()), IsOk());
  ES_ASSERT_OK_AND_ASSIGN(ModelConfig c, engine::LoadModelConfig(tmp.path()));
  EXPECT_EQ(c.q_lora_rank, 24);
  EXPECT_EQ(c.topk_method, engine::TopkMethod::kGroupLimitedGreedy);
  EXPECT_EQ(c.n_group, 4);
  EXPECT_EQ(c.topk_group, 2);
  EXPECT_EQ(c.rope_scaling.type, engine::RopeType::kDefault);
  EXPECT_FALSE(c.IsMoeLayer(0));
  ExpectMatchesManifest(tmp.path(), DType::kF32);

  ES_ASSERT_OK_AND_ASSIGN(c, [&] {
    EXPECT_THAT(WriteModel(Tiny("deepseek_v3"), tmp.path() / "v3"), IsOk());
    return engine::LoadModelConfig(tmp.path() / "v3");
  }());
  EXPECT_EQ(c.topk_method, engine::TopkMethod::kNoauxTc);
  EXPECT_EQ(c.scoring_func, engine::ScoringFunc::kSigmoid);
  EXPECT_TRUE(c.q_lora_rank.has_value());
  EXPECT_EQ(c.rope_scaling.type, engine::RopeType::kYarn);
  EXPECT_DOUBLE_EQ(c.rope_scaling.mscale_all_dim.value_or(0), 0.707);

  // The wrong gate for the version is refused before anything is written.
  o = Tiny("deepseek_v2");
  o.topk_method = "noaux_tc";
  EXPECT_THAT(WriteModel(o, tmp.path() / "bad"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("topk_method")));
  EXPECT_FALSE(fs::exists(tmp.path() / "bad"));
}

TEST(MkmodelTest, RopeScalingVariantsParse) {
  for (const char* rope : {"none", "linear", "llama3", "yarn"}) {
    ModelOptions o = Tiny("llama");
    o.rope_scaling = rope;
    ES_ASSERT_OK_AND_ASSIGN(std::string text, BuildConfigJson(o));
    ES_ASSERT_OK_AND_ASSIGN(ModelConfig c, engine::ParseModelConfig(text));
    EXPECT_EQ(std::string(engine::RopeTypeName(c.rope_scaling.type)),
              std::string(rope) == "none" ? "default" : rope);
  }
  ModelOptions o = Tiny("llama");
  o.rope_scaling = "dynamic";
  EXPECT_THAT(BuildConfigJson(o), StatusIs(absl::StatusCode::kInvalidArgument,
                                           HasSubstr("dynamic")));
}

TEST(MkmodelTest, PresetsHaveTheAdvertisedSizes) {
  ModelOptions moe;
  moe.preset = "bench-moe";
  ES_ASSERT_OK_AND_ASSIGN(std::string text, BuildConfigJson(moe));
  ES_ASSERT_OK_AND_ASSIGN(ModelConfig c, engine::ParseModelConfig(text));
  EXPECT_EQ(c.arch, engine::Architecture::kDeepseekV2);
  EXPECT_NEAR(engine::TotalParameters(c) / 1e9, 1.1, 0.2);
  EXPECT_NEAR(engine::ActiveParameters(c) / 1e9, 0.2, 0.05);
  ModelOptions dense;
  dense.preset = "bench-dense";
  ES_ASSERT_OK_AND_ASSIGN(text, BuildConfigJson(dense));
  ES_ASSERT_OK_AND_ASSIGN(c, engine::ParseModelConfig(text));
  EXPECT_EQ(c.arch, engine::Architecture::kQwen3);
  EXPECT_NEAR(engine::TotalParameters(c) / 1e9, 0.5, 0.05);
}

TEST(MkmodelTest, BadOptionsAreClearErrors) {
  TempDir tmp;
  EXPECT_THAT(WriteModel(Tiny("gpt2"), tmp.path() / "x"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("unsupported model_type 'gpt2'")));
  EXPECT_THAT(WriteModel(Tiny(""), tmp.path() / "x"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("--arch is required")));
  ModelOptions o = Tiny("qwen3");
  o.preset = "huge";
  EXPECT_THAT(WriteModel(o, tmp.path() / "x"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("unknown preset 'huge'")));
  o = Tiny("mixtral");
  o.experts_per_tok = 20;
  EXPECT_THAT(WriteModel(o, tmp.path() / "x"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("num_experts_per_tok")));
  // A regular file where the directory should be.
  std::ofstream(tmp.path() / "file") << "x";
  absl::Status s = WriteModel(Tiny("qwen3"), tmp.path() / "file" / "sub");
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.message()), HasSubstr("file/sub"));
}

// Greedy decoding with the independent NumPy reference (tests/reference)
// loads every generated architecture and does not collapse into repeating
// one token: the weight scales keep the model's output context-dependent.
TEST(MkmodelTest, GreedyDecodingIsNotDegenerate) {
  const char* src = std::getenv("ES_SOURCE_DIR");
  const fs::path ref =
      fs::path(src ? src : ".") / "tests/reference/hf_reference.py";
  if (!fs::exists(ref) ||
      std::system("/usr/bin/python3 -c 'import numpy' > /dev/null 2>&1") != 0) {
    GTEST_SKIP() << "no NumPy reference";
  }
  TempDir tmp;
  for (const std::string& arch : kArchs) {
    const fs::path dir = tmp.path() / arch;
    ASSERT_THAT(WriteModel(Tiny(arch, DType::kBF16), dir), IsOk());
    const fs::path out = tmp.path() / (arch + ".json");
    const std::string cmd = "/usr/bin/python3 " + ref.string() +
                            " greedy --model " + dir.string() +
                            " --ids 439,355,274,198,39,381,78,11"
                            " --max-new-tokens 24 --out " + out.string();
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
    std::vector<int64_t> gen =
        ReadJson(out)["generated"].get<std::vector<int64_t>>();
    ASSERT_EQ(gen.size(), 24u) << arch;
    std::set<int64_t> distinct(gen.begin(), gen.end());
    EXPECT_GE(distinct.size(), 12u) << arch;
  }
}

// ---- tokenizer ------------------------------------------------------------------

TEST(TokenizerGenTest, ConsistentWithConfigAndRealFormat) {
  TempDir tmp;
  ASSERT_THAT(WriteModel(Tiny("qwen3"), tmp.path()), IsOk());
  Json tok = ReadJson(tmp.path() / "tokenizer.json");
  Json tcfg = ReadJson(tmp.path() / "tokenizer_config.json");
  Json cfg = ReadJson(tmp.path() / "config.json");
  Json gen = ReadJson(tmp.path() / "generation_config.json");
  const Json& vocab = tok["model"]["vocab"];
  EXPECT_GE(vocab.size(), 400u);
  std::map<std::string, int64_t> special;
  for (const Json& t : tok["added_tokens"]) {
    special[t["content"].get<std::string>()] = t["id"].get<int64_t>();
    EXPECT_TRUE(t["special"].get<bool>());
  }
  ASSERT_EQ(special.size(), 3u);
  EXPECT_EQ(cfg["vocab_size"].get<int64_t>(),
            static_cast<int64_t>(vocab.size() + special.size()));
  EXPECT_EQ(cfg["eos_token_id"].get<int64_t>(), special["<|im_end|>"]);
  EXPECT_EQ(cfg["bos_token_id"].get<int64_t>(), special["<|endoftext|>"]);
  EXPECT_EQ(gen["eos_token_id"][0].get<int64_t>(), special["<|im_end|>"]);
  EXPECT_EQ(tcfg["eos_token"].get<std::string>(), "<|im_end|>");
  EXPECT_THAT(tcfg["chat_template"].get<std::string>(),
              HasSubstr("<|im_start|>"));
  for (const auto& [content, id] : special) {
    EXPECT_EQ(tcfg["added_tokens_decoder"][std::to_string(id)]["content"],
              content);
  }
  // Ids are dense: 0..n-1 over vocab + added tokens.
  std::set<int64_t> ids;
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    ids.insert(it.value().get<int64_t>());
  }
  for (const auto& [c, id] : special) ids.insert(id);
  EXPECT_EQ(*ids.begin(), 0);
  EXPECT_EQ(*ids.rbegin(), static_cast<int64_t>(ids.size()) - 1);
  // Every byte has a token; every merge joins two tokens into a token.
  for (int b = 0; b < 256; ++b) {
    EXPECT_TRUE(vocab.contains(ByteToUnicode(static_cast<uint8_t>(b)))) << b;
  }
  EXPECT_EQ(vocab["!"].get<int64_t>(), 0);  // GPT-2 byte order
  EXPECT_EQ(vocab["\xC4\xA0"].get<int64_t>(), 220);  // "Ġ" = space
  for (const Json& m : tok["model"]["merges"]) {
    ASSERT_EQ(m.size(), 2u);
    const std::string a = m[0], b = m[1];
    EXPECT_TRUE(vocab.contains(a) && vocab.contains(b) && vocab.contains(a + b))
        << a << " " << b;
  }
  EXPECT_EQ(tok["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"],
            kQwenPretokenizeRegex);
  EXPECT_EQ(tok["decoder"]["type"], "ByteLevel");
}

TEST(TokenizerGenTest, PreTokenizerFollowsTheQwenRegex) {
  EXPECT_THAT(PreTokenizeAscii("Hello, world! It's 42.\n\n  x  "),
              ::testing::ElementsAre("Hello", ",", " world", "!", " It", "'s",
                                     " ", "4", "2", ".\n\n", " ", " x", "  "));
}

// The Hugging Face tokenizers library (Rust, through its Node binding in
// tests/parity) loads the generated tokenizer.json and round-trips text.
TEST(TokenizerGenTest, LoadsInHuggingFaceTokenizers) {
  const char* src = std::getenv("ES_SOURCE_DIR");
  const fs::path parity = fs::path(src ? src : ".") / "tests/parity";
  if (!fs::exists(parity / "node_modules/@anush008/tokenizers") ||
      std::system("node --version > /dev/null 2>&1") != 0) {
    GTEST_SKIP() << "node or @anush008/tokenizers not installed";
  }
  TempDir tmp;
  ASSERT_THAT(WriteModel(Tiny("llama"), tmp.path()), IsOk());
  const fs::path script = tmp.path() / "check.js";
  std::ofstream(script) << R"(
const {Tokenizer} = require(process.argv[2] + '/node_modules/@anush008/tokenizers');
(async () => {
  const t = Tokenizer.fromFile(process.argv[3]);
  const text = '<|im_start|>user\nHello, world! def f(x): return x**2\n\n  The court held 1234 \u00fc\u20ac<|im_end|>';
  const ids = (await t.encode(text)).getIds();
  const back = await t.decode(ids, false);
  if (back !== text) { console.error('round trip failed: ' + back); process.exit(1); }
  if (ids[0] !== Number(process.argv[4])) { console.error('im_start id ' + ids[0]); process.exit(1); }
  if (ids.length >= text.length) { console.error('no merges applied'); process.exit(1); }
})().catch(e => { console.error(e); process.exit(1); });
)";
  Json tok = ReadJson(tmp.path() / "tokenizer.json");
  int64_t im_start = -1;
  for (const Json& t : tok["added_tokens"]) {
    if (t["content"] == "<|im_start|>") im_start = t["id"];
  }
  const std::string cmd = "node " + script.string() + " " + parity.string() +
                          " " + (tmp.path() / "tokenizer.json").string() + " " +
                          std::to_string(im_start);
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
}

// ---- ESFT adapters ----------------------------------------------------------------

class AdapterTest : public ::testing::TestWithParam<std::string> {};

TEST_P(AdapterTest, ExpertCfgMatchesTensors) {
  TempDir tmp;
  const fs::path base = tmp.path() / "base";
  ASSERT_THAT(WriteModel(Tiny(GetParam(), DType::kBF16), base), IsOk());
  ES_ASSERT_OK_AND_ASSIGN(ModelConfig config, engine::LoadModelConfig(base));
  auto base_tensors = ReadCheckpoint(base);
  const bool has_shared = config.shared_expert_intermediate_size > 0;
  for (uint64_t seed : {1, 2, 3, 4}) {
    const fs::path dir = tmp.path() / ("adapter" + std::to_string(seed));
    const bool shared = has_shared && seed % 2 == 0;
    ASSERT_THAT(WriteAdapter(base, {.seed = seed, .shared_experts = shared}, dir),
                IsOk());
    Json cfg = ReadJson(dir / "expert_cfg.json");
    EXPECT_EQ(cfg["shared_experts"].get<bool>(), shared);
    EXPECT_EQ(cfg["non_expert_modules"].get<bool>(), false);
    std::set<std::string> expected;
    std::set<std::string> keys;
    size_t listed = 0;
    for (auto it = cfg["experts"].begin(); it != cfg["experts"].end(); ++it) {
      keys.insert(it.key());
      const int64_t layer = std::stoll(it.key());
      EXPECT_TRUE(config.IsMoeLayer(layer)) << layer;
      std::vector<int64_t> ids = it.value().get<std::vector<int64_t>>();
      EXPECT_LE(ids.size(), 6u);
      listed += ids.size();
      EXPECT_EQ(std::set<int64_t>(ids.begin(), ids.end()).size(), ids.size());
      for (int64_t e : ids) {
        EXPECT_GE(e, 0);
        EXPECT_LT(e, config.num_experts);
        for (const TensorSpec& t : engine::RoutedExpertTensors(config, layer, e)) {
          expected.insert(t.name);
        }
      }
      if (shared) {
        for (const TensorSpec& t : engine::SharedExpertTensors(config, layer)) {
          expected.insert(t.name);
        }
      }
    }
    EXPECT_GT(listed, 0u);
    std::set<std::string> moe_keys;
    for (int64_t l : config.MoeLayers()) moe_keys.insert(std::to_string(l));
    EXPECT_EQ(keys, moe_keys) << "every MoE layer has a key, no other layer";
    auto stored = ReadCheckpoint(dir);
    std::set<std::string> names;
    for (const auto& [name, t] : stored) {
      names.insert(name);
      ASSERT_TRUE(base_tensors.count(name)) << name;
      EXPECT_EQ(t.shape, base_tensors[name].shape) << name;
      EXPECT_EQ(t.dtype, "BF16") << name;  // the base's dtype
      EXPECT_NE(t.bytes, base_tensors[name].bytes) << name << " unchanged";
    }
    EXPECT_EQ(names, expected);
  }
}

TEST_P(AdapterTest, Deterministic) {
  TempDir tmp;
  const fs::path base = tmp.path() / "base";
  ASSERT_THAT(WriteModel(Tiny(GetParam()), base), IsOk());
  ASSERT_THAT(WriteAdapter(base, {.seed = 5}, tmp.path() / "a"), IsOk());
  ASSERT_THAT(WriteAdapter(base, {.seed = 5}, tmp.path() / "b"), IsOk());
  ASSERT_THAT(WriteAdapter(base, {.seed = 6}, tmp.path() / "c"), IsOk());
  for (const char* f : {"expert_cfg.json", "model.safetensors"}) {
    EXPECT_EQ(ReadFile(tmp.path() / "a" / f), ReadFile(tmp.path() / "b" / f));
  }
  EXPECT_NE(ReadFile(tmp.path() / "a" / "model.safetensors"),
            ReadFile(tmp.path() / "c" / "model.safetensors"));
}

INSTANTIATE_TEST_SUITE_P(MoeArchs, AdapterTest,
                         ::testing::Values("mixtral", "qwen2_moe", "qwen3_moe",
                                           "deepseek_v2", "deepseek_v3"));

TEST(AdapterErrorsTest, ClearErrors) {
  TempDir tmp;
  ASSERT_THAT(WriteModel(Tiny("qwen3"), tmp.path() / "dense"), IsOk());
  EXPECT_THAT(WriteAdapter(tmp.path() / "dense", {}, tmp.path() / "a"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("not an MoE model")));
  EXPECT_THAT(WriteAdapter(tmp.path() / "missing", {}, tmp.path() / "a"),
              StatusIs(absl::StatusCode::kNotFound));
  ASSERT_THAT(WriteModel(Tiny("qwen3_moe"), tmp.path() / "moe"), IsOk());
  EXPECT_THAT(WriteAdapter(tmp.path() / "moe", {.shared_experts = true},
                           tmp.path() / "a"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("no shared experts")));
}

// ---- demo and CLI -------------------------------------------------------------------

TEST(MkmodelTest, DemoSet) {
  TempDir tmp;
  ASSERT_THAT(WriteDemo(tmp.path(), DType::kBF16), IsOk());
  const std::vector<std::pair<std::string, engine::Architecture>> models = {
      {"chat", engine::Architecture::kQwen3},
      {"code", engine::Architecture::kLlama},
      {"moe", engine::Architecture::kDeepseekV2}};
  for (const auto& [name, arch] : models) {
    ES_ASSERT_OK_AND_ASSIGN(
        ModelConfig c, engine::LoadModelConfig(tmp.path() / "models" / name));
    EXPECT_EQ(c.arch, arch) << name;
    ExpectMatchesManifest(tmp.path() / "models" / name, DType::kBF16);
  }
  for (const char* a : {"math", "law"}) {
    EXPECT_TRUE(fs::exists(tmp.path() / "adapters" / a / "expert_cfg.json"));
    EXPECT_TRUE(fs::exists(tmp.path() / "adapters" / a / "model.safetensors"));
  }
  EXPECT_TRUE(ReadJson(tmp.path() / "adapters/law/expert_cfg.json")
                  ["shared_experts"].get<bool>());
}

int RunCli(const std::string& args, std::string* output) {
  const char* bin = std::getenv("ES_BINARY_DIR");
  const fs::path exe = fs::path(bin ? bin : "build") / "bin/expertserve-mkmodel";
  TempDir tmp;
  const std::string cmd =
      exe.string() + " " + args + " > " + (tmp.path() / "out").string() + " 2>&1";
  const int rc = std::system(cmd.c_str());
  *output = ReadFile(tmp.path() / "out");
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

TEST(MkmodelCliTest, WritesAndReportsErrors) {
  TempDir tmp;
  std::string out;
  EXPECT_EQ(RunCli("--arch mixtral --dtype bf16 --seed 3 --out " +
                       (tmp.path() / "m").string(),
                   &out),
            0)
      << out;
  ExpectMatchesManifest(tmp.path() / "m", DType::kBF16);
  EXPECT_EQ(RunCli("--adapter-of " + (tmp.path() / "m").string() + " --out " +
                       (tmp.path() / "a").string() + " --seed 4",
                   &out),
            0)
      << out;
  EXPECT_TRUE(fs::exists(tmp.path() / "a" / "expert_cfg.json"));
  EXPECT_EQ(RunCli("--arch gpt2 --out " + (tmp.path() / "x").string(), &out), 2);
  EXPECT_THAT(out, HasSubstr("unsupported model_type 'gpt2'"));
  EXPECT_EQ(RunCli("--arch qwen3 --dtype f64 --out x", &out), 2);
  EXPECT_THAT(out, HasSubstr("--dtype"));
  EXPECT_EQ(RunCli("--arch qwen3 --bogus 1 --out x", &out), 2);
  EXPECT_THAT(out, HasSubstr("unknown option '--bogus'"));
  EXPECT_EQ(RunCli("--arch qwen3 --out /proc/mkmodel-not-writable", &out), 2);
  EXPECT_THAT(out, HasSubstr("/proc/mkmodel-not-writable"));
  EXPECT_EQ(RunCli("--help", &out), 0);
  EXPECT_THAT(out, HasSubstr("--adapter-of"));
}

}  // namespace
}  // namespace expertserve::mkmodel
