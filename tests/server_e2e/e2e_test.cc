// End to end through a real `expertserve` process on loopback TCP, over a
// tiny generated Qwen3 checkpoint (the server_e2e_models fixture): the C++
// client, expertserve-cli and a Python client; outputs equal the engine's
// run in-process; cancellation frees KV blocks (visible in the metrics);
// deadlines; overload; bad inputs; auth; TLS; graceful shutdown with a
// request in flight; health transitions.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/notification.h"
#include "engine/forward/transformer.h"
#include "engine/runtime/engine.h"
#include "engine/runtime/transformer_runner.h"
#include "engine/text/text_processor.h"
#include "expertserve/v1/inference.grpc.pb.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "kserve/grpc_service.grpc.pb.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/server_e2e/server_process.h"

namespace expertserve::testing {
namespace {

namespace fs = std::filesystem;
namespace pb = ::expertserve::v1;
namespace health = ::grpc::health::v1;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;

std::string ModelDir() { return BinaryDir() + "/test-models/server_e2e/qwen3"; }

std::string TempDir(const std::string& name) {
  fs::path p = fs::path(::testing::TempDir()) / absl::StrCat("es_e2e_", name, "_", getpid());
  fs::remove_all(p);
  fs::create_directories(p);
  return p.string();
}

std::string RunCommand(const std::string& cmd, int* exit_code = nullptr) {
  std::string out;
  FILE* pipe = popen(cmd.c_str(), "r");
  if (pipe == nullptr) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), pipe)) > 0) out.append(buf, n);
  const int st = pclose(pipe);
  if (exit_code != nullptr) *exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return out;
}

pb::GenerateRequest Greedy(std::vector<int32_t> ids, int max_tokens) {
  pb::GenerateRequest r;
  r.set_model("tiny");
  r.mutable_token_ids()->mutable_ids()->Add(ids.begin(), ids.end());
  r.mutable_sampling()->set_max_tokens(max_tokens);
  r.mutable_sampling()->set_temperature(0);
  r.mutable_sampling()->set_ignore_eos(true);
  return r;
}

struct StreamResult {
  grpc::Status status;
  std::vector<int32_t> tokens;
  std::string text;
  int messages = 0;
};

StreamResult Stream(pb::Inference::Stub& stub, const pb::GenerateRequest& req,
                    grpc::ClientContext* ctx = nullptr,
                    absl::Notification* first_token = nullptr) {
  grpc::ClientContext local;
  if (ctx == nullptr) ctx = &local;
  StreamResult r;
  auto reader = stub.GenerateStream(ctx, req);
  pb::GenerateStreamResponse msg;
  while (reader->Read(&msg)) {
    ++r.messages;
    for (const auto& d : msg.deltas()) {
      r.tokens.insert(r.tokens.end(), d.token_ids().begin(), d.token_ids().end());
      r.text += d.text();
    }
    if (first_token != nullptr && !r.tokens.empty() && !first_token->HasBeenNotified()) {
      first_token->Notify();
    }
  }
  r.status = reader->Finish();
  if (first_token != nullptr && !first_token->HasBeenNotified()) first_token->Notify();
  return r;
}

// The engine run directly, in this process, on the same checkpoint.
std::vector<int32_t> EngineGreedy(const std::vector<int32_t>& prompt, int max_tokens) {
  auto model = engine::Transformer::Load(ModelDir());
  EXPECT_TRUE(model.ok()) << model.status();
  engine::TransformerRunnerOptions ro;
  ro.kv_budget_bytes = 16 << 20;
  auto runner = engine::TransformerRunner::Create(*std::move(model), ro);
  EXPECT_TRUE(runner.ok()) << runner.status();
  engine::EngineOptions eo;
  eo.model_name = "tiny";
  engine::Engine eng(eo, *std::move(runner), nullptr);
  struct Sink : engine::OutputSinkInterface {
    void OnDelta(const engine::OutputDelta& d) override {
      ids.insert(ids.end(), d.token_ids.begin(), d.token_ids.end());
    }
    void OnFinish(const engine::FinalOutput& f) override { status = f.status; }
    std::vector<int32_t> ids;
    absl::Status status;
  };
  auto sink = std::make_shared<Sink>();
  engine::GenerateRequest req;
  req.request_id = "direct";
  req.model = "tiny";
  req.prompt_token_ids = prompt;
  req.sampling.temperature = 0;
  req.sampling.max_tokens = max_tokens;
  req.sampling.ignore_eos = true;
  EXPECT_TRUE(eng.Submit(req, sink).ok());
  eng.WaitIdle();
  EXPECT_TRUE(sink->status.ok()) << sink->status;
  return sink->ids;
}

// A metric sample's value from a Prometheus text exposition, or -1.
double MetricValue(const std::string& text, const std::string& series) {
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (absl::StartsWith(line, series + " ")) {
      double v;
      if (absl::SimpleAtod(line.substr(series.size() + 1), &v)) return v;
    }
  }
  return -1;
}

