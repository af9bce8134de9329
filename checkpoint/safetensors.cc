#include "checkpoint/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <optional>
#include <set>
#include <system_error>
#include <tuple>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/check.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"

namespace expertserve::checkpoint {
namespace {

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian; big-endian hosts need byte "
              "swapping");

using Json = nlohmann::json;

// Debian's Abseil is built without std::string_view aliasing, so its
// string_view is a distinct type: convert explicitly.
absl::string_view Sv(std::string_view s) { return {s.data(), s.size()}; }

constexpr char kIndexFile[] = "model.safetensors.index.json";
constexpr char kSingleFile[] = "model.safetensors";
// The Hugging Face reference (safetensors/src/tensor.rs MAX_HEADER_SIZE)
// rejects headers above 100,000,000 bytes; so do we, before any allocation.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;
// No real tensor has more dimensions or a dimension this large; rejecting them
// keeps element counts far from overflow even with a zero-sized dimension.
constexpr size_t kMaxRank = 64;
constexpr int64_t kMaxDim = int64_t{1} << 48;
// Deepest legitimate nesting: {tensor: {shape: [dims]}} -> depth 3.
constexpr int kMaxJsonDepth = 3;

// "file 'x': " or "" for in-memory input, prefixed to every message.
std::string Where(std::string_view source) {
  return source.empty() ? "safetensors: "
                        : absl::StrCat("safetensors file ", Sv(source), ": ");
}

std::string Quote(std::string_view s) {
  return absl::StrCat("'", absl::CHexEscape(Sv(s)), "'");
}

// Returns the byte offset of the first invalid UTF-8 sequence, or npos.
size_t FindInvalidUtf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    const unsigned char c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return i;
    }
    if (n - i < len) return i;
    for (size_t k = 1; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    // Overlong encodings, surrogates and values beyond U+10FFFF.
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
        (len == 4 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF)) {
      return i;
    }
    i += len;
  }
  return std::string_view::npos;
}

// Reads a non-negative JSON integer; nullopt for any other JSON value.
std::optional<uint64_t> AsUnsigned(const Json& v) {
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  if (v.is_number_integer()) {
    const int64_t x = v.get<int64_t>();
    if (x >= 0) return static_cast<uint64_t>(x);
  }
  return std::nullopt;
}

std::string Describe(const Json& v) {
  if (v.is_number_integer() || v.is_number_unsigned() || v.is_boolean() ||
      v.is_number_float()) {
    return absl::StrCat(v.type_name(), " ", v.dump());
  }
  if (v.is_string()) {
    const auto& s = v.get_ref<const std::string&>();
    return absl::StrCat("string ", Quote(s.size() > 64 ? s.substr(0, 64) : s));
  }
  return v.type_name();  // objects / arrays: never dump, they may be huge
}

