#include "server/generate_reactor.h"

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/status_macros.h"
#include "server/status_convert.h"

namespace expertserve::server {
namespace {

// Everything a call needs once it is accepted.
struct Prepared {
  const ServedModel* model = nullptr;
  engine::GenerateRequest request;
  RoutingDecision target;
  std::string client_id;  // echoed to the client
  AdmissionController::Ticket ticket;
};

absl::StatusOr<Prepared> Prepare(ServiceContext* ctx, grpc::CallbackServerContext* call,
                                 const pb::GenerateRequest& req) {
  ES_RETURN_IF_ERROR(ctx->Authorize(*call, Permission::kInference));
  Prepared p;
  std::vector<engine::ChatMessage> chat;
  if (req.has_chat()) {
    for (const pb::ChatMessage& m : req.chat().messages()) chat.push_back({m.role(), m.content()});
  }
  ES_ASSIGN_OR_RETURN(p.target, ctx->catalog->Route(req.model(), req.adapter(), req.text(),
                                                    req.has_chat() ? &chat : nullptr));
  p.model = ctx->catalog->Find(p.target.model);
  if (p.model == nullptr) {
    return absl::NotFoundError(absl::StrCat("model: '", p.target.model, "' is not loaded"));
  }
  const uint64_t n = ctx->next_request.load();
  p.client_id = req.request_id().empty() ? absl::StrCat("req-", n) : req.request_id();
  ES_ASSIGN_OR_RETURN(p.request,
                      ToEngineRequest(req, *p.model, p.target, ctx->limits,
                                      ctx->NewEngineId(p.client_id), CallDeadline(*call)));
  // Admission last: a bad request is refused for what it is even when the
  // server is full, and never holds a slot.
  ES_RETURN_IF_ERROR(ctx->admission->Admit(&p.ticket));
  if (ctx->metrics != nullptr) ctx->metrics->OnRouted(p.target);
  return p;
}

grpc::Status RejectionStatus(ServiceContext* ctx, grpc::CallbackServerContext* call,
                             const absl::Status& status) {
  ctx->RecordRejection(status);
  if (status.code() == absl::StatusCode::kResourceExhausted) {
    // The retry hint as trailing metadata too, for programmatic clients.
    call->AddTrailingMetadata(
        "retry-after-ms",
        absl::StrCat(absl::ToInt64Milliseconds(ctx->admission->retry_after())));
  }
  return ToGrpcStatus(status);
}

// Per-token latencies of sample 0, for the ITL histogram.
class ItlTracker {
 public:
  void OnTokens(const engine::OutputDelta& d, absl::Time now) {
    if (d.sample_index != 0 || d.token_ids.empty()) return;
    if (last_.has_value()) {
      const double gap = absl::ToDoubleSeconds(now - *last_) /
                         static_cast<double>(d.token_ids.size());
      for (size_t i = 0; i < d.token_ids.size(); ++i) gaps_.push_back(gap);
    }
    last_ = now;
  }
  void Report(ServerMetrics* m, const RoutingDecision& t) const {
    if (m == nullptr) return;
    for (double g : gaps_) m->ObserveInterTokenLatency(t.model, t.adapter, g);
  }

 private:
  std::optional<absl::Time> last_;
  std::vector<double> gaps_;
};

void FillFinal(const engine::FinalOutput& out, pb::GenerateFinal* f) {
  for (const engine::SampleResult& s : out.samples) {
    pb::SampleFinish* sf = f->add_samples();
    sf->set_index(s.sample_index);
    sf->set_finish_reason(ToProto(s.finish_reason));
    sf->set_stop_string(s.stop_string);
    if (s.stop_token >= 0) sf->set_stop_token_id(s.stop_token);
  }
  ToProto(out.usage, f->mutable_usage());
  ToProto(out.timings, f->mutable_timings());
}

// ---- streaming ------------------------------------------------------------

class StreamReactor;

// Shared between the reactor (gRPC threads) and the engine (loop thread).
// Thread-safe.
class StreamSink final : public engine::OutputSinkInterface {
 public:
  StreamSink(ServiceContext* ctx, StreamReactor* reactor) : ctx_(ctx), reactor_(reactor) {}