class E2eTest : public ::testing::Test {
 protected:
  void StartServer(std::vector<std::string> extra = {}, std::vector<std::string> env = {},
                   bool metrics = false) {
    std::vector<std::string> args = {"--model", "tiny=" + ModelDir(), "--port", "0",
                                     "--kv-cache-mib", "64", "--log-format", "none"};
    if (metrics) {
      args.push_back("--metrics-port");
      args.push_back("0");
      server_.ExpectMetrics();
    }
    args.insert(args.end(), extra.begin(), extra.end());
    ASSERT_TRUE(server_.Start(args, env)) << server_.output();
    channel_ = grpc::CreateChannel(server_.address(), grpc::InsecureChannelCredentials());
    stub_ = pb::Inference::NewStub(channel_);
    health_ = health::Health::NewStub(channel_);
  }
  health::HealthCheckResponse::ServingStatus Health(const std::string& service,
                                                    grpc::Status* st = nullptr) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
    health::HealthCheckRequest req;
    req.set_service(service);
    health::HealthCheckResponse resp;
    grpc::Status s = health_->Check(&ctx, req, &resp);
    if (st != nullptr) *st = s;
    return s.ok() ? resp.status() : health::HealthCheckResponse::UNKNOWN;
  }
  std::string Cli(const std::string& args, int* code = nullptr) {
    return RunCommand(absl::StrCat(BinaryDir(), "/bin/expertserve-cli --address ",
                                   server_.address(), " ", args, " 2>&1"),
                      code);
  }

  ServerProcess server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<pb::Inference::Stub> stub_;
  std::unique_ptr<health::Health::Stub> health_;
};

TEST_F(E2eTest, GreedyOutputEqualsTheEngineThroughEveryClient) {
  StartServer();
  const std::vector<int32_t> prompt = {11, 22, 33, 44, 55};
  const std::vector<int32_t> expected = EngineGreedy(prompt, 12);
  ASSERT_EQ(expected.size(), 12u);

  StreamResult s = Stream(*stub_, Greedy(prompt, 12));
  ASSERT_TRUE(s.status.ok()) << s.status.error_message();
  EXPECT_THAT(s.tokens, ElementsAreArray(expected));

  grpc::ClientContext ctx;
  pb::GenerateResponse unary;
  ASSERT_TRUE(stub_->Generate(&ctx, Greedy(prompt, 12), &unary).ok());
  EXPECT_THAT(unary.completions(0).token_ids(), ElementsAreArray(expected));
  EXPECT_EQ(unary.completions(0).text(), s.text);
  EXPECT_EQ(unary.completions(0).finish_reason(), pb::FINISH_REASON_LENGTH);

  // The streamed text is the model's decoding of the ids.
  auto text = engine::TextProcessor::Load(ModelDir());
  ASSERT_TRUE(text.ok());
  auto decoded = (*text)->Decode(expected, true);
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(s.text, *decoded);

  // expertserve-cli --json.
  int code = -1;
  const std::string out = Cli(
      "--json generate --model tiny --prompt-ids 11,22,33,44,55 --max-tokens 12 "
      "--temperature 0 --ignore-eos --logprobs 2",
      &code);
  ASSERT_EQ(code, 0) << out;
  nlohmann::json j = nlohmann::json::parse(out);
  EXPECT_EQ(j["token_ids"].get<std::vector<int32_t>>(), expected);
  EXPECT_EQ(j["text"].get<std::string>(), s.text);
  EXPECT_EQ(j["finish_reason"], "length");
  EXPECT_EQ(j["usage"]["completion_tokens"], 12);
  EXPECT_EQ(j["routing"]["model"], "tiny");
  ASSERT_EQ(j["logprobs"].size(), 12u);
  EXPECT_EQ(j["logprobs"][0]["top"].size(), 2u);
  EXPECT_EQ(j["logprobs"][0]["token_id"], expected[0]);
  EXPECT_EQ(j["logprobs"][0]["rank"], 1);  // greedy picks the top token

  // Text input: the prompt is the tokenizer's encoding of the text.
  auto ids = (*text)->EncodeText("hello world", true);
  ASSERT_TRUE(ids.ok());
  const std::string tok = Cli("--json tokenize --model tiny --prompt 'hello world'", &code);
  ASSERT_EQ(code, 0) << tok;
  EXPECT_EQ(nlohmann::json::parse(tok)["token_ids"].get<std::vector<int32_t>>(), *ids);

  // The Python client (generated stubs, generic channel calls).
  std::string csv;
  for (int32_t id : prompt) csv += (csv.empty() ? "" : ",") + std::to_string(id);
  const std::string py = RunCommand(absl::StrCat(
      "/usr/bin/python3 ", SourceDir(), "/tests/server_e2e/python_client.py --address ",
      server_.address(), " --proto-root ", SourceDir(), "/proto --work ", TempDir("py"),
      " --model tiny --prompt-ids ", csv, " --max-tokens 12"), &code);
  ASSERT_EQ(code, 0) << py;
  nlohmann::json pj = nlohmann::json::parse(py);
  EXPECT_EQ(pj["stream_ids"].get<std::vector<int32_t>>(), expected);
  EXPECT_EQ(pj["unary_ids"].get<std::vector<int32_t>>(), expected);
  EXPECT_EQ(pj["stream_text"].get<std::string>(), s.text);
  EXPECT_EQ(pj["finish"], "FINISH_REASON_LENGTH");
  EXPECT_EQ(pj["bad_code"], "INVALID_ARGUMENT");
  EXPECT_THAT(pj["bad_message"].get<std::string>(), HasSubstr("sampling.max_tokens"));
  EXPECT_EQ(server_.Stop(), 0) << server_.output();
}