// Parses one tensor entry (everything but the data-section checks that need
// all tensors).
absl::Status ParseTensorEntry(const std::string& name, const Json& entry,
                              uint64_t data_bytes, std::string_view where,
                              TensorInfo& info) {
  const std::string t = absl::StrCat(Sv(where), "tensor ", Quote(name), ": ");
  if (!entry.is_object()) {
    return absl::DataLossError(absl::StrCat(
        t, "header entry must be a JSON object with dtype, shape and "
           "data_offsets, found ",
        Describe(entry)));
  }
  info.name = name;

  auto dtype_it = entry.find("dtype");
  if (dtype_it == entry.end()) {
    return absl::DataLossError(absl::StrCat(t, "missing \"dtype\""));
  }
  if (!dtype_it->is_string()) {
    return absl::DataLossError(absl::StrCat(
        t, "\"dtype\" must be a string, found ", Describe(*dtype_it)));
  }
  absl::StatusOr<DType> dtype =
      ParseDType(dtype_it->get_ref<const std::string&>());
  if (!dtype.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(t, dtype.status().message()));
  }
  info.dtype = *dtype;

  auto shape_it = entry.find("shape");
  if (shape_it == entry.end()) {
    return absl::DataLossError(absl::StrCat(t, "missing \"shape\""));
  }
  if (!shape_it->is_array()) {
    return absl::DataLossError(absl::StrCat(
        t, "\"shape\" must be an array of integers, found ",
        Describe(*shape_it)));
  }
  if (shape_it->size() > kMaxRank) {
    return absl::DataLossError(absl::StrCat(t, "shape has ", shape_it->size(),
                                            " dimensions, at most ", kMaxRank,
                                            " are supported"));
  }
  info.shape.clear();
  info.shape.reserve(shape_it->size());
  // Product of the non-zero dimensions, overflow-checked; a zero dimension
  // makes the tensor empty without hiding an absurd neighbour.
  uint64_t nonzero_product = 1;
  bool has_zero = false;
  for (size_t d = 0; d < shape_it->size(); ++d) {
    const Json& dim = (*shape_it)[d];
    if (dim.is_number_integer() && !dim.is_number_unsigned() &&
        dim.get<int64_t>() < 0) {
      return absl::DataLossError(absl::StrCat(t, "shape[", d, "] is negative (",
                                              dim.get<int64_t>(), ")"));
    }
    std::optional<uint64_t> v = AsUnsigned(dim);
    if (!v) {
      return absl::DataLossError(
          absl::StrCat(t, "shape[", d, "] must be a non-negative integer, found ",
                       Describe(dim)));
    }
    if (*v > static_cast<uint64_t>(kMaxDim)) {
      return absl::DataLossError(absl::StrCat(t, "shape[", d, "] = ", *v,
                                              " is absurdly large (limit ",
                                              kMaxDim, ")"));
    }
    if (*v == 0) {
      has_zero = true;
    } else if (__builtin_mul_overflow(nonzero_product, *v, &nonzero_product)) {
      return absl::DataLossError(
          absl::StrCat(t, "element count of the shape overflows 64 bits"));
    }
    info.shape.push_back(static_cast<int64_t>(*v));
  }
  const uint64_t numel = has_zero ? 0 : nonzero_product;
  uint64_t expected_bytes;
  if (numel > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
      __builtin_mul_overflow(numel, DTypeSize(info.dtype), &expected_bytes)) {
    return absl::DataLossError(
        absl::StrCat(t, "byte size of the shape overflows 64 bits"));
  }

  auto off_it = entry.find("data_offsets");
  if (off_it == entry.end()) {
    return absl::DataLossError(absl::StrCat(t, "missing \"data_offsets\""));
  }
  if (!off_it->is_array() || off_it->size() != 2) {
    return absl::DataLossError(absl::StrCat(
        t, "\"data_offsets\" must be an array [begin, end] of two integers, "
           "found ",
        off_it->is_array() ? absl::StrCat("array of ", off_it->size())
                           : Describe(*off_it)));
  }
  std::optional<uint64_t> begin = AsUnsigned((*off_it)[0]);
  std::optional<uint64_t> end = AsUnsigned((*off_it)[1]);
  if (!begin || !end) {
    return absl::DataLossError(absl::StrCat(
        t, "\"data_offsets\" must hold non-negative integers, found [",
        Describe((*off_it)[0]), ", ", Describe((*off_it)[1]), "]"));
  }
  if (*begin > *end) {
    return absl::DataLossError(absl::StrCat(t, "data_offsets begin ", *begin,
                                            " is after end ", *end));
  }
  if (*end > data_bytes) {
    return absl::DataLossError(absl::StrCat(
        t, "data_offsets [", *begin, ", ", *end,
        ") run past the data section, which holds ", data_bytes,
        " bytes (file truncated?)"));
  }
  if (*end - *begin != expected_bytes) {
    return absl::DataLossError(absl::StrCat(
        t, "data_offsets [", *begin, ", ", *end, ") span ", *end - *begin,
        " bytes, but shape [", absl::StrJoin(info.shape, ", "), "] of ",
        Sv(DTypeName(info.dtype)), " needs ", expected_bytes, " bytes"));
  }
  info.data_begin = *begin;
  info.data_end = *end;
  return absl::OkStatus();
}

}  // namespace

int64_t TensorInfo::num_elements() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;  // validated by the parser: cannot overflow
  return n;
}