  void Init(Prepared& p) {
    absl::MutexLock lock(&mu_);
    engine_ = p.model->engine;
    engine_id_ = p.request.request_id;
    target_ = p.target;
    client_id_ = p.client_id;
    ticket_ = std::move(p.ticket);
    pending_.set_request_id(client_id_);
    ToProto(target_, pending_.mutable_routing());
    for (TokenId id : p.request.prompt_token_ids) pending_.add_prompt_token_ids(id);
    has_pending_ = true;
  }
  engine::EngineInterface* engine() const { return engine_; }
  const std::string& engine_id() const { return engine_id_; }

  void OnPromptLogprobs(const std::vector<engine::PositionLogprobs>& lp) override {
    absl::MutexLock lock(&mu_);
    for (const auto& p : lp) ToProto(p, pending_.add_prompt_logprobs());
    has_pending_ = true;
  }

  void OnDelta(const engine::OutputDelta& d) override {
    bool abort = false;
    {
      absl::MutexLock lock(&mu_);
      itl_.OnTokens(d, absl::Now());
      if (cancelled_) return;
      // Coalesce: one SampleDelta per sample in the pending message, so a
      // stalled client costs its output's bytes, not a message per token.
      pb::SampleDelta* sd = nullptr;
      for (pb::SampleDelta& x : *pending_.mutable_deltas()) {
        if (x.index() == d.sample_index) sd = &x;
      }
      if (sd == nullptr) {
        sd = pending_.add_deltas();
        sd->set_index(d.sample_index);
      }
      sd->mutable_token_ids()->Add(d.token_ids.begin(), d.token_ids.end());
      sd->mutable_text()->append(d.text);
      for (const auto& p : d.logprobs) ToProto(p, sd->add_logprobs());
      has_pending_ = true;
      AddBufferedLocked(DeltaBytes(d));
      if (buffered_bytes_ > ctx_->limits.max_stream_buffer_bytes) {
        // The client is not reading: drop the backlog and end the request
        // rather than hold its output without bound (see the header).
        abort = CancelLocked(grpc::Status(
            grpc::RESOURCE_EXHAUSTED,
            absl::StrCat("the client is not reading the stream: ", buffered_bytes_,
                         " bytes of output wait to be sent (limits.max_stream_buffer_bytes = ",
                         ctx_->limits.max_stream_buffer_bytes,
                         "); read faster, or ask for fewer tokens or logprobs")));
      }
    }
    if (abort) engine_->Abort(engine_id_);
    Pump();
  }

  void OnFinish(const engine::FinalOutput& out) override {
    {
      absl::MutexLock lock(&mu_);
      if (!finish_status_.has_value()) {
        if (out.status.ok()) {
          pending_.set_request_id(client_id_);
          FillFinal(out, pending_.mutable_final());
          has_pending_ = true;
          finish_status_ = grpc::Status::OK;
        } else {
          has_pending_ = false;
          pending_.Clear();
          AddBufferedLocked(-(buffered_bytes_ - in_flight_bytes_));
          finish_status_ = ToGrpcStatus(out.status);
        }
      }
    }
    if (ctx_->metrics != nullptr) {
      ctx_->metrics->OnRequestFinished(target_.model, target_.adapter, out);
      absl::MutexLock lock(&mu_);  // the engine thread is the only writer, but say so
      itl_.Report(ctx_->metrics, target_);
    }
    ctx_->LogRequest(client_id_, "GenerateStream", target_, out);
    Pump();
    // Last: once released, a draining server may go away.
    absl::MutexLock lock(&mu_);
    engine_done_ = true;
    MaybeReleaseLocked();
  }