TEST_F(E2eTest, CancellationFreesKvBlocksAndDeadlinesExpire) {
  StartServer({}, {}, /*metrics=*/true);
  grpc::ClientContext ctx;
  absl::Notification first;
  StreamResult r;
  std::thread t([&] { r = Stream(*stub_, Greedy({1, 2, 3}, 1900), &ctx, &first); });
  first.WaitForNotification();
  // The engine publishes its stats after each step, so the first token can
  // reach us before the step that produced it is reflected: poll (the
  // stream runs for 1900 tokens).
  std::string busy;
  double busy_usage = 0;
  for (int i = 0; i < 200 && busy_usage <= 0; ++i) {
    auto m = HttpGet(server_.metrics_port(), "/metrics");
    if (m) {
      busy = *m;
      busy_usage = MetricValue(busy, "expertserve:kv_cache_usage_perc{model_name=\"tiny\"}");
    }
    if (busy_usage <= 0) absl::SleepFor(absl::Milliseconds(5));
  }
  EXPECT_GT(busy_usage, 0) << busy;
  ctx.TryCancel();
  t.join();
  EXPECT_EQ(r.status.error_code(), grpc::CANCELLED);
  EXPECT_LT(r.tokens.size(), 1900u);
  // Freed within a step: usage back to 0 and nothing running.
  double usage = -1;
  for (int i = 0; i < 100 && usage != 0; ++i) {
    absl::SleepFor(absl::Milliseconds(10));
    auto m = HttpGet(server_.metrics_port(), "/metrics");
    if (m) usage = MetricValue(*m, "expertserve:kv_cache_usage_perc{model_name=\"tiny\"}");
  }
  EXPECT_EQ(usage, 0);
  const std::string idle = *HttpGet(server_.metrics_port(), "/metrics");
  EXPECT_EQ(MetricValue(idle, "expertserve:num_requests_running{model_name=\"tiny\"}"), 0);

  grpc::ClientContext dctx;
  dctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(30));
  EXPECT_EQ(Stream(*stub_, Greedy({1, 2, 3}, 1900), &dctx).status.error_code(),
            grpc::DEADLINE_EXCEEDED);
  EXPECT_EQ(server_.Stop(), 0);
}

TEST_F(E2eTest, OverloadRefusesWhileAdmittedRequestsComplete) {
  // Admission capacity = max_num_seqs + max_waiting_requests = 2.
  StartServer({"--max-num-seqs", "1", "--max-waiting-requests", "1"});
  std::vector<StreamResult> admitted(2);
  absl::Notification first;
  std::thread a([&] { admitted[0] = Stream(*stub_, Greedy({1, 2}, 1900), nullptr, &first); });
  first.WaitForNotification();
  std::thread b([&] { admitted[1] = Stream(*stub_, Greedy({3, 4}, 50)); });
  absl::SleepFor(absl::Milliseconds(30));  // b is queued behind a
  grpc::ClientContext ctx;
  pb::GenerateResponse resp;
  grpc::Status st = stub_->Generate(&ctx, Greedy({5}, 4), &resp);
  EXPECT_EQ(st.error_code(), grpc::RESOURCE_EXHAUSTED) << st.error_message();
  EXPECT_THAT(st.error_message(), HasSubstr("retry after"));
  a.join();
  b.join();
  EXPECT_TRUE(admitted[0].status.ok()) << admitted[0].status.error_message();
  EXPECT_EQ(admitted[0].tokens.size(), 1900u);
  EXPECT_TRUE(admitted[1].status.ok());
  EXPECT_EQ(admitted[1].tokens.size(), 50u);
  EXPECT_EQ(server_.Stop(), 0);
}

