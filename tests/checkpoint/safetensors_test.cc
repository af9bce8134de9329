#include "checkpoint/safetensors.h"

#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/fixtures/status_matchers.h"

namespace expertserve::checkpoint {
namespace {

namespace fs = std::filesystem;
using ::expertserve::testing::StatusIs;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr auto kDataLoss = absl::StatusCode::kDataLoss;

// A raw safetensors image: 8-byte little-endian length, `header`, then
// `data_bytes` bytes of data (0, 1, 2, ...). `length` overrides the prefix.
std::vector<std::byte> Raw(std::string_view header, size_t data_bytes,
                           std::optional<uint64_t> length = std::nullopt) {
  const uint64_t n = length.value_or(header.size());
  std::vector<std::byte> out(8);
  for (int i = 0; i < 8; ++i) out[i] = std::byte((n >> (8 * i)) & 0xFF);
  for (char c : header) out.push_back(std::byte(c));
  for (size_t i = 0; i < data_bytes; ++i) out.push_back(std::byte(i & 0xFF));
  return out;
}

absl::StatusOr<ParsedHeader> Parse(std::string_view header, size_t data_bytes) {
  return ParseSafetensorsHeader(Raw(header, data_bytes));
}

void WriteBytes(const fs::path& p, const std::vector<std::byte>& b) {
  std::ofstream out(p, std::ios::binary);
  out.write(reinterpret_cast<const char*>(b.data()),
            static_cast<std::streamsize>(b.size()));
}

std::string ReadText(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

template <typename T>
std::span<const std::byte> AsBytes(const std::vector<T>& v) {
  return std::as_bytes(std::span<const T>(v));
}

class SafetensorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::path(::testing::TempDir()) /
           (std::string("es_ckpt_") + info->name() + "_" +
            std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

// ---- round trips ------------------------------------------------------------

TEST_F(SafetensorsTest, RoundTripAllDtypesScalarEmptyAndMetadata) {
  const std::vector<float> f32 = {1, 2, 3, 4, 5, -6};
  const std::vector<uint16_t> f16 = {0x3C00, 0xC000, 0x7BFF, 0x0001};
  const std::vector<uint16_t> bf16 = {0x3F80, 0x4049, 0xFF80, 0x0000};
  const std::vector<float> scalar = {42.5f};
  const std::vector<std::byte> none;
  const std::vector<TensorToWrite> tensors = {
      {"w.f32", DType::kF32, {2, 3}, AsBytes(f32)},
      {"w.f16", DType::kF16, {4}, AsBytes(f16)},
      {"w.bf16", DType::kBF16, {2, 1, 2}, AsBytes(bf16)},
      {"scalar", DType::kF32, {}, AsBytes(scalar)},
      {"empty", DType::kBF16, {0, 7}, none},
  };
  const fs::path path = dir_ / "t.safetensors";
  ES_ASSERT_OK(WriteSafetensors(path, tensors,
                                {{"format", "pt"}, {"note", "héllo"}}));

  // Layout, checked on the raw bytes: length prefix, space padding to a
  // multiple of 8, a JSON header, then the tensors back to back in order.
  const std::string raw = ReadText(path);
  uint64_t n;
  std::memcpy(&n, raw.data(), 8);
  EXPECT_EQ(n % 8, 0u);
  const std::string header = raw.substr(8, n);
  EXPECT_EQ(header.front(), '{');
  EXPECT_EQ(header.find_last_not_of(' '), header.rfind('}'));
  const auto j = nlohmann::json::parse(header);
  EXPECT_EQ(j["__metadata__"]["format"], "pt");
  EXPECT_EQ(j["w.f32"]["data_offsets"], nlohmann::json({0, 24}));
  EXPECT_EQ(j["w.f16"]["data_offsets"], nlohmann::json({24, 32}));
  EXPECT_EQ(j["w.bf16"]["data_offsets"], nlohmann::json({32, 40}));
  EXPECT_EQ(j["scalar"]["data_offsets"], nlohmann::json({40, 44}));
  EXPECT_EQ(j["scalar"]["shape"], nlohmann::json::array());
  EXPECT_EQ(j["empty"]["data_offsets"], nlohmann::json({44, 44}));
  EXPECT_EQ(raw.size(), 8 + n + 44);

  ES_ASSERT_OK_AND_ASSIGN(auto file, SafetensorsFile::Open(path));
  ASSERT_EQ(file->tensors().size(), 5u);
  EXPECT_EQ(file->tensors()[0].name, "w.f32");  // file (data) order
  EXPECT_EQ(file->tensors()[4].name, "empty");
  EXPECT_EQ(file->metadata().at("note"), "héllo");

  TensorView v = file->Find("w.f32");
  ASSERT_NE(v.info, nullptr);
  EXPECT_EQ(v.info->dtype, DType::kF32);
  EXPECT_THAT(v.info->shape, ElementsAre(2, 3));
  EXPECT_EQ(v.info->num_elements(), 6);
  EXPECT_EQ(TensorToF32(v), f32);

  v = file->Find("w.f16");
  ASSERT_NE(v.info, nullptr);
  EXPECT_EQ(v.info->dtype, DType::kF16);
  ASSERT_EQ(v.size_bytes, 8u);
  EXPECT_EQ(std::memcmp(v.data, f16.data(), 8), 0);
  EXPECT_THAT(TensorToF32(v), ElementsAre(1.0f, -2.0f, 65504.0f,
                                          F16ToF32(0x0001)));

  v = file->Find("w.bf16");
  ASSERT_NE(v.info, nullptr);
  EXPECT_EQ(v.info->dtype, DType::kBF16);
  EXPECT_THAT(v.info->shape, ElementsAre(2, 1, 2));
  EXPECT_EQ(std::memcmp(v.data, bf16.data(), 8), 0);

  v = file->Find("scalar");
  ASSERT_NE(v.info, nullptr);
  EXPECT_TRUE(v.info->shape.empty());
  EXPECT_EQ(v.info->num_elements(), 1);
  EXPECT_THAT(TensorToF32(v), ElementsAre(42.5f));

  v = file->Find("empty");
  ASSERT_NE(v.info, nullptr);
  EXPECT_EQ(v.info->num_elements(), 0);
  EXPECT_EQ(v.size_bytes, 0u);

  EXPECT_EQ(file->Find("absent").info, nullptr);
}

TEST_F(SafetensorsTest, EmptyFileWithoutTensors) {
  ES_ASSERT_OK(WriteSafetensors(dir_ / "e.safetensors", {}, {}));
  ES_ASSERT_OK_AND_ASSIGN(auto file,
                          SafetensorsFile::Open(dir_ / "e.safetensors"));
  EXPECT_TRUE(file->tensors().empty());
  EXPECT_TRUE(file->metadata().empty());
}

// The tensor bytes are the file's pages, not a copy: the pointer lies inside
// a mapping of the file (checked in /proc/self/maps).
TEST_F(SafetensorsTest, OpenMapsTheFileInPlace) {
  const std::vector<float> data(4096, 1.0f);
  const std::vector<TensorToWrite> t = {{"x", DType::kF32, {4096}, AsBytes(data)}};
  const fs::path path = dir_ / "m.safetensors";
  ES_ASSERT_OK(WriteSafetensors(path, t));
  ES_ASSERT_OK_AND_ASSIGN(auto file, SafetensorsFile::Open(path));
  const auto addr = reinterpret_cast<uintptr_t>(file->Find("x").data);
  std::ifstream maps("/proc/self/maps");
  std::string line;
  bool found = false;
  while (std::getline(maps, line)) {
    std::istringstream in(line);
    std::string range, perms, offset, dev, inode, name;
    in >> range >> perms >> offset >> dev >> inode >> name;
    const auto dash = range.find('-');
    const uintptr_t lo = std::stoull(range.substr(0, dash), nullptr, 16);
    const uintptr_t hi = std::stoull(range.substr(dash + 1), nullptr, 16);
    if (addr >= lo && addr < hi) {
      found = true;
      EXPECT_EQ(fs::path(name), fs::canonical(path)) << line;
      EXPECT_EQ(perms.substr(0, 2), "r-") << line;
    }
  }
  EXPECT_TRUE(found);
}

TEST_F(SafetensorsTest, ShardedRoundTrip) {
  std::vector<std::vector<float>> data;
  std::vector<TensorToWrite> tensors;
  data.reserve(5);
  for (int i = 0; i < 5; ++i) data.push_back(std::vector<float>(10, 1.0f * i));
  for (int i = 0; i < 5; ++i) {
    tensors.push_back({"layer." + std::to_string(i) + ".w", DType::kF32, {10},
                       AsBytes(data[i])});
  }
  // 40 bytes each, 100 per shard: 2 + 2 + 1 tensors.
  ES_ASSERT_OK(WriteCheckpointTensors(dir_, tensors, 100));
  EXPECT_FALSE(fs::exists(dir_ / "model.safetensors"));
  for (const char* f : {"model-00001-of-00003.safetensors",
                        "model-00002-of-00003.safetensors",
                        "model-00003-of-00003.safetensors"}) {
    EXPECT_TRUE(fs::exists(dir_ / f)) << f;
  }
  const auto index =
      nlohmann::json::parse(ReadText(dir_ / "model.safetensors.index.json"));
  EXPECT_EQ(index["metadata"]["total_size"], 200);
  EXPECT_EQ(index["weight_map"]["layer.0.w"], "model-00001-of-00003.safetensors");
  EXPECT_EQ(index["weight_map"]["layer.3.w"], "model-00002-of-00003.safetensors");
  EXPECT_EQ(index["weight_map"]["layer.4.w"], "model-00003-of-00003.safetensors");

  ES_ASSERT_OK_AND_ASSIGN(auto ckpt, Checkpoint::Open(dir_));
  EXPECT_EQ(ckpt->files().size(), 3u);
  EXPECT_THAT(ckpt->TensorNames(),
              ElementsAre("layer.0.w", "layer.1.w", "layer.2.w", "layer.3.w",
                          "layer.4.w"));
  for (int i = 0; i < 5; ++i) {
    const TensorView v = ckpt->Find("layer." + std::to_string(i) + ".w");
    ASSERT_NE(v.info, nullptr);
    EXPECT_EQ(TensorToF32(v), data[i]);
  }
  EXPECT_EQ(ckpt->Find("nope").info, nullptr);

  // A later unsharded save replaces the shards and the index.
  ES_ASSERT_OK(WriteCheckpointTensors(dir_, tensors, 1000));
  EXPECT_TRUE(fs::exists(dir_ / "model.safetensors"));
  EXPECT_FALSE(fs::exists(dir_ / "model.safetensors.index.json"));
  EXPECT_FALSE(fs::exists(dir_ / "model-00001-of-00003.safetensors"));
  ES_ASSERT_OK_AND_ASSIGN(ckpt, Checkpoint::Open(dir_));
  EXPECT_EQ(ckpt->files().size(), 1u);
  EXPECT_EQ(TensorToF32(ckpt->Find("layer.4.w")), data[4]);
}

TEST_F(SafetensorsTest, OversizedTensorGetsItsOwnShard) {
  const std::vector<float> big(100, 1.0f), small(2, 2.0f);
  const std::vector<TensorToWrite> tensors = {
      {"a", DType::kF32, {2}, AsBytes(small)},
      {"b", DType::kF32, {100}, AsBytes(big)},
      {"c", DType::kF32, {2}, AsBytes(small)}};
  ES_ASSERT_OK(WriteCheckpointTensors(dir_, tensors, 16));
  ES_ASSERT_OK_AND_ASSIGN(auto ckpt, Checkpoint::Open(dir_));
  EXPECT_EQ(ckpt->files().size(), 3u);
  EXPECT_EQ(TensorToF32(ckpt->Find("b")), big);
}

TEST_F(SafetensorsTest, WriterRejectsBadInput) {
  const std::vector<float> d(3, 0.0f);
  const std::vector<TensorToWrite> wrong_size = {{"a", DType::kF32, {2}, AsBytes(d)}};
  EXPECT_THAT(WriteSafetensors(dir_ / "x.safetensors", wrong_size),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("'a'"), HasSubstr("needs 8 bytes, got 12"))));
  const std::vector<TensorToWrite> dup = {{"a", DType::kF32, {3}, AsBytes(d)},
                                          {"a", DType::kF32, {3}, AsBytes(d)}};
  EXPECT_THAT(WriteSafetensors(dir_ / "x.safetensors", dup),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("twice")));
  EXPECT_FALSE(fs::exists(dir_ / "x.safetensors"));
}

TEST_F(SafetensorsTest, OpenAllFilesMergesEveryFile) {
  const std::vector<float> d(2, 3.0f);
  const std::vector<TensorToWrite> a = {{"experts.1.w", DType::kF32, {2}, AsBytes(d)}};
  const std::vector<TensorToWrite> b = {{"experts.7.w", DType::kF32, {2}, AsBytes(d)}};
  ES_ASSERT_OK(WriteSafetensors(dir_ / "a.safetensors", a));
  ES_ASSERT_OK(WriteSafetensors(dir_ / "b.safetensors", b));
  ES_ASSERT_OK_AND_ASSIGN(auto ckpt, Checkpoint::OpenAllFiles(dir_));
  EXPECT_THAT(ckpt->TensorNames(), ElementsAre("experts.1.w", "experts.7.w"));
  EXPECT_EQ(ckpt->files().size(), 2u);

  ES_ASSERT_OK(WriteSafetensors(dir_ / "c.safetensors", a));
  EXPECT_THAT(Checkpoint::OpenAllFiles(dir_),
              StatusIs(kDataLoss, AllOf(HasSubstr("'experts.1.w'"),
                                        HasSubstr("a.safetensors"),
                                        HasSubstr("c.safetensors"))));
}

TEST_F(SafetensorsTest, MissingDirectoryOrFiles) {
  EXPECT_THAT(Checkpoint::Open(dir_ / "nope"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("does not exist")));
  EXPECT_THAT(Checkpoint::Open(dir_),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr("neither model.safetensors")));
  EXPECT_THAT(Checkpoint::OpenAllFiles(dir_),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr("no *.safetensors")));
  EXPECT_THAT(SafetensorsFile::Open(dir_ / "x.safetensors"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("x.safetensors")));
}

