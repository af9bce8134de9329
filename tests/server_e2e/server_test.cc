// The gRPC server in-process over loopback TCP with a scripted FakeEngine:
// streaming and unary generation, every bad-input class, cancellation,
// deadlines, overload, auth, health and graceful shutdown. (The same server
// over real checkpoints in a separate process: e2e_test.cc.)
#include <algorithm>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "expertserve/v1/inference.grpc.pb.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "engine/text/text_processor.h"
#include "kserve/grpc_service.grpc.pb.h"
#include "server/kserve_service.h"
#include "server/server.h"
#include "tests/server_e2e/fake_engine.h"

namespace expertserve::server {
namespace {

using ::expertserve::testing::FakeEngine;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
namespace health = ::grpc::health::v1;

struct Harness {
  // Metrics are off unless asked: CivetWeb takes ~2 s to stop.
  explicit Harness(absl::Duration step, int64_t capacity = 64,
                   std::vector<Authenticator::Token> tokens = {}, bool metrics = false,
                   int64_t max_stream_buffer_bytes = 1 << 20,
                   const engine::TextProcessor* text = nullptr) {
    engine = std::make_unique<FakeEngine>("fake", step);
    ServedModel m;
    m.name = "fake";
    m.architecture = "fake";
    m.engine = engine.get();
    m.text = text;
    m.max_context_tokens = 64;
    m.vocab_size = 1000;
    catalog.AddModel(m);
    ServerOptions o;
    o.listen = {"127.0.0.1:0"};
    o.limits.max_prompt_tokens = 32;
    o.limits.max_tokens = 40;
    o.limits.max_stop_strings = 2;
    o.limits.max_logprobs = 3;
    o.limits.max_request_bytes = 4096;
    o.limits.max_stream_buffer_bytes = max_stream_buffer_bytes;
    o.admission_capacity = capacity;
    o.retry_after = absl::Milliseconds(250);
    o.log_format = RequestLogFormat::kNone;
    if (metrics) o.metrics_listen = "127.0.0.1:0";
    auto s = Server::Start(o, &catalog, Authenticator(std::move(tokens)),
                           {[](ServiceContext* ctx) -> std::unique_ptr<grpc::Service> {
                             return std::make_unique<KServeService>(ctx);
                           }});
    EXPECT_TRUE(s.ok()) << s.status();
    server = *std::move(s);
    channel = grpc::CreateChannel(server->addresses()[0], grpc::InsecureChannelCredentials());
    stub = pb::Inference::NewStub(channel);
    health_stub = health::Health::NewStub(channel);
  }
  ~Harness() {
    server.reset();
    engine.reset();
  }

