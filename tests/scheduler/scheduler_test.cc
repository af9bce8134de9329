// One Schedule() call per case: the state in, the plan out. Multi-step
// simulations through the engine core live in tests/runtime.
#include "engine/scheduler/scheduler.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace expertserve::engine {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::IsEmpty;

SeqState Running(SeqId id, int32_t tokens, int32_t computed, int32_t blocks,
                 int64_t arrival = -1) {
  SeqState s;
  s.id = id;
  s.arrival = arrival < 0 ? id : arrival;
  s.num_tokens = tokens;
  s.num_computed = computed;
  s.num_blocks = blocks;
  s.num_exclusive_blocks = blocks;
  return s;
}

SeqState Waiting(SeqId id, int32_t tokens, int32_t cached = 0, int32_t priority = 0) {
  SeqState s;
  s.id = id;
  s.arrival = id;
  s.priority = priority;
  s.num_tokens = tokens;
  s.num_computed = cached;
  return s;
}

struct Case {
  std::string name;
  SchedulerConfig config;
  SchedulerState state;
  std::vector<ScheduledSeq> scheduled;
  std::vector<SeqId> preempted;
};

SchedulerConfig Config(int32_t tokens, int32_t seqs, int32_t block = 4,
                       SchedulingPolicy policy = FcfsPolicy{}) {
  return SchedulerConfig{tokens, seqs, block, policy};
}

class ScheduleTest : public ::testing::TestWithParam<Case> {};

TEST_P(ScheduleTest, Plan) {
  const Case& c = GetParam();
  Scheduler s(c.config);
  StepPlan plan = s.Schedule(c.state);
  EXPECT_THAT(plan.scheduled, ElementsAreArray(c.scheduled));
  EXPECT_THAT(plan.preempted, ElementsAreArray(c.preempted));
  int32_t tokens = 0;
  for (const auto& x : plan.scheduled) tokens += x.num_new_tokens;
  EXPECT_EQ(plan.num_batched_tokens, tokens);
  EXPECT_LE(tokens, c.config.max_batched_tokens);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, ScheduleTest,
    ::testing::Values(
        Case{"admits_fcfs_within_budget", Config(100, 8),
             {{}, {Waiting(1, 10), Waiting(2, 20)}, 100},
             {{1, true, 0, 10}, {2, true, 0, 20}}, {}},
        Case{"chunks_long_prompt", Config(16, 8),
             {{}, {Waiting(1, 40)}, 100},
             {{1, true, 0, 16}}, {}},
        Case{"decodes_before_prefill_chunks", Config(8, 8),
             // 3 is mid-prefill (arrived first), 1 and 2 decode.
             {{Running(3, 30, 12, 3, 0), Running(1, 11, 10, 3), Running(2, 6, 5, 2)},
              {},
              100},
             {{1, false, 10, 1}, {2, false, 5, 1}, {3, false, 12, 6}}, {}},
        Case{"starts_after_prefix_hit", Config(100, 8),
             {{}, {Waiting(1, 10, 8)}, 100},
             {{1, true, 8, 2}}, {}},
        Case{"max_num_seqs", Config(100, 2),
             {{Running(1, 5, 4, 1)}, {Waiting(2, 3), Waiting(3, 3)}, 100},
             {{1, false, 4, 1}, {2, true, 0, 3}}, {}},
        Case{"head_of_line_blocks_when_kv_full", Config(100, 8),
             // 2 needs 3 blocks, only 2 free: 3 (which would fit) waits too.
             {{}, {Waiting(2, 12), Waiting(3, 4)}, 2},
             {}, {}},
        Case{"priority_policy_orders_waiting", Config(100, 8, 4, PriorityPolicy{}),
             {{}, {Waiting(1, 4, 0, 5), Waiting(2, 4, 0, 1)}, 100},
             {{2, true, 0, 4}, {1, true, 0, 4}}, {}},
        Case{"preempts_itself_when_alone_unscheduled", Config(100, 8),
             // Both decode at a block boundary (1 block each), 1 free: 1
             // takes it; 2 finds nobody unscheduled to preempt but itself.
             {{Running(1, 9, 8, 2), Running(2, 9, 8, 2)}, {Waiting(3, 2)}, 1},
             {{1, false, 8, 1}}, {2}},
        Case{"preempts_others_before_itself", Config(100, 8),
             {{Running(1, 9, 8, 2), Running(2, 6, 5, 2), Running(3, 6, 5, 2)}, {}, 0},
             // 1 needs a block: 3 (last in order, not yet scheduled) goes.
             {{1, false, 8, 1}, {2, false, 5, 1}}, {3}},
        Case{"priority_victim_is_lowest_priority", Config(100, 8, 4, PriorityPolicy{}),
             {{[] { auto s = Running(1, 9, 8, 2); s.priority = 9; return s; }(),
               [] { auto s = Running(2, 9, 8, 2); s.priority = 0; return s; }()},
              {}, 0},
             {{2, false, 8, 1}}, {1}},
        Case{"cow_needs_a_block", Config(100, 8),
             {{[] { auto s = Running(1, 7, 6, 2); s.last_block_shared = true; s.num_exclusive_blocks = 0; return s; }()},
              {}, 0},
             {}, {1}},
        Case{"evictable_hit_costs_a_free_block", Config(100, 8),
             {{}, {[] { auto s = Waiting(1, 5, 4); s.num_cached_evictable = 1; return s; }()}, 1},
             {}, {}},
        Case{"no_admission_after_preemption", Config(100, 8),
             {{Running(1, 9, 8, 2), Running(2, 9, 8, 2)}, {Waiting(3, 1)}, 1},
             {{1, false, 8, 1}}, {2}}),
    [](const ::testing::TestParamInfo<Case>& info) { return info.param.name; });

TEST(SchedulerTest, EmptyStateIsEmptyPlan) {
  Scheduler s(Config(10, 4));
  EXPECT_TRUE(s.Schedule({}).empty());
}

TEST(SchedulerTest, NSamplesReserveSeqSlots) {
  Scheduler s(Config(100, 4));
  SchedulerState st;
  st.free_blocks = 100;
  st.waiting = {Waiting(1, 4), Waiting(2, 4)};
  st.waiting[0].num_seq_slots = 3;
  st.waiting[1].num_seq_slots = 2;
  StepPlan plan = s.Schedule(st);
  ASSERT_EQ(plan.scheduled.size(), 1u);
  EXPECT_EQ(plan.scheduled[0].id, 1);
}

}  // namespace
}  // namespace expertserve::engine
