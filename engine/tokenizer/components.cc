// The pipeline components, each mirroring the corresponding Hugging Face
// `tokenizers` (Rust) component closely enough for exact parity.
#include <algorithm>
#include <functional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "engine/tokenizer/tokenizer_internal.h"

namespace expertserve::engine::tokenizer_internal {
namespace {

using Range = std::pair<size_t, size_t>;
struct Span {
  size_t begin, end;
  bool is_match;
};

// NormalizedString::split's behaviours over a complete cover of the subject
// (matches and the gaps between them). Returns the ranges to keep.
void ApplyBehavior(const std::vector<Span>& spans, SplitBehavior behavior,
                   std::vector<Range>* keep) {
  keep->clear();
  switch (behavior) {
    case SplitBehavior::kIsolated:
      for (const Span& s : spans) keep->emplace_back(s.begin, s.end);
      return;
    case SplitBehavior::kRemoved:
      for (const Span& s : spans)
        if (!s.is_match) keep->emplace_back(s.begin, s.end);
      return;
    case SplitBehavior::kMergedWithPrevious: {
      bool prev_match = false;
      for (const Span& s : spans) {
        if (s.is_match && !prev_match && !keep->empty()) {
          keep->back().second = s.end;
        } else {
          keep->emplace_back(s.begin, s.end);
        }
        prev_match = s.is_match;
      }
      return;
    }
    case SplitBehavior::kMergedWithNext: {
      bool prev_match = false;
      for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
        if (it->is_match && !prev_match && !keep->empty()) {
          keep->back().first = it->begin;
        } else {
          keep->emplace_back(it->begin, it->end);
        }
        prev_match = it->is_match;
      }
      std::reverse(keep->begin(), keep->end());
      return;
    }
    case SplitBehavior::kContiguous: {
      bool prev_match = false;
      for (const Span& s : spans) {
        if (s.is_match == prev_match && !keep->empty()) {
          keep->back().second = s.end;
        } else {
          keep->emplace_back(s.begin, s.end);
        }
        prev_match = s.is_match;
      }
      return;
    }
  }
}

// Matches -> a full cover of [0, n) with gaps marked as non-matches.
void CoverWithGaps(const std::vector<Range>& matches, size_t n, bool invert,
                   std::vector<Span>* spans) {
  spans->clear();
  size_t prev = 0;
  for (const auto& [b, e] : matches) {
    if (prev != b) spans->push_back({prev, b, invert});
    spans->push_back({b, e, !invert});
    prev = e;
  }
  if (prev != n) spans->push_back({prev, n, invert});
}

// Rewrites every piece of `pl` through `fn(piece_text, at_origin, out)`.
template <typename Fn>
void RewritePieces(PieceList* pl, Fn fn) {
  std::string buf;
  buf.reserve(pl->buf.size() + pl->pieces.size() * 3);
  for (auto& p : pl->pieces) {
    const size_t b = buf.size();
    fn(std::string_view(pl->buf).substr(p.begin, p.end - p.begin), p.at_origin, &buf);
    p.begin = static_cast<uint32_t>(b);
    p.end = static_cast<uint32_t>(buf.size());
  }
  pl->buf = std::move(buf);
}

void MaterializeByteLevel(PieceList* pl) {
  if (!pl->byte_level) return;
  const auto& map = unicode::ByteToUtf8();
  RewritePieces(pl, [&](std::string_view s, bool, std::string* out) {
    for (char c : s) out->append(map[static_cast<uint8_t>(c)]);
  });
  pl->byte_level = false;
}

// Splits each piece at `matches_fn(piece) -> ranges`, then applies behaviour.
template <typename MatchFn>
absl::Status SplitPieces(PieceList* pl, SplitBehavior behavior, bool invert,
                         MatchFn matches_fn) {
  std::vector<PieceList::Piece> out;
  out.reserve(pl->pieces.size() * 2);
  std::vector<Range> matches;
  std::vector<Span> spans;
  std::vector<Range> keep;
  for (const auto& p : pl->pieces) {
    const std::string_view s = std::string_view(pl->buf).substr(p.begin, p.end - p.begin);
    matches.clear();
    ES_RETURN_IF_ERROR(matches_fn(s, &matches));
    CoverWithGaps(matches, s.size(), invert, &spans);
    ApplyBehavior(spans, behavior, &keep);
    for (const auto& [b, e] : keep) {
      if (e == b) continue;  // PreTokenizedString drops empty splits
      out.push_back({static_cast<uint32_t>(p.begin + b), static_cast<uint32_t>(p.begin + e),
                     p.at_origin && b == 0});
    }
  }
  pl->pieces = std::move(out);
  return absl::OkStatus();
}

bool StartsWithWordChar(std::string_view s) {
  if (s.empty()) return false;
  size_t i = 0;
  const char32_t c = unicode::NextCodePoint(s, &i);
  return c == '_' || unicode::IsAlphanumeric(c);
}
bool EndsWithWordChar(std::string_view s) {
  if (s.empty()) return false;
  size_t i = s.size() - 1;
  while (i > 0 && (static_cast<uint8_t>(s[i]) & 0xC0) == 0x80) --i;
  size_t j = i;
  const char32_t c = unicode::NextCodePoint(s, &j);
  return c == '_' || unicode::IsAlphanumeric(c);
}

}  // namespace