  // Reactor side.
  void FailBeforeSubmit(grpc::Status status) {
    {
      absl::MutexLock lock(&mu_);
      has_pending_ = false;
      finish_status_ = std::move(status);
      engine_done_ = true;
      MaybeReleaseLocked();
    }
    Pump();
  }
  // The call is over for gRPC (OnDone).
  void OnCallDone() {
    absl::MutexLock lock(&mu_);
    call_done_ = true;
    MaybeReleaseLocked();
  }
  void OnWriteDone(bool ok) {
    bool abort = false;
    {
      absl::MutexLock lock(&mu_);
      write_in_flight_ = false;
      AddBufferedLocked(-in_flight_bytes_);
      in_flight_bytes_ = 0;
      // The stream broke (client gone): stop the work.
      if (!ok) abort = CancelLocked(grpc::Status(grpc::CANCELLED, "the stream was closed"));
    }
    if (abort) engine_->Abort(engine_id_);
    Pump();
  }
  void OnCancel() {
    bool abort = false;
    {
      absl::MutexLock lock(&mu_);
      abort = CancelLocked(
          grpc::Status(grpc::CANCELLED, "cancelled by the client, its deadline or shutdown"));
    }
    if (abort) engine_->Abort(engine_id_);
    Pump();
  }
  ~StreamSink() override {
    absl::MutexLock lock(&mu_);
    AddBufferedLocked(-buffered_bytes_);
  }

  // Claims the next reactor operation under the lock, issues it outside.
  void Pump();

 private:
  // The admission slot is held until both the engine finished the request
  // and gRPC finished the call, so a drain never cuts off a final write.
  void MaybeReleaseLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (engine_done_ && call_done_) ticket_.Release();
  }
  // Stops the stream with `status` (kept if one is already set) and drops
  // the pending output. True if the engine request must be aborted.
  bool CancelLocked(grpc::Status status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    cancelled_ = true;
    has_pending_ = false;
    pending_.Clear();
    AddBufferedLocked(-(buffered_bytes_ - in_flight_bytes_));
    if (finish_status_.has_value()) return false;
    finish_status_ = std::move(status);
    return engine_ != nullptr;
  }
  // Output bytes held for this stream (pending + the message in flight),
  // mirrored into the server-wide gauge.
  void AddBufferedLocked(int64_t bytes) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    buffered_bytes_ += bytes;
    ctx_->stream_buffered_bytes.fetch_add(bytes, std::memory_order_relaxed);
  }
  // Payload bytes a delta adds to a message (ids, text, logprobs); protobuf
  // framing adds a few percent.
  static int64_t DeltaBytes(const engine::OutputDelta& d) {
    int64_t n = static_cast<int64_t>(d.token_ids.size() * sizeof(TokenId) + d.text.size());
    for (const auto& p : d.logprobs) n += static_cast<int64_t>((1 + p.top.size()) * 8 + 4);
    return n;
  }

  ServiceContext* const ctx_;
  StreamReactor* const reactor_;  // valid until Finish has been issued
  engine::EngineInterface* engine_ = nullptr;
  std::string engine_id_;
  RoutingDecision target_;
  std::string client_id_;

  absl::Mutex mu_;
  AdmissionController::Ticket ticket_ ABSL_GUARDED_BY(mu_);
  pb::GenerateStreamResponse pending_ ABSL_GUARDED_BY(mu_);
  bool has_pending_ ABSL_GUARDED_BY(mu_) = false;
  bool write_in_flight_ ABSL_GUARDED_BY(mu_) = false;
  bool finish_claimed_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  bool engine_done_ ABSL_GUARDED_BY(mu_) = false;
  bool call_done_ ABSL_GUARDED_BY(mu_) = false;
  int64_t buffered_bytes_ ABSL_GUARDED_BY(mu_) = 0;   // pending + in flight
  int64_t in_flight_bytes_ ABSL_GUARDED_BY(mu_) = 0;  // of the message in flight
  std::optional<grpc::Status> finish_status_ ABSL_GUARDED_BY(mu_);
  ItlTracker itl_ ABSL_GUARDED_BY(mu_);
};

class StreamReactor final : public grpc::ServerWriteReactor<pb::GenerateStreamResponse> {
 public:
  StreamReactor(ServiceContext* ctx, grpc::CallbackServerContext* call,
                const pb::GenerateRequest* request)
      : sink_(std::make_shared<StreamSink>(ctx, this)) {
    absl::StatusOr<Prepared> p = Prepare(ctx, call, *request);
    if (!p.ok()) {
      sink_->FailBeforeSubmit(RejectionStatus(ctx, call, p.status()));
      return;
    }
    engine::EngineInterface* engine = p->model->engine;
    sink_->Init(*p);
    absl::Status st = engine->Submit(std::move(p->request), sink_);
    if (!st.ok()) {
      sink_->FailBeforeSubmit(RejectionStatus(ctx, call, st));
      return;
    }
    sink_->Pump();  // the first message: routing and prompt ids
  }

