// A scripted EngineInterface for server tests (no weights): request r's
// i-th token is (last prompt id + 1 + i) % vocab, with text "<id> ", one
// token per step of `step` on its own loop thread, so tests control timing.
// Honours max_tokens, stop_token_ids, n, logprobs (fake values), the
// deadline and Abort, and counts live requests (the "KV blocks" a real
// engine would hold).
#ifndef EXPERTSERVE_TESTS_SERVER_E2E_FAKE_ENGINE_H_
#define EXPERTSERVE_TESTS_SERVER_E2E_FAKE_ENGINE_H_

#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "engine/engine_interface.h"

namespace expertserve::testing {

// Thread-safe.
class FakeEngine final : public engine::EngineInterface {
 public:
  FakeEngine(std::string model, absl::Duration step, int32_t vocab = 1000,
             int32_t max_waiting = 1000)
      : model_(std::move(model)), step_(step), vocab_(vocab), max_waiting_(max_waiting) {
    thread_ = std::thread([this] { Loop(); });
  }
  ~FakeEngine() override {
    {
      absl::MutexLock l(&mu_);
      stop_ = true;
    }
    thread_.join();
  }

  absl::Status Submit(engine::GenerateRequest request,
                      std::shared_ptr<engine::OutputSinkInterface> sink) override {
    if (request.model != model_) {
      return absl::NotFoundError(absl::StrCat("model '", request.model, "' not served"));
    }
    if (!request.adapter.empty()) {
      return absl::NotFoundError(absl::StrCat("adapter '", request.adapter, "' not loaded"));
    }
    absl::MutexLock l(&mu_);
    if (static_cast<int32_t>(live_.size()) >= max_waiting_) {
      return absl::ResourceExhaustedError("fake engine queue full");
    }
    if (live_.count(request.request_id)) {
      return absl::AlreadyExistsError("duplicate id");
    }
    Live r;
    r.arrival = absl::Now();
    r.req = std::move(request);
    r.sink = std::move(sink);
    r.outputs.resize(r.req.sampling.n);
    r.done.assign(r.req.sampling.n, false);
    const std::string id = r.req.request_id;
    live_.emplace(id, std::move(r));
    ++submitted_;
    return absl::OkStatus();
  }

  void Abort(std::string_view request_id) override {
    absl::MutexLock l(&mu_);
    aborts_.push_back(std::string(request_id));
  }

  std::vector<engine::EngineStats> GetStats() const override {
    absl::MutexLock l(&mu_);
    engine::EngineStats s;
    s.model = model_;
    s.num_running = static_cast<int64_t>(live_.size());
    s.kv_usage = static_cast<double>(live_.size()) / 64.0;
    s.prompt_tokens = prompt_tokens_;
    s.generation_tokens = generation_tokens_;
    return {s};
  }

  // Extra bytes of text per token (to fill HTTP/2 flow-control windows).
  void set_text_padding(size_t bytes) {
    absl::MutexLock l(&mu_);
    padding_ = std::string(bytes, '.');
  }

  int64_t live() const {
    absl::MutexLock l(&mu_);
    return static_cast<int64_t>(live_.size());
  }
  int64_t submitted() const {
    absl::MutexLock l(&mu_);
    return submitted_;
  }
  // Waits until no request is live (or 10 s).
  bool WaitIdle() {
    absl::MutexLock l(&mu_);
    auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return live_.empty(); };
    return mu_.AwaitWithTimeout(absl::Condition(&idle), absl::Seconds(10));
  }

  // The expected tokens for a prompt ending in `last` (greedy script).
  static std::vector<int32_t> Expected(int32_t last, int n, int32_t vocab = 1000) {
    std::vector<int32_t> out;
    for (int i = 0; i < n; ++i) out.push_back((last + 1 + i) % vocab);
    return out;
  }

 private:
  struct Live {
    engine::GenerateRequest req;
    std::shared_ptr<engine::OutputSinkInterface> sink;
    absl::Time arrival;
    std::optional<absl::Time> first;
    std::vector<std::vector<TokenId>> outputs;
    std::vector<bool> done;
    std::vector<engine::SampleResult> results;
  };

