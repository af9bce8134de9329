#include "router/hashed_ngram_encoder.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "router/text_util.h"

namespace expertserve::router {
namespace {

// Seeds keep the two families apart in the shared hash space.
constexpr uint64_t kCharSeed = 0x243F6A8885A308D3ull;
constexpr uint64_t kWordSeed = 0x13198A2E03707344ull;
constexpr uint64_t kWordSeparator = 0x1F;  // between the words of a bigram

inline uint64_t Mix(uint64_t h, uint64_t v) {
  return (h ^ v) * 0x100000001B3ull;  // FNV-1a step over a code point
}

// MurmurHash3's finaliser: spreads the FNV state over all 64 bits so the low
// bits (bucket) and the top bit (sign) are independent.
inline uint64_t Finalize(uint64_t h) {
  h ^= h >> 33;
  h *= 0xFF51AFD7ED558CCDull;
  h ^= h >> 33;
  h *= 0xC4CEB9FE1A85EC53ull;
  h ^= h >> 33;
  return h;
}

// Lower-cased code points with every ASCII digit mapped to '0' (numbers
// matter as a class, "3x + 7" ~ "5x + 2", not by value) and whitespace and
// control characters collapsed to single spaces, without leading/trailing
// spaces.
void Normalize(std::string_view text, std::vector<char32_t>* out) {
  std::vector<char32_t> raw;
  raw.reserve(text.size());
  DecodeUtf8(text, &raw);
  out->clear();
  out->reserve(raw.size());
  bool pending_space = false;
  for (char32_t cp : raw) {
    if (IsSpaceOrControl(cp)) {
      pending_space = !out->empty();
      continue;
    }
    if (pending_space) out->push_back(' ');
    pending_space = false;
    cp = SimpleLower(cp);
    if (cp >= '1' && cp <= '9') cp = '0';
    out->push_back(cp);
  }
}

// Calls emit(hash) for every feature of one family.
template <class Emit>
void CharNgrams(const std::vector<char32_t>& cps, const HashedNgramOptions& o,
                const Emit& emit) {
  // Padded chunk: ' ' + chunk + ' '.
  std::vector<char32_t> chunk;
  size_t i = 0;
  while (i < cps.size()) {
    size_t j = i;
    while (j < cps.size() && cps[j] != ' ') ++j;
    chunk.assign(1, ' ');
    chunk.insert(chunk.end(), cps.begin() + i, cps.begin() + j);
    chunk.push_back(' ');
    const size_t len = chunk.size();
    for (size_t s = 0; s < len; ++s) {
      uint64_t h = kCharSeed;
      for (int n = 1; n <= o.max_char_ngram && s + n <= len; ++n) {
        h = Mix(h, chunk[s + n - 1]);
        if (n >= o.min_char_ngram) emit(Finalize(h));
      }
    }
    i = j + 1;
  }
}

template <class Emit>
void WordNgrams(const std::vector<char32_t>& cps, const HashedNgramOptions& o,
                const Emit& emit) {
  uint64_t prev = 0;  // the previous token's hash, 0 = none yet
  size_t i = 0;
  while (i < cps.size()) {
    const char32_t cp = cps[i];
    if (cp == ' ') {
      ++i;
      continue;
    }
    uint64_t h = kWordSeed;
    if (IsWordChar(cp) && !IsCjk(cp)) {
      while (i < cps.size() && IsWordChar(cps[i]) && !IsCjk(cps[i])) {
        h = Mix(h, cps[i]);
        ++i;
      }
    } else {
      h = Mix(h, cp);  // a symbol or CJK character: a token by itself
      ++i;
    }
    emit(Finalize(h));
    if (o.max_word_ngram >= 2 && prev != 0) {
      emit(Finalize(Mix(Mix(prev, kWordSeparator), h)));
    }
    prev = h;
  }
}

// 1 + log(n) for small counts without calling log (most counts are 1).
inline float SublinearTf(float count) {
  static const auto* table = [] {
    auto* t = new std::array<float, 64>();
    for (size_t n = 1; n < t->size(); ++n) (*t)[n] = 1.0f + std::log(static_cast<float>(n));
    return t;
  }();
  const float a = std::fabs(count);
  const float tf = a < 64 ? (*table)[static_cast<size_t>(a)] : 1.0f + std::log(a);
  return std::copysign(tf, count);
}

}  // namespace

HashedNgramEncoder::HashedNgramEncoder(const HashedNgramOptions& options)
    : options_(options), idf_(options.dim, 1.0f) {}

absl::StatusOr<std::unique_ptr<HashedNgramEncoder>> HashedNgramEncoder::Create(
    const HashedNgramOptions& options, absl::Span<const std::string> fit_corpus) {
  const int d = options.dim;
  if (d < 64 || d > (1 << 20) || (d & (d - 1)) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "router encoder: dim must be a power of two in [64, 1048576], got ", d));
  }
  if (options.min_char_ngram < 1 || options.max_char_ngram < options.min_char_ngram ||
      options.max_char_ngram > 8) {
    return absl::InvalidArgumentError(absl::StrCat(
        "router encoder: need 1 <= min_char_ngram <= max_char_ngram <= 8, got ",
        options.min_char_ngram, "..", options.max_char_ngram));
  }
  if (options.max_word_ngram < 1 || options.max_word_ngram > 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        "router encoder: max_word_ngram must be 1 or 2, got ", options.max_word_ngram));
  }
  if (!(options.char_weight >= 0) || !(options.word_weight >= 0) ||
      !std::isfinite(options.char_weight) || !std::isfinite(options.word_weight) ||
      options.char_weight + options.word_weight <= 0) {
    return absl::InvalidArgumentError(
        "router encoder: char_weight and word_weight must be finite, >= 0 and "
        "not both 0");
  }
  auto encoder = std::unique_ptr<HashedNgramEncoder>(new HashedNgramEncoder(options));

  // Smoothed IDF per bucket: log((1 + N) / (1 + df)) + 1, as scikit-learn's
  // TfidfVectorizer. Buckets no example touched get the largest weight.
  const uint64_t mask = static_cast<uint64_t>(d) - 1;
  std::vector<uint32_t> df(d, 0);
  std::vector<uint32_t> last_doc(d, 0);  // 1-based doc index that counted it
  std::vector<char32_t> cps;
  uint32_t doc = 0;
  for (const std::string& text : fit_corpus) {
    ++doc;
    Normalize(text, &cps);
    auto count = [&](uint64_t h) {
      const size_t b = h & mask;
      if (last_doc[b] != doc) {
        last_doc[b] = doc;
        ++df[b];
      }
    };
    CharNgrams(cps, options, count);
    WordNgrams(cps, options, count);
  }
  const double n = static_cast<double>(fit_corpus.size());
  for (int b = 0; b < d; ++b) {
    encoder->idf_[b] = static_cast<float>(std::log((1.0 + n) / (1.0 + df[b])) + 1.0);
  }
  return encoder;
}

