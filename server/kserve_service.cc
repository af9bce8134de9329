#include "server/kserve_service.h"

#include <cstring>
#include <deque>
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

using inference::ModelInferRequest;
using inference::ModelInferResponse;
using inference::ModelStreamInferResponse;
using Tensor = ModelInferRequest::InferInputTensor;

absl::Status Bad(absl::string_view tensor, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("input tensor '", tensor, "': ", why));
}

// BYTES elements of input `i`: contents.bytes_contents, or the raw form
// (each element a 4-byte little-endian length, then the bytes).
absl::StatusOr<std::vector<std::string>> Strings(const ModelInferRequest& req, int i) {
  const Tensor& t = req.inputs(i);
  if (t.datatype() != "BYTES") return Bad(t.name(), "expected datatype BYTES");
  std::vector<std::string> out(t.contents().bytes_contents().begin(),
                               t.contents().bytes_contents().end());
  if (i < req.raw_input_contents_size()) {
    const std::string& raw = req.raw_input_contents(i);
    size_t pos = 0;
    while (pos < raw.size()) {
      if (raw.size() - pos < 4) return Bad(t.name(), "truncated BYTES length prefix");
      uint32_t n;
      std::memcpy(&n, raw.data() + pos, 4);  // little-endian hosts only
      pos += 4;
      if (raw.size() - pos < n) return Bad(t.name(), "truncated BYTES element");
      out.emplace_back(raw.substr(pos, n));
      pos += n;
    }
  }
  return out;
}

// The first element of numeric/bool input `i`, as double.
absl::StatusOr<double> Scalar(const ModelInferRequest& req, int i) {
  const Tensor& t = req.inputs(i);
  const auto& c = t.contents();
  const std::string& dt = t.datatype();
  if (i < req.raw_input_contents_size()) {
    const std::string& raw = req.raw_input_contents(i);
    auto read = [&](auto v) -> absl::StatusOr<double> {
      if (raw.size() < sizeof(v)) return Bad(t.name(), "raw contents too short");
      std::memcpy(&v, raw.data(), sizeof(v));
      return static_cast<double>(v);
    };
    if (dt == "BOOL") return read(uint8_t{});
    if (dt == "INT32") return read(int32_t{});
    if (dt == "INT64") return read(int64_t{});
    if (dt == "UINT32") return read(uint32_t{});
    if (dt == "UINT64") return read(uint64_t{});
    if (dt == "FP32") return read(float{});
    if (dt == "FP64") return read(double{});
    return Bad(t.name(), absl::StrCat("unsupported datatype ", dt));
  }
  if (c.bool_contents_size() > 0) return c.bool_contents(0) ? 1.0 : 0.0;
  if (c.int_contents_size() > 0) return c.int_contents(0);
  if (c.int64_contents_size() > 0) return static_cast<double>(c.int64_contents(0));
  if (c.uint_contents_size() > 0) return c.uint_contents(0);
  if (c.uint64_contents_size() > 0) return static_cast<double>(c.uint64_contents(0));
  if (c.fp32_contents_size() > 0) return c.fp32_contents(0);
  if (c.fp64_contents_size() > 0) return c.fp64_contents(0);
  return Bad(t.name(), "no value");
}

void TextOutput(const std::string& text, const std::string& model, const std::string& id,
                ModelInferResponse* out) {
  out->set_model_name(model);
  out->set_id(id);
  ModelInferResponse::InferOutputTensor* t = out->add_outputs();
  t->set_name("text_output");
  t->set_datatype("BYTES");
  t->add_shape(1);
  t->add_shape(1);
  // One BYTES element: a 4-byte little-endian length, then the bytes.
  const uint32_t n = static_cast<uint32_t>(text.size());
  char prefix[4];
  std::memcpy(prefix, &n, 4);
  std::string* raw = out->add_raw_output_contents();
  raw->reserve(4 + text.size());
  raw->append(prefix, 4);
  raw->append(text.data(), text.size());
}

struct Accepted {
  const ServedModel* model = nullptr;
  engine::GenerateRequest request;
  RoutingDecision target;
  AdmissionController::Ticket ticket;
  bool stream = false;
};