// ---- added tokens ------------------------------------------------------------

void AddedTokenMatcher::Add(const AddedToken& t, int index) {
  if (t.content.empty()) return;
  map_[t.content] = index;
  auto& lens = lengths_[static_cast<uint8_t>(t.content[0])];
  const auto len = static_cast<uint32_t>(t.content.size());
  if (std::find(lens.begin(), lens.end(), len) == lens.end()) {
    lens.push_back(len);
    std::sort(lens.rbegin(), lens.rend());
  }
}

void AddedTokenMatcher::Split(std::string_view text, const std::vector<AddedToken>& tokens,
                              std::vector<Match>* out) const {
  out->clear();
  size_t start_offset = 0;
  size_t i = 0;
  while (i < text.size()) {
    const auto& lens = lengths_[static_cast<uint8_t>(text[i])];
    int found = -1;
    size_t found_len = 0;
    for (uint32_t len : lens) {
      if (i + len > text.size()) continue;
      auto it = map_.find(unicode::AV(text.substr(i, len)));
      if (it != map_.end()) {
        found = it->second;
        found_len = len;
        break;
      }
    }
    if (found < 0) {
      ++i;
      continue;
    }
    size_t start = i, stop = i + found_len;
    i = stop;  // the next search resumes after this match, used or not
    const AddedToken& t = tokens[found];
    if (t.single_word) {
      if (EndsWithWordChar(text.substr(0, start)) || StartsWithWordChar(text.substr(stop)))
        continue;
    }
    if (t.lstrip) {
      size_t s = start;
      while (s > start_offset) {
        size_t k = s - 1;
        while (k > 0 && (static_cast<uint8_t>(text[k]) & 0xC0) == 0x80) --k;
        size_t j = k;
        if (!unicode::IsWhitespace(unicode::NextCodePoint(text, &j))) break;
        s = k;
      }
      start = s;
    }
    if (t.rstrip) {
      while (stop < text.size()) {
        size_t j = stop;
        if (!unicode::IsWhitespace(unicode::NextCodePoint(text, &j))) break;
        stop = j;
      }
      i = std::max(i, stop);
    }
    if (start_offset < start) out->push_back({-1, start_offset, start});
    out->push_back({found, start, stop});
    start_offset = stop;
  }
  if (start_offset < text.size()) out->push_back({-1, start_offset, text.size()});
}

// ---- normalizers -------------------------------------------------------------