  std::unique_ptr<FakeEngine> engine;
  ModelCatalog catalog;
  std::unique_ptr<Server> server;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<pb::Inference::Stub> stub;
  std::unique_ptr<health::Health::Stub> health_stub;
};

pb::GenerateRequest Ids(std::vector<int32_t> ids, int max_tokens) {
  pb::GenerateRequest r;
  r.set_model("fake");
  r.mutable_token_ids()->mutable_ids()->Add(ids.begin(), ids.end());
  r.mutable_sampling()->set_max_tokens(max_tokens);
  return r;
}

struct StreamResult {
  grpc::Status status;
  std::vector<int32_t> tokens;
  std::string text;
  std::vector<pb::GenerateStreamResponse> messages;
};

StreamResult Stream(pb::Inference::Stub& stub, const pb::GenerateRequest& req,
                    grpc::ClientContext* ctx = nullptr) {
  grpc::ClientContext local;
  if (ctx == nullptr) ctx = &local;
  StreamResult r;
  auto reader = stub.GenerateStream(ctx, req);
  pb::GenerateStreamResponse msg;
  while (reader->Read(&msg)) {
    for (const auto& d : msg.deltas()) {
      r.tokens.insert(r.tokens.end(), d.token_ids().begin(), d.token_ids().end());
      r.text += d.text();
    }
    r.messages.push_back(msg);
  }
  r.status = reader->Finish();
  return r;
}

health::HealthCheckResponse::ServingStatus Health(Harness& h, const std::string& service) {
  grpc::ClientContext ctx;
  health::HealthCheckRequest req;
  req.set_service(service);
  health::HealthCheckResponse resp;
  grpc::Status st = h.health_stub->Check(&ctx, req, &resp);
  if (!st.ok()) return health::HealthCheckResponse::UNKNOWN;
  return resp.status();
}

TEST(ServerTest, StreamsScriptedTokensWithFinalMessage) {
  Harness h(absl::Milliseconds(2));
  StreamResult r = Stream(*h.stub, Ids({5, 6, 7}, 4));
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  EXPECT_THAT(r.tokens, ElementsAreArray(FakeEngine::Expected(7, 4)));
  EXPECT_EQ(r.text, "8 9 10 11 ");
  ASSERT_GE(r.messages.size(), 2u);
  // First message: routing and prompt; last: the final block.
  EXPECT_EQ(r.messages.front().routing().model(), "fake");
  EXPECT_TRUE(r.messages.front().routing().explicit_target());
  EXPECT_THAT(r.messages.front().prompt_token_ids(), ElementsAreArray({5, 6, 7}));
  const pb::GenerateFinal& f = r.messages.back().final();
  ASSERT_EQ(f.samples_size(), 1);
  EXPECT_EQ(f.samples(0).finish_reason(), pb::FINISH_REASON_LENGTH);
  EXPECT_EQ(f.usage().prompt_tokens(), 3);
  EXPECT_EQ(f.usage().completion_tokens(), 4);
  EXPECT_GE(f.timings().total_seconds(), f.timings().time_to_first_token_seconds());
}

TEST(ServerTest, UnaryWithSamplesLogprobsAndStopId) {
  Harness h(absl::Milliseconds(1));
  pb::GenerateRequest req = Ids({1}, 10);
  req.set_request_id("my-id");
  req.mutable_sampling()->set_n(2);
  req.mutable_sampling()->set_logprobs(2);
  req.mutable_sampling()->add_stop_token_ids(4);
  grpc::ClientContext ctx;
  pb::GenerateResponse resp;
  grpc::Status st = h.stub->Generate(&ctx, req, &resp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(resp.request_id(), "my-id");
  ASSERT_EQ(resp.completions_size(), 2);
  for (const pb::Completion& c : resp.completions()) {
    EXPECT_THAT(c.token_ids(), ElementsAreArray({2, 3, 4}));
    EXPECT_EQ(c.finish_reason(), pb::FINISH_REASON_STOP);
    EXPECT_EQ(c.stop_token_id(), 4);
    ASSERT_EQ(c.logprobs_size(), 3);
    EXPECT_EQ(c.logprobs(0).top_size(), 2);
  }
  EXPECT_EQ(resp.usage().completion_tokens(), 6);
}

TEST(ServerTest, BadInputsGetPreciseCodesAndNameTheField) {
  Harness h(absl::Milliseconds(1));
  struct Case {
    std::string name;
    pb::GenerateRequest req;
    grpc::StatusCode code;
    std::string message;
  };
  std::vector<Case> cases;
  {
    pb::GenerateRequest r;
    r.set_model("fake");
    cases.push_back({"no input", r, grpc::INVALID_ARGUMENT, "input"});
  }
  {
    pb::GenerateRequest r = Ids({1}, 4);
    r.mutable_sampling()->set_max_tokens(0);
    cases.push_back({"max_tokens 0", r, grpc::INVALID_ARGUMENT, "sampling.max_tokens"});
  }
  cases.push_back({"max_tokens over limit", Ids({1}, 41), grpc::INVALID_ARGUMENT,
                   "limits.max_tokens"});
  {
    pb::GenerateRequest r = Ids({1}, 4);
    for (int i = 0; i < 3; ++i) r.mutable_sampling()->add_stop("x");
    cases.push_back({"stop strings", r, grpc::INVALID_ARGUMENT, "sampling.stop"});
  }
  {
    pb::GenerateRequest r = Ids({1}, 4);
    r.mutable_sampling()->set_logprobs(4);
    cases.push_back({"logprobs", r, grpc::INVALID_ARGUMENT, "sampling.logprobs"});
  }
  {
    pb::GenerateRequest r = Ids({1}, 4);
    r.mutable_sampling()->set_temperature(-1);
    cases.push_back({"temperature", r, grpc::INVALID_ARGUMENT, "sampling.temperature"});
  }
  {
    pb::GenerateRequest r = Ids({1}, 4);
    r.mutable_sampling()->set_top_p(0);
    cases.push_back({"top_p", r, grpc::INVALID_ARGUMENT, "sampling.top_p"});
  }
  cases.push_back({"token id", Ids({1, 5000}, 4), grpc::INVALID_ARGUMENT, "token_ids.ids[1]"});
  {
    pb::GenerateRequest r = Ids({1}, 4);
    r.set_model("nope");
    cases.push_back({"unknown model", r, grpc::NOT_FOUND, "unknown model 'nope'"});
  }
  {
    pb::GenerateRequest r = Ids({1}, 4);
    r.set_adapter("nope");
    cases.push_back({"unknown adapter", r, grpc::NOT_FOUND, "unknown adapter 'nope'"});
  }
  cases.push_back({"prompt over limit", Ids(std::vector<int32_t>(33, 1), 4),
                   grpc::OUT_OF_RANGE, "limits.max_prompt_tokens"});
  cases.push_back({"beyond context", Ids(std::vector<int32_t>(30, 1), 40),
                   grpc::OUT_OF_RANGE, "context"});
  {
    pb::GenerateRequest r = Ids({1}, 4);
    r.set_text("hello");
    cases.push_back({"text without tokenizer", r, grpc::FAILED_PRECONDITION, "tokenizer"});
  }
  {
    pb::GenerateRequest r = Ids({1}, 4);
    r.mutable_chat();
    cases.push_back({"empty chat", r, grpc::INVALID_ARGUMENT, "chat.messages"});
  }
  {
    pb::GenerateRequest r = Ids({1}, 4);
    r.mutable_sampling()->add_stop(std::string(5000, 'x'));
    cases.push_back({"request size", r, grpc::INVALID_ARGUMENT, "limits.max_request_bytes"});
  }
  for (const Case& c : cases) {
    for (bool streaming : {false, true}) {
      grpc::Status st;
      if (streaming) {
        st = Stream(*h.stub, c.req).status;
      } else {
        grpc::ClientContext ctx;
        pb::GenerateResponse resp;
        st = h.stub->Generate(&ctx, c.req, &resp);
      }
      EXPECT_EQ(st.error_code(), c.code) << c.name << ": " << st.error_message();
      EXPECT_THAT(st.error_message(), HasSubstr(c.message)) << c.name;
    }
  }
  // None of them reached the engine, and a good request still works.
  EXPECT_EQ(h.engine->submitted(), 0);
  EXPECT_TRUE(Stream(*h.stub, Ids({1}, 2)).status.ok());
}

TEST(ServerTest, CancelMidStreamAbortsInTheEngine) {
  Harness h(absl::Milliseconds(20));
  grpc::ClientContext ctx;
  auto reader = h.stub->GenerateStream(&ctx, Ids({1}, 40));
  pb::GenerateStreamResponse msg;
  int tokens = 0;
  while (tokens < 2 && reader->Read(&msg)) {
    for (const auto& d : msg.deltas()) tokens += d.token_ids_size();
  }
  EXPECT_EQ(h.engine->live(), 1);
  ctx.TryCancel();
  while (reader->Read(&msg)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::CANCELLED);
  // Aborted within a step or two, long before its 40 tokens would end.
  const absl::Time start = absl::Now();
  EXPECT_TRUE(h.engine->WaitIdle());
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(500));
  // The admission slot came back.
  EXPECT_TRUE(Stream(*h.stub, Ids({1}, 1)).status.ok());
}

TEST(ServerTest, DeadlineExpiryAbortsTheRequest) {
  Harness h(absl::Milliseconds(20));
  for (bool streaming : {false, true}) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(150));
    grpc::Status st;
    if (streaming) {
      st = Stream(*h.stub, Ids({1}, 40), &ctx).status;
    } else {
      pb::GenerateResponse resp;
      st = h.stub->Generate(&ctx, Ids({1}, 40), &resp);
    }
    EXPECT_EQ(st.error_code(), grpc::DEADLINE_EXCEEDED) << streaming;
    EXPECT_TRUE(h.engine->WaitIdle());
  }
}