// ---- corruption: every class of hostile header ------------------------------

TEST(SafetensorsCorruptTest, ShorterThanLengthPrefix) {
  std::vector<std::byte> five(5);
  EXPECT_THAT(ParseSafetensorsHeader(five),
              StatusIs(kDataLoss, HasSubstr("5 bytes, shorter than the 8-byte")));
  EXPECT_THAT(ParseSafetensorsHeader({}), StatusIs(kDataLoss));
}

TEST(SafetensorsCorruptTest, HeaderLengthBeyondFile) {
  EXPECT_THAT(ParseSafetensorsHeader(Raw("{}", 0, 100)),
              StatusIs(kDataLoss, AllOf(HasSubstr("header length 100"),
                                        HasSubstr("10-byte file"))));
}

TEST(SafetensorsCorruptTest, HeaderLengthAbsurd) {
  EXPECT_THAT(ParseSafetensorsHeader(Raw("{}", 0, uint64_t{1} << 62)),
              StatusIs(kDataLoss, HasSubstr("exceeds the 100000000-byte limit")));
  EXPECT_THAT(ParseSafetensorsHeader(Raw("{}", 0, ~uint64_t{0})),
              StatusIs(kDataLoss, HasSubstr("limit")));
}

TEST(SafetensorsCorruptTest, HeaderNotUtf8) {
  EXPECT_THAT(Parse("{\"a\xff\": 1}", 0),
              StatusIs(kDataLoss, HasSubstr("not valid UTF-8 (byte 3")));
  // Overlong encoding of '/' and a lone surrogate.
  EXPECT_THAT(Parse("{\"\xc0\xaf\": 1}", 0),
              StatusIs(kDataLoss, HasSubstr("UTF-8")));
  EXPECT_THAT(Parse("{\"\xed\xa0\x80\": 1}", 0),
              StatusIs(kDataLoss, HasSubstr("UTF-8")));
}

