#include "engine/tokenizer/tokenizer.h"

#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "engine/tokenizer/tokenizer_internal.h"

namespace expertserve::engine {
namespace {

using json = nlohmann::json;
using namespace tokenizer_internal;  // NOLINT: this file implements them
using unicode::AV;

// The GPT-2 pre-tokenization pattern used by ByteLevel(use_regex = true).
constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

absl::Status Malformed(std::string_view path, std::string_view what) {
  return absl::DataLossError(absl::StrCat("tokenizer.json: ", unicode::AV(path), ": ", unicode::AV(what)));
}
absl::Status Unsupported(std::string_view path, std::string_view kind, std::string_view type) {
  return absl::UnimplementedError(absl::StrCat("tokenizer.json: ", unicode::AV(path), ": unsupported ", unicode::AV(kind),
                                               " type '", unicode::AV(type), "'"));
}

// Typed accessors that report the JSON path instead of throwing.
const json* Find(const json& obj, std::string_view key) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}
absl::StatusOr<std::string> GetString(const json& obj, std::string_view key,
                                      std::string_view path) {
  const json* v = Find(obj, key);
  if (v == nullptr || !v->is_string()) {
    return Malformed(absl::StrCat(unicode::AV(path), ".", unicode::AV(key)), "expected a string");
  }
  return v->get<std::string>();
}
absl::StatusOr<std::optional<std::string>> GetOptString(const json& obj, std::string_view key,
                                                        std::string_view path) {
  const json* v = Find(obj, key);
  if (v == nullptr) return std::optional<std::string>();
  if (!v->is_string()) return Malformed(absl::StrCat(unicode::AV(path), ".", unicode::AV(key)), "expected a string");
  return std::optional<std::string>(v->get<std::string>());
}
absl::StatusOr<bool> GetBool(const json& obj, std::string_view key, bool def,
                             std::string_view path) {
  const json* v = Find(obj, key);
  if (v == nullptr) return def;
  if (!v->is_boolean()) return Malformed(absl::StrCat(unicode::AV(path), ".", unicode::AV(key)), "expected a boolean");
  return v->get<bool>();
}
absl::StatusOr<int64_t> GetInt(const json& obj, std::string_view key, int64_t def,
                               std::string_view path) {
  const json* v = Find(obj, key);
  if (v == nullptr) return def;
  if (!v->is_number_integer()) return Malformed(absl::StrCat(unicode::AV(path), ".", unicode::AV(key)), "expected an integer");
  return v->get<int64_t>();
}
absl::StatusOr<const json*> GetArray(const json& obj, std::string_view key,
                                     std::string_view path) {
  const json* v = Find(obj, key);
  if (v == nullptr || !v->is_array()) {
    return Malformed(absl::StrCat(unicode::AV(path), ".", unicode::AV(key)), "expected an array");
  }
  return v;
}
absl::StatusOr<std::string> GetType(const json& obj, std::string_view path) {
  if (!obj.is_object()) return Malformed(path, "expected an object");
  return GetString(obj, "type", path);
}
absl::StatusOr<char32_t> SingleChar(const std::string& s, std::string_view path) {
  if (s.empty() || unicode::FindInvalidUtf8(s).has_value()) {
    return Malformed(path, "expected one character");
  }
  size_t i = 0;
  const char32_t c = unicode::NextCodePoint(s, &i);
  if (i != s.size()) return Malformed(path, "expected one character");
  return c;
}

// {"String": s} or {"Regex": r} -> (literal, regex).
absl::Status ParsePattern(const json& obj, std::string_view path, std::string* literal,
                          std::shared_ptr<Regex>* regex) {
  const json* p = Find(obj, "pattern");
  if (p == nullptr || !p->is_object()) return Malformed(absl::StrCat(unicode::AV(path), ".pattern"), "expected an object");
  if (const json* s = Find(*p, "String")) {
    if (!s->is_string()) return Malformed(absl::StrCat(unicode::AV(path), ".pattern.String"), "expected a string");
    *literal = s->get<std::string>();
    return absl::OkStatus();
  }
  if (const json* r = Find(*p, "Regex")) {
    if (!r->is_string()) return Malformed(absl::StrCat(unicode::AV(path), ".pattern.Regex"), "expected a string");
    auto re = Regex::Compile(r->get<std::string>(), /*literal=*/false);
    if (!re.ok()) return Malformed(absl::StrCat(unicode::AV(path), ".pattern.Regex"), std::string(re.status().message()));
    *regex = std::move(*re);
    return absl::OkStatus();
  }
  return Malformed(absl::StrCat(unicode::AV(path), ".pattern"), "expected 'String' or 'Regex'");
}

absl::Status ParseNormalizer(const json& j, const std::string& path, std::vector<NormStep>* out) {
  ES_ASSIGN_OR_RETURN(std::string type, GetType(j, path));
  if (type == "Sequence") {
    ES_ASSIGN_OR_RETURN(const json* list, GetArray(j, "normalizers", path));
    for (size_t i = 0; i < list->size(); ++i) {
      ES_RETURN_IF_ERROR(ParseNormalizer((*list)[i], absl::StrCat(path, ".normalizers[", i, "]"), out));
    }
    return absl::OkStatus();
  }
  NormStep step{NormStep::Kind::kUnicode};
  if (type == "NFC" || type == "NFD" || type == "NFKC" || type == "NFKD") {
    step.form = type == "NFC"    ? unicode::NormalForm::kNFC
                : type == "NFD"  ? unicode::NormalForm::kNFD
                : type == "NFKC" ? unicode::NormalForm::kNFKC
                                 : unicode::NormalForm::kNFKD;
  } else if (type == "Lowercase") {
    step.kind = NormStep::Kind::kLowercase;
  } else if (type == "Prepend") {
    step.kind = NormStep::Kind::kPrepend;
    ES_ASSIGN_OR_RETURN(step.text, GetString(j, "prepend", path));
  } else if (type == "Replace") {
    step.kind = NormStep::Kind::kReplace;
    ES_ASSIGN_OR_RETURN(step.text, GetString(j, "content", path));
    ES_RETURN_IF_ERROR(ParsePattern(j, path, &step.literal, &step.regex));
  } else if (type == "Strip") {
    step.kind = NormStep::Kind::kStrip;
    ES_ASSIGN_OR_RETURN(step.left, GetBool(j, "strip_left", true, path));
    ES_ASSIGN_OR_RETURN(step.right, GetBool(j, "strip_right", true, path));
  } else {
    return Unsupported(path, "normalizer", type);
  }
  out->push_back(std::move(step));
  return absl::OkStatus();
}

absl::StatusOr<SplitBehavior> ParseBehavior(const json& j, const std::string& path) {
  ES_ASSIGN_OR_RETURN(std::string b, GetString(j, "behavior", path));
  if (b == "Removed") return SplitBehavior::kRemoved;
  if (b == "Isolated") return SplitBehavior::kIsolated;
  if (b == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (b == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (b == "Contiguous") return SplitBehavior::kContiguous;
  return Malformed(absl::StrCat(path, ".behavior"), absl::StrCat("unknown behavior '", b, "'"));
}

absl::Status ParsePreTokenizer(const json& j, const std::string& path, std::vector<PreStep>* out) {
  ES_ASSIGN_OR_RETURN(std::string type, GetType(j, path));
  if (type == "Sequence") {
    ES_ASSIGN_OR_RETURN(const json* list, GetArray(j, "pretokenizers", path));
    for (size_t i = 0; i < list->size(); ++i) {
      ES_RETURN_IF_ERROR(ParsePreTokenizer((*list)[i], absl::StrCat(path, ".pretokenizers[", i, "]"), out));
    }
    return absl::OkStatus();
  }
  PreStep step{PreStep::Kind::kSplit};
  if (type == "Split") {
    std::string literal;
    ES_RETURN_IF_ERROR(ParsePattern(j, path, &literal, &step.regex));
    if (!step.regex) {
      auto re = Regex::Compile(literal, /*literal=*/true);
      if (!re.ok()) return Malformed(absl::StrCat(unicode::AV(path), ".pattern"), std::string(re.status().message()));
      step.regex = std::move(*re);
    }
    ES_ASSIGN_OR_RETURN(step.behavior, ParseBehavior(j, path));
    ES_ASSIGN_OR_RETURN(step.invert, GetBool(j, "invert", false, path));
  } else if (type == "Digits") {
    ES_ASSIGN_OR_RETURN(bool individual, GetBool(j, "individual_digits", false, path));
    auto re = Regex::Compile(individual ? R"(\p{N})" : R"(\p{N}+)", false);
    if (!re.ok()) return re.status();
    step.regex = std::move(*re);
  } else if (type == "ByteLevel") {
    step.kind = PreStep::Kind::kByteLevel;
    ES_ASSIGN_OR_RETURN(step.add_prefix_space, GetBool(j, "add_prefix_space", true, path));
    ES_ASSIGN_OR_RETURN(bool use_regex, GetBool(j, "use_regex", true, path));
    if (use_regex) {
      auto re = Regex::Compile(kGpt2Pattern, false);
      if (!re.ok()) return re.status();
      step.regex = std::move(*re);
    }
  } else if (type == "Metaspace") {
    step.kind = PreStep::Kind::kMetaspace;
    ES_ASSIGN_OR_RETURN(step.replacement, GetString(j, "replacement", path));
    ES_RETURN_IF_ERROR(SingleChar(step.replacement, absl::StrCat(path, ".replacement")).status());
    ES_ASSIGN_OR_RETURN(step.split, GetBool(j, "split", true, path));
    ES_ASSIGN_OR_RETURN(auto scheme, GetOptString(j, "prepend_scheme", path));
    if (scheme) {
      if (*scheme == "always") {
        step.prepend = PreStep::Prepend::kAlways;
      } else if (*scheme == "first") {
        step.prepend = PreStep::Prepend::kFirst;
      } else if (*scheme == "never") {
        step.prepend = PreStep::Prepend::kNever;
      } else {
        return Malformed(absl::StrCat(path, ".prepend_scheme"), absl::StrCat("unknown scheme '", *scheme, "'"));
      }
    } else {
      ES_ASSIGN_OR_RETURN(bool aps, GetBool(j, "add_prefix_space", true, path));
      step.prepend = aps ? PreStep::Prepend::kAlways : PreStep::Prepend::kNever;
    }
  } else {
    return Unsupported(path, "pre_tokenizer", type);
  }
  out->push_back(std::move(step));
  return absl::OkStatus();
}

absl::Status ParseDecoder(const json& j, const std::string& path, std::vector<DecStep>* out) {
  ES_ASSIGN_OR_RETURN(std::string type, GetType(j, path));
  if (type == "Sequence") {
    ES_ASSIGN_OR_RETURN(const json* list, GetArray(j, "decoders", path));
    for (size_t i = 0; i < list->size(); ++i) {
      ES_RETURN_IF_ERROR(ParseDecoder((*list)[i], absl::StrCat(path, ".decoders[", i, "]"), out));
    }
    return absl::OkStatus();
  }
  DecStep step{DecStep::Kind::kByteLevel};
  if (type == "ByteLevel") {
  } else if (type == "Metaspace") {
    step.kind = DecStep::Kind::kMetaspace;
    ES_ASSIGN_OR_RETURN(std::string rep, GetString(j, "replacement", path));
    ES_ASSIGN_OR_RETURN(step.ch, SingleChar(rep, absl::StrCat(path, ".replacement")));
    ES_ASSIGN_OR_RETURN(auto scheme, GetOptString(j, "prepend_scheme", path));
    if (scheme) {
      step.prepend = *scheme != "never";
    } else {
      ES_ASSIGN_OR_RETURN(step.prepend, GetBool(j, "add_prefix_space", true, path));
    }
  } else if (type == "ByteFallback") {
    step.kind = DecStep::Kind::kByteFallback;
  } else if (type == "Fuse") {
    step.kind = DecStep::Kind::kFuse;
  } else if (type == "Strip") {
    step.kind = DecStep::Kind::kStrip;
    ES_ASSIGN_OR_RETURN(std::string content, GetString(j, "content", path));
    ES_ASSIGN_OR_RETURN(step.ch, SingleChar(content, absl::StrCat(path, ".content")));
    ES_ASSIGN_OR_RETURN(int64_t start, GetInt(j, "start", 0, path));
    ES_ASSIGN_OR_RETURN(int64_t stop, GetInt(j, "stop", 0, path));
    if (start < 0 || stop < 0) return Malformed(path, "start/stop must be >= 0");
    step.start = static_cast<size_t>(start);
    step.stop = static_cast<size_t>(stop);
  } else if (type == "Replace") {
    step.kind = DecStep::Kind::kReplace;
    ES_ASSIGN_OR_RETURN(step.content, GetString(j, "content", path));
    ES_RETURN_IF_ERROR(ParsePattern(j, path, &step.literal, &step.regex));
  } else {
    return Unsupported(path, "decoder", type);
  }
  out->push_back(std::move(step));
  return absl::OkStatus();
}

absl::Status ParsePostProcessor(const json& j, const std::string& path, Impl* impl) {
  ES_ASSIGN_OR_RETURN(std::string type, GetType(j, path));
  if (type == "Sequence") {
    ES_ASSIGN_OR_RETURN(const json* list, GetArray(j, "processors", path));
    for (size_t i = 0; i < list->size(); ++i) {
      ES_RETURN_IF_ERROR(ParsePostProcessor((*list)[i], absl::StrCat(path, ".processors[", i, "]"), impl));
    }
    return absl::OkStatus();
  }
  if (type == "ByteLevel") return absl::OkStatus();  // offsets only; ids unchanged
  PostStep step;
  if (type == "TemplateProcessing") {
    ES_ASSIGN_OR_RETURN(const json* single, GetArray(j, "single", path));
    const json* specials = Find(j, "special_tokens");
    for (size_t i = 0; i < single->size(); ++i) {
      const json& item = (*single)[i];
      const std::string ipath = absl::StrCat(path, ".single[", i, "]");
      if (const json* seq = Find(item, "Sequence")) {
        ES_ASSIGN_OR_RETURN(std::string id, GetString(*seq, "id", ipath + ".Sequence"));
        if (id != "A") return Unsupported(ipath, "template sequence", id);
        step.single.push_back({true, {}});
      } else if (const json* sp = Find(item, "SpecialToken")) {
        ES_ASSIGN_OR_RETURN(std::string id, GetString(*sp, "id", ipath + ".SpecialToken"));
        const json* entry = specials ? Find(*specials, id) : nullptr;
        if (entry == nullptr) {
          return Malformed(absl::StrCat(path, ".special_tokens"), absl::StrCat("missing '", id, "'"));
        }
        const std::string epath = absl::StrCat(path, ".special_tokens[\"", id, "\"]");
        ES_ASSIGN_OR_RETURN(const json* ids, GetArray(*entry, "ids", epath));
        PostStep::Item it;
        for (const json& v : *ids) {
          if (!v.is_number_integer()) return Malformed(epath + ".ids", "expected integers");
          it.ids.push_back(v.get<TokenId>());
        }
        step.single.push_back(std::move(it));
      } else {
        return Malformed(ipath, "expected 'Sequence' or 'SpecialToken'");
      }
    }
  } else if (type == "BertProcessing" || type == "RobertaProcessing") {
    for (const char* key : {"cls", "sep"}) {
      const json* v = Find(j, key);
      if (v == nullptr || !v->is_array() || v->size() != 2 || !(*v)[1].is_number_integer()) {
        return Malformed(absl::StrCat(unicode::AV(path), ".", unicode::AV(key)), "expected [token, id]");
      }
    }
    step.single.push_back({false, {Find(j, "cls")->at(1).get<TokenId>()}});
    step.single.push_back({true, {}});
    step.single.push_back({false, {Find(j, "sep")->at(1).get<TokenId>()}});
  } else {
    return Unsupported(path, "post_processor", type);
  }
  impl->post_processors.push_back(std::move(step));
  return absl::OkStatus();
}

absl::Status ParseModel(const json& j, Impl* impl) {
  ES_ASSIGN_OR_RETURN(std::string type, GetType(j, "model"));
  if (type != "BPE") return Unsupported("model", "model", type);
  BpeModel& m = impl->model;
  if (const json* d = Find(j, "dropout"); d != nullptr && d->is_number() && d->get<double>() != 0) {
    return absl::UnimplementedError("tokenizer.json: model.dropout: BPE dropout is not supported");
  }
  const json* vocab = Find(j, "vocab");
  if (vocab == nullptr || !vocab->is_object()) return Malformed("model.vocab", "expected an object");
  m.vocab.reserve(vocab->size());
  TokenId max_id = -1;
  for (auto it = vocab->begin(); it != vocab->end(); ++it) {
    if (!it->is_number_integer() || it->get<int64_t>() < 0 || it->get<int64_t>() > (1 << 30)) {
      return Malformed(absl::StrCat("model.vocab[\"", it.key(), "\"]"), "expected an id in [0, 2^30]");
    }
    const auto id = it->get<TokenId>();
    m.vocab[it.key()] = id;
    max_id = std::max(max_id, id);
  }
  impl->id_to_token.assign(max_id + 1, std::string());
  impl->id_present.assign(max_id + 1, false);
  for (const auto& [tok, id] : m.vocab) {
    impl->id_to_token[id] = tok;
    impl->id_present[id] = true;
  }
  ES_ASSIGN_OR_RETURN(m.unk_token, GetOptString(j, "unk_token", "model"));
  ES_ASSIGN_OR_RETURN(m.prefix, GetOptString(j, "continuing_subword_prefix", "model"));
  ES_ASSIGN_OR_RETURN(m.suffix, GetOptString(j, "end_of_word_suffix", "model"));
  if (m.prefix && m.prefix->empty()) m.prefix.reset();
  if (m.suffix && m.suffix->empty()) m.suffix.reset();
  ES_ASSIGN_OR_RETURN(m.fuse_unk, GetBool(j, "fuse_unk", false, "model"));
  ES_ASSIGN_OR_RETURN(m.byte_fallback, GetBool(j, "byte_fallback", false, "model"));
  ES_ASSIGN_OR_RETURN(m.ignore_merges, GetBool(j, "ignore_merges", false, "model"));

  ES_ASSIGN_OR_RETURN(const json* merges, GetArray(j, "merges", "model"));
  const size_t prefix_len = m.prefix ? m.prefix->size() : 0;
  std::string merged;
  for (size_t i = 0; i < merges->size(); ++i) {
    const json& e = (*merges)[i];
    std::string_view a, b;
    std::string joined;
    if (e.is_string()) {
      const std::string& s = e.get_ref<const std::string&>();
      const size_t sp = s.find(' ');
      if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos) {
        return Malformed(absl::StrCat("model.merges[", i, "]"), "expected \"left right\"");
      }
      a = std::string_view(s).substr(0, sp);
      b = std::string_view(s).substr(sp + 1);
    } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
      a = e[0].get_ref<const std::string&>();
      b = e[1].get_ref<const std::string&>();
    } else {
      return Malformed(absl::StrCat("model.merges[", i, "]"), "expected a string or a pair of strings");
    }
    auto ia = m.vocab.find(unicode::AV(a));
    auto ib = m.vocab.find(unicode::AV(b));
    if (ia == m.vocab.end() || ib == m.vocab.end()) {
      return Malformed(absl::StrCat("model.merges[", i, "]"),
                       absl::StrCat("'", unicode::AV(a), "' or '", unicode::AV(b), "' is not in model.vocab"));
    }
    if (b.size() < prefix_len) {
      return Malformed(absl::StrCat("model.merges[", i, "]"), "right side shorter than the subword prefix");
    }
    merged.assign(a);
    merged.append(b.substr(prefix_len));
    auto im = m.vocab.find(merged);
    if (im == m.vocab.end()) {
      return Malformed(absl::StrCat("model.merges[", i, "]"),
                       absl::StrCat("merged token '", merged, "' is not in model.vocab"));
    }
    m.AddMerge(ia->second, ib->second, static_cast<int32_t>(i), im->second);
  }
  return m.Finalize();
}

absl::Status ParseAddedTokens(const json& root, Impl* impl) {
  const json* list = Find(root, "added_tokens");
  if (list == nullptr) return absl::OkStatus();
  if (!list->is_array()) return Malformed("added_tokens", "expected an array");
  for (size_t i = 0; i < list->size(); ++i) {
    const json& e = (*list)[i];
    const std::string path = absl::StrCat("added_tokens[", i, "]");
    if (!e.is_object()) return Malformed(path, "expected an object");
    AddedToken t;
    ES_ASSIGN_OR_RETURN(t.content, GetString(e, "content", path));
    ES_ASSIGN_OR_RETURN(int64_t id, GetInt(e, "id", -1, path));
    if (id < 0 || id > (1 << 30)) return Malformed(path + ".id", "expected an id in [0, 2^30]");
    t.id = static_cast<TokenId>(id);
    // As in the Rust library, a token already in the model keeps the model id.
    if (auto it = impl->model.vocab.find(t.content); it != impl->model.vocab.end()) t.id = it->second;
    ES_ASSIGN_OR_RETURN(t.lstrip, GetBool(e, "lstrip", false, path));
    ES_ASSIGN_OR_RETURN(t.rstrip, GetBool(e, "rstrip", false, path));
    ES_ASSIGN_OR_RETURN(t.single_word, GetBool(e, "single_word", false, path));
    ES_ASSIGN_OR_RETURN(t.special, GetBool(e, "special", false, path));
    ES_ASSIGN_OR_RETURN(t.normalized, GetBool(e, "normalized", !t.special, path));
    const int index = static_cast<int>(impl->added.size());
    impl->added_by_id[t.id] = index;
    if (t.special) impl->special_contents.insert(t.content);
    impl->added.push_back(std::move(t));
  }
  for (size_t i = 0; i < impl->added.size(); ++i) {
    const AddedToken& t = impl->added[i];
    (t.normalized ? impl->normalized_matcher : impl->raw_matcher).Add(t, static_cast<int>(i));
  }
  return absl::OkStatus();
}

// tokenizer_config.json token fields are a string or {"content": ...}.
std::optional<std::string> ConfigToken(const json& cfg, std::string_view key) {
  const json* v = Find(cfg, key);
  if (v == nullptr) return std::nullopt;
  if (v->is_string()) return v->get<std::string>();
  if (const json* c = Find(*v, "content"); c != nullptr && c->is_string()) return c->get<std::string>();
  return std::nullopt;
}

absl::Status ApplyConfig(std::string_view config_text, const Tokenizer::Options& options,
                         Impl* impl) {
  if (config_text.empty()) return absl::OkStatus();
  json cfg = json::parse(config_text, nullptr, /*allow_exceptions=*/false);
  if (cfg.is_discarded() || !cfg.is_object()) {
    return absl::DataLossError("tokenizer_config.json: not a JSON object");
  }
  auto lookup = [&](const std::string& tok) -> std::optional<TokenId> {
    for (const AddedToken& t : impl->added) {
      if (t.content == tok) return t.id;
    }
    auto it = impl->model.vocab.find(tok);
    if (it != impl->model.vocab.end()) return it->second;
    return std::nullopt;
  };
  const auto bos = ConfigToken(cfg, "bos_token");
  const auto eos = ConfigToken(cfg, "eos_token");
  if (bos) impl->bos_id = lookup(*bos);
  if (eos) impl->eos_id = lookup(*eos);
  if (!options.apply_tokenizer_config) return absl::OkStatus();
  // transformers' LlamaTokenizerFast / GemmaTokenizerFast (and CodeLlama)
  // rebuild the post-processor from add_bos_token / add_eos_token.
  std::string cls;
  if (const json* c = Find(cfg, "tokenizer_class"); c != nullptr && c->is_string()) cls = c->get<std::string>();
  static constexpr std::string_view kLlamaLike[] = {
      "LlamaTokenizer", "LlamaTokenizerFast", "CodeLlamaTokenizer",
      "CodeLlamaTokenizerFast", "GemmaTokenizer", "GemmaTokenizerFast"};
  if (std::find(std::begin(kLlamaLike), std::end(kLlamaLike), cls) == std::end(kLlamaLike)) {
    return absl::OkStatus();
  }
  ES_ASSIGN_OR_RETURN(bool add_bos, GetBool(cfg, "add_bos_token", true, "tokenizer_config"));
  ES_ASSIGN_OR_RETURN(bool add_eos, GetBool(cfg, "add_eos_token", false, "tokenizer_config"));
  PostStep step;
  if (add_bos) {
    if (!impl->bos_id) {
      return absl::DataLossError("tokenizer_config.json: add_bos_token is set but bos_token is missing or unknown");
    }
    step.single.push_back({false, {*impl->bos_id}});
  }
  step.single.push_back({true, {}});
  if (add_eos) {
    if (!impl->eos_id) {
      return absl::DataLossError("tokenizer_config.json: add_eos_token is set but eos_token is missing or unknown");
    }
    step.single.push_back({false, {*impl->eos_id}});
  }
  impl->post_processors.assign(1, std::move(step));
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Impl>> Load(std::string_view text, std::string_view config,
                                           const Tokenizer::Options& options) {
  json root = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded()) {
    // Re-parse with diagnostics only on the error path to get the byte offset.
    try {
      json probe = json::parse(text);
      (void)probe;
    } catch (const json::parse_error& e) {
      return absl::DataLossError(absl::StrCat("tokenizer.json: not valid JSON: ", e.what()));
    }
    return absl::DataLossError("tokenizer.json: not valid JSON");
  }
  if (!root.is_object()) return Malformed("$", "expected an object");
  auto impl = std::make_unique<Impl>();
  const json* model = Find(root, "model");
  if (model == nullptr) return Malformed("model", "missing");
  ES_RETURN_IF_ERROR(ParseModel(*model, impl.get()));
  ES_RETURN_IF_ERROR(ParseAddedTokens(root, impl.get()));
  if (const json* n = Find(root, "normalizer")) {
    ES_RETURN_IF_ERROR(ParseNormalizer(*n, "normalizer", &impl->normalizers));
  }
  if (const json* p = Find(root, "pre_tokenizer")) {
    ES_RETURN_IF_ERROR(ParsePreTokenizer(*p, "pre_tokenizer", &impl->pre_tokenizers));
  }
  if (const json* p = Find(root, "post_processor")) {
    ES_RETURN_IF_ERROR(ParsePostProcessor(*p, "post_processor", impl.get()));
  }
  if (const json* d = Find(root, "decoder")) {
    impl->has_decoder = true;
    ES_RETURN_IF_ERROR(ParseDecoder(*d, "decoder", &impl->decoders));
  }
  if (const json* t = Find(root, "truncation")) {
    return Unsupported("truncation", "setting", t->dump());
  }
  if (const json* p = Find(root, "padding")) return Unsupported("padding", "setting", p->dump());
  ES_RETURN_IF_ERROR(ApplyConfig(config, options, impl.get()));
  int32_t size = static_cast<int32_t>(impl->id_to_token.size());
  for (const AddedToken& t : impl->added) size = std::max(size, t.id + 1);
  impl->vocab_size = size;
  return impl;
}

absl::StatusOr<std::string> ReadFile(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", p.string()));
  std::stringstream ss;
  ss << in.rdbuf();
  return std::move(ss).str();
}

}  // namespace

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::~Tokenizer() = default;

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromJson(std::string_view tokenizer_json,
                                                               std::string_view config_json,
                                                               const Options& options) {
  absl::StatusOr<std::unique_ptr<Impl>> impl;
  try {
    impl = Load(tokenizer_json, config_json, options);
  } catch (const std::exception& e) {  // nlohmann/json must not escape
    return absl::DataLossError(absl::StrCat("tokenizer.json: ", e.what()));
  }
  if (!impl.ok()) return impl.status();
  return std::unique_ptr<Tokenizer>(new Tokenizer(std::move(*impl)));
}

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromDirectory(const std::filesystem::path& dir,
                                                                    const Options& options) {
  ES_ASSIGN_OR_RETURN(std::string text, ReadFile(dir / "tokenizer.json"));
  std::string config;
  if (std::filesystem::exists(dir / "tokenizer_config.json")) {
    ES_ASSIGN_OR_RETURN(config, ReadFile(dir / "tokenizer_config.json"));
  }
  auto tok = FromJson(text, config, options);
  if (!tok.ok()) {
    return absl::Status(tok.status().code(), absl::StrCat(dir.string(), ": ", tok.status().message()));
  }
  return tok;
}