absl::StatusOr<ParsedHeader> ParseSafetensorsHeader(
    std::span<const std::byte> file, std::string_view source) {
  const std::string where = Where(source);
  if (file.size() < 8) {
    return absl::DataLossError(absl::StrCat(
        where, "file is ", file.size(),
        " bytes, shorter than the 8-byte header length prefix"));
  }
  uint64_t header_bytes;
  std::memcpy(&header_bytes, file.data(), 8);  // little-endian (asserted)
  if (header_bytes > kMaxHeaderBytes) {
    return absl::DataLossError(absl::StrCat(
        where, "header length ", header_bytes, " exceeds the ",
        kMaxHeaderBytes, "-byte limit (corrupt or not a safetensors file)"));
  }
  if (header_bytes > file.size() - 8) {
    return absl::DataLossError(absl::StrCat(
        where, "header length ", header_bytes, " runs past the end of the ",
        file.size(), "-byte file (truncated?)"));
  }
  const std::string_view text(reinterpret_cast<const char*>(file.data()) + 8,
                              header_bytes);
  if (const size_t bad = FindInvalidUtf8(text); bad != std::string_view::npos) {
    return absl::DataLossError(absl::StrCat(
        where, "header is not valid UTF-8 (byte ", bad, " of the header)"));
  }

  // Duplicate tensor names would silently overwrite each other in the DOM,
  // and deep nesting is never legitimate: catch both while parsing.
  std::set<std::string, std::less<>> top_keys;
  std::string duplicate;
  bool too_deep = false;
  auto callback = [&](int depth, Json::parse_event_t event, Json& parsed) {
    if (event == Json::parse_event_t::key && depth == 1) {
      const auto& key = parsed.get_ref<const std::string&>();
      if (!top_keys.insert(key).second && duplicate.empty()) duplicate = key;
    } else if ((event == Json::parse_event_t::object_start ||
                event == Json::parse_event_t::array_start) &&
               depth >= kMaxJsonDepth) {
      too_deep = true;
      return false;  // do not build the nested value
    }
    return true;
  };
  Json header;
  // nlohmann::json reports parse errors by exception; catch them here so that
  // none escapes (std::exception also covers bad_alloc on huge headers).
  try {
    header = Json::parse(text.begin(), text.end(), callback,
                         /*allow_exceptions=*/true);
  } catch (const std::exception& e) {
    return absl::DataLossError(
        absl::StrCat(where, "header is not valid JSON: ", e.what()));
  }
  if (!header.is_object()) {
    return absl::DataLossError(absl::StrCat(
        where, "header must be a JSON object, found ", Describe(header)));
  }
  if (!duplicate.empty()) {
    return absl::DataLossError(absl::StrCat(where, "header names tensor ",
                                            Quote(duplicate), " twice"));
  }
  if (too_deep) {
    return absl::DataLossError(absl::StrCat(
        where, "header nests JSON deeper than {tensor: {field: [values]}}"));
  }

  ParsedHeader out;
  out.data_offset = 8 + header_bytes;
  const uint64_t data_bytes = file.size() - out.data_offset;
  out.tensors.reserve(header.size());
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& key = it.key();
    if (key == "__metadata__") {
      if (!it->is_object()) {
        return absl::DataLossError(absl::StrCat(
            where, "\"__metadata__\" must be an object of strings, found ",
            Describe(*it)));
      }
      for (auto m = it->begin(); m != it->end(); ++m) {
        if (!m->is_string()) {
          return absl::DataLossError(absl::StrCat(
              where, "\"__metadata__\" value for key ", Quote(m.key()),
              " must be a string, found ", Describe(*m)));
        }
        out.metadata.emplace(m.key(), m->get<std::string>());
      }
      continue;
    }
    TensorInfo info;
    ES_RETURN_IF_ERROR(ParseTensorEntry(key, *it, data_bytes, where, info));
    out.tensors.push_back(std::move(info));
  }

  // File order = data order. As in the reference implementation, the tensors
  // must tile the data section exactly: no overlap (two tensors aliasing the
  // same bytes) and no holes (which would allow polyglot files).
  std::sort(out.tensors.begin(), out.tensors.end(),
            [](const TensorInfo& a, const TensorInfo& b) {
              return std::tie(a.data_begin, a.data_end, a.name) <
                     std::tie(b.data_begin, b.data_end, b.name);
            });
  uint64_t covered = 0;
  const TensorInfo* prev = nullptr;
  for (const TensorInfo& t : out.tensors) {
    if (t.data_begin < covered) {
      return absl::DataLossError(absl::StrCat(
          where, "tensor ", Quote(t.name), " bytes [", t.data_begin, ", ",
          t.data_end, ") overlap tensor ", Quote(prev->name), " bytes [",
          prev->data_begin, ", ", prev->data_end, ")"));
    }
    if (t.data_begin > covered) {
      return absl::DataLossError(absl::StrCat(
          where, "hole of ", t.data_begin - covered,
          " unused bytes in the data section before tensor ", Quote(t.name),
          " at offset ", t.data_begin, "; expected it to start at ", covered));
    }
    covered = t.data_end;
    prev = &t;
  }
  if (covered != data_bytes) {
    return absl::DataLossError(absl::StrCat(
        where, "data section holds ", data_bytes, " bytes but the tensors "
        "cover only ", covered, " (trailing bytes after the last tensor)"));
  }
  return out;
}