absl::StatusOr<Accepted> Accept(ServiceContext* ctx, grpc::CallbackServerContext* call,
                                const ModelInferRequest& req) {
  Accepted a;
  ES_ASSIGN_OR_RETURN(pb::GenerateRequest g, FromModelInfer(req, &a.stream));
  ES_ASSIGN_OR_RETURN(a.target, ctx->catalog->Route(g.model(), g.adapter(), g.text()));
  a.model = ctx->catalog->Find(a.target.model);
  if (a.model == nullptr) return absl::NotFoundError("model: not loaded");
  ES_ASSIGN_OR_RETURN(a.request, ToEngineRequest(g, *a.model, a.target, ctx->limits,
                                                 ctx->NewEngineId(req.id()),
                                                 CallDeadline(*call)));
  ES_RETURN_IF_ERROR(ctx->admission->Admit(&a.ticket));
  if (ctx->metrics != nullptr) ctx->metrics->OnRouted(a.target);
  return a;
}

// ---- ModelInfer (unary) -----------------------------------------------------

class InferReactor;

// Shared by the reactor (gRPC threads) and the engine (loop thread).
// Thread-safe. Like GenerateStream's sink, it holds the admission slot until
// both the engine finished the request and gRPC finished the call (OnDone),
// on every path: success, engine error, cancel, deadline.
class InferSink final : public engine::OutputSinkInterface {
 public:
  InferSink(ServiceContext* ctx, InferReactor* reactor, ModelInferResponse* response,
            Accepted a, std::string id)
      : ctx_(ctx), reactor_(reactor), response_(response), target_(a.target),
        id_(std::move(id)), ticket_(std::move(a.ticket)) {}
  void OnDelta(const engine::OutputDelta& d) override {
    absl::MutexLock l(&mu_);
    if (d.sample_index == 0) text_ += d.text;
  }
  void OnFinish(const engine::FinalOutput& out) override;
  // The engine never got (or never accepted) the request.
  void FailBeforeSubmit() {
    absl::MutexLock l(&mu_);
    claimed_ = true;  // the reactor finishes the call itself
    engine_done_ = true;
    MaybeReleaseLocked();
  }
  void OnCancel(engine::EngineInterface* engine, const std::string& engine_id);
  void OnCallDone() {
    absl::MutexLock l(&mu_);
    call_done_ = true;
    MaybeReleaseLocked();
  }

 private:
  bool Claim() {
    absl::MutexLock l(&mu_);
    if (claimed_) return false;
    claimed_ = true;
    return true;
  }
  void MaybeReleaseLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (engine_done_ && call_done_) ticket_.Release();
  }
  ServiceContext* ctx_;
  InferReactor* reactor_;  // valid until Finish has been issued
  ModelInferResponse* response_;
  RoutingDecision target_;
  std::string id_;
  absl::Mutex mu_;
  AdmissionController::Ticket ticket_ ABSL_GUARDED_BY(mu_);
  std::string text_ ABSL_GUARDED_BY(mu_);
  bool claimed_ ABSL_GUARDED_BY(mu_) = false;
  bool engine_done_ ABSL_GUARDED_BY(mu_) = false;
  bool call_done_ ABSL_GUARDED_BY(mu_) = false;
};

class InferReactor final : public grpc::ServerUnaryReactor {
 public:
  InferReactor(ServiceContext* ctx, grpc::CallbackServerContext* call,
               const ModelInferRequest* req, ModelInferResponse* resp) {
    absl::Status st = ctx->Authorize(*call, Permission::kInference);
    absl::StatusOr<Accepted> a = st.ok() ? Accept(ctx, call, *req) : absl::StatusOr<Accepted>(st);
    if (!a.ok()) {
      ctx->RecordRejection(a.status());
      Finish(ToGrpcStatus(a.status()));
      return;
    }
    engine_ = a->model->engine;
    engine_id_ = a->request.request_id;
    engine::GenerateRequest request = std::move(a->request);
    sink_ = std::make_shared<InferSink>(ctx, this, resp, std::move(*a), req->id());
    absl::Status s = engine_->Submit(std::move(request), sink_);
    if (!s.ok()) {
      ctx->RecordRejection(s);
      sink_->FailBeforeSubmit();
      Finish(ToGrpcStatus(s));
    }
  }
  void OnCancel() override {
    if (sink_) sink_->OnCancel(engine_, engine_id_);
  }
  void OnDone() override {
    if (sink_) sink_->OnCallDone();
    delete this;
  }

