#include "engine/scheduler/scheduler.h"

#include <algorithm>

namespace expertserve::engine {
namespace {

int32_t CeilDiv(int32_t a, int32_t b) { return (a + b - 1) / b; }

}  // namespace

bool Scheduler::Before(const SeqState& a, const SeqState& b) const {
  if (std::holds_alternative<PriorityPolicy>(config_.policy) &&
      a.priority != b.priority) {
    return a.priority < b.priority;
  }
  if (a.arrival != b.arrival) return a.arrival < b.arrival;
  return a.id < b.id;
}

int32_t Scheduler::BlocksToGrow(const SeqState& s, int32_t n) const {
  const int32_t b = config_.block_tokens;
  int32_t need = CeilDiv(s.num_computed + n, b) - s.num_blocks;
  if (n > 0 && s.last_block_shared && s.num_computed % b != 0) ++need;
  return std::max(need, 0);
}

StepPlan Scheduler::Schedule(const SchedulerState& state) const {
  StepPlan plan;
  int32_t budget = config_.max_batched_tokens;
  int32_t free = state.free_blocks;
  int32_t num_seqs = 0;
  auto by_policy = [this](const SeqState* a, const SeqState* b) {
    return Before(*a, *b);
  };

  std::vector<const SeqState*> running;
  running.reserve(state.running.size());
  for (const SeqState& s : state.running) running.push_back(&s);
  std::sort(running.begin(), running.end(), by_policy);
  enum Mark : char { kPending, kScheduled, kPreempted };
  std::vector<Mark> mark(running.size(), kPending);

  auto preempt = [&](size_t i) {
    mark[i] = kPreempted;
    plan.preempted.push_back(running[i]->id);
    free += running[i]->num_exclusive_blocks;
  };
  auto schedule_running = [&](size_t i) {
    const SeqState& s = *running[i];
    if (mark[i] != kPending) return;
    const int32_t n = std::min(s.num_tokens - s.num_computed, budget);
    if (n <= 0 || num_seqs >= config_.max_num_seqs) return;
    const int32_t need = BlocksToGrow(s, n);
    while (need > free) {
      size_t victim = running.size();
      for (size_t j = running.size(); j-- > 0;) {
        if (mark[j] == kPending && j != i) {
          victim = j;
          break;
        }
      }
      if (victim == running.size()) {  // nobody else left: preempt itself
        preempt(i);
        return;
      }
      preempt(victim);
    }
    free -= need;
    budget -= n;
    ++num_seqs;
    mark[i] = kScheduled;
    plan.scheduled.push_back({s.id, false, s.num_computed, n});
    plan.num_batched_tokens += n;
  };
  // Decodes first, so long prompts never stall running streams.
  for (size_t i = 0; i < running.size(); ++i) {
    if (running[i]->num_tokens - running[i]->num_computed == 1) schedule_running(i);
  }
  for (size_t i = 0; i < running.size(); ++i) schedule_running(i);

  if (!plan.preempted.empty()) return plan;
  std::vector<const SeqState*> waiting;
  waiting.reserve(state.waiting.size());
  for (const SeqState& s : state.waiting) waiting.push_back(&s);
  std::sort(waiting.begin(), waiting.end(), by_policy);
  for (const SeqState* w : waiting) {
    const SeqState& s = *w;
    if (num_seqs > 0 && num_seqs + s.num_seq_slots > config_.max_num_seqs) break;
    const int32_t n = std::min(s.num_tokens - s.num_computed, budget);
    if (n <= 0) break;
    const int32_t cached_blocks = s.num_computed / config_.block_tokens;
    const int32_t need = CeilDiv(s.num_computed + n, config_.block_tokens) -
                         cached_blocks + s.num_cached_evictable;
    if (need > free) break;  // head-of-line: later arrivals wait behind it
    free -= need;
    budget -= n;
    num_seqs += s.num_seq_slots;
    plan.scheduled.push_back({s.id, true, s.num_computed, n});
    plan.num_batched_tokens += n;
  }
  return plan;
}

}  // namespace expertserve::engine