absl::StatusOr<ParsedHeader> ParseSafetensorsHeader(
    std::span<const std::byte> file) {
  return ParseSafetensorsHeader(file, "");
}

// ---- SafetensorsFile --------------------------------------------------------

absl::StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Open(
    const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    std::string msg = absl::StrCat("cannot open safetensors file ",
                                   path.string(), ": ", std::strerror(err));
    return err == ENOENT ? absl::NotFoundError(msg)
                         : absl::PermissionDeniedError(msg);
  }
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return absl::InvalidArgumentError(absl::StrCat(
        "safetensors path ", path.string(), " is not a regular file"));
  }
  auto file = std::unique_ptr<SafetensorsFile>(new SafetensorsFile());
  file->path_ = path;
  const size_t size = static_cast<size_t>(st.st_size);
  std::span<const std::byte> bytes;
  if (size > 0) {
    // Read-only shared mapping: pages come straight from the page cache, so a
    // checkpoint costs no anonymous memory and no copy. (If another process
    // truncates the file while it is mapped, reads fault: do not do that.)
    void* p = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
      const int err = errno;
      ::close(fd);
      return absl::ResourceExhaustedError(
          absl::StrCat("cannot mmap safetensors file ", path.string(), " (",
                       size, " bytes): ", std::strerror(err)));
    }
    file->mapping_ = p;
    file->mapping_bytes_ = size;
    bytes = {static_cast<const std::byte*>(p), size};
  }
  ::close(fd);  // the mapping keeps the file alive
  ES_ASSIGN_OR_RETURN(file->header_,
                      ParseSafetensorsHeader(bytes, path.string()));
  for (size_t i = 0; i < file->header_.tensors.size(); ++i) {
    file->index_.emplace(file->header_.tensors[i].name, i);
  }
  return file;
}

SafetensorsFile::~SafetensorsFile() {
  if (mapping_ != nullptr) ::munmap(mapping_, mapping_bytes_);
}

TensorView SafetensorsFile::Find(std::string_view name) const {
  auto it = index_.find(name);
  if (it == index_.end()) return {};
  const TensorInfo& info = header_.tensors[it->second];
  TensorView view;
  view.info = &info;
  view.size_bytes = info.data_end - info.data_begin;
  view.data = static_cast<const std::byte*>(mapping_) + header_.data_offset +
              info.data_begin;
  return view;
}

// ---- Checkpoint -------------------------------------------------------------

namespace {

absl::StatusOr<std::string> ReadSmallFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(absl::StrCat("cannot read ", path.string()));
  }
  std::string s((std::istreambuf_iterator<char>(in)),
                std::istreambuf_iterator<char>());
  if (in.bad()) {
    return absl::DataLossError(absl::StrCat("error reading ", path.string()));
  }
  return s;
}

// A shard name from an index must be a plain file name inside the checkpoint
// directory, never a path that escapes it.
bool IsPlainFileName(std::string_view name) {
  return !name.empty() && name != "." && name != ".." &&
         name.find('/') == std::string_view::npos &&
         name.find('\0') == std::string_view::npos;
}

}  // namespace

TensorView Checkpoint::Find(std::string_view name) const {
  auto it = by_name_.find(name);
  if (it == by_name_.end()) return {};
  return it->second->Find(name);
}

std::vector<std::string> Checkpoint::TensorNames() const {
  std::vector<std::string> names;
  names.reserve(by_name_.size());
  for (const auto& [name, file] : by_name_) names.push_back(name);
  return names;
}