TEST(SafetensorsCorruptTest, HeaderNotJson) {
  EXPECT_THAT(Parse("{\"a\": ", 0),
              StatusIs(kDataLoss, HasSubstr("header is not valid JSON")));
  EXPECT_THAT(Parse("", 0), StatusIs(kDataLoss, HasSubstr("not valid JSON")));
}

TEST(SafetensorsCorruptTest, HeaderNotObject) {
  EXPECT_THAT(Parse("[1, 2]", 0),
              StatusIs(kDataLoss, HasSubstr("must be a JSON object, found array")));
}

TEST(SafetensorsCorruptTest, EntryNotObject) {
  EXPECT_THAT(Parse(R"({"w": 3})", 0),
              StatusIs(kDataLoss, AllOf(HasSubstr("tensor 'w'"),
                                        HasSubstr("must be a JSON object"),
                                        HasSubstr("found number 3"))));
}

TEST(SafetensorsCorruptTest, MissingDtype) {
  EXPECT_THAT(Parse(R"({"w": {"shape": [1], "data_offsets": [0, 4]}})", 4),
              StatusIs(kDataLoss, AllOf(HasSubstr("tensor 'w'"),
                                        HasSubstr("missing \"dtype\""))));
}

TEST(SafetensorsCorruptTest, MissingShape) {
  EXPECT_THAT(Parse(R"({"w": {"dtype": "F32", "data_offsets": [0, 4]}})", 4),
              StatusIs(kDataLoss, HasSubstr("missing \"shape\"")));
}

