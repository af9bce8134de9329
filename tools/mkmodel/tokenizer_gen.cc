#include "tools/mkmodel/tokenizer_gen.h"

#include <algorithm>
#include <cctype>
#include <fstream>
#include <map>
#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace expertserve::mkmodel {

const char kQwenPretokenizeRegex[] =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

const char kChatMlTemplate[] =
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + "
    "'<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}"
    "{%- endif %}";

namespace {

// Training text: chat, code, math and legal prose, so the demo's experts
// each see familiar merges.
constexpr char kCorpus[] = R"(The quick brown fox jumps over the lazy dog.
Hello! How are you today? I am fine, thank you. What can I do for you?
You are a helpful assistant. Please answer the question in a few words.
The user asked the assistant to explain the answer, and the assistant did.
We serve many experts on one machine: a chat model, a code model, and a
mixture of experts model with adapters for math and law.
def add(a, b):
    return a + b

def fibonacci(n):
    if n <= 1:
        return n
    return fibonacci(n - 1) + fibonacci(n - 2)

for i in range(10):
    print(i, fibonacci(i))

int main(int argc, char** argv) {
  std::vector<int> values = {1, 2, 3};
  for (int value : values) {
    std::printf("%d\n", value);
  }
  return 0;
}
Solve the equation 2x + 3 = 11. Subtract 3 from both sides: 2x = 8.
Divide both sides by 2: x = 4. The sum of the first n integers is
n(n + 1) / 2, and the area of a circle of radius r is pi r^2.
Let f(x) = x^2 + 2x + 1 = (x + 1)^2; then f(3) = 16 and f'(x) = 2x + 2.
The probability of two heads in two fair coin tosses is 1/4.
The parties agree that this contract shall be governed by the laws of the
state in which the seller has its principal place of business. The court
held that the defendant was liable for breach of contract and awarded
damages to the plaintiff. Any dispute arising under this agreement shall be
resolved by arbitration, and the decision of the arbitrator shall be final.
The tenant shall pay the rent on the first day of each month, and the
landlord shall keep the premises in good repair.
In the beginning the model knew nothing; then it read the text again and
again, and the tokens it saw most often became words of their own.
)";

bool IsLetter(char c) { return std::isalpha(static_cast<unsigned char>(c)); }
bool IsDigit(char c) { return std::isdigit(static_cast<unsigned char>(c)); }
bool IsSpace(char c) { return std::isspace(static_cast<unsigned char>(c)); }
bool IsNewline(char c) { return c == '\r' || c == '\n'; }
bool IsPunct(char c) { return !IsSpace(c) && !IsLetter(c) && !IsDigit(c); }

std::string CodepointToUtf8(uint32_t cp) {
  std::string out;
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return out;
}

// GPT-2 bytes_to_unicode: printable bytes map to themselves, the rest to
// 256 + n in byte order. Returned in GPT-2's vocabulary order.
std::vector<std::pair<uint8_t, uint32_t>> ByteOrder() {
  std::vector<std::pair<uint8_t, uint32_t>> out;
  std::set<int> printable;
  for (int b = '!'; b <= '~'; ++b) printable.insert(b);
  for (int b = 0xA1; b <= 0xAC; ++b) printable.insert(b);
  for (int b = 0xAE; b <= 0xFF; ++b) printable.insert(b);
  for (int b : printable) out.emplace_back(static_cast<uint8_t>(b), b);
  uint32_t n = 0;
  for (int b = 0; b < 256; ++b) {
    if (printable.count(b) == 0) out.emplace_back(static_cast<uint8_t>(b), 256 + n++);
  }
  return out;
}

}  // namespace

std::string ByteToUnicode(uint8_t b) {
  static const std::vector<std::string> table = [] {
    std::vector<std::string> t(256);
    for (auto [byte, cp] : ByteOrder()) t[byte] = CodepointToUtf8(cp);
    return t;
  }();
  return table[b];
}