absl::Status ApplyNormalizer(const NormStep& step, std::string* s) {
  switch (step.kind) {
    case NormStep::Kind::kUnicode:
      return unicode::Normalize(step.form, s);
    case NormStep::Kind::kLowercase:
      unicode::Lowercase(s);
      return absl::OkStatus();
    case NormStep::Kind::kPrepend:
      if (!s->empty()) s->insert(0, step.text);
      return absl::OkStatus();
    case NormStep::Kind::kReplace: {
      std::vector<Range> matches;
      if (step.regex) {
        ES_RETURN_IF_ERROR(step.regex->FindAll(*s, &matches));
      } else if (!step.literal.empty()) {
        size_t pos = 0;
        while ((pos = s->find(step.literal, pos)) != std::string::npos) {
          matches.emplace_back(pos, pos + step.literal.size());
          pos += step.literal.size();
        }
      }
      if (matches.empty()) return absl::OkStatus();
      std::string out;
      out.reserve(s->size() + matches.size() * step.text.size());
      size_t prev = 0;
      for (const auto& [b, e] : matches) {
        out.append(*s, prev, b - prev);
        out.append(step.text);
        prev = e;
      }
      out.append(*s, prev, std::string::npos);
      *s = std::move(out);
      return absl::OkStatus();
    }
    case NormStep::Kind::kStrip: {
      size_t b = 0, e = s->size();
      if (step.left) {
        while (b < e) {
          size_t j = b;
          if (!unicode::IsWhitespace(unicode::NextCodePoint(*s, &j))) break;
          b = j;
        }
      }
      if (step.right) {
        while (e > b) {
          size_t k = e - 1;
          while (k > b && (static_cast<uint8_t>((*s)[k]) & 0xC0) == 0x80) --k;
          size_t j = k;
          if (!unicode::IsWhitespace(unicode::NextCodePoint(*s, &j))) break;
          e = k;
        }
      }
      *s = s->substr(b, e - b);
      return absl::OkStatus();
    }
  }
  return absl::OkStatus();
}

// ---- pre-tokenizers ------------------------------------------------------------

absl::Status ApplyPreTokenizer(const PreStep& step, PieceList* pl) {
  switch (step.kind) {
    case PreStep::Kind::kSplit: {
      MaterializeByteLevel(pl);
      const Regex* re = step.regex.get();
      return SplitPieces(pl, step.behavior, step.invert,
                         [re](std::string_view s, std::vector<Range>* m) {
                           return re->FindAll(s, m);
                         });
    }
    case PreStep::Kind::kByteLevel: {
      MaterializeByteLevel(pl);
      if (step.add_prefix_space) {
        bool need = false;
        for (const auto& p : pl->pieces) need |= pl->buf[p.begin] != ' ';
        if (need) {
          RewritePieces(pl, [](std::string_view s, bool, std::string* out) {
            if (s[0] != ' ') out->push_back(' ');
            out->append(s);
          });
        }
      }
      if (step.regex) {
        const Regex* re = step.regex.get();
        ES_RETURN_IF_ERROR(SplitPieces(pl, SplitBehavior::kIsolated, false,
                                       [re](std::string_view s, std::vector<Range>* m) {
                                         return re->FindAll(s, m);
                                       }));
      }
      pl->byte_level = true;
      return absl::OkStatus();
    }
    case PreStep::Kind::kMetaspace: {
      MaterializeByteLevel(pl);
      const std::string& rep = step.replacement;
      RewritePieces(pl, [&](std::string_view s, bool at_origin, std::string* out) {
        const bool starts = s.substr(0, rep.size()) == rep ||
                            (!s.empty() && s[0] == ' ');  // ' ' becomes rep below
        if (!starts && (step.prepend == PreStep::Prepend::kAlways ||
                        (step.prepend == PreStep::Prepend::kFirst && at_origin))) {
          out->append(rep);
        }
        for (char c : s) {
          if (c == ' ') {
            out->append(rep);
          } else {
            out->push_back(c);
          }
        }
      });
      if (!step.split) return absl::OkStatus();
      return SplitPieces(pl, SplitBehavior::kMergedWithNext, false,
                         [&rep](std::string_view s, std::vector<Range>* m) {
                           size_t pos = 0;
                           while ((pos = s.find(rep, pos)) != std::string_view::npos) {
                             m->emplace_back(pos, pos + rep.size());
                             pos += rep.size();
                           }
                           return absl::OkStatus();
                         });
    }
  }
  return absl::OkStatus();
}