absl::StatusOr<std::unique_ptr<Checkpoint>> Checkpoint::OpenIndexed(
    const std::filesystem::path& dir) {
  const std::filesystem::path index_path = dir / kIndexFile;
  ES_ASSIGN_OR_RETURN(std::string text, ReadSmallFile(index_path));
  const std::string where = absl::StrCat("checkpoint index ", index_path.string(), ": ");
  Json index = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (index.is_discarded()) {
    return absl::DataLossError(absl::StrCat(where, "not valid JSON"));
  }
  if (!index.is_object()) {
    return absl::DataLossError(absl::StrCat(where, "must be a JSON object"));
  }
  auto wm = index.find("weight_map");
  if (wm == index.end() || !wm->is_object()) {
    return absl::DataLossError(absl::StrCat(
        where, "missing \"weight_map\" object {tensor name: shard file}"));
  }
  // tensor -> shard file name, and the distinct shards in name order.
  std::map<std::string, std::string, std::less<>> weight_map;
  std::set<std::string> shard_names;
  for (auto it = wm->begin(); it != wm->end(); ++it) {
    if (!it->is_string()) {
      return absl::DataLossError(absl::StrCat(
          where, "weight_map entry for tensor ", Quote(it.key()),
          " must be a shard file name string, found ", Describe(*it)));
    }
    const auto& shard = it->get_ref<const std::string&>();
    if (!IsPlainFileName(shard)) {
      return absl::DataLossError(absl::StrCat(
          where, "weight_map maps tensor ", Quote(it.key()), " to ",
          Quote(shard), ", which is not a plain file name in ", dir.string()));
    }
    weight_map.emplace(it.key(), shard);
    shard_names.insert(shard);
  }

  auto ckpt = std::unique_ptr<Checkpoint>(new Checkpoint());
  ckpt->dir_ = dir;
  for (const std::string& shard : shard_names) {
    const std::filesystem::path shard_path = dir / shard;
    std::error_code ec;
    if (!std::filesystem::exists(shard_path, ec)) {
      const auto first = std::find_if(
          weight_map.begin(), weight_map.end(),
          [&](const auto& kv) { return kv.second == shard; });
      return absl::DataLossError(absl::StrCat(
          where, "shard file ", shard, " (holding e.g. tensor ",
          Quote(first->first), ") does not exist in ", dir.string()));
    }
    ES_ASSIGN_OR_RETURN(auto file, SafetensorsFile::Open(shard_path));
    for (const TensorInfo& t : file->tensors()) {
      auto listed = weight_map.find(t.name);
      if (listed == weight_map.end()) {
        return absl::DataLossError(absl::StrCat(
            where, "tensor ", Quote(t.name), " is in shard ", shard,
            " but not listed in the weight_map"));
      }
      if (auto [prev, inserted] = ckpt->by_name_.emplace(t.name, file.get());
          !inserted) {
        return absl::DataLossError(absl::StrCat(
            where, "tensor ", Quote(t.name), " is present in two shards, ",
            prev->second->path().filename().string(), " and ", shard));
      }
      if (listed->second != shard) {
        return absl::DataLossError(absl::StrCat(
            where, "tensor ", Quote(t.name), " is in shard ", shard,
            " but the weight_map places it in ", listed->second));
      }
    }
    ckpt->files_.push_back(std::move(file));
  }
  for (const auto& [name, shard] : weight_map) {
    if (!ckpt->by_name_.contains(name)) {
      return absl::DataLossError(absl::StrCat(
          where, "tensor ", Quote(name), " is listed for shard ", shard,
          " but that shard does not contain it"));
    }
  }
  return ckpt;
}

absl::StatusOr<std::unique_ptr<Checkpoint>> Checkpoint::Open(
    const std::filesystem::path& dir) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) {
    return absl::NotFoundError(
        absl::StrCat("checkpoint directory ", dir.string(), " does not exist"));
  }
  if (std::filesystem::exists(dir / kIndexFile, ec)) return OpenIndexed(dir);
  if (!std::filesystem::exists(dir / kSingleFile, ec)) {
    return absl::NotFoundError(absl::StrCat(
        "checkpoint directory ", dir.string(), " has neither ", kSingleFile,
        " nor ", kIndexFile));
  }
  ES_ASSIGN_OR_RETURN(auto file, SafetensorsFile::Open(dir / kSingleFile));
  auto ckpt = std::unique_ptr<Checkpoint>(new Checkpoint());
  ckpt->dir_ = dir;
  for (const TensorInfo& t : file->tensors()) {
    ckpt->by_name_.emplace(t.name, file.get());
  }
  ckpt->files_.push_back(std::move(file));
  return ckpt;
}