TEST(ServerTest, OverloadIsRefusedWhileAdmittedRequestsComplete) {
  Harness h(absl::Milliseconds(10), /*capacity=*/2);
  std::vector<StreamResult> admitted(2);
  std::vector<std::thread> threads;
  for (int i = 0; i < 2; ++i) {
    threads.emplace_back([&, i] { admitted[i] = Stream(*h.stub, Ids({1}, 20)); });
  }
  while (h.engine->live() < 2) absl::SleepFor(absl::Milliseconds(2));
  grpc::ClientContext ctx;
  pb::GenerateResponse resp;
  grpc::Status st = h.stub->Generate(&ctx, Ids({1}, 2), &resp);
  EXPECT_EQ(st.error_code(), grpc::RESOURCE_EXHAUSTED);
  EXPECT_THAT(st.error_message(), HasSubstr("retry after 250 ms"));
  auto it = ctx.GetServerTrailingMetadata().find("retry-after-ms");
  ASSERT_NE(it, ctx.GetServerTrailingMetadata().end());
  EXPECT_EQ(std::string(it->second.data(), it->second.size()), "250");
  for (auto& t : threads) t.join();
  for (const StreamResult& r : admitted) {
    EXPECT_TRUE(r.status.ok()) << r.status.error_message();
    EXPECT_EQ(r.tokens.size(), 20u);
  }
}