// ---- BPE ---------------------------------------------------------------------

absl::Status BpeModel::Finalize() {
  small_cp_ids_.assign(kSmallCp, -1);
  std::string s;
  for (char32_t c = 0; c < kSmallCp; ++c) {
    s.clear();
    unicode::AppendUtf8(c, &s);
    auto it = vocab.find(unicode::AV(s));
    if (it != vocab.end()) small_cp_ids_[c] = it->second;
  }
  for (int b = 0; b < 256; ++b) {
    auto it = vocab.find(absl::StrFormat("<0x%02X>", b));
    byte_fallback_ids_[b] = it == vocab.end() ? -1 : it->second;
  }
  if (unk_token && !vocab.contains(*unk_token)) {
    return absl::DataLossError(absl::StrCat("tokenizer.json: model.unk_token: '", *unk_token,
                                            "' is not in model.vocab"));
  }
  return absl::OkStatus();
}

absl::Status BpeModel::Tokenize(std::string_view word, bool byte_level,
                                std::vector<TokenId>* out) const {
  if (word.empty()) return absl::OkStatus();
  const bool cacheable = word.size() <= kMaxCachedWordBytes;
  Shard* shard = nullptr;
  if (cacheable) {
    shard = &cache_[absl::Hash<absl::string_view>()(unicode::AV(word)) % kShards];
    absl::MutexLock lock(&shard->mu);
    auto it = shard->map.find(unicode::AV(word));
    if (it != shard->map.end()) {
      out->insert(out->end(), it->second.begin(), it->second.end());
      return absl::OkStatus();
    }
  }
  thread_local std::string mapped;
  std::string_view s = word;
  if (byte_level) {
    mapped.clear();
    const auto& map = unicode::ByteToUtf8();
    for (char c : word) mapped.append(map[static_cast<uint8_t>(c)]);
    s = mapped;
  }
  const size_t before = out->size();
  auto whole = ignore_merges ? vocab.find(unicode::AV(s)) : vocab.end();
  if (whole != vocab.end()) {
    out->push_back(whole->second);
  } else {
    ES_RETURN_IF_ERROR(MergeWord(s, out));
  }
  if (cacheable) {
    absl::MutexLock lock(&shard->mu);
    if (shard->map.size() >= kMaxEntriesPerShard) shard->map.clear();
    shard->map.try_emplace(std::string(word), out->begin() + before, out->end());
  }
  return absl::OkStatus();
}

