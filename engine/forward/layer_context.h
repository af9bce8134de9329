// What every layer of one forward step shares: the batch, its rotary tables,
// the KV stores and the thread pool. Built once per step by Transformer.
#ifndef EXPERTSERVE_ENGINE_FORWARD_LAYER_CONTEXT_H_
#define EXPERTSERVE_ENGINE_FORWARD_LAYER_CONTEXT_H_

#include <vector>

#include "common/thread_pool.h"
#include "engine/forward/forward_stats.h"
#include "engine/forward/kv_store.h"
#include "engine/forward/step_batch.h"
#include "engine/kernels/kernels.h"
#include "engine/model/model_config.h"

namespace expertserve::engine {

struct LayerContext {
  const ModelConfig& config;
  const StepBatch& batch;
  const std::vector<kernels::SeqBlockTable>& seq_tables;  // [num_sequences]
  const std::vector<float>& rope_cos;  // [num_tokens, rot_dim / 2]
  const std::vector<float>& rope_sin;  // [num_tokens, rot_dim / 2]
  float softmax_scale;
  KvStore& kv;
  ThreadPool& pool;
  ForwardStats* stats;  // null: not counted
};

}  // namespace expertserve::engine

#endif  // EXPERTSERVE_ENGINE_FORWARD_LAYER_CONTEXT_H_