TEST(ServerTest, BearerTokensWithPermissions) {
  std::vector<Authenticator::Token> tokens = {
      {"app", "inference-secret-0123456789", true, false},
      {"ops", "admin-only-secret-0123456789", false, true}};
  Harness h(absl::Milliseconds(1), 64, tokens);
  auto call = [&](const std::string& auth) {
    grpc::ClientContext ctx;
    if (!auth.empty()) ctx.AddMetadata("authorization", auth);
    pb::ListModelsResponse resp;
    return h.stub->ListModels(&ctx, pb::ListModelsRequest(), &resp);
  };
  EXPECT_EQ(call("").error_code(), grpc::UNAUTHENTICATED);
  EXPECT_EQ(call("Bearer wrong-secret-0123456789").error_code(), grpc::UNAUTHENTICATED);
  EXPECT_EQ(call("Basic abc").error_code(), grpc::UNAUTHENTICATED);
  grpc::Status denied = call("Bearer admin-only-secret-0123456789");
  EXPECT_EQ(denied.error_code(), grpc::PERMISSION_DENIED);
  EXPECT_THAT(denied.error_message(), HasSubstr("'ops'"));
  EXPECT_THAT(denied.error_message(), ::testing::Not(HasSubstr("secret")));
  EXPECT_TRUE(call("Bearer inference-secret-0123456789").ok());
  // Generation too, and health needs no token (Kubernetes probes).
  EXPECT_EQ(Stream(*h.stub, Ids({1}, 2)).status.error_code(), grpc::UNAUTHENTICATED);
  EXPECT_EQ(Health(h, ""), health::HealthCheckResponse::SERVING);
}