TEST(SafetensorsCorruptTest, MissingDataOffsets) {
  EXPECT_THAT(Parse(R"({"w": {"dtype": "F32", "shape": [1]}})", 4),
              StatusIs(kDataLoss, HasSubstr("missing \"data_offsets\"")));
}

TEST(SafetensorsCorruptTest, DtypeWrongType) {
  EXPECT_THAT(
      Parse(R"({"w": {"dtype": 7, "shape": [1], "data_offsets": [0, 4]}})", 4),
      StatusIs(kDataLoss, HasSubstr("\"dtype\" must be a string, found number 7")));
}

TEST(SafetensorsCorruptTest, ShapeWrongType) {
  EXPECT_THAT(
      Parse(R"({"w": {"dtype": "F32", "shape": "1", "data_offsets": [0, 4]}})", 4),
      StatusIs(kDataLoss, HasSubstr("\"shape\" must be an array of integers, "
                                    "found string '1'")));
  EXPECT_THAT(
      Parse(R"({"w": {"dtype": "F32", "shape": [1.5], "data_offsets": [0, 4]}})", 4),
      StatusIs(kDataLoss, HasSubstr("shape[0] must be a non-negative integer, "
                                    "found number 1.5")));
}

TEST(SafetensorsCorruptTest, DataOffsetsWrongType) {
  EXPECT_THAT(
      Parse(R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0]}})", 4),
      StatusIs(kDataLoss, HasSubstr("found array of 1")));
  EXPECT_THAT(
      Parse(R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": ["0", 4]}})", 4),
      StatusIs(kDataLoss, HasSubstr("non-negative integers, found [string '0'")));
  EXPECT_THAT(
      Parse(R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [-4, 0]}})", 4),
      StatusIs(kDataLoss, HasSubstr("found [number -4")));
}