std::vector<std::string> PreTokenizeAscii(const std::string& s) {
  std::vector<std::string> out;
  size_t i = 0;
  const size_t n = s.size();
  auto letters_end = [&](size_t j) {
    while (j < n && IsLetter(s[j])) ++j;
    return j;
  };
  while (i < n) {
    // (?i:'s|'t|'re|'ve|'m|'ll|'d)
    if (s[i] == '\'' && i + 1 < n) {
      std::string rest;
      for (size_t k = i + 1; k < n && k < i + 3; ++k) {
        rest += static_cast<char>(std::tolower(static_cast<unsigned char>(s[k])));
      }
      size_t len = 0;
      if (rest.rfind("re", 0) == 0 || rest.rfind("ve", 0) == 0 ||
          rest.rfind("ll", 0) == 0) {
        len = 3;
      } else if (!rest.empty() && (rest[0] == 's' || rest[0] == 't' ||
                                   rest[0] == 'm' || rest[0] == 'd')) {
        len = 2;
      }
      if (len > 0) {
        out.push_back(s.substr(i, len));
        i += len;
        continue;
      }
    }
    // [^\r\n\p{L}\p{N}]?\p{L}+
    if (IsLetter(s[i])) {
      size_t j = letters_end(i);
      out.push_back(s.substr(i, j - i));
      i = j;
      continue;
    }
    if (!IsNewline(s[i]) && !IsDigit(s[i]) && i + 1 < n && IsLetter(s[i + 1])) {
      size_t j = letters_end(i + 1);
      out.push_back(s.substr(i, j - i));
      i = j;
      continue;
    }
    // \p{N}
    if (IsDigit(s[i])) {
      out.push_back(s.substr(i, 1));
      ++i;
      continue;
    }
    //  ?[^\s\p{L}\p{N}]+[\r\n]*
    if (IsPunct(s[i]) || (s[i] == ' ' && i + 1 < n && IsPunct(s[i + 1]))) {
      size_t j = s[i] == ' ' ? i + 1 : i;
      while (j < n && IsPunct(s[j])) ++j;
      while (j < n && IsNewline(s[j])) ++j;
      out.push_back(s.substr(i, j - i));
      i = j;
      continue;
    }
    // Whitespace: \s*[\r\n]+ | \s+(?!\S) | \s+
    size_t j = i;
    size_t last_newline = std::string::npos;
    while (j < n && IsSpace(s[j])) {
      if (IsNewline(s[j])) last_newline = j;
      ++j;
    }
    size_t end;
    if (last_newline != std::string::npos) {
      end = last_newline + 1;
    } else if (j == n || j - i == 1) {
      end = j;
    } else {
      end = j - 1;
    }
    out.push_back(s.substr(i, end - i));
    i = end;
  }
  return out;
}

GeneratedTokenizer BuildTokenizer(int num_merges) {
  GeneratedTokenizer tok;
  for (auto [byte, cp] : ByteOrder()) tok.bpe_vocab.push_back(CodepointToUtf8(cp));

  // Word -> frequency, each word a sequence of symbols.
  std::map<std::vector<std::string>, int64_t> words;
  for (const std::string& w : PreTokenizeAscii(kCorpus)) {
    std::vector<std::string> symbols;
    for (unsigned char c : w) symbols.push_back(ByteToUnicode(c));
    ++words[symbols];
  }
  for (int m = 0; m < num_merges; ++m) {
    std::map<std::pair<std::string, std::string>, int64_t> pairs;
    for (const auto& [symbols, freq] : words) {
      for (size_t k = 0; k + 1 < symbols.size(); ++k) {
        pairs[{symbols[k], symbols[k + 1]}] += freq;
      }
    }
    // Most frequent pair; ties go to the smallest pair (map order).
    const std::pair<std::string, std::string>* best = nullptr;
    int64_t best_count = 1;
    for (const auto& [pair, count] : pairs) {
      if (count > best_count) {
        best = &pair;
        best_count = count;
      }
    }
    if (best == nullptr) break;
    const auto merge = *best;
    const std::string joined = merge.first + merge.second;
    tok.merges.push_back(merge);
    tok.bpe_vocab.push_back(joined);
    std::map<std::vector<std::string>, int64_t> next;
    for (const auto& [symbols, freq] : words) {
      std::vector<std::string> merged;
      for (size_t k = 0; k < symbols.size(); ++k) {
        if (k + 1 < symbols.size() && symbols[k] == merge.first &&
            symbols[k + 1] == merge.second) {
          merged.push_back(joined);
          ++k;
        } else {
          merged.push_back(symbols[k]);
        }
      }
      next[merged] += freq;
    }
    words = std::move(next);
  }
  const int64_t base = static_cast<int64_t>(tok.bpe_vocab.size());
  tok.endoftext_id = base;
  tok.im_start_id = base + 1;
  tok.im_end_id = base + 2;
  return tok;
}