 private:
  engine::EngineInterface* engine_ = nullptr;
  std::string engine_id_;
  std::shared_ptr<InferSink> sink_;
};

void InferSink::OnFinish(const engine::FinalOutput& out) {
  if (ctx_->metrics != nullptr) ctx_->metrics->OnRequestFinished(target_.model, target_.adapter, out);
  ctx_->LogRequest(id_, "ModelInfer", target_, out);
  if (Claim()) {
    {
      absl::MutexLock l(&mu_);
      if (out.status.ok()) TextOutput(text_, target_.model, id_, response_);
    }
    reactor_->Finish(ToGrpcStatus(out.status));
  }
  // Last: once released, a draining server may go away.
  absl::MutexLock l(&mu_);
  engine_done_ = true;
  MaybeReleaseLocked();
}

void InferSink::OnCancel(engine::EngineInterface* engine, const std::string& engine_id) {
  engine->Abort(engine_id);
  if (Claim()) reactor_->Finish(grpc::Status(grpc::CANCELLED, "cancelled"));
}

// ---- ModelStreamInfer (bidirectional) --------------------------------------

class StreamInferReactor;

// Shared by the reactor and every request's sink. Thread-safe.
class StreamCore {
 public:
  StreamCore(ServiceContext* ctx, StreamInferReactor* reactor) : ctx_(ctx), reactor_(reactor) {}

  // Queues one response. Like GenerateStream (generate_reactor.h), the
  // unsent backlog of a client that stops reading is bounded by
  // limits.max_stream_buffer_bytes: past it the backlog is dropped, every
  // request of the stream is aborted and the stream ends RESOURCE_EXHAUSTED.
  void Push(ModelStreamInferResponse r) {
    bool overflow = false;
    {
      absl::MutexLock l(&mu_);
      if (cancelled_) return;
      const int64_t bytes = static_cast<int64_t>(r.ByteSizeLong());
      queue_.push_back({std::move(r), bytes});
      AddBufferedLocked(bytes);
      if (buffered_bytes_ > ctx_->limits.max_stream_buffer_bytes) {
        overflow = true;
        abort_status_ = grpc::Status(
            grpc::RESOURCE_EXHAUSTED,
            absl::StrCat("the client is not reading the stream: ", buffered_bytes_,
                         " bytes of responses wait to be sent (limits.max_stream_buffer_bytes = ",
                         ctx_->limits.max_stream_buffer_bytes, ")"));
        CancelLocked();
      }
    }
    if (overflow) AbortAll();
    Pump();
  }
  void RequestStarted(engine::EngineInterface* e, const std::string& id) {
    absl::MutexLock l(&mu_);
    active_[id] = e;
  }
  void RequestEnded(const std::string& id) {
    {
      absl::MutexLock l(&mu_);
      active_.erase(id);
    }
    Pump();
  }
  void ReadsDone() {
    {
      absl::MutexLock l(&mu_);
      reads_done_ = true;
    }
    Pump();
  }
  void WriteDone(bool ok) {
    {
      absl::MutexLock l(&mu_);
      write_in_flight_ = false;
      AddBufferedLocked(-in_flight_bytes_);
      in_flight_bytes_ = 0;
      if (!ok) CancelLocked();
    }
    if (!ok) AbortAll();
    Pump();
  }
  void Cancel() {
    {
      absl::MutexLock l(&mu_);
      CancelLocked();
    }
    AbortAll();
    Pump();
  }
  ~StreamCore() {
    absl::MutexLock l(&mu_);
    AddBufferedLocked(-buffered_bytes_);
  }
  void FailStream(grpc::Status st) {
    {
      absl::MutexLock l(&mu_);
      status_ = std::move(st);
      reads_done_ = true;
    }
    Pump();
  }
  void Pump();
  ServiceContext* ctx() const { return ctx_; }