TEST(SafetensorsCorruptTest, UnsupportedDtypeIsInvalidArgument) {
  EXPECT_THAT(
      Parse(R"({"w": {"dtype": "I8", "shape": [4], "data_offsets": [0, 4]}})", 4),
      StatusIs(absl::StatusCode::kInvalidArgument,
               AllOf(HasSubstr("tensor 'w'"), HasSubstr("\"I8\""),
                     HasSubstr("supported: F32, F16, BF16"))));
}

TEST(SafetensorsCorruptTest, NegativeShape) {
  EXPECT_THAT(
      Parse(R"({"w": {"dtype": "F32", "shape": [2, -1], "data_offsets": [0, 0]}})", 0),
      StatusIs(kDataLoss, AllOf(HasSubstr("tensor 'w'"),
                                HasSubstr("shape[1] is negative (-1)"))));
}

TEST(SafetensorsCorruptTest, AbsurdShape) {
  // Even with a zero dimension (so zero bytes), 2^50 is no real dimension.
  EXPECT_THAT(
      Parse(R"({"w": {"dtype": "F32", "shape": [0, 1125899906842624],
                "data_offsets": [0, 0]}})", 0),
      StatusIs(kDataLoss, HasSubstr("shape[1] = 1125899906842624 is absurdly large")));
  std::string many = R"({"w": {"dtype": "F32", "data_offsets": [0, 4], "shape": [1)";
  for (int i = 0; i < 64; ++i) many += ", 1";
  many += "]}}";
  EXPECT_THAT(Parse(many, 4),
              StatusIs(kDataLoss, HasSubstr("65 dimensions, at most 64")));
}

