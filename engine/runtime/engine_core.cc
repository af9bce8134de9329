#include "engine/runtime/engine_core.h"

#include <algorithm>
#include <random>

#include "absl/strings/str_cat.h"
#include "common/check.h"
#include "engine/sampler/validate.h"

namespace expertserve::engine {

EngineCore::EngineCore(EngineOptions options, ModelRunnerInterface* runner,
                       const Tokenizer* tokenizer)
    : options_(std::move(options)),
      runner_(runner),
      tokenizer_(tokenizer),
      max_model_len_(options_.max_model_len > 0
                         ? std::min(options_.max_model_len, runner->max_model_len())
                         : runner->max_model_len()),
      kv_(runner->num_kv_blocks(), runner->block_tokens(), options_.enable_prefix_caching),
      scheduler_(SchedulerConfig{options_.max_batched_tokens, options_.max_num_seqs,
                                 runner->block_tokens(), options_.policy}) {}

absl::Status EngineCore::Validate(const GenerateRequest& r) const {
  if (r.request_id.empty()) {
    return absl::InvalidArgumentError("request_id: must not be empty");
  }
  if (r.prompt_token_ids.empty()) {
    return absl::InvalidArgumentError("prompt_token_ids: the prompt is empty");
  }
  const int32_t vocab = runner_->vocab_size();
  for (size_t i = 0; i < r.prompt_token_ids.size(); ++i) {
    const TokenId t = r.prompt_token_ids[i];
    if (t < 0 || t >= vocab) {
      return absl::InvalidArgumentError(absl::StrCat(
          "prompt_token_ids[", i, "]: token id ", t, " is outside the vocabulary [0, ",
          vocab, ")"));
    }
  }
  if (absl::Status s = ValidateSamplingParams(r.sampling, vocab, tokenizer_ != nullptr);
      !s.ok()) {
    return s;
  }
  const int64_t prompt = static_cast<int64_t>(r.prompt_token_ids.size());
  const int64_t total = prompt + r.sampling.max_tokens;
  if (total > max_model_len_) {
    return absl::OutOfRangeError(absl::StrCat(
        "prompt (", prompt, " tokens) + max_tokens (", r.sampling.max_tokens, ") = ", total,
        " exceeds the model's context of ", max_model_len_, " tokens"));
  }
  const int64_t capacity = static_cast<int64_t>(kv_.num_blocks()) * kv_.block_tokens();
  if (total > capacity) {
    return absl::OutOfRangeError(absl::StrCat(
        "prompt (", prompt, " tokens) + max_tokens (", r.sampling.max_tokens, ") = ", total,
        " exceeds the KV cache capacity of ", kv_.CapacityString(),
        "; raise the KV budget or lower max_tokens"));
  }
  return absl::OkStatus();
}

EngineCore::Sequence& EngineCore::NewSequence(Request& r, int32_t sample_index) {
  auto s = std::make_unique<Sequence>();
  s->id = next_seq_id_++;
  s->request = &r;
  s->sample_index = sample_index;
  s->prng = SamplePrng(r.req.sampling.seed.value_or(0), static_cast<uint64_t>(sample_index));
  s->stop = std::make_unique<StopChecker>(r.req.sampling, options_.eos_token_ids, tokenizer_);
  Sequence& ref = *s;
  r.seqs.push_back(s->id);
  seqs_.emplace(s->id, std::move(s));
  return ref;
}

void EngineCore::AddRequest(GenerateRequest request,
                            std::shared_ptr<OutputSinkInterface> sink,
                            std::optional<ResolvedAdapter> adapter, absl::Time arrival) {
  auto r = std::make_unique<Request>();
  r->req = std::move(request);
  if (!r->req.sampling.seed) {
    // An unseeded request still needs a private stream.
    static thread_local std::mt19937_64 seeder{std::random_device{}()};
    r->req.sampling.seed = seeder();
  }
  r->sink = std::move(sink);
  uint64_t adapter_key = 0;
  if (adapter) {
    r->routing = std::move(adapter->routing);
    adapter_key = adapter->cache_key;
  }
  r->salt = PrefixCacheSalt(options_.model_name, adapter_key);
  r->arrival_order = next_arrival_++;
  r->arrival = arrival;
  const int32_t n = r->req.sampling.n;
  r->results.resize(static_cast<size_t>(n));
  r->sample_done.assign(static_cast<size_t>(n), false);
  for (int32_t i = 0; i < n; ++i) r->results[static_cast<size_t>(i)].sample_index = i;
  r->num_unfinished = n;
  Request& ref = *r;
  const std::string id = r->req.request_id;
  requests_.emplace(id, std::move(r));
  Sequence& s = NewSequence(ref, 0);
  s.tokens = ref.req.prompt_token_ids;
  waiting_.push_back(s.id);
  prompt_tokens_ += static_cast<int64_t>(s.tokens.size());
}

SeqState EngineCore::ViewRunning(const Sequence& s) const {
  SeqState v;
  v.id = s.id;
  v.arrival = s.request->arrival_order;
  v.priority = s.request->req.priority;
  v.num_tokens = static_cast<int32_t>(s.tokens.size());
  v.num_computed = s.num_computed;
  v.num_blocks = static_cast<int32_t>(kv_.Table(s.id).size());
  v.num_exclusive_blocks = kv_.NumExclusiveBlocks(s.id);
  v.last_block_shared = kv_.LastBlockShared(s.id);
  return v;
}

namespace {

// Prompt-logprob requests need logits at every prompt position, so they
// compute the whole prompt.
bool UsesPrefixCache(const GenerateRequest& r) {
  return !r.sampling.prompt_logprobs.has_value();
}

}  // namespace

SeqState EngineCore::ViewWaiting(const Sequence& s) const {
  SeqState v;
  v.id = s.id;
  v.arrival = s.request->arrival_order;
  v.priority = s.request->req.priority;
  v.num_tokens = static_cast<int32_t>(s.tokens.size());
  v.num_seq_slots = s.request->forked ? 1 : s.request->req.sampling.n;
  if (UsesPrefixCache(s.request->req)) {
    // Every token may match, but the last one is always computed (it yields
    // the logits): a fully cached prompt recomputes one token, not a block.
    const auto m = kv_.MatchPrefix(s.tokens, s.request->salt);
    v.num_computed = std::min(m.num_blocks * kv_.block_tokens(),
                              static_cast<int32_t>(s.tokens.size()) - 1);
    v.num_cached_evictable = m.num_evictable;
  }
  return v;
}

void EngineCore::RemoveSeq(SeqId id) {
  auto erase = [id](std::vector<SeqId>& v) {
    v.erase(std::remove(v.begin(), v.end(), id), v.end());
  };
  erase(running_);
  erase(waiting_);
  auto it = seqs_.find(id);
  if (it == seqs_.end()) return;
  erase(it->second->request->seqs);
  seqs_.erase(it);
}

void EngineCore::Preempt(Sequence& s) {
  kv_.Release(s.id);
  s.num_computed = 0;
  s.running = false;
  running_.erase(std::remove(running_.begin(), running_.end(), s.id), running_.end());
  waiting_.push_back(s.id);
  ++num_preemptions_;
}

void EngineCore::FinishSequence(Sequence& s, FinishReason reason, std::string stop_string,
                                TokenId stop_token) {
  Request& r = *s.request;
  SampleResult& res = r.results[static_cast<size_t>(s.sample_index)];
  res.finish_reason = reason;
  res.stop_string = std::move(stop_string);
  res.stop_token = stop_token;
  --r.num_unfinished;
  r.sample_done[static_cast<size_t>(s.sample_index)] = true;
  kv_.Release(s.id);
  RemoveSeq(s.id);  // destroys s
}

void EngineCore::FinishRequest(Request& r, absl::Status status, absl::Time now,
                               StepRecord* record) {
  const std::vector<SeqId> live = r.seqs;
  for (SeqId id : live) {
    kv_.Release(id);
    RemoveSeq(id);
  }
  if (!status.ok()) {
    const FinishReason reason =
        absl::IsCancelled(status) || absl::IsDeadlineExceeded(status) ||
                absl::IsUnavailable(status)
            ? FinishReason::kAbort
            : FinishReason::kError;
    for (size_t i = 0; i < r.results.size(); ++i) {
      if (!r.sample_done[i]) r.results[i].finish_reason = reason;
    }
  }
  FinalOutput out;
  out.status = std::move(status);
  out.samples = r.results;
  out.usage.prompt_tokens = static_cast<int32_t>(r.req.prompt_token_ids.size());
  out.usage.completion_tokens = r.completion_tokens;
  out.usage.cached_tokens = r.cached_tokens;
  out.timings.queue_time = r.first_scheduled ? *r.first_scheduled - r.arrival : now - r.arrival;
  out.timings.time_to_first_token = r.first_token ? *r.first_token - r.arrival : absl::ZeroDuration();
  out.timings.total = now - r.arrival;
  std::shared_ptr<OutputSinkInterface> sink = std::move(r.sink);
  const std::string id = r.req.request_id;
  if (record != nullptr) record->finished.push_back(id);
  requests_.erase(id);  // destroys r
  sink->OnFinish(out);
}

bool EngineCore::Abort(const std::string& request_id, absl::Status status) {
  auto it = requests_.find(request_id);
  if (it == requests_.end()) return false;
  FinishRequest(*it->second, std::move(status), absl::Now(), nullptr);
  return true;
}

void EngineCore::AbortAll(absl::Status status) {
  std::vector<std::string> ids;
  for (const auto& [id, r] : requests_) ids.push_back(id);
  for (const std::string& id : ids) Abort(id, status);
}

bool EngineCore::Emit(Sequence& s, TokenId token, std::span<const float> logits,
                      absl::Time now) {
  Request& r = *s.request;
  if (!r.first_token) r.first_token = now;
  if (r.req.sampling.prompt_logprobs && !r.prompt_logprobs_sent) {
    r.prompt_logprobs_sent = true;
    if (r.prompt_logprobs.empty()) r.prompt_logprobs.push_back({});  // 1-token prompt
    r.sink->OnPromptLogprobs(r.prompt_logprobs);
    r.prompt_logprobs.clear();
    r.prompt_logprobs.shrink_to_fit();
  }
  s.tokens.push_back(token);
  ++r.completion_tokens;
  ++generation_tokens_;
  OutputDelta delta;
  delta.sample_index = s.sample_index;
  delta.token_ids.push_back(token);
  if (r.req.sampling.logprobs) {
    delta.logprobs.push_back(ComputeLogprobs(logits, token, *r.req.sampling.logprobs));
  }
  StopChecker::Result res = s.stop->Append(token);
  std::optional<FinishReason> finish = res.finish;
  delta.text = std::move(res.text);
  if (!finish && static_cast<int32_t>(s.tokens.size()) >= max_model_len_) {
    finish = FinishReason::kLength;
    delta.text += s.stop->Flush();
  }
  r.sink->OnDelta(delta);
  if (finish) {
    FinishSequence(s, *finish, std::move(res.stop_string), res.stop_token);
    return true;
  }
  return false;
}

StepRecord EngineCore::Step(absl::Time now) {
  StepRecord record;
  // Tokens are stamped after the forward pass (TTFT includes the prefill),
  // on `now`'s clock so tests may pass a synthetic time.
  const absl::Time wall_start = absl::Now();
  // Deadlines first: their blocks are free for this very step.
  std::vector<std::string> expired;
  for (const auto& [id, r] : requests_) {
    if (r->req.deadline <= now) expired.push_back(id);
  }
  for (const std::string& id : expired) {
    FinishRequest(*requests_.at(id), absl::DeadlineExceededError("request deadline exceeded"),
                  now, &record);
  }

  SchedulerState state;
  state.free_blocks = kv_.NumFreeBlocks();
  for (SeqId id : running_) state.running.push_back(ViewRunning(*seqs_.at(id)));
  {
    // Only the head of the waiting queue can be admitted in one step, so
    // only it pays for a prefix-cache lookup.
    std::vector<SeqState> light;
    for (SeqId id : waiting_) {
      const Sequence& s = *seqs_.at(id);
      SeqState v;
      v.id = id;
      v.arrival = s.request->arrival_order;
      v.priority = s.request->req.priority;
      light.push_back(v);
    }
    std::sort(light.begin(), light.end(),
              [this](const SeqState& a, const SeqState& b) { return scheduler_.Before(a, b); });
    const size_t head = std::min(light.size(), static_cast<size_t>(options_.max_num_seqs));
    for (size_t i = 0; i < head; ++i) state.waiting.push_back(ViewWaiting(*seqs_.at(light[i].id)));
  }
  const StepPlan plan = scheduler_.Schedule(state);

  for (SeqId id : plan.preempted) {
    Sequence& s = *seqs_.at(id);
    record.preempted.push_back({s.request->req.request_id, s.sample_index, 0, 0});
    Preempt(s);
  }
  if (plan.scheduled.empty()) return record;

  // KV: plan, then commit.
  std::vector<KvRequest> kv_requests;
  kv_requests.reserve(plan.scheduled.size());
  for (const ScheduledSeq& x : plan.scheduled) {
    const Sequence& s = *seqs_.at(x.id);
    KvRequest kr;
    kr.seq = x.id;
    kr.is_new = x.is_new;
    kr.salt = s.request->salt;
    kr.num_new_tokens = x.num_new_tokens;
    if (x.is_new && UsesPrefixCache(s.request->req)) {
      kr.prefix_tokens = s.tokens;
      kr.max_cached_tokens = static_cast<int32_t>(s.tokens.size()) - 1;
    }
    kv_requests.push_back(kr);
  }
  absl::StatusOr<KvPlan> kv_plan = kv_.Prepare(kv_requests);
  ES_CHECK_MSG(kv_plan.ok(), "the scheduler planned a step that does not fit the KV cache");
  std::vector<BlockCopy> copies;
  kv_.Apply(*kv_plan, copies);
  runner_->CopyBlocks(copies);

  // The batch.
  struct Pending {
    Sequence* seq;
    int32_t start;
    int32_t count;
    int32_t first_prompt_row = -1;  // prompt logprobs rows, positions start..
    int32_t num_prompt_rows = 0;
    int32_t sample_row = -1;
  };
  std::vector<Pending> pending;
  StepBatch batch;
  for (size_t i = 0; i < plan.scheduled.size(); ++i) {
    const ScheduledSeq& x = plan.scheduled[i];
    Sequence& s = *seqs_.at(x.id);
    Request& r = *s.request;
    if (x.is_new) {
      const int32_t hit = kv_plan->seqs[i].cached_tokens;
      ES_CHECK(hit == x.start);
      s.num_computed = hit;
      s.running = true;
      waiting_.erase(std::remove(waiting_.begin(), waiting_.end(), s.id), waiting_.end());
      running_.push_back(s.id);
      if (!r.first_scheduled) {
        r.first_scheduled = now;
        r.cached_tokens = hit;
      }
    }
    record.scheduled.push_back({r.req.request_id, s.sample_index, x.start, x.num_new_tokens});
    record.num_batched_tokens += x.num_new_tokens;
    const int32_t seq_index = static_cast<int32_t>(batch.sequences.size());
    batch.sequences.push_back({kv_.Table(s.id), r.routing.get()});
    Pending p{&s, x.start, x.num_new_tokens};
    const int32_t num_prompt = static_cast<int32_t>(r.req.prompt_token_ids.size());
    const int32_t first_token = static_cast<int32_t>(batch.tokens.size());
    batch.AddTokens(seq_index, s.tokens.data() + x.start, x.num_new_tokens, x.start, false);
    if (r.req.sampling.prompt_logprobs) {
      // Rows for positions predicting prompt tokens 1..num_prompt-1.
      const int32_t end = std::min(x.start + x.num_new_tokens, num_prompt - 1);
      if (end > x.start) {
        p.first_prompt_row = static_cast<int32_t>(batch.logit_tokens.size());
        p.num_prompt_rows = end - x.start;
        for (int32_t k = 0; k < p.num_prompt_rows; ++k) batch.logit_tokens.push_back(first_token + k);
      }
    }
    if (x.start + x.num_new_tokens == static_cast<int32_t>(s.tokens.size())) {
      p.sample_row = static_cast<int32_t>(batch.logit_tokens.size());
      batch.logit_tokens.push_back(first_token + x.num_new_tokens - 1);
    }
    pending.push_back(p);
  }

  absl::Status run = runner_->Run(batch, logits_);
  if (!run.ok()) {
    std::vector<std::string> failed;
    for (const Pending& p : pending) failed.push_back(p.seq->request->req.request_id);
    std::sort(failed.begin(), failed.end());
    failed.erase(std::unique(failed.begin(), failed.end()), failed.end());
    for (const std::string& id : failed) {
      auto it = requests_.find(id);
      if (it != requests_.end()) {
        FinishRequest(*it->second, absl::InternalError(absl::StrCat("forward step failed: ",
                                                                    run.message())),
                      now, &record);
      }
    }
    return record;
  }

  const absl::Time sampled_at = now + (absl::Now() - wall_start);
  const size_t vocab = static_cast<size_t>(runner_->vocab_size());
  auto row = [&](int32_t r) {
    return std::span<const float>(logits_.data() + static_cast<size_t>(r) * vocab, vocab);
  };
  std::vector<std::string> done;
  for (const Pending& p : pending) {
    Sequence& s = *p.seq;
    Request& r = *s.request;
    s.num_computed += p.count;
    kv_.MarkComputed(s.id, std::span<const TokenId>(s.tokens).first(
                               static_cast<size_t>(s.num_computed)));
    if (p.num_prompt_rows > 0) {
      if (r.prompt_logprobs.empty()) r.prompt_logprobs.push_back({});  // token 0
      for (int32_t k = 0; k < p.num_prompt_rows; ++k) {
        const int32_t pos = p.start + k;
        if (static_cast<int32_t>(r.prompt_logprobs.size()) != pos + 1) continue;  // recompute
        r.prompt_logprobs.push_back(ComputeLogprobs(
            row(p.first_prompt_row + k), r.req.prompt_token_ids[static_cast<size_t>(pos) + 1],
            *r.req.sampling.prompt_logprobs));
      }
    }
    if (p.sample_row < 0) continue;
    const std::span<const float> logits = row(p.sample_row);
    std::vector<Sequence*> samplers = {&s};
    if (!r.forked) {
      r.forked = true;
      // n > 1: the other samples share the prompt's blocks copy-on-write
      // and draw their first token from the same logits.
      for (int32_t i = 1; i < r.req.sampling.n; ++i) {
        Sequence& child = NewSequence(r, i);
        child.tokens = s.tokens;
        child.num_computed = s.num_computed;
        child.running = true;
        kv_.Fork(s.id, child.id);
        running_.push_back(child.id);
        samplers.push_back(&child);
      }
    }
    for (Sequence* q : samplers) {
      const size_t num_prompt = r.req.prompt_token_ids.size();
      const TokenId token = SampleToken(
          logits, r.req.sampling, std::span<const TokenId>(q->tokens).first(num_prompt),
          std::span<const TokenId>(q->tokens).subspan(num_prompt), q->prng, scratch_);
      Emit(*q, token, logits, sampled_at);  // may destroy *q
    }
    if (r.num_unfinished == 0) done.push_back(r.req.request_id);
  }
  for (const std::string& id : done) {
    auto it = requests_.find(id);
    if (it != requests_.end()) FinishRequest(*it->second, absl::OkStatus(), sampled_at, &record);
  }
  return record;
}

EngineStats EngineCore::Stats() const {
  EngineStats st;
  st.model = options_.model_name;
  for (const auto& [id, r] : requests_) {
    bool any_running = false;
    for (SeqId s : r->seqs) any_running |= seqs_.at(s)->running;
    (any_running ? st.num_running : st.num_waiting) += 1;
  }
  st.kv_usage = kv_.Usage();
  st.num_preemptions = num_preemptions_;
  st.prefix_cache_queries = kv_.prefix_queries();
  st.prefix_cache_hits = kv_.prefix_hits();
  st.prompt_tokens = prompt_tokens_;
  st.generation_tokens = generation_tokens_;
  const ForwardStats f = runner_->forward_stats();
  st.routed_expert_slots = static_cast<int64_t>(f.routed_slots);
  st.expert_weight_bytes = static_cast<int64_t>(f.expert_weight_bytes);
  return st;
}

}  // namespace expertserve::engine