 private:
  struct Queued {
    ModelStreamInferResponse response;
    int64_t bytes = 0;
  };
  void CancelLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    cancelled_ = true;
    queue_.clear();
    AddBufferedLocked(-(buffered_bytes_ - in_flight_bytes_));
  }
  // Mirrored into the server-wide gauge.
  void AddBufferedLocked(int64_t bytes) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    buffered_bytes_ += bytes;
    ctx_->stream_buffered_bytes.fetch_add(bytes, std::memory_order_relaxed);
  }
  void AbortAll() {
    std::vector<std::pair<engine::EngineInterface*, std::string>> all;
    {
      absl::MutexLock l(&mu_);
      for (const auto& [id, e] : active_) all.emplace_back(e, id);
    }
    for (auto& [e, id] : all) e->Abort(id);
  }

  ServiceContext* const ctx_;
  StreamInferReactor* const reactor_;  // valid until Finish is issued
  absl::Mutex mu_;
  std::deque<Queued> queue_ ABSL_GUARDED_BY(mu_);
  int64_t buffered_bytes_ ABSL_GUARDED_BY(mu_) = 0;   // queued + in flight
  int64_t in_flight_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  std::optional<grpc::Status> abort_status_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, engine::EngineInterface*> active_ ABSL_GUARDED_BY(mu_);
  bool write_in_flight_ ABSL_GUARDED_BY(mu_) = false;
  bool reads_done_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status status_ ABSL_GUARDED_BY(mu_);
};

class StreamInferSink final : public engine::OutputSinkInterface {
 public:
  StreamInferSink(std::shared_ptr<StreamCore> core, Accepted a, std::string id,
                  std::string engine_id)
      : core_(std::move(core)), target_(a.target), ticket_(std::move(a.ticket)),
        stream_(a.stream), id_(std::move(id)), engine_id_(std::move(engine_id)) {}
  void OnDelta(const engine::OutputDelta& d) override {
    if (d.sample_index != 0) return;
    if (stream_) {
      if (d.text.empty()) return;
      ModelStreamInferResponse r;
      TextOutput(d.text, target_.model, id_, r.mutable_infer_response());
      core_->Push(std::move(r));
    } else {
      text_ += d.text;
    }
  }
  void OnFinish(const engine::FinalOutput& out) override {
    ServiceContext* ctx = core_->ctx();
    if (ctx->metrics != nullptr) ctx->metrics->OnRequestFinished(target_.model, target_.adapter, out);
    ctx->LogRequest(id_, "ModelStreamInfer", target_, out);
    ModelStreamInferResponse r;
    if (out.status.ok()) {
      TextOutput(stream_ ? "" : text_, target_.model, id_, r.mutable_infer_response());
    } else {
      r.set_error_message(std::string(out.status.message()));
      r.mutable_infer_response()->set_id(id_);
    }
    // Triton's marker of a decoupled request's last response.
    (*r.mutable_infer_response()->mutable_parameters())["triton_final_response"]
        .set_bool_param(true);
    core_->Push(std::move(r));
    ticket_.Release();
    core_->RequestEnded(engine_id_);
  }

 private:
  std::shared_ptr<StreamCore> core_;
  RoutingDecision target_;
  AdmissionController::Ticket ticket_;  // engine thread only
  bool stream_;
  std::string id_;
  std::string engine_id_;
  std::string text_;  // engine thread only
};