absl::StatusOr<std::unique_ptr<Checkpoint>> Checkpoint::OpenAllFiles(
    const std::filesystem::path& dir) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) {
    return absl::NotFoundError(
        absl::StrCat("checkpoint directory ", dir.string(), " does not exist"));
  }
  if (std::filesystem::exists(dir / kIndexFile, ec)) return OpenIndexed(dir);
  std::vector<std::filesystem::path> paths;
  for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end;
       it.increment(ec)) {
    if (it->path().extension() == ".safetensors") paths.push_back(it->path());
  }
  if (ec) {
    return absl::PermissionDeniedError(absl::StrCat(
        "cannot list checkpoint directory ", dir.string(), ": ", ec.message()));
  }
  if (paths.empty()) {
    return absl::NotFoundError(absl::StrCat(
        "checkpoint directory ", dir.string(), " has no *.safetensors files"));
  }
  std::sort(paths.begin(), paths.end());
  auto ckpt = std::unique_ptr<Checkpoint>(new Checkpoint());
  ckpt->dir_ = dir;
  for (const auto& path : paths) {
    ES_ASSIGN_OR_RETURN(auto file, SafetensorsFile::Open(path));
    for (const TensorInfo& t : file->tensors()) {
      if (auto [prev, inserted] = ckpt->by_name_.emplace(t.name, file.get());
          !inserted) {
        return absl::DataLossError(absl::StrCat(
            "checkpoint directory ", dir.string(), ": tensor ", Quote(t.name),
            " is present in two files, ",
            prev->second->path().filename().string(), " and ",
            path.filename().string()));
      }
    }
    ckpt->files_.push_back(std::move(file));
  }
  return ckpt;
}

// ---- Writer -----------------------------------------------------------------

absl::Status WriteSafetensors(const std::filesystem::path& path,
                              std::span<const TensorToWrite> tensors,
                              const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  const std::string where = absl::StrCat("writing ", path.string(), ": ");
  if (!metadata.empty()) {
    auto& meta = header["__metadata__"] = nlohmann::ordered_json::object();
    for (const auto& [k, v] : metadata) {
      if (FindInvalidUtf8(k) != std::string_view::npos ||
          FindInvalidUtf8(v) != std::string_view::npos) {
        return absl::InvalidArgumentError(absl::StrCat(
            where, "metadata key ", Quote(k), " or its value is not UTF-8"));
      }
      meta[k] = v;
    }
  }
  std::set<std::string_view> names;
  uint64_t offset = 0;
  for (const TensorToWrite& t : tensors) {
    if (t.name.empty() || t.name == "__metadata__" ||
        FindInvalidUtf8(t.name) != std::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, "invalid tensor name ", Quote(t.name),
          " (must be non-empty UTF-8 and not \"__metadata__\")"));
    }
    if (!names.insert(t.name).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, "tensor ", Quote(t.name), " given twice"));
    }
    uint64_t numel = 1;
    for (int64_t d : t.shape) {
      if (d < 0 || d > kMaxDim ||
          __builtin_mul_overflow(numel, static_cast<uint64_t>(d), &numel)) {
        return absl::InvalidArgumentError(absl::StrCat(
            where, "tensor ", Quote(t.name), " has an invalid shape [",
            absl::StrJoin(t.shape, ", "), "]"));
      }
    }
    const uint64_t bytes = numel * DTypeSize(t.dtype);
    if (bytes != t.data.size()) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, "tensor ", Quote(t.name), " of shape [",
          absl::StrJoin(t.shape, ", "), "] ", Sv(DTypeName(t.dtype)), " needs ",
          bytes, " bytes, got ", t.data.size()));
    }
    auto& e = header[t.name] = nlohmann::ordered_json::object();
    e["dtype"] = DTypeName(t.dtype);
    e["shape"] = t.shape;
    e["data_offsets"] = {offset, offset + bytes};
    offset += bytes;
  }
  std::string text = header.dump();
  // Pad with spaces so the data section starts 8-byte aligned, as the
  // reference writer does.
  text.append((8 - text.size() % 8) % 8, ' ');
  const uint64_t header_bytes = text.size();

  // Write to a temporary and rename, so readers never see a partial file.
  std::filesystem::path tmp = path;
  tmp += ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) {
      return absl::PermissionDeniedError(
          absl::StrCat(where, "cannot create ", tmp.string()));
    }
    char len[8];
    std::memcpy(len, &header_bytes, 8);
    out.write(len, 8);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    for (const TensorToWrite& t : tensors) {
      out.write(reinterpret_cast<const char*>(t.data.data()),
                static_cast<std::streamsize>(t.data.size()));
    }
    out.flush();
    if (!out) {
      std::error_code ec;
      std::filesystem::remove(tmp, ec);
      return absl::ResourceExhaustedError(
          absl::StrCat(where, "write failed (disk full?)"));
    }
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    return absl::PermissionDeniedError(
        absl::StrCat(where, "cannot rename into place: ", ec.message()));
  }
  return absl::OkStatus();
}