TEST(SafetensorsCorruptTest, ElementCountOverflow) {
  // 2^40 * 2^40 overflows 64 bits.
  EXPECT_THAT(
      Parse(R"({"w": {"dtype": "F32", "shape": [1099511627776, 1099511627776],
                "data_offsets": [0, 4]}})", 4),
      StatusIs(kDataLoss, HasSubstr("element count of the shape overflows")));
  // 2^31 * 2^31 = 2^62 elements fits, but 2^62 * 4 bytes does not.
  EXPECT_THAT(
      Parse(R"({"w": {"dtype": "F32", "shape": [2147483648, 2147483648],
                "data_offsets": [0, 4]}})", 4),
      StatusIs(kDataLoss, HasSubstr("byte size of the shape overflows")));
}

TEST(SafetensorsCorruptTest, DataOffsetsOutOfRange) {
  EXPECT_THAT(
      Parse(R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})", 4),
      StatusIs(kDataLoss, AllOf(HasSubstr("tensor 'w'"),
                                HasSubstr("[0, 8) run past the data section, "
                                          "which holds 4 bytes"))));
  EXPECT_THAT(
      Parse(R"({"w": {"dtype": "F32", "shape": [0],
                "data_offsets": [18446744073709551615, 18446744073709551615]}})", 0),
      StatusIs(kDataLoss, HasSubstr("run past the data section")));
}

TEST(SafetensorsCorruptTest, BeginAfterEnd) {
  EXPECT_THAT(
      Parse(R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}})", 4),
      StatusIs(kDataLoss, HasSubstr("data_offsets begin 4 is after end 0")));
}

TEST(SafetensorsCorruptTest, SizeMismatch) {
  EXPECT_THAT(
      Parse(R"({"w": {"dtype": "BF16", "shape": [2, 2], "data_offsets": [0, 4]}})", 4),
      StatusIs(kDataLoss, AllOf(HasSubstr("span 4 bytes"),
                                HasSubstr("shape [2, 2] of BF16 needs 8 bytes"))));
}

TEST(SafetensorsCorruptTest, OverlappingTensors) {
  EXPECT_THAT(
      Parse(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})", 12),
      StatusIs(kDataLoss, AllOf(HasSubstr("tensor 'b' bytes [4, 12) overlap "
                                          "tensor 'a' bytes [0, 8)"))));
  // Same range twice, and an empty tensor inside another one.
  EXPECT_THAT(
      Parse(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                "b": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})", 4),
      StatusIs(kDataLoss, HasSubstr("overlap")));
  EXPECT_THAT(
      Parse(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                "e": {"dtype": "F32", "shape": [0], "data_offsets": [4, 4]}})", 8),
      StatusIs(kDataLoss, HasSubstr("tensor 'e' bytes [4, 4) overlap")));
}

TEST(SafetensorsCorruptTest, HoleInDataSection) {
  EXPECT_THAT(
      Parse(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                "b": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]}})", 12),
      StatusIs(kDataLoss, AllOf(HasSubstr("hole of 4 unused bytes"),
                                HasSubstr("tensor 'b'"))));
}

TEST(SafetensorsCorruptTest, TrailingBytesAfterLastTensor) {
  EXPECT_THAT(
      Parse(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})", 6),
      StatusIs(kDataLoss, AllOf(HasSubstr("holds 6 bytes"),
                                HasSubstr("cover only 4"))));
}

TEST(SafetensorsCorruptTest, MetadataNotObject) {
  EXPECT_THAT(Parse(R"({"__metadata__": ["pt"]})", 0),
              StatusIs(kDataLoss, HasSubstr("\"__metadata__\" must be an object "
                                            "of strings, found array")));
}

TEST(SafetensorsCorruptTest, MetadataValueNotString) {
  EXPECT_THAT(Parse(R"({"__metadata__": {"format": "pt", "n": 3}})", 0),
              StatusIs(kDataLoss, AllOf(HasSubstr("key 'n'"),
                                        HasSubstr("must be a string, found "
                                                  "number 3"))));
}