class StreamInferReactor final
    : public grpc::ServerBidiReactor<ModelInferRequest, ModelStreamInferResponse> {
 public:
  StreamInferReactor(ServiceContext* ctx, grpc::CallbackServerContext* call)
      : call_(call), core_(std::make_shared<StreamCore>(ctx, this)) {
    absl::Status st = ctx->Authorize(*call, Permission::kInference);
    if (!st.ok()) {
      core_->FailStream(ToGrpcStatus(st));
      return;
    }
    StartRead(&request_);
  }
  void OnReadDone(bool ok) override {
    if (!ok) {
      core_->ReadsDone();
      return;
    }
    ServiceContext* ctx = core_->ctx();
    absl::StatusOr<Accepted> a = Accept(ctx, call_, request_);
    if (a.ok()) {
      engine::EngineInterface* engine = a->model->engine;
      const std::string engine_id = a->request.request_id;
      engine::GenerateRequest req = std::move(a->request);
      auto sink = std::make_shared<StreamInferSink>(core_, std::move(*a), request_.id(), engine_id);
      core_->RequestStarted(engine, engine_id);
      absl::Status s = engine->Submit(std::move(req), sink);
      if (!s.ok()) {
        core_->RequestEnded(engine_id);
        a = s;
      }
    }
    if (!a.ok()) {
      // Errors of one request travel in-stream; the stream goes on.
      ctx->RecordRejection(a.status());
      ModelStreamInferResponse r;
      r.set_error_message(std::string(a.status().message()));
      r.mutable_infer_response()->set_id(request_.id());
      core_->Push(std::move(r));
    }
    StartRead(&request_);
  }
  void OnWriteDone(bool ok) override { core_->WriteDone(ok); }
  void OnCancel() override { core_->Cancel(); }
  void OnDone() override { delete this; }

  ModelStreamInferResponse current;

 private:
  grpc::CallbackServerContext* call_;
  ModelInferRequest request_;
  std::shared_ptr<StreamCore> core_;
};

void StreamCore::Pump() {
  bool write = false;
  grpc::Status st;
  {
    absl::MutexLock l(&mu_);
    if (finished_ || write_in_flight_) return;
    if (!queue_.empty() && !cancelled_) {
      reactor_->current = std::move(queue_.front().response);
      in_flight_bytes_ = queue_.front().bytes;
      queue_.pop_front();
      write_in_flight_ = write = true;
    } else if (cancelled_ || (reads_done_ && active_.empty())) {
      finished_ = true;
      st = cancelled_ ? abort_status_.value_or(grpc::Status(grpc::CANCELLED, "cancelled"))
                      : status_;
    } else {
      return;
    }
  }
  if (write) {
    reactor_->StartWrite(&reactor_->current);
  } else {
    reactor_->Finish(st);
  }
}

grpc::ServerUnaryReactor* Done(grpc::CallbackServerContext* call, const absl::Status& st) {
  grpc::ServerUnaryReactor* r = call->DefaultReactor();
  r->Finish(ToGrpcStatus(st));
  return r;
}

}  // namespace

absl::StatusOr<pb::GenerateRequest> FromModelInfer(const ModelInferRequest& req, bool* stream) {
  pb::GenerateRequest g;
  g.set_model(req.model_name());
  g.set_request_id(req.id());
  *stream = false;
  auto p = req.parameters().find("adapter");
  if (p != req.parameters().end()) g.set_adapter(p->second.string_param());
  if (req.raw_input_contents_size() > 0 && req.raw_input_contents_size() != req.inputs_size()) {
    return absl::InvalidArgumentError(
        "raw_input_contents: must hold one entry per input tensor");
  }
  bool have_text = false;
  pb::SamplingParams* s = g.mutable_sampling();
  for (int i = 0; i < req.inputs_size(); ++i) {
    const std::string& name = req.inputs(i).name();
    if (name == "text_input") {
      ES_ASSIGN_OR_RETURN(std::vector<std::string> v, Strings(req, i));
      if (v.size() != 1) return Bad(name, "expected exactly one element");
      g.set_text(v[0]);
      have_text = true;
    } else if (name == "stop_words" || name == "stop") {
      ES_ASSIGN_OR_RETURN(std::vector<std::string> v, Strings(req, i));
      for (std::string& w : v) s->add_stop(std::move(w));
    } else {
      ES_ASSIGN_OR_RETURN(double v, Scalar(req, i));
      if (name == "max_tokens" || name == "request_output_len") {
        s->set_max_tokens(static_cast<int32_t>(v));
      } else if (name == "stream") {
        *stream = v != 0;
      } else if (name == "temperature") {
        s->set_temperature(static_cast<float>(v));
      } else if (name == "top_p" || name == "runtime_top_p") {
        s->set_top_p(static_cast<float>(v));
      } else if (name == "top_k" || name == "runtime_top_k") {
        s->set_top_k(static_cast<int32_t>(v));
      } else if (name == "random_seed" || name == "seed") {
        s->set_seed(static_cast<uint64_t>(v));
      } else if (name == "repetition_penalty") {
        s->set_repetition_penalty(static_cast<float>(v));
      } else if (name == "presence_penalty") {
        s->set_presence_penalty(static_cast<float>(v));
      } else if (name == "frequency_penalty") {
        s->set_frequency_penalty(static_cast<float>(v));
      } else if (name == "min_p") {
        s->set_min_p(static_cast<float>(v));
      } else if (name == "ignore_eos") {
        s->set_ignore_eos(v != 0);
      }
      // Other TensorRT-LLM inputs (beam_width, end_id, ...) are ignored.
    }
  }
  if (!have_text) return Bad("text_input", "required (BYTES [1,1])");
  return g;
}