absl::Status BpeModel::MergeWord(std::string_view w, std::vector<TokenId>* out) const {
  struct Symbol {
    TokenId c;
    int32_t prev, next;
    uint32_t len;
  };
  struct Merge {
    int32_t rank;
    int32_t pos;
    TokenId id;
    // std heap is a max-heap: "greater" = lower rank, then lower position.
    bool operator<(const Merge& o) const {
      return rank != o.rank ? rank > o.rank : pos > o.pos;
    }
  };
  thread_local std::vector<Symbol> symbols;
  thread_local std::vector<Merge> queue;
  thread_local std::string piece;
  symbols.clear();
  queue.clear();
  auto add = [](TokenId c, uint32_t len) {
    const auto n = static_cast<int32_t>(symbols.size());
    symbols.push_back({c, n - 1, -1, len});
    if (n > 0) symbols[n - 1].next = n;
  };
  // Pending unknown run (Rust keeps it as Option<(id, len)>); unk_len 0 = none.
  TokenId unk_id = -1;
  uint32_t unk_len = 0;
  const bool plain = !prefix && !suffix;
  size_t i = 0;
  while (i < w.size()) {
    size_t j = i;
    const char32_t cp = unicode::NextCodePoint(w, &j);
    const auto byte_len = static_cast<uint32_t>(j - i);
    TokenId id = -1;
    std::string_view s = w.substr(i, byte_len);
    if (plain && cp < kSmallCp) {
      id = small_cp_ids_[cp];
    } else {
      piece.clear();
      if (i != 0 && prefix) piece.append(*prefix);
      piece.append(s);
      if (j == w.size() && suffix) piece.append(*suffix);
      s = piece;
      auto it = vocab.find(unicode::AV(s));
      if (it != vocab.end()) id = it->second;
    }
    i = j;
    if (id >= 0) {
      if (unk_len > 0) {
        add(unk_id, unk_len);
        unk_len = 0;
      }
      add(id, byte_len);
      continue;
    }
    if (byte_fallback) {
      bool all = true;
      for (char c : s) all &= byte_fallback_ids_[static_cast<uint8_t>(c)] >= 0;
      if (all) {
        for (char c : s) add(byte_fallback_ids_[static_cast<uint8_t>(c)], 1);
        continue;
      }
    }
    if (unk_token) {
      if (unk_len > 0 && fuse_unk) {
        unk_len += byte_len;
      } else {
        if (unk_len > 0) add(unk_id, unk_len);
        unk_id = vocab.find(*unk_token)->second;
        unk_len = byte_len;
      }
    }
  }
  if (unk_len > 0) add(unk_id, unk_len);

  for (size_t k = 0; k + 1 < symbols.size(); ++k) {
    auto it = merges_.find(Key(symbols[k].c, symbols[k + 1].c));
    if (it != merges_.end()) queue.push_back({it->second.rank, static_cast<int32_t>(k), it->second.id});
  }
  std::make_heap(queue.begin(), queue.end());
  while (!queue.empty()) {
    std::pop_heap(queue.begin(), queue.end());
    const Merge top = queue.back();
    queue.pop_back();
    Symbol& cur = symbols[top.pos];
    if (cur.len == 0 || cur.next == -1) continue;
    const int32_t next_pos = cur.next;
    const Symbol right = symbols[next_pos];
    auto it = merges_.find(Key(cur.c, right.c));
    if (it == merges_.end() || it->second.id != top.id) continue;
    cur.c = top.id;
    cur.len += right.len;
    cur.next = right.next;
    symbols[next_pos].len = 0;
    if (right.next >= 0) symbols[right.next].prev = top.pos;
    if (cur.prev >= 0) {
      auto m = merges_.find(Key(symbols[cur.prev].c, cur.c));
      if (m != merges_.end()) {
        queue.push_back({m->second.rank, cur.prev, m->second.id});
        std::push_heap(queue.begin(), queue.end());
      }
    }
    if (cur.next >= 0) {
      auto m = merges_.find(Key(cur.c, symbols[cur.next].c));
      if (m != merges_.end()) {
        queue.push_back({m->second.rank, top.pos, m->second.id});
        std::push_heap(queue.begin(), queue.end());
      }
    }
  }
  for (const Symbol& sym : symbols) {
    if (sym.len != 0) out->push_back(sym.c);
  }
  return absl::OkStatus();
}

// ---- decoders ------------------------------------------------------------------