absl::Status WriteTokenizerFiles(const GeneratedTokenizer& tok,
                                 const std::filesystem::path& dir) {
  using Json = nlohmann::ordered_json;
  const std::vector<std::pair<int64_t, std::string>> specials = {
      {tok.endoftext_id, "<|endoftext|>"},
      {tok.im_start_id, "<|im_start|>"},
      {tok.im_end_id, "<|im_end|>"},
  };
  Json added = Json::array();
  for (const auto& [id, content] : specials) {
    added.push_back({{"id", id},
                     {"content", content},
                     {"single_word", false},
                     {"lstrip", false},
                     {"rstrip", false},
                     {"normalized", false},
                     {"special", true}});
  }
  Json vocab = Json::object();
  for (size_t i = 0; i < tok.bpe_vocab.size(); ++i) {
    vocab[tok.bpe_vocab[i]] = i;
  }
  Json merges = Json::array();
  for (const auto& [a, b] : tok.merges) merges.push_back(Json::array({a, b}));
  const Json byte_level = {{"type", "ByteLevel"},
                           {"add_prefix_space", false},
                           {"trim_offsets", false},
                           {"use_regex", false}};
  Json t = {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", added},
      {"normalizer", nullptr},
      {"pre_tokenizer",
       {{"type", "Sequence"},
        {"pretokenizers",
         Json::array({{{"type", "Split"},
                       {"pattern", {{"Regex", kQwenPretokenizeRegex}}},
                       {"behavior", "Isolated"},
                       {"invert", false}},
                      byte_level})}}},
      {"post_processor", byte_level},
      {"decoder", byte_level},
      {"model",
       {{"type", "BPE"},
        {"dropout", nullptr},
        {"unk_token", nullptr},
        {"continuing_subword_prefix", ""},
        {"end_of_word_suffix", ""},
        {"fuse_unk", false},
        {"byte_fallback", false},
        {"ignore_merges", false},
        {"vocab", vocab},
        {"merges", merges}}},
  };

  Json decoder = Json::object();
  for (const auto& [id, content] : specials) {
    decoder[std::to_string(id)] = {{"content", content},
                                   {"lstrip", false},
                                   {"normalized", false},
                                   {"rstrip", false},
                                   {"single_word", false},
                                   {"special", true}};
  }
  Json config = {
      {"add_bos_token", false},
      {"add_prefix_space", false},
      {"added_tokens_decoder", decoder},
      {"additional_special_tokens", Json::array({"<|im_start|>", "<|im_end|>"})},
      {"bos_token", nullptr},
      {"chat_template", kChatMlTemplate},
      {"clean_up_tokenization_spaces", false},
      {"eos_token", "<|im_end|>"},
      {"errors", "replace"},
      {"model_max_length", 4096},
      {"pad_token", "<|endoftext|>"},
      {"split_special_tokens", false},
      {"tokenizer_class", "Qwen2Tokenizer"},
      {"unk_token", nullptr},
  };
  for (const auto& [name, json] :
       {std::pair<const char*, const Json*>{"tokenizer.json", &t},
        {"tokenizer_config.json", &config}}) {
    std::ofstream out(dir / name, std::ios::binary | std::ios::trunc);
    out << json->dump(2) << "\n";
    if (!out) {
      return absl::InternalError(
          absl::StrCat("cannot write ", (dir / name).string()));
    }
  }
  return absl::OkStatus();
}

}  // namespace expertserve::mkmodel
