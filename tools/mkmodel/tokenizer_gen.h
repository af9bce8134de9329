// Generates a small byte-level BPE tokenizer in the real Hugging Face format
// (tokenizer.json + tokenizer_config.json), Qwen2-style: a Split
// pre-tokenizer with the Qwen regex, then ByteLevel (GPT-2 byte-to-unicode
// mapping), a ByteLevel decoder and the ChatML special tokens. The merges are
// learned deterministically from a built-in text, so every run writes the
// same files.
#ifndef EXPERTSERVE_TOOLS_MKMODEL_TOKENIZER_GEN_H_
#define EXPERTSERVE_TOOLS_MKMODEL_TOKENIZER_GEN_H_

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"

namespace expertserve::mkmodel {

struct GeneratedTokenizer {
  // Byte-level token strings by id: 256 byte tokens, then one per merge.
  std::vector<std::string> bpe_vocab;
  std::vector<std::pair<std::string, std::string>> merges;
  // Special (added) tokens, ids following the BPE vocabulary.
  int64_t endoftext_id = 0;  // <|endoftext|>: bos in config.json, pad
  int64_t im_start_id = 0;   // <|im_start|>
  int64_t im_end_id = 0;     // <|im_end|>: eos
  int64_t size() const { return im_end_id + 1; }
};

// `num_merges` BPE merges (fewer if the built-in text runs out of pairs).
GeneratedTokenizer BuildTokenizer(int num_merges = 253);

// The GPT-2 byte-to-unicode mapping of byte `b`, as UTF-8.
std::string ByteToUnicode(uint8_t b);

// Pre-tokenizes ASCII `text` the way the Qwen regex does (used for training
// the merges; exposed for tests).
std::vector<std::string> PreTokenizeAscii(const std::string& text);

// Writes tokenizer.json and tokenizer_config.json into `dir`.
absl::Status WriteTokenizerFiles(const GeneratedTokenizer& tok,
                                 const std::filesystem::path& dir);

// The regex of the Qwen2 / Qwen3 Split pre-tokenizer.
extern const char kQwenPretokenizeRegex[];
// The ChatML chat template written to tokenizer_config.json.
extern const char kChatMlTemplate[];

}  // namespace expertserve::mkmodel

#endif  // EXPERTSERVE_TOOLS_MKMODEL_TOKENIZER_GEN_H_
