// Fuzzes the tokenizer. The first byte picks the mode:
//   0: the rest is a tokenizer.json: load it (must not crash; errors are
//      fine) and, if it loads, encode a fixed text and decode ids.
//   1: the rest is text for a fixed byte-level BPE tokenizer (Qwen-style
//      Split regex + ByteLevel + NFC): encode, check decode(encode(s)) == s
//      for valid UTF-8, and that the incremental detokenizer's valid-UTF-8
//      deltas concatenate to the full decode.
//   2: the rest is text for a fixed SentencePiece-style tokenizer (Prepend +
//      Replace normalizers, byte fallback, Fuse/Strip decoders): encode and
//      check the detokenizer invariant.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "engine/tokenizer/incremental_detokenizer.h"
#include "engine/tokenizer/tokenizer.h"
#include "engine/tokenizer/unicode.h"

namespace {

using expertserve::TokenId;
using expertserve::engine::IncrementalDetokenizer;
using expertserve::engine::IsCompleteUtf8;
using expertserve::engine::Tokenizer;
using json = nlohmann::json;

std::unique_ptr<Tokenizer> MakeByteLevel() {
  json vocab = json::object();
  const auto& map = expertserve::engine::unicode::ByteToUtf8();
  for (int b = 0; b < 256; ++b) vocab[map[b]] = b;
  json merges = json::array();
  int next = 256;
  for (const char* m : {"Ġ t", "h e", "Ġt he", "i n", "Ġ a", "e r", "Ġ Ġ", "ĠĠ ĠĠ", "Ċ Ċ", "1 2"}) {
    std::string s(m);
    const auto sp = s.find(' ');
    vocab[s.substr(0, sp) + s.substr(sp + 1)] = next++;
    merges.push_back(s);
  }
  json tj = {
      {"added_tokens", {{{"id", next}, {"content", "<|im_end|>"}, {"special", true}, {"normalized", false}}}},
      {"normalizer", {{"type", "NFC"}}},
      {"pre_tokenizer",
       {{"type", "Sequence"},
        {"pretokenizers",
         {{{"type", "Split"},
           {"pattern", {{"Regex", R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"}}},
           {"behavior", "Isolated"},
           {"invert", false}},
          {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}}},
      {"decoder", {{"type", "ByteLevel"}}},
      {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", merges}}}};
  return std::move(Tokenizer::FromJson(tj.dump()).value());
}

std::unique_ptr<Tokenizer> MakeSentencePiece() {
  json vocab = {{"<unk>", 0}, {"<s>", 1}, {"</s>", 2}};
  int next = 3;
  char hex[8];
  for (int b = 0; b < 256; ++b) {
    std::snprintf(hex, sizeof(hex), "<0x%02X>", b);
    vocab[hex] = next++;
  }
  for (const char* t : {"▁", "a", "b", "c", "▁a", "ab", "▁ab", "é"}) vocab[t] = next++;
  json tj = {
      {"added_tokens",
       {{{"id", 0}, {"content", "<unk>"}, {"special", true}},
        {{"id", 1}, {"content", "<s>"}, {"special", true}},
        {{"id", 2}, {"content", "</s>"}, {"special", true}}}},
      {"normalizer",
       {{"type", "Sequence"},
        {"normalizers",
         {{{"type", "Prepend"}, {"prepend", "▁"}},
          {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "▁"}}}}}},
      {"decoder",
       {{"type", "Sequence"},
        {"decoders",
         {{{"type", "Replace"}, {"pattern", {{"String", "▁"}}}, {"content", " "}},
          {{"type", "ByteFallback"}},
          {{"type", "Fuse"}},
          {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}}},
      {"model",
       {{"type", "BPE"},
        {"vocab", vocab},
        {"merges", {"▁ a", "a b", "▁a b"}},
        {"unk_token", "<unk>"},
        {"byte_fallback", true},
        {"fuse_unk", true}}}};
  return std::move(Tokenizer::FromJson(tj.dump()).value());
}

void CheckDetokenizer(const Tokenizer& tok, const std::vector<TokenId>& ids) {
  for (bool skip : {false, true}) {
    auto full = tok.Decode(ids, skip);
    if (!full.ok()) __builtin_trap();
    IncrementalDetokenizer detok(tok, skip);
    std::string all;
    for (TokenId id : ids) {
      auto d = detok.Step(id);
      if (!d.ok() || !IsCompleteUtf8(*d)) __builtin_trap();
      all += *d;
    }
    all += detok.Finish().value();
    if (all != *full) __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 3) {
    case 0: {
      auto tok = Tokenizer::FromJson(rest);
      if (!tok.ok()) return 0;
      auto ids = (*tok)->Encode("Hello, wörld! 123 <s> \xF0\x9F\x99\x82\n\n", true);
      if (ids.ok()) (void)(*tok)->Decode(*ids, false);
      std::vector<TokenId> probe;
      for (TokenId id = 0; id < std::min<TokenId>((*tok)->vocab_size(), 64); ++id) probe.push_back(id);
      (void)(*tok)->Decode(probe, true);
      return 0;
    }
    case 1: {
      static const Tokenizer* tok = MakeByteLevel().release();
      auto ids = tok->Encode(rest, data[0] & 4);
      if (!ids.ok()) {
        if (IsCompleteUtf8(rest)) __builtin_trap();  // only bad UTF-8 may fail
        return 0;
      }
      // NFC may legitimately change the text; round trip only NFC-stable input.
      std::string nfc(rest);
      if (!expertserve::engine::unicode::Normalize(expertserve::engine::unicode::NormalForm::kNFC, &nfc).ok()) {
        __builtin_trap();
      }
      if (nfc == rest && tok->Decode(*ids, false).value() != rest) __builtin_trap();
      CheckDetokenizer(*tok, *ids);
      return 0;
    }
    default: {
      static const Tokenizer* tok = MakeSentencePiece().release();
      auto ids = tok->Encode(rest, data[0] & 4);
      if (!ids.ok()) return 0;
      CheckDetokenizer(*tok, *ids);
      return 0;
    }
  }
}
