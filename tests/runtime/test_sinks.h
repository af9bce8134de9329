// Output sinks that record everything, for engine tests.
#ifndef EXPERTSERVE_TESTS_RUNTIME_TEST_SINKS_H_
#define EXPERTSERVE_TESTS_RUNTIME_TEST_SINKS_H_

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "engine/engine_interface.h"

namespace expertserve::engine {

// Thread-safe (the engine thread writes, the test thread reads).
class RecordingSink : public OutputSinkInterface {
 public:
  void OnPromptLogprobs(const std::vector<PositionLogprobs>& l) override {
    absl::MutexLock lock(&mu_);
    prompt_logprobs_ = l;
    ++prompt_logprobs_calls_;
  }
  void OnDelta(const OutputDelta& d) override {
    absl::MutexLock lock(&mu_);
    if (final_) ++calls_after_finish_;
    auto& s = samples_[d.sample_index];
    s.tokens.insert(s.tokens.end(), d.token_ids.begin(), d.token_ids.end());
    s.text += d.text;
    s.logprobs.insert(s.logprobs.end(), d.logprobs.begin(), d.logprobs.end());
  }
  void OnFinish(const FinalOutput& out) override {
    absl::MutexLock lock(&mu_);
    if (final_) ++calls_after_finish_;
    final_ = out;
  }

  struct Sample {
    std::vector<TokenId> tokens;
    std::string text;
    std::vector<PositionLogprobs> logprobs;
  };
  std::vector<TokenId> tokens(int sample = 0) {
    absl::MutexLock lock(&mu_);
    return samples_[sample].tokens;
  }
  Sample sample(int i = 0) {
    absl::MutexLock lock(&mu_);
    return samples_[i];
  }
  std::optional<FinalOutput> final_output() {
    absl::MutexLock lock(&mu_);
    return final_;
  }
  bool finished() {
    absl::MutexLock lock(&mu_);
    return final_.has_value();
  }
  std::vector<PositionLogprobs> prompt_logprobs() {
    absl::MutexLock lock(&mu_);
    return prompt_logprobs_;
  }
  int prompt_logprobs_calls() {
    absl::MutexLock lock(&mu_);
    return prompt_logprobs_calls_;
  }
  int calls_after_finish() {
    absl::MutexLock lock(&mu_);
    return calls_after_finish_;
  }

 private:
  absl::Mutex mu_;
  std::map<int, Sample> samples_ ABSL_GUARDED_BY(mu_);
  std::optional<FinalOutput> final_ ABSL_GUARDED_BY(mu_);
  std::vector<PositionLogprobs> prompt_logprobs_ ABSL_GUARDED_BY(mu_);
  int prompt_logprobs_calls_ ABSL_GUARDED_BY(mu_) = 0;
  int calls_after_finish_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace expertserve::engine

#endif  // EXPERTSERVE_TESTS_RUNTIME_TEST_SINKS_H_