TEST(SafetensorsCorruptTest, DuplicateTensorName) {
  EXPECT_THAT(
      Parse(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                "a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})", 8),
      StatusIs(kDataLoss, HasSubstr("names tensor 'a' twice")));
}

TEST(SafetensorsCorruptTest, DeepNesting) {
  std::string deep = R"({"a": {"dtype": "F32", "shape": )";
  deep += std::string(10000, '[') + std::string(10000, ']') + "}}";
  EXPECT_THAT(Parse(deep, 0), StatusIs(kDataLoss, HasSubstr("deeper")));
}

TEST(SafetensorsCorruptTest, ValidHeaderWithPaddingParses) {
  const std::string header =
      R"({"b": {"dtype": "F16", "shape": [2], "data_offsets": [4, 8]},
          "a": {"dtype": "F32", "shape": [], "data_offsets": [0, 4]},
          "extra_field_ok": {"dtype": "BF16", "shape": [0],
                             "data_offsets": [8, 8], "x": 1}}    )";
  ES_ASSERT_OK_AND_ASSIGN(ParsedHeader h, Parse(header, 8));
  ASSERT_EQ(h.tensors.size(), 3u);
  EXPECT_EQ(h.tensors[0].name, "a");  // data order, not name order
  EXPECT_EQ(h.tensors[1].name, "b");
  EXPECT_EQ(h.tensors[1].data_begin, 4u);
  EXPECT_EQ(h.tensors[1].data_end, 8u);
  EXPECT_EQ(h.data_offset, 8u + header.size());
}

TEST_F(SafetensorsTest, FileErrorsNameThePath) {
  WriteBytes(dir_ / "bad.safetensors",
             Raw(R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}})", 4));
  EXPECT_THAT(SafetensorsFile::Open(dir_ / "bad.safetensors"),
              StatusIs(kDataLoss, AllOf(HasSubstr("bad.safetensors"),
                                        HasSubstr("tensor 'w'"))));
  WriteBytes(dir_ / "empty.safetensors", {});
  EXPECT_THAT(SafetensorsFile::Open(dir_ / "empty.safetensors"),
              StatusIs(kDataLoss, AllOf(HasSubstr("empty.safetensors"),
                                        HasSubstr("0 bytes"))));
}

// ---- index errors -----------------------------------------------------------

class IndexTest : public SafetensorsTest {
 protected:
  // Writes shard `name` holding float tensors `tensors` (1 element each).
  void Shard(const std::string& name, const std::vector<std::string>& tensors) {
    std::vector<TensorToWrite> t;
    for (const auto& n : tensors) t.push_back({n, DType::kF32, {1}, AsBytes(one_)});
    ES_ASSERT_OK(WriteSafetensors(dir_ / name, t));
  }
  void Index(const std::string& text) {
    std::ofstream(dir_ / "model.safetensors.index.json") << text;
  }
  const std::vector<float> one_ = {1.0f};
};

TEST_F(IndexTest, ValidIndexOpens) {
  Shard("s1.safetensors", {"a", "b"});
  Shard("s2.safetensors", {"c"});
  Index(R"({"metadata": {"total_size": 12}, "weight_map":
           {"a": "s1.safetensors", "b": "s1.safetensors", "c": "s2.safetensors"}})");
  ES_ASSERT_OK_AND_ASSIGN(auto ckpt, Checkpoint::Open(dir_));
  EXPECT_THAT(ckpt->TensorNames(), ElementsAre("a", "b", "c"));
  // OpenAllFiles honours the index too.
  ES_ASSERT_OK_AND_ASSIGN(ckpt, Checkpoint::OpenAllFiles(dir_));
  EXPECT_EQ(ckpt->files().size(), 2u);
}

TEST_F(IndexTest, ShardFileMissing) {
  Shard("s1.safetensors", {"a"});
  Index(R"({"weight_map": {"a": "s1.safetensors", "b": "s2.safetensors"}})");
  EXPECT_THAT(Checkpoint::Open(dir_),
              StatusIs(kDataLoss, AllOf(HasSubstr("shard file s2.safetensors"),
                                        HasSubstr("tensor 'b'"),
                                        HasSubstr("does not exist"))));
}

