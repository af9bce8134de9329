// The narrow interface between the engine and its callers (the gRPC server,
// benchmarks, tests). Plain structs only: no gRPC or protobuf types.
//
// Life of a request:
//   Submit(request, sink)  validates synchronously; on error nothing else
//                          happens and the sink is never called.
//   sink->OnPromptLogprobs at most once, before any delta (only if asked).
//   sink->OnDelta          zero or more times, per sample, in token order.
//   sink->OnFinish         exactly once, last, after every sample ended
//                          (stop, length, abort or error). The engine then
//                          drops its reference to the sink.
// All sink calls come from the engine's loop thread and must never block
// (push into a buffer and return): a slow sink stalls every request.
#ifndef EXPERTSERVE_ENGINE_ENGINE_INTERFACE_H_
#define EXPERTSERVE_ENGINE_ENGINE_INTERFACE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "common/ids.h"
#include "engine/sampling_params.h"

namespace expertserve::engine {

// Value type, thread-compatible.
struct GenerateRequest {
  // Unique among the engine's in-flight requests (Abort addresses it).
  std::string request_id;
  std::string model;
  // ESFT adapter of `model`; empty runs the base model.
  std::string adapter;
  std::vector<TokenId> prompt_token_ids;  // [num_prompt_tokens], >= 1
  SamplingParams sampling;
  // Lower runs first under the priority policy (vLLM convention); ties by
  // arrival. Ignored under FCFS.
  int32_t priority = 0;
  // Past it the request is aborted (finish kAbort, status kDeadlineExceeded).
  absl::Time deadline = absl::InfiniteFuture();
};

struct TokenLogprob {
  TokenId token = 0;
  float logprob = 0.0f;
};

// Logprobs at one position (see SamplingParams::logprobs for the convention).
struct PositionLogprobs {
  TokenLogprob chosen;     // the generated (or prompt) token
  int32_t rank = 0;        // 1-based rank of `chosen` in the distribution
  std::vector<TokenLogprob> top;  // [N], most likely first
};

// New output of one sample since its previous delta.
struct OutputDelta {
  int32_t sample_index = 0;              // in [0, n)
  std::vector<TokenId> token_ids;        // [k] newly generated ids
  std::string text;                      // newly stable UTF-8 text
  std::vector<PositionLogprobs> logprobs;  // [k] if logprobs were asked, else empty
};

enum class FinishReason {
  kStop,    // EOS, a stop token id or a stop string
  kLength,  // max_tokens (or the model's context) reached
  kAbort,   // Abort(), deadline, or engine shutdown
  kError,   // an internal error; see FinalOutput::status
};

// "stop", "length", "abort", "error" (the OpenAI / vLLM spellings).
inline const char* FinishReasonName(FinishReason reason) {
  switch (reason) {
    case FinishReason::kStop:
      return "stop";
    case FinishReason::kLength:
      return "length";
    case FinishReason::kAbort:
      return "abort";
    case FinishReason::kError:
      return "error";
  }
  return "error";
}

struct SampleResult {
  int32_t sample_index = 0;
  FinishReason finish_reason = FinishReason::kStop;
  // What stopped it, when finish_reason is kStop: the stop string (if a stop
  // string matched) or the stop token id (EOS or stop_token_ids), else -1.
  std::string stop_string;
  TokenId stop_token = -1;
};

struct Usage {
  int32_t prompt_tokens = 0;
  int32_t completion_tokens = 0;  // summed over the n samples
  int32_t cached_tokens = 0;      // prompt tokens served by the prefix cache
};

struct Timings {
  absl::Duration queue_time;           // arrival -> first scheduled
  absl::Duration time_to_first_token;  // arrival -> first token sampled
  absl::Duration total;                // arrival -> finish
};

struct FinalOutput {
  // OK for stop/length; kCancelled (Abort), kDeadlineExceeded (deadline),
  // kUnavailable (shutdown) or an internal error otherwise.
  absl::Status status;
  std::vector<SampleResult> samples;  // [n]
  Usage usage;
  Timings timings;
};

// Implemented by the caller (e.g. a gRPC reactor's buffer). Called from the
// engine thread only; implementations must be fast and never block.
class OutputSinkInterface {
 public:
  virtual ~OutputSinkInterface() = default;
  // [num_prompt_tokens]; entry 0 has no logprobs (empty top, rank 0).
  virtual void OnPromptLogprobs(const std::vector<PositionLogprobs>& logprobs) {
    (void)logprobs;
  }
  virtual void OnDelta(const OutputDelta& delta) = 0;
  virtual void OnFinish(const FinalOutput& output) = 0;
};

// A snapshot for metrics (counters are cumulative since start).
struct EngineStats {
  std::string model;
  int64_t num_running = 0;
  int64_t num_waiting = 0;
  double kv_usage = 0.0;  // fraction of KV blocks in use, [0, 1]
  int64_t num_preemptions = 0;
  int64_t prefix_cache_queries = 0;  // prompt tokens looked up
  int64_t prefix_cache_hits = 0;     // of which found in the cache
  int64_t prompt_tokens = 0;
  int64_t generation_tokens = 0;
  // Expert slots the forward passes ran (once per MoE layer and step however
  // many tokens chose one) and their weight bytes, routed plus shared: what
  // a memory-bound MoE step reads. Mixing ESFT adapters in a batch raises it.
  int64_t routed_expert_slots = 0;
  int64_t expert_weight_bytes = 0;
};

// Thread-safe: every method may be called from any thread.
class EngineInterface {
 public:
  virtual ~EngineInterface() = default;

  // Queues the request. Synchronous errors (the sink is then never called):
  //   kInvalidArgument   a bad parameter; the message names it
  //   kNotFound          unknown model or adapter
  //   kOutOfRange        prompt + max_tokens beyond the context or KV capacity
  //   kResourceExhausted the waiting queue is full (retry later)
  //   kAlreadyExists     request_id is already in flight
  //   kUnavailable       the engine is shutting down
  virtual absl::Status Submit(GenerateRequest request,
                              std::shared_ptr<OutputSinkInterface> sink) = 0;

  // Asynchronous: the request finishes with kAbort / kCancelled within one
  // step and its KV blocks are freed. Unknown or finished ids are ignored.
  virtual void Abort(std::string_view request_id) = 0;

  // One entry per model served.
  virtual std::vector<EngineStats> GetStats() const = 0;
};

}  // namespace expertserve::engine

#endif  // EXPERTSERVE_ENGINE_ENGINE_INTERFACE_H_