  void OnWriteDone(bool ok) override { sink_->OnWriteDone(ok); }
  void OnCancel() override { sink_->OnCancel(); }
  void OnDone() override {
    sink_->OnCallDone();
    delete this;
  }

  pb::GenerateStreamResponse current;  // the message being written

 private:
  std::shared_ptr<StreamSink> sink_;
};

void StreamSink::Pump() {
  bool write = false;
  grpc::Status status;
  {
    absl::MutexLock lock(&mu_);
    if (finish_claimed_ || write_in_flight_) return;
    if (has_pending_) {
      reactor_->current.Clear();
      reactor_->current.Swap(&pending_);
      has_pending_ = false;
      write_in_flight_ = true;
      in_flight_bytes_ = buffered_bytes_;
      write = true;
    } else if (finish_status_.has_value()) {
      finish_claimed_ = true;
      status = *finish_status_;
    } else {
      return;
    }
  }
  if (write) {
    reactor_->StartWrite(&reactor_->current);
  } else {
    reactor_->Finish(status);
  }
}

// ---- unary ----------------------------------------------------------------

class UnaryReactor;

// Thread-safe.
class UnarySink final : public engine::OutputSinkInterface {
 public:
  UnarySink(ServiceContext* ctx, UnaryReactor* reactor, pb::GenerateResponse* response)
      : ctx_(ctx), reactor_(reactor), response_(response) {}

  void Init(Prepared& p, int n) {
    absl::MutexLock lock(&mu_);
    engine_ = p.model->engine;
    engine_id_ = p.request.request_id;
    target_ = p.target;
    client_id_ = p.client_id;
    ticket_ = std::move(p.ticket);
    prompt_ids_ = p.request.prompt_token_ids;
    completions_.resize(n);
    for (int i = 0; i < n; ++i) completions_[i].set_index(i);
  }

  void OnPromptLogprobs(const std::vector<engine::PositionLogprobs>& lp) override {
    absl::MutexLock lock(&mu_);
    prompt_logprobs_ = lp;
  }
  void OnDelta(const engine::OutputDelta& d) override {
    absl::MutexLock lock(&mu_);
    itl_.OnTokens(d, absl::Now());
    if (d.sample_index < 0 || d.sample_index >= static_cast<int>(completions_.size())) return;
    pb::Completion& c = completions_[d.sample_index];
    c.mutable_token_ids()->Add(d.token_ids.begin(), d.token_ids.end());
    c.mutable_text()->append(d.text);
    for (const auto& p : d.logprobs) ToProto(p, c.add_logprobs());
  }
  void OnFinish(const engine::FinalOutput& out) override;

  void FailBeforeSubmit(grpc::Status status);
  void OnCancel();
  void OnCallDone() {
    absl::MutexLock lock(&mu_);
    call_done_ = true;
    if (engine_done_) ticket_.Release();
  }

 private:
  void FinishOnce(grpc::Status status);

  ServiceContext* const ctx_;
  UnaryReactor* const reactor_;
  pb::GenerateResponse* const response_;
  engine::EngineInterface* engine_ = nullptr;
  std::string engine_id_;
  RoutingDecision target_;
  std::string client_id_;

  absl::Mutex mu_;
  AdmissionController::Ticket ticket_ ABSL_GUARDED_BY(mu_);
  std::vector<TokenId> prompt_ids_ ABSL_GUARDED_BY(mu_);
  std::vector<engine::PositionLogprobs> prompt_logprobs_ ABSL_GUARDED_BY(mu_);
  std::vector<pb::Completion> completions_ ABSL_GUARDED_BY(mu_);
  bool finish_claimed_ ABSL_GUARDED_BY(mu_) = false;
  bool engine_done_ ABSL_GUARDED_BY(mu_) = false;
  bool call_done_ ABSL_GUARDED_BY(mu_) = false;
  ItlTracker itl_ ABSL_GUARDED_BY(mu_);
};

