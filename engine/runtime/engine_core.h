// The synchronous heart of one model's engine: requests in, one Step() at a
// time: schedule -> KV plan/apply -> forward -> sample -> stream outputs.
// Engine (engine.h) runs it on its loop thread; tests drive Step() directly
// and check each step's composition (the StepRecord).
#ifndef EXPERTSERVE_ENGINE_RUNTIME_ENGINE_CORE_H_
#define EXPERTSERVE_ENGINE_RUNTIME_ENGINE_CORE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "engine/adapter_resolver.h"
#include "engine/engine_interface.h"
#include "engine/kv_cache/block_manager.h"
#include "engine/runtime/model_runner.h"
#include "engine/sampler/prng.h"
#include "engine/sampler/sampler.h"
#include "engine/sampler/stop_checker.h"
#include "engine/scheduler/scheduler.h"
#include "engine/tokenizer/tokenizer.h"

namespace expertserve::engine {

struct EngineOptions {
  std::string model_name;
  int32_t max_batched_tokens = 2048;
  int32_t max_num_seqs = 64;
  int32_t max_waiting_requests = 1024;  // Submit beyond: kResourceExhausted
  SchedulingPolicy policy = FcfsPolicy{};
  bool enable_prefix_caching = true;
  // 0: the model's max_position_embeddings.
  int32_t max_model_len = 0;
  // EOS ids (generation_config.json / config.json / tokenizer).
  std::vector<TokenId> eos_token_ids;
};

// What one step did (for tests and logs).
struct StepRecord {
  struct Entry {
    std::string request_id;
    int32_t sample_index = 0;
    int32_t start = 0;
    int32_t num_tokens = 0;
    bool operator==(const Entry&) const = default;
  };
  std::vector<Entry> scheduled;
  std::vector<Entry> preempted;  // start/num_tokens unused
  std::vector<std::string> finished;  // request ids finished in this step
  int32_t num_batched_tokens = 0;
};

// Engine thread only (thread-compatible). `runner` and `tokenizer` (may be
// null: no text, no stop strings) must outlive it.
class EngineCore {
 public:
  EngineCore(EngineOptions options, ModelRunnerInterface* runner,
             const Tokenizer* tokenizer);

  const EngineOptions& options() const { return options_; }
  int32_t max_model_len() const { return max_model_len_; }
  const BlockManager& kv() const { return kv_; }

  // The synchronous checks of Submit (thread-safe: reads only immutable
  // configuration): parameters, lengths, capacity.
  absl::Status Validate(const GenerateRequest& request) const;

  // Takes a validated request. `adapter` is empty for the base model.
  void AddRequest(GenerateRequest request, std::shared_ptr<OutputSinkInterface> sink,
                  std::optional<ResolvedAdapter> adapter, absl::Time arrival);
  // Finishes the request with kAbort and `status`, freeing its blocks now.
  // Returns false for an unknown id.
  bool Abort(const std::string& request_id, absl::Status status);
  // Aborts every request (shutdown).
  void AbortAll(absl::Status status);

  bool HasWork() const { return !requests_.empty(); }
  // One scheduling iteration and forward step; `now` checks deadlines.
  StepRecord Step(absl::Time now);

  int64_t num_running() const { return static_cast<int64_t>(running_.size()); }
  int64_t num_waiting() const { return static_cast<int64_t>(waiting_.size()); }
  EngineStats Stats() const;

 private:
  struct Request;
  struct Sequence {
    SeqId id = 0;
    Request* request = nullptr;
    int32_t sample_index = 0;
    std::vector<TokenId> tokens;  // [prompt + output]
    int32_t num_computed = 0;     // KV positions written (running only)
    SamplePrng prng{0, 0};
    std::unique_ptr<StopChecker> stop;
    bool running = false;
  };
  struct Request {
    GenerateRequest req;
    std::shared_ptr<OutputSinkInterface> sink;
    std::shared_ptr<const AdapterRouting> routing;
    uint64_t salt = 0;
    int64_t arrival_order = 0;
    absl::Time arrival;
    std::optional<absl::Time> first_scheduled;
    std::optional<absl::Time> first_token;
    std::vector<SeqId> seqs;  // live sequences
    bool forked = false;      // the n samples exist
    std::vector<SampleResult> results;  // [n]
    std::vector<bool> sample_done;      // [n]
    int32_t num_unfinished = 0;
    int32_t cached_tokens = 0;
    int32_t completion_tokens = 0;
    std::vector<PositionLogprobs> prompt_logprobs;
    bool prompt_logprobs_sent = false;
  };

  SeqState ViewRunning(const Sequence& s) const;
  SeqState ViewWaiting(const Sequence& s) const;
  // Samples the next token of `s` from `logits` and streams it; returns
  // true when the sequence finished.
  bool Emit(Sequence& s, TokenId token, std::span<const float> logits, absl::Time now);
  void FinishSequence(Sequence& s, FinishReason reason, std::string stop_string,
                      TokenId stop_token);
  void FinishRequest(Request& r, absl::Status status, absl::Time now,
                     StepRecord* record);
  void RemoveSeq(SeqId id);
  void Preempt(Sequence& s);
  Sequence& NewSequence(Request& r, int32_t sample_index);

  const EngineOptions options_;
  ModelRunnerInterface* const runner_;
  const Tokenizer* const tokenizer_;
  const int32_t max_model_len_;
  BlockManager kv_;
  Scheduler scheduler_;
  SamplerScratch scratch_;

  absl::flat_hash_map<std::string, std::unique_ptr<Request>> requests_;
  absl::flat_hash_map<SeqId, std::unique_ptr<Sequence>> seqs_;
  std::vector<SeqId> running_;
  std::vector<SeqId> waiting_;
  SeqId next_seq_id_ = 1;
  int64_t next_arrival_ = 0;

  int64_t num_preemptions_ = 0;
  int64_t prompt_tokens_ = 0;
  int64_t generation_tokens_ = 0;
  std::vector<float> logits_;
};

}  // namespace expertserve::engine

#endif  // EXPERTSERVE_ENGINE_RUNTIME_ENGINE_CORE_H_
