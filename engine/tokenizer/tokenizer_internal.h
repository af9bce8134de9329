// Internal pipeline pieces of Tokenizer (see tokenizer.h). Exposed in a header
// only so tests and the fuzz target can reach them; not a public API.
//
// Thread-safety: every type here is immutable after load except BpeModel's
// word cache, which is guarded by per-shard mutexes.
#ifndef EXPERTSERVE_ENGINE_TOKENIZER_TOKENIZER_INTERNAL_H_
#define EXPERTSERVE_ENGINE_TOKENIZER_TOKENIZER_INTERNAL_H_

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "common/ids.h"
#include "engine/tokenizer/regex.h"
#include "engine/tokenizer/unicode.h"

namespace expertserve::engine::tokenizer_internal {

struct AddedToken {
  std::string content;
  TokenId id = -1;
  bool lstrip = false;
  bool rstrip = false;
  bool single_word = false;
  bool normalized = false;
  bool special = false;
};

// Leftmost-longest multi-string matcher over added tokens (what the Rust
// implementation does with Aho-Corasick), plus the lstrip/rstrip/single_word
// rules of AddedVocabulary::find_matches.
class AddedTokenMatcher {
 public:
  struct Match {
    int token = -1;  // index into the added-token table, -1 = plain text
    size_t begin = 0, end = 0;
  };
  void Add(const AddedToken& t, int index);
  bool empty() const { return map_.empty(); }
  // Splits `text` into plain-text and token ranges covering it in order.
  void Split(std::string_view text, const std::vector<AddedToken>& tokens,
             std::vector<Match>* out) const;

 private:
  absl::flat_hash_map<std::string, int> map_;
  std::array<std::vector<uint32_t>, 256> lengths_;  // per first byte, descending
};

// ---- normalizers -----------------------------------------------------------
struct NormStep {
  enum class Kind { kUnicode, kLowercase, kPrepend, kReplace, kStrip };
  Kind kind;
  unicode::NormalForm form = unicode::NormalForm::kNFC;
  std::string text;     // Prepend: prefix; Replace: content
  std::string literal;  // Replace with a String pattern
  std::shared_ptr<Regex> regex;  // Replace with a Regex pattern
  bool left = false, right = false;  // Strip
};
absl::Status ApplyNormalizer(const NormStep& step, std::string* s);

// ---- pre-tokenizers ----------------------------------------------------------
// Pieces of one text segment: ranges into `buf`. When `byte_level` is set the
// bytes are still raw and must be read through the GPT-2 byte alphabet (done
// lazily: the BPE model maps them itself, saving a copy per word).
struct PieceList {
  struct Piece {
    uint32_t begin, end;
    bool at_origin;  // starts at offset 0 of the original input
  };
  std::string buf;
  std::vector<Piece> pieces;
  bool byte_level = false;
};

enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

struct PreStep {
  enum class Kind { kSplit, kByteLevel, kMetaspace };
  Kind kind;
  std::shared_ptr<Regex> regex;  // Split, ByteLevel(use_regex)
  SplitBehavior behavior = SplitBehavior::kIsolated;
  bool invert = false;
  bool add_prefix_space = false;  // ByteLevel
  std::string replacement;        // Metaspace
  enum class Prepend { kAlways, kFirst, kNever } prepend = Prepend::kAlways;
  bool split = true;  // Metaspace
};
absl::Status ApplyPreTokenizer(const PreStep& step, PieceList* pl);

// ---- BPE model ---------------------------------------------------------------
class BpeModel {
 public:
  absl::flat_hash_map<std::string, TokenId> vocab;
  std::optional<std::string> unk_token;
  std::optional<std::string> prefix;  // continuing_subword_prefix
  std::optional<std::string> suffix;  // end_of_word_suffix
  bool fuse_unk = false;
  bool byte_fallback = false;
  bool ignore_merges = false;

  void AddMerge(TokenId a, TokenId b, int32_t rank, TokenId merged) {
    merges_[Key(a, b)] = {rank, merged};
  }
  // Call once after vocab/merges/options are set.
  absl::Status Finalize();
  // Appends the ids of one pre-token. `byte_level`: `word` holds raw bytes
  // to be read through the GPT-2 alphabet.
  absl::Status Tokenize(std::string_view word, bool byte_level,
                        std::vector<TokenId>* out) const;

 private:
  struct MergeInfo {
    int32_t rank;
    TokenId id;
  };
  static uint64_t Key(TokenId a, TokenId b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  absl::Status MergeWord(std::string_view s, std::vector<TokenId>* out) const;

  absl::flat_hash_map<uint64_t, MergeInfo> merges_;
  static constexpr size_t kSmallCp = 0x10000;  // the whole BMP: 256 KiB
  std::vector<TokenId> small_cp_ids_;      // [kSmallCp] id of the 1-char token, -1
  std::array<TokenId, 256> byte_fallback_ids_{};  // id of "<0xXX>", -1

  static constexpr int kShards = 32;
  static constexpr size_t kMaxCachedWordBytes = 256;
  static constexpr size_t kMaxEntriesPerShard = 8192;
  struct Shard {
    mutable absl::Mutex mu;
    absl::flat_hash_map<std::string, std::vector<TokenId>> map ABSL_GUARDED_BY(mu);
  };
  mutable std::array<Shard, kShards> cache_;
};

// ---- post-processors ---------------------------------------------------------
struct PostStep {
  // A single-sequence template: each item is either the sequence ($A) or a
  // list of special-token ids.
  struct Item {
    bool is_sequence = false;
    std::vector<TokenId> ids;
  };
  std::vector<Item> single;
};

// ---- decoders ------------------------------------------------------------------
struct DecStep {
  enum class Kind { kByteLevel, kMetaspace, kByteFallback, kFuse, kStrip, kReplace };
  Kind kind;
  char32_t ch = 0;        // Metaspace replacement; Strip content
  bool prepend = true;    // Metaspace: prepend_scheme != never
  size_t start = 0, stop = 0;  // Strip
  std::string literal;    // Replace (String pattern)
  std::shared_ptr<Regex> regex;  // Replace (Regex pattern)
  std::string content;    // Replace
};
absl::Status ApplyDecoder(const DecStep& step, std::vector<std::string>* tokens);

struct Impl {
  BpeModel model;
  std::vector<AddedToken> added;
  absl::flat_hash_map<TokenId, int> added_by_id;  // id -> index into added
  absl::flat_hash_set<std::string> special_contents;
  AddedTokenMatcher raw_matcher;         // normalized == false
  AddedTokenMatcher normalized_matcher;  // normalized == true
  std::vector<NormStep> normalizers;
  std::vector<PreStep> pre_tokenizers;
  std::vector<PostStep> post_processors;
  bool has_decoder = false;
  std::vector<DecStep> decoders;
  std::vector<std::string> id_to_token;  // model vocabulary by id
  std::vector<bool> id_present;
  int32_t vocab_size = 0;
  std::optional<TokenId> bos_id, eos_id;
};

}  // namespace expertserve::engine::tokenizer_internal

#endif  // EXPERTSERVE_ENGINE_TOKENIZER_TOKENIZER_INTERNAL_H_