TEST_F(IndexTest, TensorListedButMissingFromShard) {
  Shard("s1.safetensors", {"a"});
  Index(R"({"weight_map": {"a": "s1.safetensors", "b": "s1.safetensors"}})");
  EXPECT_THAT(Checkpoint::Open(dir_),
              StatusIs(kDataLoss, AllOf(HasSubstr("tensor 'b' is listed for "
                                                  "shard s1.safetensors"),
                                        HasSubstr("does not contain it"))));
}

TEST_F(IndexTest, TensorInTwoShards) {
  Shard("s1.safetensors", {"a"});
  Shard("s2.safetensors", {"a", "b"});
  Index(R"({"weight_map": {"a": "s1.safetensors", "b": "s2.safetensors"}})");
  EXPECT_THAT(Checkpoint::Open(dir_),
              StatusIs(kDataLoss, AllOf(HasSubstr("tensor 'a' is present in two "
                                                  "shards, s1.safetensors and "
                                                  "s2.safetensors"))));
}

TEST_F(IndexTest, TensorNotListedInIndex) {
  Shard("s1.safetensors", {"a", "extra"});
  Index(R"({"weight_map": {"a": "s1.safetensors"}})");
  EXPECT_THAT(Checkpoint::Open(dir_),
              StatusIs(kDataLoss, HasSubstr("tensor 'extra' is in shard "
                                            "s1.safetensors but not listed")));
}

TEST_F(IndexTest, TensorInWrongShard) {
  Shard("s1.safetensors", {"a"});
  Shard("s2.safetensors", {"b"});
  Index(R"({"weight_map": {"a": "s2.safetensors", "b": "s1.safetensors"}})");
  EXPECT_THAT(Checkpoint::Open(dir_),
              StatusIs(kDataLoss, HasSubstr("weight_map places it in")));
}

TEST_F(IndexTest, MalformedIndex) {
  Index("{not json");
  EXPECT_THAT(Checkpoint::Open(dir_),
              StatusIs(kDataLoss, AllOf(HasSubstr("model.safetensors.index.json"),
                                        HasSubstr("not valid JSON"))));
  Index(R"({"metadata": {}})");
  EXPECT_THAT(Checkpoint::Open(dir_),
              StatusIs(kDataLoss, HasSubstr("missing \"weight_map\"")));
  Index(R"({"weight_map": {"a": 3}})");
  EXPECT_THAT(Checkpoint::Open(dir_),
              StatusIs(kDataLoss, HasSubstr("found number 3")));
  Index(R"({"weight_map": {"a": "../etc/x.safetensors"}})");
  EXPECT_THAT(Checkpoint::Open(dir_),
              StatusIs(kDataLoss, HasSubstr("not a plain file name")));
}

TEST_F(IndexTest, CorruptShardNamesTheShard) {
  Shard("s1.safetensors", {"a"});
  WriteBytes(dir_ / "s2.safetensors", Raw("{", 0));
  Index(R"({"weight_map": {"a": "s1.safetensors", "b": "s2.safetensors"}})");
  EXPECT_THAT(Checkpoint::Open(dir_),
              StatusIs(kDataLoss, AllOf(HasSubstr("s2.safetensors"),
                                        HasSubstr("not valid JSON"))));
}

// The fuzz seed corpus means what its file names say: valid_* seeds parse,
// every other seed is rejected (so the fuzzer starts from both sides).
TEST(SafetensorsCorpusTest, SeedsParseAsNamed) {
  const char* src = std::getenv("ES_SOURCE_DIR");
  const fs::path dir = fs::path(src ? src : ".") / "tests/fuzz/corpus/safetensors_header";
  ASSERT_TRUE(fs::is_directory(dir)) << dir;
  int valid = 0, invalid = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string text = ReadText(e.path());
    std::vector<std::byte> bytes(text.size());
    std::memcpy(bytes.data(), text.data(), text.size());
    const auto parsed = ParseSafetensorsHeader(bytes);
    if (e.path().filename().string().starts_with("valid_")) {
      EXPECT_TRUE(parsed.ok()) << e.path() << ": " << parsed.status();
      ++valid;
    } else {
      EXPECT_FALSE(parsed.ok()) << e.path();
      ++invalid;
    }
  }
  EXPECT_GE(valid, 3);
  EXPECT_GE(invalid, 10);
}

}  // namespace
}  // namespace expertserve::checkpoint