absl::Status ApplyDecoder(const DecStep& step, std::vector<std::string>* tokens) {
  switch (step.kind) {
    case DecStep::Kind::kByteLevel: {
      std::string bytes;
      for (const std::string& t : *tokens) {
        const size_t mark = bytes.size();
        size_t i = 0;
        bool ok = true;
        while (i < t.size()) {
          const int b = unicode::CodePointToByte(unicode::NextCodePoint(t, &i));
          if (b < 0) {
            ok = false;
            break;
          }
          bytes.push_back(static_cast<char>(b));
        }
        if (!ok) {
          bytes.resize(mark);
          bytes.append(t);
        }
      }
      tokens->assign(1, unicode::Utf8Lossy(bytes));
      return absl::OkStatus();
    }
    case DecStep::Kind::kMetaspace: {
      for (size_t k = 0; k < tokens->size(); ++k) {
        std::string& t = (*tokens)[k];
        std::string out;
        size_t i = 0;
        while (i < t.size()) {
          const size_t b = i;
          const char32_t c = unicode::NextCodePoint(t, &i);
          if (c == step.ch) {
            if (!(k == 0 && step.prepend)) out.push_back(' ');
          } else {
            out.append(t, b, i - b);
          }
        }
        t = std::move(out);
      }
      return absl::OkStatus();
    }
    case DecStep::Kind::kByteFallback: {
      std::vector<std::string> out;
      std::string pending;
      auto flush = [&] {
        if (pending.empty()) return;
        if (!unicode::FindInvalidUtf8(pending).has_value()) {
          out.push_back(pending);
        } else {
          for (size_t k = 0; k < pending.size(); ++k) out.emplace_back("\xEF\xBF\xBD");
        }
        pending.clear();
      };
      for (std::string& t : *tokens) {
        int byte = -1;
        if (t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>') {
          unsigned v = 0;
          bool ok = true;
          for (int k = 3; k < 5; ++k) {
            const char c = t[k];
            v <<= 4;
            if (c >= '0' && c <= '9') {
              v |= c - '0';
            } else if (c >= 'a' && c <= 'f') {
              v |= c - 'a' + 10;
            } else if (c >= 'A' && c <= 'F') {
              v |= c - 'A' + 10;
            } else {
              ok = false;
            }
          }
          if (ok) byte = static_cast<int>(v);
        }
        if (byte >= 0) {
          pending.push_back(static_cast<char>(byte));
        } else {
          flush();
          out.push_back(std::move(t));
        }
      }
      flush();
      *tokens = std::move(out);
      return absl::OkStatus();
    }
    case DecStep::Kind::kFuse: {
      std::string all;
      for (const std::string& t : *tokens) all.append(t);
      tokens->assign(1, std::move(all));
      return absl::OkStatus();
    }
    case DecStep::Kind::kStrip: {
      for (std::string& t : *tokens) {
        std::vector<size_t> starts;  // byte offset of each char
        size_t i = 0;
        std::vector<char32_t> cps;
        while (i < t.size()) {
          starts.push_back(i);
          cps.push_back(unicode::NextCodePoint(t, &i));
        }
        starts.push_back(t.size());
        size_t start_cut = 0;
        for (size_t k = 0; k < std::min(step.start, cps.size()); ++k) {
          if (cps[k] != step.ch) break;
          start_cut = k + 1;
        }
        size_t stop_cut = cps.size();
        for (size_t k = 0; k < std::min(step.stop, cps.size()); ++k) {
          const size_t index = cps.size() - k - 1;
          if (cps[index] != step.ch) break;
          stop_cut = index;
        }
        if (stop_cut < start_cut) stop_cut = start_cut;
        t = t.substr(starts[start_cut], starts[stop_cut] - starts[start_cut]);
      }
      return absl::OkStatus();
    }
    case DecStep::Kind::kReplace: {
      for (std::string& t : *tokens) {
        NormStep n{NormStep::Kind::kReplace};
        n.text = step.content;
        n.literal = step.literal;
        n.regex = step.regex;
        ES_RETURN_IF_ERROR(ApplyNormalizer(n, &t));
      }
      return absl::OkStatus();
    }
  }
  return absl::OkStatus();
}

}  // namespace expertserve::engine::tokenizer_internal