TEST(ServerTest, GracefulShutdownDrainsThenRefuses) {
  Harness h(absl::Milliseconds(10));
  EXPECT_EQ(Health(h, ""), health::HealthCheckResponse::SERVING);
  EXPECT_EQ(Health(h, "fake"), health::HealthCheckResponse::SERVING);
  StreamResult inflight;
  std::thread t([&] { inflight = Stream(*h.stub, Ids({1}, 30)); });
  while (h.engine->live() < 1) absl::SleepFor(absl::Milliseconds(2));
  int64_t cancelled = -1;
  std::thread stopper([&] { cancelled = h.server->Shutdown(absl::Seconds(10)); });
  // While draining: NOT_SERVING, and new requests are refused.
  bool saw_not_serving = false;
  for (int i = 0; i < 100 && !saw_not_serving; ++i) {
    saw_not_serving = Health(h, "") == health::HealthCheckResponse::NOT_SERVING;
    if (!saw_not_serving) absl::SleepFor(absl::Milliseconds(2));
  }
  EXPECT_TRUE(saw_not_serving);
  EXPECT_EQ(Stream(*h.stub, Ids({1}, 2)).status.error_code(), grpc::UNAVAILABLE);
  t.join();
  stopper.join();
  EXPECT_TRUE(inflight.status.ok()) << inflight.status.error_message();
  EXPECT_EQ(inflight.tokens.size(), 30u);
  EXPECT_EQ(cancelled, 0);
}

TEST(ServerTest, ShutdownCancelsWhatOutlivesTheGracePeriod) {
  Harness h(absl::Milliseconds(50));
  StreamResult inflight;
  std::thread t([&] { inflight = Stream(*h.stub, Ids({1}, 40)); });
  while (h.engine->live() < 1) absl::SleepFor(absl::Milliseconds(2));
  EXPECT_EQ(h.server->Shutdown(absl::Milliseconds(100)), 1);
  t.join();
  EXPECT_FALSE(inflight.status.ok());
  EXPECT_LT(inflight.tokens.size(), 40u);
  EXPECT_TRUE(h.engine->WaitIdle());
}

TEST(ServerTest, ListModelsRouteAndMetrics) {
  Harness h(absl::Milliseconds(1), 64, {}, /*metrics=*/true);
  grpc::ClientContext ctx;
  pb::ListModelsResponse models;
  ASSERT_TRUE(h.stub->ListModels(&ctx, pb::ListModelsRequest(), &models).ok());
  ASSERT_EQ(models.models_size(), 1);
  EXPECT_EQ(models.models(0).name(), "fake");
  EXPECT_EQ(models.models(0).state(), pb::MODEL_STATE_READY);

  grpc::ClientContext rctx;
  pb::RouteRequest rreq;
  rreq.set_text("anything");
  rreq.set_model("auto");
  pb::RouteResponse route;
  ASSERT_TRUE(h.stub->Route(&rctx, rreq, &route).ok());
  EXPECT_EQ(route.routing().model(), "fake");
  EXPECT_FALSE(route.routing().explicit_target());

  pb::GenerateRequest req = Ids({1}, 3);
  req.set_model("");  // auto: the default target
  StreamResult r = Stream(*h.stub, req);
  ASSERT_TRUE(r.status.ok());
  EXPECT_FALSE(r.messages.front().routing().explicit_target());
  const std::string text = h.server->context().metrics->Scrape();
  for (const char* name :
       {"expertserve:num_requests_running", "expertserve:num_requests_waiting",
        "expertserve:kv_cache_usage_perc", "expertserve:time_to_first_token_seconds_bucket",
        "expertserve:inter_token_latency_seconds_bucket",
        "expertserve:e2e_request_latency_seconds_bucket",
        "expertserve:request_queue_time_seconds_bucket", "expertserve:prompt_tokens_total",
        "expertserve:generation_tokens_total", "expertserve:num_preemptions_total",
        "expertserve:prefix_cache_queries_total", "expertserve:prefix_cache_hits_total",
        // The fake runner has no experts.
        "expertserve:routed_expert_slots_total{model_name=\"fake\"} 0",
        "expertserve:expert_weight_bytes_read_total{model_name=\"fake\"} 0",
        "expertserve:request_success_total{adapter=\"\",finished_reason=\"length\",model_name=\"fake\"} 1",
        "expertserve:router_decisions_total", "expertserve:stream_buffered_bytes 0"}) {
    EXPECT_THAT(text, HasSubstr(name));
  }
}

