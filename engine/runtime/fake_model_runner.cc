#include "engine/runtime/fake_model_runner.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace expertserve::engine {
namespace {

uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

}  // namespace

FakeModelRunner::FakeModelRunner(FakeModelOptions options)
    : options_(std::move(options)),
      kv_(static_cast<size_t>(options_.num_kv_blocks) *
              static_cast<size_t>(options_.block_tokens),
          -1) {
  if (!options_.next) {
    const int32_t vocab = options_.vocab_size;
    options_.next = [vocab](uint64_t h, int32_t) {
      return static_cast<TokenId>(1 + Mix(h) % static_cast<uint64_t>(vocab - 1));
    };
  }
}

void FakeModelRunner::CopyBlocks(std::span<const BlockCopy> copies) {
  const size_t bt = static_cast<size_t>(options_.block_tokens);
  for (const BlockCopy& c : copies) {
    std::copy_n(kv_.begin() + static_cast<long>(static_cast<size_t>(c.src) * bt),
                bt, kv_.begin() + static_cast<long>(static_cast<size_t>(c.dst) * bt));
  }
}

TokenId FakeModelRunner::NextFor(std::span<const TokenId> history) const {
  uint64_t h = 0;
  for (TokenId t : history) h = Mix(h ^ static_cast<uint32_t>(t));
  return options_.next(h, static_cast<int32_t>(history.size()));
}

std::vector<float> FakeModelRunner::LogitsFor(std::span<const TokenId> history) const {
  // A peaked distribution: the scripted token has most of the mass and the
  // rest vary with the position (so temperature sampling is meaningful).
  const size_t vocab = static_cast<size_t>(options_.vocab_size);
  const size_t last = history.size() - 1;
  std::vector<float> row(vocab);
  for (size_t v = 0; v < vocab; ++v) row[v] = static_cast<float>((v * 7 + last) % 5) * 0.1f;
  row[static_cast<size_t>(NextFor(history))] = 4.0f;
  return row;
}

absl::Status FakeModelRunner::Run(const StepBatch& batch, std::vector<float>& logits) {
  batches_.push_back(batch);
  const size_t bt = static_cast<size_t>(options_.block_tokens);
  // Write every token's "KV" first, as the forward pass does.
  for (size_t i = 0; i < batch.num_tokens(); ++i) {
    const auto& table = batch.sequences[static_cast<size_t>(batch.token_seq[i])].block_table;
    const size_t p = static_cast<size_t>(batch.positions[i]);
    if (p / bt >= table.size()) {
      return absl::InvalidArgumentError(absl::StrCat("fake runner: position ", p,
                                                     " beyond the block table"));
    }
    kv_[static_cast<size_t>(table[p / bt]) * bt + p % bt] = batch.tokens[i];
  }
  const size_t vocab = static_cast<size_t>(options_.vocab_size);
  logits.assign(batch.logit_tokens.size() * vocab, 0.0f);
  for (size_t r = 0; r < batch.logit_tokens.size(); ++r) {
    const size_t i = static_cast<size_t>(batch.logit_tokens[r]);
    const auto& table = batch.sequences[static_cast<size_t>(batch.token_seq[i])].block_table;
    const size_t last = static_cast<size_t>(batch.positions[i]);
    std::vector<TokenId> history;
    for (size_t p = 0; p <= last; ++p) {
      const TokenId t = kv_[static_cast<size_t>(table[p / bt]) * bt + p % bt];
      if (t < 0) {
        return absl::InternalError(absl::StrCat("fake runner: position ", p,
                                                " was never written"));
      }
      history.push_back(t);
    }
    const std::vector<float> row = LogitsFor(history);
    std::copy(row.begin(), row.end(), logits.begin() + static_cast<long>(r * vocab));
  }
  return absl::OkStatus();
}

}  // namespace expertserve::engine