class UnaryReactor final : public grpc::ServerUnaryReactor {
 public:
  UnaryReactor(ServiceContext* ctx, grpc::CallbackServerContext* call,
               const pb::GenerateRequest* request, pb::GenerateResponse* response)
      : sink_(std::make_shared<UnarySink>(ctx, this, response)) {
    absl::StatusOr<Prepared> p = Prepare(ctx, call, *request);
    if (!p.ok()) {
      sink_->FailBeforeSubmit(RejectionStatus(ctx, call, p.status()));
      return;
    }
    engine::EngineInterface* engine = p->model->engine;
    sink_->Init(*p, p->request.sampling.n);
    absl::Status st = engine->Submit(std::move(p->request), sink_);
    if (!st.ok()) sink_->FailBeforeSubmit(RejectionStatus(ctx, call, st));
  }
  void OnCancel() override { sink_->OnCancel(); }
  void OnDone() override {
    sink_->OnCallDone();
    delete this;
  }

 private:
  std::shared_ptr<UnarySink> sink_;
};

void UnarySink::FinishOnce(grpc::Status status) {
  {
    absl::MutexLock lock(&mu_);
    if (finish_claimed_) return;
    finish_claimed_ = true;
  }
  reactor_->Finish(status);
}

void UnarySink::OnFinish(const engine::FinalOutput& out) {
  bool claimed = false;
  {
    absl::MutexLock lock(&mu_);
    if (!finish_claimed_) {
      finish_claimed_ = true;
      claimed = true;
      if (out.status.ok()) {
        response_->set_request_id(client_id_);
        for (TokenId id : prompt_ids_) response_->add_prompt_token_ids(id);
        for (const auto& p : prompt_logprobs_) ToProto(p, response_->add_prompt_logprobs());
        for (const engine::SampleResult& s : out.samples) {
          if (s.sample_index < 0 || s.sample_index >= static_cast<int>(completions_.size())) {
            continue;
          }
          pb::Completion& c = completions_[s.sample_index];
          c.set_finish_reason(ToProto(s.finish_reason));
          c.set_stop_string(s.stop_string);
          if (s.stop_token >= 0) c.set_stop_token_id(s.stop_token);
        }
        for (pb::Completion& c : completions_) response_->add_completions()->Swap(&c);
        ToProto(out.usage, response_->mutable_usage());
        ToProto(out.timings, response_->mutable_timings());
        ToProto(target_, response_->mutable_routing());
      }
    }
  }
  if (ctx_->metrics != nullptr) {
    ctx_->metrics->OnRequestFinished(target_.model, target_.adapter, out);
    absl::MutexLock lock(&mu_);  // the engine thread is the only writer, but say so
    itl_.Report(ctx_->metrics, target_);
  }
  ctx_->LogRequest(client_id_, "Generate", target_, out);
  if (claimed) reactor_->Finish(ToGrpcStatus(out.status));
  // Last: once released, a draining server may go away.
  absl::MutexLock lock(&mu_);
  engine_done_ = true;
  if (call_done_) ticket_.Release();
}

void UnarySink::FailBeforeSubmit(grpc::Status status) {
  {
    absl::MutexLock lock(&mu_);
    engine_done_ = true;
    if (call_done_) ticket_.Release();
  }
  FinishOnce(std::move(status));
}

void UnarySink::OnCancel() {
  bool abort = false;
  {
    absl::MutexLock lock(&mu_);
    abort = !finish_claimed_ && engine_ != nullptr;
  }
  if (abort) engine_->Abort(engine_id_);
  FinishOnce(grpc::Status(grpc::CANCELLED,
                          "cancelled by the client, its deadline or shutdown"));
}

}  // namespace

grpc::ServerWriteReactor<pb::GenerateStreamResponse>* StartGenerateStream(
    ServiceContext* ctx, grpc::CallbackServerContext* call,
    const pb::GenerateRequest* request) {
  return new StreamReactor(ctx, call, request);
}

grpc::ServerUnaryReactor* StartGenerateUnary(ServiceContext* ctx,
                                             grpc::CallbackServerContext* call,
                                             const pb::GenerateRequest* request,
                                             pb::GenerateResponse* response) {
  return new UnaryReactor(ctx, call, request, response);
}

}  // namespace expertserve::server
