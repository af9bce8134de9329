#include "engine/forward/transformer.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "engine/forward/attention.h"
#include "engine/forward/layer_context.h"
#include "engine/forward/moe.h"
#include "engine/forward/scratch.h"
#include "engine/kernels/kernels.h"

namespace expertserve::engine {

Transformer::Transformer(ModelConfig config,
                         std::unique_ptr<checkpoint::Checkpoint> ckpt)
    : config_(std::move(config)),
      checkpoint_(std::move(ckpt)),
      rope_(config_),
      softmax_scale_(AttentionSoftmaxScale(config_)) {}

absl::StatusOr<std::unique_ptr<Transformer>> Transformer::Load(
    const std::filesystem::path& dir, const TransformerOptions& options) {
  ES_ASSIGN_OR_RETURN(ModelConfig config, LoadModelConfig(dir));
  ES_ASSIGN_OR_RETURN(auto ckpt, checkpoint::Checkpoint::Open(dir));
  auto t = std::unique_ptr<Transformer>(
      new Transformer(std::move(config), std::move(ckpt)));
  ES_ASSIGN_OR_RETURN(t->weights_, ModelWeights::Load(t->config_, *t->checkpoint_,
                                                      options.weights));
  return t;
}

absl::Status Transformer::Validate(const StepBatch& b, const KvStore& kv) const {
  const size_t T = b.num_tokens();
  if (b.positions.size() != T || b.token_seq.size() != T) {
    return absl::InvalidArgumentError("step batch: arrays differ in length");
  }
  const size_t block_tokens = kv.layout().block_tokens;
  for (size_t t = 0; t < T; ++t) {
    if (b.tokens[t] < 0 || b.tokens[t] >= config_.vocab_size) {
      return absl::InvalidArgumentError(
          absl::StrCat("token id ", b.tokens[t], " is outside the vocabulary [0, ",
                       config_.vocab_size, ")"));
    }
    const int32_t s = b.token_seq[t];
    if (s < 0 || static_cast<size_t>(s) >= b.sequences.size()) {
      return absl::InvalidArgumentError("step batch: bad sequence index");
    }
    const size_t pos = static_cast<size_t>(b.positions[t]);
    if (b.positions[t] < 0 ||
        pos / block_tokens >= b.sequences[s].block_table.size()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "step batch: position ", b.positions[t],
          " is beyond the sequence's KV blocks"));
    }
    for (int32_t block : b.sequences[s].block_table) {
      if (block < 0 || static_cast<size_t>(block) >= kv.layout().num_blocks) {
        return absl::InvalidArgumentError("step batch: bad KV block id");
      }
    }
  }
  for (int32_t t : b.logit_tokens) {
    if (t < 0 || static_cast<size_t>(t) >= T) {
      return absl::InvalidArgumentError("step batch: bad logit token index");
    }
  }
  return absl::OkStatus();
}

absl::Status Transformer::Forward(const StepBatch& batch, KvStore& kv,
                                  ThreadPool& pool,
                                  std::vector<float>& logits,
                                  ForwardStats* stats) const {
  ES_RETURN_IF_ERROR(Validate(batch, kv));
  const ModelConfig& c = config_;
  const size_t T = batch.num_tokens();
  const size_t H = static_cast<size_t>(c.hidden_size);
  const size_t V = static_cast<size_t>(c.vocab_size);
  const float eps = static_cast<float>(c.rms_norm_eps);
  logits.assign(batch.logit_tokens.size() * V, 0.0f);
  if (T == 0) return absl::OkStatus();

  std::vector<kernels::SeqBlockTable> tables;
  tables.reserve(batch.sequences.size());
  for (const StepSequence& s : batch.sequences) {
    tables.push_back({s.block_table.data(), s.block_table.size()});
  }
  const size_t half = static_cast<size_t>(rope_.rot_dim() / 2);
  std::vector<float> cos(T * half), sin(T * half);
  rope_.Compute(batch.positions, cos.data(), sin.data());
  const LayerContext ctx{c,  batch, tables, cos, sin, softmax_scale_,
                         kv, pool,  stats};

  // Residual stream h[T, H].
  thread_local Scratch h_buf, x_buf, y_buf;
  float* h = h_buf.Get(T * H);
  float* x = x_buf.Get(T * H);
  float* y = y_buf.Get(T * H);
  const size_t row_bytes = H * kernels::DTypeSize(weights_->embed.dtype);
  for (size_t t = 0; t < T; ++t) {
    kernels::ConvertToF32(
        {static_cast<const char*>(weights_->embed.data) + batch.tokens[t] * row_bytes,
         weights_->embed.dtype},
        H, h + t * H);
  }
  for (size_t l = 0; l < weights_->layers.size(); ++l) {
    const LayerWeights& lw = weights_->layers[l];
    kernels::RMSNorm(h, T, H, lw.input_norm, eps, x);
    AttentionForward(ctx, static_cast<int64_t>(l), lw.attn, x, y);
    kernels::AddInPlace(h, y, T * H);
    kernels::RMSNorm(h, T, H, lw.post_attention_norm, eps, x);
    if (lw.is_moe) {
      MoeForward(ctx, static_cast<int64_t>(l), lw.moe, x, y);
    } else {
      MlpForward(lw.mlp, x, T, H, y, pool);
    }
    kernels::AddInPlace(h, y, T * H);
  }
  const size_t L = batch.logit_tokens.size();
  std::vector<float> last(L * H);
  for (size_t i = 0; i < L; ++i) {
    std::copy_n(h + batch.logit_tokens[i] * H, H, last.data() + i * H);
  }
  kernels::RMSNorm(last.data(), L, H, weights_->final_norm, eps, last.data());
  kernels::MatMul(last.data(), L, H, weights_->lm_head, V, nullptr,
                  logits.data(), pool);
  return absl::OkStatus();
}

}  // namespace expertserve::engine