// A channel whose HTTP/2 receive window stays small (no BDP-driven growth),
// so a client that stops reading soon stops the server's writes.
std::shared_ptr<grpc::Channel> SmallWindowChannel(const Harness& h) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 64 << 10);
  return grpc::CreateCustomChannel(h.server->addresses()[0],
                                   grpc::InsecureChannelCredentials(), args);
}

TEST(ServerTest, LateReaderGetsEveryLargeDeltaIntactAndInOrder) {
  constexpr int64_t kBound = 3 << 20;
  Harness h(absl::Milliseconds(1), 64, {}, false, kBound);
  // 40 tokens x 64 KiB of text (2.5 MiB), beyond what the HTTP/2 windows
  // and socket buffers take on loopback (< 1 MiB, see the next test).
  h.engine->set_text_padding(64 << 10);
  // A client whose receive window stays small (no BDP-driven growth).
  auto stub = pb::Inference::NewStub(SmallWindowChannel(h));
  grpc::ClientContext ctx;
  auto reader = stub->GenerateStream(&ctx, Ids({1}, 40));
  // Do not read while the engine produces all 40 tokens.
  while (h.engine->submitted() == 0) absl::SleepFor(absl::Milliseconds(1));
  EXPECT_TRUE(h.engine->WaitIdle());
  // What HTTP/2 flow control held back waits in the server, coalesced; it
  // is under the bound, so nothing was dropped.
  const int64_t held = h.server->context().stream_buffered_bytes.load();
  EXPECT_GT(held, 0);
  EXPECT_LE(held, kBound);
  pb::GenerateStreamResponse msg;
  int messages = 0;
  std::vector<int32_t> tokens;
  while (reader->Read(&msg)) {
    ++messages;
    for (const auto& d : msg.deltas()) {
      tokens.insert(tokens.end(), d.token_ids().begin(), d.token_ids().end());
    }
  }
  ASSERT_TRUE(reader->Finish().ok());
  EXPECT_THAT(tokens, ElementsAreArray(FakeEngine::Expected(1, 40)));
  // At most one message per token plus the header and the final one; when
  // the transport blocks, pending deltas are coalesced into fewer. (Loopback
  // does not block reliably enough to assert the coalescing itself.)
  EXPECT_LE(messages, 42) << messages;
  EXPECT_EQ(h.server->context().stream_buffered_bytes.load(), 0);
}

// The server's peak stream backlog, sampled until the engine has taken a
// request and finished every one (or 10 s pass).
int64_t PeakBacklogUntilEngineIdle(Harness& h) {
  int64_t peak = 0;
  const absl::Time start = absl::Now();
  do {
    peak = std::max(peak, h.server->context().stream_buffered_bytes.load());
    absl::SleepFor(absl::Microseconds(500));
  } while ((h.engine->submitted() == 0 || h.engine->live() > 0) &&
           absl::Now() - start < absl::Seconds(10));
  return peak;
}

