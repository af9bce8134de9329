// Iteration-level scheduling: every step re-forms the batch from the running
// and waiting sequences under a token budget and a sequence limit.
//
// Schedule() is a pure function of a State snapshot (vLLM v1's scheduler
// decisions without its mutation; the engine applies the plan). Per step:
//   1. Running sequences that decode (one token each), in policy order.
//   2. Running sequences in the middle of a chunked prefill.
//   3. Waiting sequences (new, or preempted and resumed), in policy order,
//      starting after their prefix-cache hit; a prompt that does not fit the
//      remaining budget is chunked.
// When a running sequence needs a block and none is free, the lowest-order
// running sequence not yet scheduled this step is preempted (recompute: its
// blocks are freed, it goes back to waiting and later recomputes its prompt
// and output, mostly from the prefix cache); if there is none, the sequence
// itself is preempted. No waiting sequence is admitted in a step that
// preempted, and the head of the waiting queue blocks the ones behind it
// when it does not fit, so nothing starves. Sequences whose prompt plus
// max_tokens exceed the whole cache are rejected before they get here.
#ifndef EXPERTSERVE_ENGINE_SCHEDULER_SCHEDULER_H_
#define EXPERTSERVE_ENGINE_SCHEDULER_SCHEDULER_H_

#include <cstdint>
#include <variant>
#include <vector>

#include "common/ids.h"

namespace expertserve::engine {

// Arrival order.
struct FcfsPolicy {};
// Lower `priority` first, then arrival order (vLLM's convention).
struct PriorityPolicy {};
using SchedulingPolicy = std::variant<FcfsPolicy, PriorityPolicy>;

struct SchedulerConfig {
  int32_t max_batched_tokens = 2048;  // tokens per forward step
  int32_t max_num_seqs = 64;          // sequences per forward step
  int32_t block_tokens = 16;
  SchedulingPolicy policy = FcfsPolicy{};
};

// One sequence as the scheduler sees it.
struct SeqState {
  SeqId id = 0;
  int64_t arrival = 0;  // lower arrived first (ties broken by id)
  int32_t priority = 0;
  int32_t num_tokens = 0;    // known tokens: prompt + generated so far
  // Running: tokens whose KV is written (= positions its blocks hold).
  // Waiting: tokens the prefix cache already holds (where it would start).
  int32_t num_computed = 0;
  // Running only.
  int32_t num_blocks = 0;           // blocks held
  int32_t num_exclusive_blocks = 0; // held by it alone (freed if preempted)
  bool last_block_shared = false;   // a write into it needs a COW copy
  // Waiting only.
  int32_t num_cached_evictable = 0;  // prefix-hit blocks nobody holds now
  int32_t num_seq_slots = 1;         // sequences it will become (n samples)
};

struct SchedulerState {
  std::vector<SeqState> running;
  std::vector<SeqState> waiting;
  int32_t free_blocks = 0;  // never-used + evictable cached blocks
};

struct ScheduledSeq {
  SeqId id = 0;
  bool is_new = false;       // from the waiting queue (allocate its table)
  int32_t start = 0;         // position of its first token in this step
  int32_t num_new_tokens = 0;
  bool operator==(const ScheduledSeq&) const = default;
};

struct StepPlan {
  std::vector<ScheduledSeq> scheduled;  // in batch order
  std::vector<SeqId> preempted;         // running -> waiting, blocks freed
  int32_t num_batched_tokens = 0;
  bool empty() const { return scheduled.empty() && preempted.empty(); }
};

// Thread-compatible; Schedule is const and pure.
class Scheduler {
 public:
  explicit Scheduler(SchedulerConfig config) : config_(config) {}
  const SchedulerConfig& config() const { return config_; }

  StepPlan Schedule(const SchedulerState& state) const;

  // True when `a` goes before `b` under the policy.
  bool Before(const SeqState& a, const SeqState& b) const;

 private:
  int32_t BlocksToGrow(const SeqState& s, int32_t n) const;

  SchedulerConfig config_;
};

}  // namespace expertserve::engine

#endif  // EXPERTSERVE_ENGINE_SCHEDULER_SCHEDULER_H_