TEST_F(E2eTest, BadInputsAndHealth) {
  StartServer({"--max-prompt-tokens", "16", "--max-tokens", "64"});
  EXPECT_EQ(Health(""), health::HealthCheckResponse::SERVING);
  EXPECT_EQ(Health("tiny"), health::HealthCheckResponse::SERVING);
  grpc::Status hs;
  Health("no-such-model", &hs);
  EXPECT_EQ(hs.error_code(), grpc::NOT_FOUND);
  int code = -1;
  EXPECT_THAT(Cli("health", &code), HasSubstr("SERVING"));
  EXPECT_EQ(code, 0);

  auto check = [&](pb::GenerateRequest req, grpc::StatusCode want, const std::string& text) {
    StreamResult r = Stream(*stub_, req);
    EXPECT_EQ(r.status.error_code(), want) << r.status.error_message();
    EXPECT_THAT(r.status.error_message(), HasSubstr(text));
  };
  pb::GenerateRequest r = Greedy({1}, 4);
  r.set_model("nope");
  check(r, grpc::NOT_FOUND, "unknown model 'nope'");
  check(Greedy({1}, 65), grpc::INVALID_ARGUMENT, "sampling.max_tokens");
  check(Greedy(std::vector<int32_t>(17, 5), 4), grpc::OUT_OF_RANGE, "max_prompt_tokens");
  check(Greedy({1, 1 << 20}, 4), grpc::INVALID_ARGUMENT, "token_ids.ids[1]");
  r = Greedy({1}, 4);
  r.set_text(std::string(2000, 'a'));
  check(r, grpc::OUT_OF_RANGE, "max_prompt_tokens");
  r = Greedy({1}, 4);
  r.mutable_chat()->add_messages()->set_content("no role");
  check(r, grpc::INVALID_ARGUMENT, "chat.messages[0].role");
  // The CLI reports the code and exits 1.
  EXPECT_THAT(Cli("generate --model nope --prompt hi", &code), HasSubstr("NOT_FOUND"));
  EXPECT_EQ(code, 1);
  // A good request after all of them.
  EXPECT_TRUE(Stream(*stub_, Greedy({1}, 4)).status.ok());
  EXPECT_EQ(server_.Stop(), 0);
}

TEST_F(E2eTest, BearerTokensFromConfig) {
  const std::string dir = TempDir("auth");
  std::ofstream(dir + "/ops.token") << "ops-secret-0123456789abcdef\n";
  std::ofstream(dir + "/server.yaml") << absl::StrCat(
      "server:\n  auth:\n    tokens:\n"
      "      - {name: ops, token_file: ops.token, permissions: [inference, admin]}\n"
      "      - {name: app, token_env: ES_E2E_APP_TOKEN, permissions: [inference]}\n"
      "models:\n  - {name: tiny, path: ", ModelDir(), "}\n");
  StartServer({"--config", dir + "/server.yaml", "--port", "0"},
              {"ES_E2E_APP_TOKEN=app-secret-0123456789abcdef"});
  int code = -1;
  EXPECT_THAT(Cli("list", &code), HasSubstr("UNAUTHENTICATED"));
  EXPECT_EQ(code, 1);
  EXPECT_THAT(Cli("--token wrong-0123456789abcdef list", &code), HasSubstr("UNAUTHENTICATED"));
  EXPECT_THAT(Cli("--token app-secret-0123456789abcdef list", &code), HasSubstr("tiny"));
  EXPECT_EQ(code, 0);
  EXPECT_THAT(Cli("--token-file " + dir + "/ops.token generate --model tiny --prompt-ids 1,2 "
                  "--max-tokens 3",
                  &code),
              ::testing::Not(HasSubstr("error")));
  EXPECT_EQ(code, 0);
  // Health is exempt (Kubernetes probes carry no credentials).
  EXPECT_EQ(Health(""), health::HealthCheckResponse::SERVING);
  EXPECT_EQ(server_.Stop(), 0);
  // The secrets never reach the logs.
  EXPECT_THAT(server_.output(), ::testing::Not(HasSubstr("secret-0123")));
}

TEST_F(E2eTest, TlsAndMutualTls) {
  const std::string dir = TempDir("tls");
  const std::string openssl = absl::StrCat("cd ", dir, " && openssl ");
  int code = -1;
  // A CA, a server cert for localhost and a client cert, all signed by it.
  RunCommand(openssl + "req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=es-test-ca "
                       "-keyout ca.key -out ca.pem 2>&1", &code);
  ASSERT_EQ(code, 0);
  for (const std::string& who : {std::string("server"), std::string("client")}) {
    RunCommand(absl::StrCat(openssl, "req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout ",
                            who, ".key -out ", who, ".csr 2>&1"), &code);
    ASSERT_EQ(code, 0);
    std::ofstream(dir + "/san.ext") << "subjectAltName=DNS:localhost,IP:127.0.0.1\n";
    RunCommand(absl::StrCat(openssl, "x509 -req -in ", who, ".csr -CA ca.pem -CAkey ca.key ",
                            "-CAcreateserial -days 1 -extfile san.ext -out ", who, ".pem 2>&1"),
               &code);
    ASSERT_EQ(code, 0);
  }
  std::ofstream(dir + "/server.yaml") << absl::StrCat(
      "server:\n  tls:\n    cert_file: server.pem\n    key_file: server.key\n"
      "    client_ca_file: ca.pem\n    require_client_cert: true\n"
      "models:\n  - {name: tiny, path: ", ModelDir(), "}\n");
  std::vector<std::string> args = {"--config", dir + "/server.yaml", "--port", "0"};
  ASSERT_TRUE(server_.Start(args)) << server_.output();
  const std::string base = absl::StrCat(BinaryDir(), "/bin/expertserve-cli --address ",
                                        server_.address(), " --tls-ca ", dir, "/ca.pem ");
  // Mutual TLS: with the client certificate it works ...
  std::string out = RunCommand(absl::StrCat(base, "--tls-cert ", dir, "/client.pem --tls-key ",
                                            dir, "/client.key list 2>&1"), &code);
  EXPECT_EQ(code, 0) << out;
  EXPECT_THAT(out, HasSubstr("tiny"));
  // ... without it the handshake fails; plaintext fails too.
  out = RunCommand(base + "--timeout 5 list 2>&1", &code);
  EXPECT_EQ(code, 1) << out;
  out = RunCommand(absl::StrCat(BinaryDir(), "/bin/expertserve-cli --timeout 5 --address ",
                                server_.address(), " list 2>&1"), &code);
  EXPECT_EQ(code, 1) << out;
  EXPECT_EQ(server_.Stop(), 0);
}