absl::StatusOr<std::vector<TokenId>> Tokenizer::Encode(std::string_view text,
                                                       bool add_special_tokens) const {
  if (auto bad = unicode::FindInvalidUtf8(text)) {
    return absl::InvalidArgumentError(
        absl::StrCat("text is not valid UTF-8: invalid byte 0x",
                     absl::Hex(static_cast<uint8_t>(text[*bad]), absl::kZeroPad2), " at byte offset ", *bad));
  }
  const Impl& im = *impl_;
  std::vector<TokenId> ids;
  ids.reserve(text.size() / 3 + 4);
  std::vector<AddedTokenMatcher::Match> raw, norm;
  PieceList pl;
  auto encode_text = [&](std::string_view seg, bool at_origin) -> absl::Status {
    pl.buf.assign(seg);
    pl.pieces.assign(1, {0, static_cast<uint32_t>(seg.size()), at_origin});
    pl.byte_level = false;
    for (const PreStep& step : im.pre_tokenizers) {
      ES_RETURN_IF_ERROR(ApplyPreTokenizer(step, &pl));
    }
    const std::string_view buf = pl.buf;
    for (const auto& p : pl.pieces) {
      ES_RETURN_IF_ERROR(im.model.Tokenize(buf.substr(p.begin, p.end - p.begin), pl.byte_level, &ids));
    }
    return absl::OkStatus();
  };
  im.raw_matcher.Split(text, im.added, &raw);
  std::string normalized;
  for (const auto& m : raw) {
    if (m.token >= 0) {
      ids.push_back(im.added[m.token].id);
      continue;
    }
    normalized.assign(text.substr(m.begin, m.end - m.begin));
    for (const NormStep& step : im.normalizers) {
      ES_RETURN_IF_ERROR(ApplyNormalizer(step, &normalized));
    }
    if (normalized.empty()) continue;
    if (im.normalized_matcher.empty()) {
      ES_RETURN_IF_ERROR(encode_text(normalized, m.begin == 0));
      continue;
    }
    im.normalized_matcher.Split(normalized, im.added, &norm);
    for (const auto& n : norm) {
      if (n.token >= 0) {
        ids.push_back(im.added[n.token].id);
      } else {
        ES_RETURN_IF_ERROR(encode_text(std::string_view(normalized).substr(n.begin, n.end - n.begin),
                                       m.begin == 0 && n.begin == 0));
      }
    }
  }
  if (add_special_tokens) {
    for (const PostStep& step : im.post_processors) {
      std::vector<TokenId> out;
      out.reserve(ids.size() + 4);
      for (const auto& item : step.single) {
        if (item.is_sequence) {
          out.insert(out.end(), ids.begin(), ids.end());
        } else {
          out.insert(out.end(), item.ids.begin(), item.ids.end());
        }
      }
      ids = std::move(out);
    }
  }
  return ids;
}

