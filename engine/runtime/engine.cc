#include "engine/runtime/engine.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace expertserve::engine {

// Forwards to the caller's sink and tells the engine when the request ends
// (so its id can be reused and WaitIdle can return).
class Engine::TrackingSink final : public OutputSinkInterface {
 public:
  TrackingSink(Engine* engine, std::string id, std::shared_ptr<OutputSinkInterface> inner)
      : engine_(engine), id_(std::move(id)), inner_(std::move(inner)) {}
  void OnPromptLogprobs(const std::vector<PositionLogprobs>& l) override {
    inner_->OnPromptLogprobs(l);
  }
  void OnDelta(const OutputDelta& d) override { inner_->OnDelta(d); }
  void OnFinish(const FinalOutput& out) override {
    inner_->OnFinish(out);
    engine_->OnFinished(id_);
  }

 private:
  Engine* engine_;
  std::string id_;
  std::shared_ptr<OutputSinkInterface> inner_;
};

Engine::Engine(EngineOptions options, std::unique_ptr<ModelRunnerInterface> runner,
               std::unique_ptr<Tokenizer> tokenizer,
               std::shared_ptr<AdapterResolverInterface> adapters)
    : runner_(std::move(runner)),
      tokenizer_(std::move(tokenizer)),
      adapters_(adapters ? std::move(adapters) : std::make_shared<NoAdapters>()),
      core_(std::move(options), runner_.get(), tokenizer_.get()) {
  stats_ = core_.Stats();
  thread_ = std::thread([this] { Loop(); });
}

Engine::~Engine() {
  {
    absl::MutexLock l(&mu_);
    stop_ = true;
  }
  thread_.join();
}

absl::Status Engine::Submit(GenerateRequest request,
                            std::shared_ptr<OutputSinkInterface> sink) {
  if (!request.model.empty() && request.model != model_name()) {
    return absl::NotFoundError(absl::StrCat("model '", request.model,
                                            "' is not served by this engine (serving '",
                                            model_name(), "')"));
  }
  if (sink == nullptr) return absl::InvalidArgumentError("sink: must not be null");
  if (absl::Status s = core_.Validate(request); !s.ok()) return s;
  std::optional<ResolvedAdapter> adapter;
  if (!request.adapter.empty()) {
    absl::StatusOr<ResolvedAdapter> a = adapters_->Resolve(request.adapter);
    if (!a.ok()) return a.status();
    adapter = std::move(*a);
  }
  absl::MutexLock l(&mu_);
  if (stop_) return absl::UnavailableError("the engine is shutting down");
  if (inflight_.contains(request.request_id)) {
    return absl::AlreadyExistsError(
        absl::StrCat("request_id '", request.request_id, "' is already in flight"));
  }
  const int64_t waiting = stats_.num_waiting + queued_submits_;
  if (waiting >= core_.options().max_waiting_requests) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "the waiting queue is full (", waiting, " requests, limit ",
        core_.options().max_waiting_requests, "); retry later"));
  }
  inflight_.insert(request.request_id);
  Command c;
  c.sink = std::make_shared<TrackingSink>(this, request.request_id, std::move(sink));
  c.request = std::move(request);
  c.adapter = std::move(adapter);
  c.arrival = absl::Now();
  queue_.push_back(std::move(c));
  ++queued_submits_;
  return absl::OkStatus();
}

void Engine::Abort(std::string_view request_id) {
  absl::MutexLock l(&mu_);
  Command c;
  c.abort = true;
  c.abort_id = std::string(request_id);
  queue_.push_back(std::move(c));
}

std::vector<EngineStats> Engine::GetStats() const {
  absl::MutexLock l(&mu_);
  return {stats_};
}

void Engine::OnFinished(const std::string& request_id) {
  absl::MutexLock l(&mu_);
  inflight_.erase(request_id);
}

void Engine::WaitIdle() {
  absl::MutexLock l(&mu_);
  mu_.Await(absl::Condition(
      +[](Engine* e) ABSL_EXCLUSIVE_LOCKS_REQUIRED(e->mu_) {
        return e->inflight_.empty() && e->queue_.empty() && e->loop_idle_;
      },
      this));
}

bool Engine::KvAllFreeWhenIdle() {
  WaitIdle();
  absl::MutexLock l(&mu_);
  return core_.kv().AllFree();
}

void Engine::Loop() {
  std::vector<Command> commands;
  for (;;) {
    bool stop = false;
    {
      absl::MutexLock l(&mu_);
      if (!core_.HasWork()) {
        loop_idle_ = true;
        mu_.Await(absl::Condition(
            +[](Engine* e) ABSL_EXCLUSIVE_LOCKS_REQUIRED(e->mu_) {
              return e->stop_ || !e->queue_.empty();
            },
            this));
      }
      loop_idle_ = false;
      commands.swap(queue_);
      queued_submits_ = 0;
      stop = stop_;
    }
    for (Command& c : commands) {
      if (c.abort) {
        core_.Abort(c.abort_id, absl::CancelledError("aborted by the client"));
      } else {
        core_.AddRequest(std::move(c.request), std::move(c.sink), std::move(c.adapter),
                         c.arrival);
      }
    }
    commands.clear();
    if (stop) {
      core_.AbortAll(absl::UnavailableError("the engine is shutting down"));
      absl::MutexLock l(&mu_);
      stats_ = core_.Stats();
      loop_idle_ = true;
      return;
    }
    if (core_.HasWork()) core_.Step(absl::Now());
    EngineStats st = core_.Stats();
    absl::MutexLock l(&mu_);
    stats_ = std::move(st);
    if (!core_.HasWork()) loop_idle_ = true;
  }
}

}  // namespace expertserve::engine