TEST_F(E2eTest, GracefulShutdownFinishesInFlightRequests) {
  StartServer({"--shutdown-grace-seconds", "20"});
  absl::Notification first;
  StreamResult inflight;
  std::thread t([&] { inflight = Stream(*stub_, Greedy({7, 8}, 1900), nullptr, &first); });
  first.WaitForNotification();
  server_.Signal(SIGTERM);
  // Draining: health says NOT_SERVING and new requests are refused, while
  // the admitted request runs to completion.
  bool not_serving = false;
  for (int i = 0; i < 200 && !not_serving; ++i) {
    not_serving = Health("") == health::HealthCheckResponse::NOT_SERVING;
    if (!not_serving) absl::SleepFor(absl::Milliseconds(2));
  }
  EXPECT_TRUE(not_serving);
  grpc::ClientContext ctx;
  pb::GenerateResponse resp;
  grpc::Status st = stub_->Generate(&ctx, Greedy({1}, 2), &resp);
  EXPECT_EQ(st.error_code(), grpc::UNAVAILABLE) << st.error_message();
  t.join();
  EXPECT_TRUE(inflight.status.ok()) << inflight.status.error_message();
  EXPECT_EQ(inflight.tokens.size(), 1900u);
  EXPECT_EQ(server_.Wait(absl::Seconds(20)), 0) << server_.output();
  EXPECT_THAT(server_.output(), HasSubstr("0 requests cancelled"));
}

TEST_F(E2eTest, ShutdownCancelsRequestsPastTheGracePeriod) {
  StartServer({"--shutdown-grace-seconds", "0.05"});
  absl::Notification first;
  StreamResult inflight;
  pb::GenerateRequest long_req = Greedy({7, 8}, 1900);
  std::thread t([&] { inflight = Stream(*stub_, long_req, nullptr, &first); });
  first.WaitForNotification();
  EXPECT_EQ(server_.Stop(), 0) << server_.output();
  t.join();
  EXPECT_FALSE(inflight.status.ok());
  EXPECT_THAT(server_.output(), HasSubstr("1 requests cancelled"));
}

// One BYTES element in the raw form.
std::string RawBytes(const std::string& s) {
  const uint32_t n = static_cast<uint32_t>(s.size());
  std::string out(reinterpret_cast<const char*>(&n), 4);
  return out + s;
}

inference::ModelInferRequest KServeRequest(const std::string& prompt, int max_tokens,
                                           bool stream, bool ignore_eos = false) {
  inference::ModelInferRequest r;
  r.set_model_name("tiny");
  r.set_id("k1");
  auto* text = r.add_inputs();
  text->set_name("text_input");
  text->set_datatype("BYTES");
  text->add_shape(1);
  text->add_shape(1);
  r.add_raw_input_contents(RawBytes(prompt));
  auto add = [&](const char* name, const char* dt, std::string raw) {
    auto* t = r.add_inputs();
    t->set_name(name);
    t->set_datatype(dt);
    t->add_shape(1);
    t->add_shape(1);
    r.add_raw_input_contents(std::move(raw));
  };
  const int32_t mt = max_tokens;
  add("max_tokens", "INT32", std::string(reinterpret_cast<const char*>(&mt), 4));
  const float temp = 0;
  add("temperature", "FP32", std::string(reinterpret_cast<const char*>(&temp), 4));
  add("stream", "BOOL", std::string(1, stream ? '\1' : '\0'));
  if (ignore_eos) add("ignore_eos", "BOOL", std::string(1, '\1'));
  return r;
}

std::string TextOutput(const inference::ModelInferResponse& r) {
  if (r.outputs_size() != 1 || r.outputs(0).name() != "text_output" ||
      r.raw_output_contents_size() != 1 || r.raw_output_contents(0).size() < 4) {
    return "<bad response>";
  }
  return r.raw_output_contents(0).substr(4);
}

