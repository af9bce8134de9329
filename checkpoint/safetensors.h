// Safetensors checkpoints, read in place through mmap and written by the
// test-checkpoint generator. Format: 8-byte little-endian header length N,
// N bytes of JSON {name: {dtype, shape, data_offsets: [begin, end]}, ...,
// "__metadata__": {str: str}}, then the tensor bytes.
#ifndef EXPERTSERVE_CHECKPOINT_SAFETENSORS_H_
#define EXPERTSERVE_CHECKPOINT_SAFETENSORS_H_

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "checkpoint/dtype.h"

namespace expertserve::checkpoint {

// One tensor's header entry. Offsets are relative to the start of the data
// section (the byte after the header), as in the file.
struct TensorInfo {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  uint64_t data_begin = 0;  // bytes, relative to the data section
  uint64_t data_end = 0;

  int64_t num_elements() const;
};

// A tensor of an open file: the header entry plus a pointer into the mapping.
// `data` is only as aligned as the file makes it: read it with memcpy (as
// ToF32 / TensorToF32 do) unless the caller has checked the alignment.
struct TensorView {
  const TensorInfo* info = nullptr;
  const std::byte* data = nullptr;  // [size_bytes], valid while the file lives
  size_t size_bytes = 0;
};

struct ParsedHeader {
  std::vector<TensorInfo> tensors;            // in file order
  std::map<std::string, std::string> metadata;  // "__metadata__"
  uint64_t data_offset = 0;  // absolute file offset of the data section
};

// Validates and parses the header of a whole safetensors file held in memory.
// Never reads outside `file`. Errors (kDataLoss for corrupt data,
// kInvalidArgument for unsupported dtypes) name the tensor and the problem:
// truncation, header length beyond the file, bad JSON, unknown dtype, absurd
// shapes, offsets out of range, overlapping or size-mismatched tensors.
absl::StatusOr<ParsedHeader> ParseSafetensorsHeader(
    std::span<const std::byte> file);
// As above; `source` (e.g. the file path) prefixes every error message.
absl::StatusOr<ParsedHeader> ParseSafetensorsHeader(
    std::span<const std::byte> file, std::string_view source);

// One memory-mapped .safetensors file. Immutable after Open: thread-safe.
class SafetensorsFile {
 public:
  static absl::StatusOr<std::unique_ptr<SafetensorsFile>> Open(
      const std::filesystem::path& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::filesystem::path& path() const { return path_; }
  const std::vector<TensorInfo>& tensors() const { return header_.tensors; }
  const std::map<std::string, std::string>& metadata() const {
    return header_.metadata;
  }
  // nullopt-like: returns a view with info == nullptr when absent.
  TensorView Find(std::string_view name) const;

 private:
  SafetensorsFile() = default;
  std::filesystem::path path_;
  void* mapping_ = nullptr;
  size_t mapping_bytes_ = 0;
  ParsedHeader header_;
  std::map<std::string, size_t, std::less<>> index_;  // name -> tensors[i]
};

// A Hugging Face checkpoint directory: model.safetensors, or shards listed by
// model.safetensors.index.json ("weight_map": {tensor: file}). Every shard is
// mapped once. Immutable after Open: thread-safe.
class Checkpoint {
 public:
  static absl::StatusOr<std::unique_ptr<Checkpoint>> Open(
      const std::filesystem::path& dir);

  // Opens every *.safetensors file in `dir` (ESFT adapters: every file in the
  // directory belongs to the adapter), honouring an index file if present.
  static absl::StatusOr<std::unique_ptr<Checkpoint>> OpenAllFiles(
      const std::filesystem::path& dir);

  const std::filesystem::path& dir() const { return dir_; }
  TensorView Find(std::string_view name) const;  // info == nullptr if absent
  std::vector<std::string> TensorNames() const;  // sorted
  const std::vector<std::unique_ptr<SafetensorsFile>>& files() const {
    return files_;
  }

 private:
  Checkpoint() = default;
  // Opens the shards named by dir/model.safetensors.index.json and checks
  // that the index and the shards agree exactly.
  static absl::StatusOr<std::unique_ptr<Checkpoint>> OpenIndexed(
      const std::filesystem::path& dir);
  std::filesystem::path dir_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, const SafetensorsFile*, std::less<>> by_name_;
};

// A tensor to write; `data` holds shape-product * DTypeSize(dtype) bytes.
struct TensorToWrite {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  std::span<const std::byte> data;
};

// Writes one safetensors file (header padded to 8 bytes, tensors in the given
// order, metadata e.g. {"format": "pt"}).
absl::Status WriteSafetensors(const std::filesystem::path& path,
                              std::span<const TensorToWrite> tensors,
                              const std::map<std::string, std::string>& metadata =
                                  {{"format", "pt"}});

// Writes `tensors` to `dir` as model.safetensors, or, when their total exceeds
// `max_shard_bytes`, as model-0000i-of-0000n.safetensors shards plus
// model.safetensors.index.json, exactly as Hugging Face names them.
// Files of an earlier save in `dir` (model.safetensors, the index, model-*-of-*
// shards) are removed first, as save_pretrained does.
absl::Status WriteCheckpointTensors(const std::filesystem::path& dir,
                                    std::span<const TensorToWrite> tensors,
                                    uint64_t max_shard_bytes);

// Copies a tensor out as floats ([num_elements]); empty if view.info is null.
std::vector<float> TensorToF32(const TensorView& view);

}  // namespace expertserve::checkpoint

#endif  // EXPERTSERVE_CHECKPOINT_SAFETENSORS_H_