absl::Status HashedNgramEncoder::Encode(std::string_view text,
                                        absl::Span<float> out) const {
  const int d = options_.dim;
  if (out.size() != static_cast<size_t>(d)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "router encoder: output has ", out.size(), " floats, expected dim ", d));
  }
  std::fill(out.begin(), out.end(), 0.0f);
  std::vector<char32_t> cps;
  Normalize(text, &cps);
  if (cps.empty()) return absl::OkStatus();

  const uint64_t mask = static_cast<uint64_t>(d) - 1;
  // One family at a time: signed counts in `acc`, the buckets touched in
  // `touched` (a bucket may repeat if its sum went back to 0; the first
  // visit clears it, so the repeat is skipped). Only touched buckets are
  // visited: a short prompt touches a few hundred of `dim`.
  std::vector<float> acc(d, 0.0f);  // [dim]
  std::vector<uint32_t> touched;
  std::vector<std::pair<uint32_t, float>> values;
  std::vector<uint32_t> out_touched;  // distinct buckets of `out`
  std::vector<uint8_t> in_out(d, 0);  // [dim] 1 = listed in out_touched
  touched.reserve(cps.size() * 4);
  values.reserve(cps.size() * 4);
  auto add = [&](uint64_t h) {
    const uint32_t b = static_cast<uint32_t>(h & mask);
    if (acc[b] == 0.0f) touched.push_back(b);
    acc[b] += (h >> 63) ? -1.0f : 1.0f;
  };
  auto flush_family = [&](float weight) {
    // Sublinear TF (sign-preserving, since hashing is signed) times IDF,
    // L2-normalised within the family.
    values.clear();
    double norm2 = 0;
    for (uint32_t b : touched) {
      if (acc[b] == 0.0f) continue;
      const float v = SublinearTf(acc[b]) * idf_[b];
      acc[b] = 0.0f;
      values.emplace_back(b, v);
      norm2 += static_cast<double>(v) * v;
    }
    touched.clear();
    if (norm2 <= 0) return;
    const float scale = weight / static_cast<float>(std::sqrt(norm2));
    for (const auto& [b, v] : values) {
      out[b] += v * scale;
      if (!in_out[b]) {
        in_out[b] = 1;
        out_touched.push_back(b);
      }
    }
  };
  if (options_.char_weight > 0) {
    CharNgrams(cps, options_, add);
    flush_family(options_.char_weight);
  }
  if (options_.word_weight > 0) {
    WordNgrams(cps, options_, add);
    flush_family(options_.word_weight);
  }
  double norm2 = 0;
  for (uint32_t b : out_touched) norm2 += static_cast<double>(out[b]) * out[b];
  if (norm2 <= 0) return absl::OkStatus();
  const float inv = static_cast<float>(1.0 / std::sqrt(norm2));
  for (uint32_t b : out_touched) out[b] *= inv;
  return absl::OkStatus();
}

std::string HashedNgramEncoder::name() const {
  return absl::StrCat("hashed-ngram(dim=", options_.dim, ",char=", options_.min_char_ngram,
                      "-", options_.max_char_ngram, ",word=1-", options_.max_word_ngram,
                      ",char_weight=", options_.char_weight,
                      ",word_weight=", options_.word_weight, ")");
}

}  // namespace expertserve::router