  void Loop() {
    for (;;) {
      absl::SleepFor(step_);
      std::vector<std::pair<std::shared_ptr<engine::OutputSinkInterface>, engine::OutputDelta>> deltas;
      std::vector<std::pair<std::shared_ptr<engine::OutputSinkInterface>, engine::FinalOutput>> finals;
      {
        absl::MutexLock l(&mu_);
        if (stop_) {
          for (auto& [id, r] : live_) {
            finals.push_back({r.sink, Final(r, absl::UnavailableError("engine stopped"))});
          }
          live_.clear();
        }
        const absl::Time now = absl::Now();
        for (const std::string& id : aborts_) {
          auto it = live_.find(id);
          if (it == live_.end()) continue;
          finals.push_back({it->second.sink, Final(it->second, absl::CancelledError("aborted"))});
          live_.erase(it);
        }
        aborts_.clear();
        for (auto it = live_.begin(); it != live_.end();) {
          Live& r = it->second;
          if (now > r.req.deadline) {
            finals.push_back({r.sink, Final(r, absl::DeadlineExceededError("deadline"))});
            live_.erase(it++);
            continue;
          }
          if (!r.first) r.first = now;
          bool all_done = true;
          for (int s = 0; s < r.req.sampling.n; ++s) {
            if (r.done[s]) continue;
            const TokenId t = (r.req.prompt_token_ids.back() + 1 +
                               static_cast<TokenId>(r.outputs[s].size())) % vocab_;
            r.outputs[s].push_back(t);
            ++generation_tokens_;
            engine::OutputDelta d;
            d.sample_index = s;
            d.token_ids = {t};
            d.text = absl::StrCat(t, " ", padding_);
            if (r.req.sampling.logprobs.has_value()) {
              engine::PositionLogprobs p;
              p.chosen = {t, -0.5f};
              p.rank = 1;
              for (int k = 0; k < *r.req.sampling.logprobs; ++k) {
                p.top.push_back({(t + k) % vocab_, -0.5f - k});
              }
              d.logprobs.push_back(p);
            }
            deltas.push_back({r.sink, std::move(d)});
            bool stop_id = false;
            for (TokenId sid : r.req.sampling.stop_token_ids) stop_id |= sid == t;
            if (stop_id || static_cast<int32_t>(r.outputs[s].size()) >= r.req.sampling.max_tokens) {
              r.done[s] = true;
              engine::SampleResult res;
              res.sample_index = s;
              res.finish_reason = stop_id ? engine::FinishReason::kStop : engine::FinishReason::kLength;
              if (stop_id) res.stop_token = t;
              r.results.push_back(res);
            } else {
              all_done = false;
            }
          }
          if (all_done) {
            prompt_tokens_ += static_cast<int64_t>(r.req.prompt_token_ids.size());
            finals.push_back({r.sink, Final(r, absl::OkStatus())});
            live_.erase(it++);
          } else {
            ++it;
          }
        }
      }
      // Sinks are called without the lock, in order, like the engine thread.
      for (auto& [sink, d] : deltas) sink->OnDelta(d);
      for (auto& [sink, f] : finals) sink->OnFinish(f);
      absl::MutexLock l(&mu_);
      if (stop_ && live_.empty()) return;
    }
  }

  engine::FinalOutput Final(Live& r, absl::Status status) {
    engine::FinalOutput f;
    f.status = std::move(status);
    f.samples = r.results;
    if (!f.status.ok()) {
      for (int s = 0; s < r.req.sampling.n; ++s) {
        if (!r.done[s]) f.samples.push_back({s, engine::FinishReason::kAbort, "", -1});
      }
    }
    std::sort(f.samples.begin(), f.samples.end(),
              [](const auto& a, const auto& b) { return a.sample_index < b.sample_index; });
    f.usage.prompt_tokens = static_cast<int32_t>(r.req.prompt_token_ids.size());
    for (const auto& o : r.outputs) f.usage.completion_tokens += static_cast<int32_t>(o.size());
    const absl::Time now = absl::Now();
    f.timings.total = now - r.arrival;
    f.timings.time_to_first_token = (r.first ? *r.first : now) - r.arrival;
    return f;
  }

  const std::string model_;
  const absl::Duration step_;
  const int32_t vocab_;
  const int32_t max_waiting_;
  mutable absl::Mutex mu_;
  std::map<std::string, Live> live_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> aborts_ ABSL_GUARDED_BY(mu_);
  int64_t submitted_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t prompt_tokens_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t generation_tokens_ ABSL_GUARDED_BY(mu_) = 0;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::string padding_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

}  // namespace expertserve::testing

#endif  // EXPERTSERVE_TESTS_SERVER_E2E_FAKE_ENGINE_H_