grpc::ServerUnaryReactor* KServeService::ServerLive(grpc::CallbackServerContext* call,
                                                    const inference::ServerLiveRequest*,
                                                    inference::ServerLiveResponse* response) {
  response->set_live(true);
  return Done(call, absl::OkStatus());
}

grpc::ServerUnaryReactor* KServeService::ServerReady(grpc::CallbackServerContext* call,
                                                     const inference::ServerReadyRequest*,
                                                     inference::ServerReadyResponse* response) {
  response->set_ready(!ctx_->admission->draining());
  return Done(call, absl::OkStatus());
}

grpc::ServerUnaryReactor* KServeService::ModelReady(grpc::CallbackServerContext* call,
                                                    const inference::ModelReadyRequest* request,
                                                    inference::ModelReadyResponse* response) {
  absl::Status st = ctx_->Authorize(*call, Permission::kInference);
  if (st.ok()) {
    response->set_ready(ctx_->catalog->Find(request->name()) != nullptr &&
                        !ctx_->admission->draining());
  }
  return Done(call, st);
}

grpc::ServerUnaryReactor* KServeService::ServerMetadata(
    grpc::CallbackServerContext* call, const inference::ServerMetadataRequest*,
    inference::ServerMetadataResponse* response) {
  absl::Status st = ctx_->Authorize(*call, Permission::kInference);
  response->set_name("expertserve");
  response->set_version("0.1.0");
  return Done(call, st);
}

grpc::ServerUnaryReactor* KServeService::ModelMetadata(
    grpc::CallbackServerContext* call, const inference::ModelMetadataRequest* request,
    inference::ModelMetadataResponse* response) {
  absl::Status st = ctx_->Authorize(*call, Permission::kInference);
  if (st.ok() && ctx_->catalog->Find(request->name()) == nullptr) {
    st = absl::NotFoundError(absl::StrCat("model: unknown model '", request->name(), "'"));
  }
  if (st.ok()) {
    response->set_name(request->name());
    static const std::string* const kVersion = new std::string("1");
    response->add_versions(*kVersion);  // (a literal trips a GCC 12 -Wrestrict false positive)
    response->set_platform("expertserve");
    auto add = [](auto* list, const char* name, const char* dt) {
      auto* t = list->Add();
      t->set_name(name);
      t->set_datatype(dt);
      t->add_shape(-1);
      t->add_shape(-1);
    };
    add(response->mutable_inputs(), "text_input", "BYTES");
    add(response->mutable_inputs(), "max_tokens", "INT32");
    add(response->mutable_inputs(), "stream", "BOOL");
    add(response->mutable_inputs(), "temperature", "FP32");
    add(response->mutable_inputs(), "top_p", "FP32");
    add(response->mutable_inputs(), "top_k", "INT32");
    add(response->mutable_inputs(), "random_seed", "UINT64");
    add(response->mutable_inputs(), "stop_words", "BYTES");
    add(response->mutable_outputs(), "text_output", "BYTES");
  }
  return Done(call, st);
}

grpc::ServerUnaryReactor* KServeService::ModelInfer(grpc::CallbackServerContext* call,
                                                    const ModelInferRequest* request,
                                                    ModelInferResponse* response) {
  return new InferReactor(ctx_, call, request, response);
}

grpc::ServerBidiReactor<ModelInferRequest, ModelStreamInferResponse>*
KServeService::ModelStreamInfer(grpc::CallbackServerContext* call) {
  return new StreamInferReactor(ctx_, call);
}

}  // namespace expertserve::server