TEST(ServerTest, StalledReaderBacklogIsBoundedThenTheRequestIsAborted) {
  // 40 tokens x 32 KiB = 1.25 MiB of output against a 256 KiB bound.
  constexpr int64_t kBound = 256 << 10;
  constexpr size_t kPadding = 32 << 10;
  Harness h(absl::Milliseconds(5), 64, {}, false, kBound);
  h.engine->set_text_padding(kPadding);
  auto stub = pb::Inference::NewStub(SmallWindowChannel(h));
  grpc::ClientContext ctx;
  auto reader = stub->GenerateStream(&ctx, Ids({1}, 40));
  // Not reading: sample the server's backlog until the engine is done.
  const int64_t peak = PeakBacklogUntilEngineIdle(h);
  // Bounded: at most the bound plus the one delta that crossed it (an
  // unbounded buffer would reach the whole 1.25 MiB).
  EXPECT_GT(peak, kBound / 2);
  EXPECT_LE(peak, kBound + static_cast<int64_t>(kPadding) + 64) << peak;
  // The request was aborted in the engine, long before its 40 tokens.
  EXPECT_EQ(h.engine->live(), 0);
  EXPECT_LT(h.engine->GetStats()[0].generation_tokens, 30);
  // The client gets what had been sent, then RESOURCE_EXHAUSTED naming the limit.
  pb::GenerateStreamResponse msg;
  std::vector<int32_t> tokens;
  while (reader->Read(&msg)) {
    for (const auto& d : msg.deltas()) {
      tokens.insert(tokens.end(), d.token_ids().begin(), d.token_ids().end());
    }
  }
  const grpc::Status st = reader->Finish();
  EXPECT_EQ(st.error_code(), grpc::RESOURCE_EXHAUSTED) << st.error_message();
  EXPECT_THAT(st.error_message(), HasSubstr("limits.max_stream_buffer_bytes"));
  EXPECT_LT(tokens.size(), 40u);
  const std::vector<int32_t> expected = FakeEngine::Expected(1, 40);
  EXPECT_THAT(tokens, ElementsAreArray(expected.begin(), expected.begin() + tokens.size()));
  EXPECT_EQ(h.server->context().stream_buffered_bytes.load(), 0);
  // The admission slot came back.
  EXPECT_TRUE(Stream(*h.stub, Ids({1}, 2)).status.ok());
}

inference::ModelInferRequest KServeText(const std::string& prompt, int max_tokens) {
  inference::ModelInferRequest r;
  r.set_model_name("fake");
  auto* t = r.add_inputs();
  t->set_name("text_input");
  t->set_datatype("BYTES");
  t->mutable_contents()->add_bytes_contents(prompt);
  auto* m = r.add_inputs();
  m->set_name("max_tokens");
  m->set_datatype("INT32");
  m->mutable_contents()->add_int_contents(max_tokens);
  auto* s = r.add_inputs();
  s->set_name("stream");
  s->set_datatype("BOOL");
  s->mutable_contents()->add_bool_contents(true);
  return r;
}

TEST(ServerTest, TritonStreamOfAStalledReaderIsBoundedThenAborted) {
  auto text = engine::TextProcessor::Load(ES_TEST_MODEL_DIR);
  ASSERT_TRUE(text.ok()) << text.status();
  // 40 responses x 32 KiB = 1.25 MiB against a 256 KiB bound.
  constexpr int64_t kBound = 256 << 10;
  constexpr size_t kPadding = 32 << 10;
  Harness h(absl::Milliseconds(5), 64, {}, false, kBound, text->get());
  h.engine->set_text_padding(kPadding);
  auto kserve = inference::GRPCInferenceService::NewStub(SmallWindowChannel(h));
  grpc::ClientContext ctx;
  auto stream = kserve->ModelStreamInfer(&ctx);
  ASSERT_TRUE(stream->Write(KServeText("hello", 40)));
  const int64_t peak = PeakBacklogUntilEngineIdle(h);
  EXPECT_GT(peak, kBound / 2);
  EXPECT_LE(peak, kBound + static_cast<int64_t>(kPadding) + 1024) << peak;
  EXPECT_EQ(h.engine->live(), 0);
  EXPECT_LT(h.engine->GetStats()[0].generation_tokens, 30);
  stream->WritesDone();
  inference::ModelStreamInferResponse r;
  int responses = 0;
  while (stream->Read(&r)) ++responses;
  const grpc::Status st = stream->Finish();
  EXPECT_EQ(st.error_code(), grpc::RESOURCE_EXHAUSTED) << st.error_message();
  EXPECT_THAT(st.error_message(), HasSubstr("limits.max_stream_buffer_bytes"));
  EXPECT_LT(responses, 40);
  EXPECT_EQ(h.server->context().stream_buffered_bytes.load(), 0);
}

}  // namespace
}  // namespace expertserve::server
