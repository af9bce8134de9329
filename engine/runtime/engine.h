// One model's engine: EngineInterface over an EngineCore driven by a loop
// thread. Submit/Abort from any thread go through a mutex-guarded MPSC
// command queue; the loop thread alone touches the scheduler, the KV cache
// and the runner, and calls the sinks.
//
// Different models get different Engine instances (EngineGroup dispatches by
// model name); requests for different ESFT adapters of one model share this
// engine and its batches.
#ifndef EXPERTSERVE_ENGINE_RUNTIME_ENGINE_H_
#define EXPERTSERVE_ENGINE_RUNTIME_ENGINE_H_

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "engine/adapter_resolver.h"
#include "engine/engine_interface.h"
#include "engine/runtime/engine_core.h"
#include "engine/runtime/model_runner.h"
#include "engine/tokenizer/tokenizer.h"

namespace expertserve::engine {

// Thread-safe.
class Engine final : public EngineInterface {
 public:
  // Starts the loop thread. `tokenizer` may be null (token ids only);
  // `adapters` null means NoAdapters.
  Engine(EngineOptions options, std::unique_ptr<ModelRunnerInterface> runner,
         std::unique_ptr<Tokenizer> tokenizer,
         std::shared_ptr<AdapterResolverInterface> adapters = nullptr);
  // Stops the loop; requests still in flight finish with kAbort/kUnavailable.
  ~Engine() override;
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  absl::Status Submit(GenerateRequest request,
                      std::shared_ptr<OutputSinkInterface> sink) override;
  void Abort(std::string_view request_id) override;
  std::vector<EngineStats> GetStats() const override;

  const std::string& model_name() const { return core_.options().model_name; }
  const Tokenizer* tokenizer() const { return tokenizer_.get(); }
  int32_t max_model_len() const { return core_.max_model_len(); }
  // "N blocks = M tokens (B tokens/block)".
  std::string KvCapacityString() const { return core_.kv().CapacityString(); }

  // Blocks until no request is in flight (tests and benchmarks).
  void WaitIdle();
  // Whether the KV cache is all-free; only meaningful while idle (the loop
  // thread may be mid-step otherwise).
  bool KvAllFreeWhenIdle();

 private:
  struct Command {
    bool abort = false;
    GenerateRequest request;  // submit
    std::shared_ptr<OutputSinkInterface> sink;
    std::optional<ResolvedAdapter> adapter;
    absl::Time arrival;
    std::string abort_id;
  };
  class TrackingSink;

  void Loop();
  void OnFinished(const std::string& request_id);

  std::unique_ptr<ModelRunnerInterface> runner_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::shared_ptr<AdapterResolverInterface> adapters_;
  EngineCore core_;  // loop thread only (Validate/options are immutable reads)

  mutable absl::Mutex mu_;
  std::vector<Command> queue_ ABSL_GUARDED_BY(mu_);
  int64_t queued_submits_ ABSL_GUARDED_BY(mu_) = 0;
  absl::flat_hash_set<std::string> inflight_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  bool loop_idle_ ABSL_GUARDED_BY(mu_) = true;
  EngineStats stats_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

}  // namespace expertserve::engine

#endif  // EXPERTSERVE_ENGINE_RUNTIME_ENGINE_H_