absl::Status WriteCheckpointTensors(const std::filesystem::path& dir,
                                    std::span<const TensorToWrite> tensors,
                                    uint64_t max_shard_bytes) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return absl::PermissionDeniedError(absl::StrCat(
        "cannot create checkpoint directory ", dir.string(), ": ",
        ec.message()));
  }
  // Like save_pretrained, first remove the files of an earlier save so a
  // stale index or shard cannot shadow the new one.
  std::vector<std::filesystem::path> stale;
  for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end;
       it.increment(ec)) {
    const std::string name = it->path().filename().string();
    // model-00001-of-00003.safetensors
    const bool shard = name.size() == 32 && name.starts_with("model-") &&
                       name.ends_with(".safetensors") &&
                       name.substr(11, 4) == "-of-";
    if (name == kSingleFile || name == kIndexFile || shard) {
      stale.push_back(it->path());
    }
  }
  for (const auto& p : stale) {
    if (!std::filesystem::remove(p, ec) && ec) {
      return absl::PermissionDeniedError(absl::StrCat(
          "cannot remove stale ", p.string(), ": ", ec.message()));
    }
  }

  uint64_t total = 0;
  for (const TensorToWrite& t : tensors) total += t.data.size();
  if (total <= max_shard_bytes) {
    return WriteSafetensors(dir / kSingleFile, tensors);
  }
  // Greedy in order, as transformers' split_torch_state_dict_into_shards: a
  // tensor that would overflow the current shard starts a new one; a tensor
  // larger than the limit gets a shard of its own.
  std::vector<std::pair<size_t, size_t>> shards;  // [first, last) tensor
  uint64_t current = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const uint64_t b = tensors[i].data.size();
    if (shards.empty() || (current > 0 && current + b > max_shard_bytes)) {
      shards.emplace_back(i, i);
      current = 0;
    }
    shards.back().second = i + 1;
    current += b;
  }
  if (shards.size() > 99999) {
    return absl::InvalidArgumentError(absl::StrCat(
        "checkpoint would need ", shards.size(),
        " shards; raise max_shard_bytes (", max_shard_bytes, ")"));
  }
  Json weight_map = Json::object();
  for (size_t s = 0; s < shards.size(); ++s) {
    const std::string name = absl::StrFormat(
        "model-%05d-of-%05d.safetensors", s + 1, shards.size());
    ES_RETURN_IF_ERROR(WriteSafetensors(
        dir / name,
        tensors.subspan(shards[s].first, shards[s].second - shards[s].first)));
    for (size_t i = shards[s].first; i < shards[s].second; ++i) {
      weight_map[tensors[i].name] = name;
    }
  }
  Json index = {{"metadata", {{"total_size", total}}},
                {"weight_map", std::move(weight_map)}};
  std::ofstream out(dir / kIndexFile, std::ios::trunc);
  out << index.dump(2) << "\n";
  out.flush();
  if (!out) {
    return absl::PermissionDeniedError(absl::StrCat(
        "cannot write ", (dir / kIndexFile).string()));
  }
  return absl::OkStatus();
}

std::vector<float> TensorToF32(const TensorView& view) {
  if (view.info == nullptr) return {};
  std::vector<float> out(view.size_bytes / DTypeSize(view.info->dtype));
  ToF32(view.info->dtype, view.data, out.size(), out.data());
  return out;
}

}  // namespace expertserve::checkpoint