absl::StatusOr<std::string> Tokenizer::Decode(std::span<const TokenId> ids,
                                              bool skip_special_tokens) const {
  const Impl& im = *impl_;
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    const TokenId id = ids[i];
    std::string_view tok;
    if (auto it = im.added_by_id.find(id); it != im.added_by_id.end()) {
      tok = im.added[it->second].content;
    } else if (id >= 0 && static_cast<size_t>(id) < im.id_present.size() && im.id_present[id]) {
      tok = im.id_to_token[id];
    } else {
      return absl::InvalidArgumentError(absl::StrCat("token id ", id, " at position ", i,
                                                     " is outside the vocabulary (size ",
                                                     im.vocab_size, ")"));
    }
    if (skip_special_tokens && im.special_contents.contains(unicode::AV(tok))) continue;
    tokens.emplace_back(tok);
  }
  if (!im.has_decoder) return absl::StrJoin(tokens, " ");
  for (const DecStep& step : im.decoders) {
    ES_RETURN_IF_ERROR(ApplyDecoder(step, &tokens));
  }
  return absl::StrJoin(tokens, "");
}

int32_t Tokenizer::vocab_size() const { return impl_->vocab_size; }

std::optional<TokenId> Tokenizer::TokenToId(std::string_view token) const {
  for (const AddedToken& t : impl_->added) {
    if (t.content == token) return t.id;
  }
  auto it = impl_->model.vocab.find(unicode::AV(token));
  if (it == impl_->model.vocab.end()) return std::nullopt;
  return it->second;
}

std::optional<std::string_view> Tokenizer::IdToToken(TokenId id) const {
  if (auto it = impl_->added_by_id.find(id); it != impl_->added_by_id.end()) {
    return std::string_view(impl_->added[it->second].content);
  }
  if (id >= 0 && static_cast<size_t>(id) < impl_->id_present.size() && impl_->id_present[id]) {
    return std::string_view(impl_->id_to_token[id]);
  }
  return std::nullopt;
}

std::optional<TokenId> Tokenizer::bos_id() const { return impl_->bos_id; }
std::optional<TokenId> Tokenizer::eos_id() const { return impl_->eos_id; }

bool Tokenizer::IsSpecial(TokenId id) const {
  auto it = impl_->added_by_id.find(id);
  return it != impl_->added_by_id.end() && impl_->added[it->second].special;
}

}  // namespace expertserve::engine