TEST_F(E2eTest, KServeV2AndTritonStreamingMatchTheNativeApi) {
  StartServer();
  auto kserve = inference::GRPCInferenceService::NewStub(channel_);
  {
    grpc::ClientContext ctx;
    inference::ServerLiveResponse live;
    ASSERT_TRUE(kserve->ServerLive(&ctx, inference::ServerLiveRequest(), &live).ok());
    EXPECT_TRUE(live.live());
  }
  {
    grpc::ClientContext ctx;
    inference::ModelReadyRequest req;
    req.set_name("tiny");
    inference::ModelReadyResponse ready;
    ASSERT_TRUE(kserve->ModelReady(&ctx, req, &ready).ok());
    EXPECT_TRUE(ready.ready());
  }
  {
    grpc::ClientContext ctx;
    inference::ModelMetadataRequest req;
    req.set_name("tiny");
    inference::ModelMetadataResponse md;
    ASSERT_TRUE(kserve->ModelMetadata(&ctx, req, &md).ok());
    EXPECT_EQ(md.outputs(0).name(), "text_output");
  }
  // The native API's greedy text for the same prompt.
  pb::GenerateRequest native;
  native.set_model("tiny");
  native.set_text("the quick brown fox");
  native.mutable_sampling()->set_max_tokens(10);
  native.mutable_sampling()->set_temperature(0);
  StreamResult expected = Stream(*stub_, native);
  ASSERT_TRUE(expected.status.ok());

  grpc::ClientContext ictx;
  inference::ModelInferResponse resp;
  grpc::Status st =
      kserve->ModelInfer(&ictx, KServeRequest("the quick brown fox", 10, false), &resp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(resp.id(), "k1");
  EXPECT_EQ(TextOutput(resp), expected.text);

  // ModelStreamInfer: two requests on one stream (one streamed, one bad).
  grpc::ClientContext sctx;
  auto stream = kserve->ModelStreamInfer(&sctx);
  ASSERT_TRUE(stream->Write(KServeRequest("the quick brown fox", 10, true)));
  ASSERT_TRUE(stream->Write(KServeRequest("x", 0, true)));
  stream->WritesDone();
  inference::ModelStreamInferResponse r;
  std::string streamed;
  int finals = 0;
  std::string error;
  while (stream->Read(&r)) {
    if (!r.error_message().empty()) {
      error = r.error_message();
      continue;
    }
    streamed += TextOutput(r.infer_response());
    auto p = r.infer_response().parameters().find("triton_final_response");
    if (p != r.infer_response().parameters().end() && p->second.bool_param()) ++finals;
  }
  ASSERT_TRUE(stream->Finish().ok());
  EXPECT_EQ(streamed, expected.text);
  EXPECT_EQ(finals, 1);
  EXPECT_THAT(error, HasSubstr("sampling.max_tokens"));
  EXPECT_EQ(server_.Stop(), 0);
}

TEST_F(E2eTest, KServeModelInferReleasesItsAdmissionSlotOnEveryPath) {
  // Admission capacity = max_num_seqs + max_waiting_requests = 2: a single
  // leaked slot shows below as a refused request.
  StartServer({"--max-num-seqs", "1", "--max-waiting-requests", "1"}, {}, /*metrics=*/true);
  auto kserve = inference::GRPCInferenceService::NewStub(channel_);
  auto infer = [&](const inference::ModelInferRequest& req, grpc::ClientContext* ctx) {
    inference::ModelInferResponse resp;
    return kserve->ModelInfer(ctx, req, &resp);
  };
  for (int i = 0; i < 3; ++i) {
    {  // success
      grpc::ClientContext ctx;
      EXPECT_TRUE(infer(KServeRequest("hello", 4, false), &ctx).ok());
    }
    {  // refused by validation (before admission)
      grpc::ClientContext ctx;
      EXPECT_EQ(infer(KServeRequest("hello", 0, false), &ctx).error_code(),
                grpc::INVALID_ARGUMENT);
    }
    {  // deadline in the engine
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(40));
      EXPECT_EQ(infer(KServeRequest("hello", 1900, false, true), &ctx).error_code(),
                grpc::DEADLINE_EXCEEDED);
    }
    {  // client cancel in the engine
      grpc::ClientContext ctx;
      std::thread canceller([&] {
        absl::SleepFor(absl::Milliseconds(40));
        ctx.TryCancel();
      });
      EXPECT_EQ(infer(KServeRequest("hello", 1900, false, true), &ctx).error_code(),
                grpc::CANCELLED);
      canceller.join();
    }
  }
  // Let the aborted requests leave the engine (freed within a step).
  for (int i = 0; i < 200; ++i) {
    auto m = HttpGet(server_.metrics_port(), "/metrics");
    if (m && MetricValue(*m, "expertserve:num_requests_running{model_name=\"tiny\"}") == 0 &&
        MetricValue(*m, "expertserve:num_requests_waiting{model_name=\"tiny\"}") == 0) {
      break;
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
  absl::SleepFor(absl::Milliseconds(100));  // the calls' OnDone
  // Both slots are free again: two requests are admitted at once, a third
  // is refused.
  grpc::ClientContext actx;
  absl::Notification first;
  StreamResult a;
  std::thread ta([&] { a = Stream(*stub_, Greedy({1, 2}, 1900), &actx, &first); });
  first.WaitForNotification();
  grpc::Status b;
  std::thread tb([&] {
    grpc::ClientContext ctx;
    b = infer(KServeRequest("hello", 8, false, true), &ctx);
  });
  absl::SleepFor(absl::Milliseconds(50));  // b waits behind a
  grpc::ClientContext cctx;
  EXPECT_EQ(infer(KServeRequest("hello", 4, false), &cctx).error_code(),
            grpc::RESOURCE_EXHAUSTED);
  actx.TryCancel();
  ta.join();
  tb.join();
  EXPECT_EQ(a.status.error_code(), grpc::CANCELLED);
  EXPECT_TRUE(b.ok()) << b.error_message();
  EXPECT_EQ(server_.Stop(), 0);
}

TEST_F(E2eTest, TimingsSplitQueueTimeFirstTokenAndTotal) {
  StartServer();
  pb::GenerateRequest req = Greedy({11, 22, 33, 44, 55, 66, 77, 88}, 6);
  for (bool streaming : {true, false}) {
    pb::Timings t;
    if (streaming) {
      grpc::ClientContext ctx;
      auto reader = stub_->GenerateStream(&ctx, req);
      pb::GenerateStreamResponse msg;
      while (reader->Read(&msg)) {
        if (msg.has_final()) t = msg.final().timings();
      }
      ASSERT_TRUE(reader->Finish().ok());
    } else {
      grpc::ClientContext ctx;
      pb::GenerateResponse resp;
      ASSERT_TRUE(stub_->Generate(&ctx, req, &resp).ok());
      t = resp.timings();
    }
    // queue: arrival -> first scheduled; TTFT adds the prefill's forward
    // pass (so it is strictly larger); total adds 5 decode steps more.
    EXPECT_GE(t.queue_seconds(), 0) << streaming;
    EXPECT_GT(t.time_to_first_token_seconds(), t.queue_seconds()) << streaming;
    EXPECT_GT(t.total_seconds(), t.time_to_first_token_seconds()) << streaming;
    EXPECT_LT(t.total_seconds(), 60) << streaming;
  }
  EXPECT_EQ(server_.Stop(), 0);
}

TEST_F(E2eTest, EsftAdaptersAndAdminService) {
  const std::string demo = BinaryDir() + "/test-models/server_e2e/demo";
  const std::string dir = TempDir("admin");
  std::ofstream(dir + "/admin.token") << "admin-secret-0123456789abcdef\n";
  std::ofstream(dir + "/server.yaml") << absl::StrCat(
      "server:\n  auth:\n    tokens:\n"
      "      - {name: ops, token_file: admin.token, permissions: [inference, admin]}\n"
      "      - {name: app, token_env: ES_E2E_APP_TOKEN, permissions: [inference]}\n"
      "models:\n  - {name: moe, path: ", demo, "/models/moe}\n"
      "adapters:\n  - {name: math, path: ", demo, "/adapters/math, base_model: moe}\n"
      "adapter_roots: [", demo, "/adapters]\n");
  StartServer({"--config", dir + "/server.yaml", "--port", "0"},
              {"ES_E2E_APP_TOKEN=app-secret-0123456789abcdef"}, /*metrics=*/true);
  // Expert memory of the MoE model, from the metrics endpoint.
  struct Memory {
    double resident = -1, moved = -1, slots_used = -1, slots_capacity = -1;
  };
  auto memory = [&] {
    Memory m;
    auto text = HttpGet(server_.metrics_port(), "/metrics");
    if (!text) return m;
    m.resident = MetricValue(*text, "expertserve:expert_resident_bytes{model_name=\"moe\",tier=\"host\"}");
    m.moved = MetricValue(*text, "expertserve:expert_bytes_moved_total{model_name=\"moe\","
                                 "from_tier=\"storage\",to_tier=\"host\"}");
    m.slots_used = MetricValue(*text, "expertserve:adapter_slots_used{model_name=\"moe\"}");
    m.slots_capacity =
        MetricValue(*text, "expertserve:adapter_slots_capacity{model_name=\"moe\"}");
    return m;
  };
  const Memory at_start = memory();
  // The base experts and the config's adapter (math) were copied in.
  EXPECT_GT(at_start.resident, 0);
  EXPECT_GT(at_start.moved, 0);
  EXPECT_GT(at_start.slots_used, 0);
  EXPECT_GT(at_start.slots_capacity, at_start.slots_used);
  const std::string app = "--token app-secret-0123456789abcdef ";
  const std::string ops = "--token admin-secret-0123456789abcdef ";
  const std::string gen =
      "--json generate --model moe --prompt-ids 5,6,7,8 --max-tokens 12 --temperature 0 "
      "--ignore-eos --logprobs 3";
  int code = -1;
  auto ids = [&](const std::string& out) {
    nlohmann::json j = nlohmann::json::parse(out, nullptr, false);
    // Ids and logprobs: the adapter's experts change the distribution even
    // where the tiny model's greedy choice stays the same.
    return j.is_object() && j.contains("token_ids")
               ? j["token_ids"].dump() + j["logprobs"].dump()
               : out;
  };
  const std::string base = ids(Cli(app + gen, &code));
  ASSERT_EQ(code, 0) << base;
  const std::string math = ids(Cli(app + gen + " --adapter math", &code));
  ASSERT_EQ(code, 0) << math;
  EXPECT_NE(base, math);
  // The steps' expert reads reach the metrics (published after each step).
  double slots_run = -1, bytes_run = -1;
  for (int i = 0; i < 100 && bytes_run <= 0; ++i) {
    if (i > 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    auto text = HttpGet(server_.metrics_port(), "/metrics");
    if (!text) continue;
    slots_run = MetricValue(*text, "expertserve:routed_expert_slots_total{model_name=\"moe\"}");
    bytes_run =
        MetricValue(*text, "expertserve:expert_weight_bytes_read_total{model_name=\"moe\"}");
  }
  EXPECT_GT(slots_run, 0);
  EXPECT_GT(bytes_run, 1000 * slots_run);  // an expert is kilobytes of weights
  // Admin RPCs need the admin permission.
  EXPECT_THAT(Cli(app + "load-adapter --name law --path " + demo + "/adapters/law "
                  "--base-model moe", &code), HasSubstr("PERMISSION_DENIED"));
  // Outside adapter_roots: refused (no traversal).
  EXPECT_THAT(Cli(ops + "load-adapter --name evil --path " + demo + "/adapters/../models/moe "
                  "--base-model moe", &code), HasSubstr("PERMISSION_DENIED"));
  const std::string loaded = Cli(ops + "--json load-adapter --name law --path " + demo +
                                 "/adapters/law --base-model moe", &code);
  EXPECT_THAT(loaded, HasSubstr("\"name\":\"law\""));
  EXPECT_EQ(code, 0);
  // Loading moved exactly the adapter's expert bytes from storage to host,
  // and mapped more host memory and slots.
  const Memory after_load = memory();
  const nlohmann::json lj = nlohmann::json::parse(loaded, nullptr, false);
  ASSERT_TRUE(lj.is_object()) << loaded;
  EXPECT_GT(lj["bytes_copied"].get<double>(), 0);
  EXPECT_EQ(after_load.moved - at_start.moved, lj["bytes_copied"].get<double>());
  EXPECT_GT(after_load.resident, at_start.resident);
  EXPECT_GT(after_load.slots_used, at_start.slots_used);
  EXPECT_EQ(after_load.slots_capacity, at_start.slots_capacity);
  EXPECT_THAT(Cli(app + "list", &code), HasSubstr("adapters=[law,math]"));
  EXPECT_EQ(ids(Cli(app + gen + " --adapter math", &code)), math);
  EXPECT_THAT(Cli(ops + "unload-adapter --name math", &code), HasSubstr("OK"));
  EXPECT_EQ(code, 0);
  // Unloading unmaps math's slots; nothing moves.
  const Memory after_unload = memory();
  EXPECT_LT(after_unload.resident, after_load.resident);
  EXPECT_LT(after_unload.slots_used, after_load.slots_used);
  EXPECT_EQ(after_unload.moved, after_load.moved);
  EXPECT_THAT(Cli(app + gen + " --adapter math", &code), HasSubstr("NOT_FOUND"));
  EXPECT_EQ(code, 1);
  EXPECT_EQ(ids(Cli(app + gen, &code)), base);
  EXPECT_EQ(server_.Stop(), 0);
}

TEST_F(E2eTest, AutoRequestsGoThroughTheSemanticRouter) {
  // The demo config's models, adapters and router, over the generated demo set.
  const std::string demo = BinaryDir() + "/test-models/server_e2e/demo";
  std::ifstream in(SourceDir() + "/configs/demo.yaml");
  std::string yaml((std::istreambuf_iterator<char>(in)), {});
  const std::string from = "../build/demo";
  for (size_t pos; (pos = yaml.find(from)) != std::string::npos;) yaml.replace(pos, from.size(), demo);
  const std::string dir = TempDir("router");
  std::ofstream(dir + "/demo.yaml") << yaml;
  StartServer({"--config", dir + "/demo.yaml", "--port", "0"});
  auto route = [&](const std::string& prompt) {
    int code = -1;
    const std::string out = Cli("--json route --prompt '" + prompt + "'", &code);
    EXPECT_EQ(code, 0) << out;
    return nlohmann::json::parse(out, nullptr, false)["routing"];
  };
  nlohmann::json math = route("solve for x: 5x - 3 = 12");
  EXPECT_EQ(math["model"], "moe");
  EXPECT_EQ(math["adapter"], "math");
  EXPECT_EQ(math["category"], "math");
  EXPECT_EQ(math["explicit"], false);
  nlohmann::json code = route("write a python function that sorts a list");
  EXPECT_EQ(code["model"], "code");
  // Generation with model "auto" runs where the router says.
  int rc = -1;
  const std::string out =
      Cli("--json generate --prompt 'can my landlord keep my security deposit?' --max-tokens 3",
          &rc);
  ASSERT_EQ(rc, 0) << out;
  nlohmann::json j = nlohmann::json::parse(out);
  EXPECT_EQ(j["routing"]["adapter"], "law");
  EXPECT_EQ(j["usage"]["completion_tokens"], 3);
  EXPECT_EQ(server_.Stop(), 0);
}

}  // namespace
}  // namespace expertserve::testing
