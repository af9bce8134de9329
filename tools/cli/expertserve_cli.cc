// expertserve-cli: talks to an expertserve server over gRPC.
//
//   expertserve-cli [--address HOST:PORT] [--token T | --token-file F]
//                   [--tls-ca F [--tls-cert F --tls-key F] [--tls-server-name N]]
//                   [--timeout SECONDS] [--json] COMMAND [options]
//   generate   --model M [--adapter A] (--prompt TEXT | --prompt-ids 1,2,3 |
//              --messages FILE.json) [sampling options]   streams text
//   chat       like generate; --prompt is sent as one user message (with
//              --system TEXT first), or --messages FILE.json
//   list | route | tokenize | detokenize | load-adapter | unload-adapter | health
//
// --json prints exactly one JSON object on stdout (scripts and tests rely on
// it). Exit codes: 0 OK, 1 an RPC failed (the gRPC code and message go to
// stderr), 2 bad usage.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "expertserve/v1/admin.grpc.pb.h"
#include "expertserve/v1/inference.grpc.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "nlohmann/json.hpp"

namespace {

namespace pb = ::expertserve::v1;
using nlohmann::json;

constexpr char kUsage[] = R"(Usage: expertserve-cli [global options] COMMAND [options]

Global options:
  --address HOST:PORT     server address (default 127.0.0.1:50051)
  --token TOKEN           bearer token (or --token-file FILE, or $EXPERTSERVE_TOKEN)
  --tls-ca FILE           use TLS, trusting this CA bundle
  --tls-cert FILE --tls-key FILE   client certificate for mutual TLS
  --tls-server-name NAME  expected server name (TLS)
  --timeout SECONDS       call deadline (default none)
  --json                  print one JSON object

Commands:
  generate    --model M [--adapter A] (--prompt TEXT | --prompt-ids 1,2,3 | --messages FILE.json)
              [--max-tokens N] [--temperature T] [--top-p P] [--top-k K] [--min-p P]
              [--seed S] [--stop STR]... [--stop-id ID]... [--logprobs K] [--n N]
              [--repetition-penalty X] [--presence-penalty X] [--frequency-penalty X]
              [--ignore-eos] [--request-id ID] [--priority N]
  chat        same options; --prompt is a user message (--system TEXT adds a system one)
  list        the served models and adapters
  route       [--model M] [--adapter A] (--prompt TEXT | --messages FILE.json)
  tokenize    --model M (--prompt TEXT | --messages FILE.json) [--no-special-tokens]
  detokenize  --model M --ids 1,2,3
  load-adapter   --name N --path DIR --base-model M
  unload-adapter --name N
  health      [--service NAME]   exit 0 when SERVING
)";

struct Args {
  std::map<std::string, std::vector<std::string>> values;
  std::map<std::string, bool> flags;
  std::string command;

  std::optional<std::string> Get(const std::string& k) const {
    auto it = values.find(k);
    if (it == values.end() || it->second.empty()) return std::nullopt;
    return it->second.back();
  }
  std::vector<std::string> All(const std::string& k) const {
    auto it = values.find(k);
    return it == values.end() ? std::vector<std::string>{} : it->second;
  }
  bool Flag(const std::string& k) const { return flags.count(k) > 0; }
};

const char* kFlagNames[] = {"--json", "--ignore-eos", "--no-special-tokens",
                            "--include-stop-str", "--keep-special-tokens"};

[[noreturn]] void UsageError(const std::string& msg) {
  std::fprintf(stderr, "expertserve-cli: %s\n\n%s", msg.c_str(), kUsage);
  std::exit(2);
}

Args Parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string s = argv[i];
    if (s == "--help" || s == "-h") {
      std::printf("%s", kUsage);
      std::exit(0);
    }
    if (s.rfind("--", 0) != 0) {
      if (!a.command.empty()) UsageError(absl::StrCat("unexpected argument \"", s, "\""));
      a.command = s;
      continue;
    }
    bool is_flag = false;
    for (const char* f : kFlagNames) is_flag |= s == f;
    if (is_flag) {
      a.flags[s] = true;
      continue;
    }
    std::string value;
    const size_t eq = s.find('=');
    if (eq != std::string::npos) {
      value = s.substr(eq + 1);
      s = s.substr(0, eq);
    } else {
      if (i + 1 >= argc) UsageError(absl::StrCat(s, " needs a value"));
      value = argv[++i];
    }
    a.values[s].push_back(value);
  }
  if (a.command.empty()) UsageError("no command given");
  return a;
}

template <typename T>
T Number(const Args& a, const std::string& k, T fallback) {
  std::optional<std::string> v = a.Get(k);
  if (!v) return fallback;
  if constexpr (std::is_floating_point_v<T>) {
    double d;
    if (!absl::SimpleAtod(*v, &d)) UsageError(absl::StrCat(k, ": not a number: ", *v));
    return static_cast<T>(d);
  } else {
    int64_t x;
    if (!absl::SimpleAtoi(*v, &x)) UsageError(absl::StrCat(k, ": not an integer: ", *v));
    return static_cast<T>(x);
  }
}

std::vector<int32_t> Ids(const std::string& k, const std::string& csv) {
  std::vector<int32_t> out;
  for (absl::string_view p : absl::StrSplit(csv, ',', absl::SkipWhitespace())) {
    int32_t x;
    if (!absl::SimpleAtoi(p, &x)) UsageError(absl::StrCat(k, ": not an id list: ", csv));
    out.push_back(x);
  }
  return out;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) UsageError(absl::StrCat("cannot read ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A JSON array of {"role", "content"} (or {"messages": [...]}).
pb::ChatInput Messages(const std::string& path) {
  json j = json::parse(ReadFile(path), nullptr, false);
  if (j.is_object() && j.contains("messages")) j = j["messages"];
  if (!j.is_array()) UsageError(path + ": expected a JSON array of {role, content}");
  pb::ChatInput chat;
  for (const json& m : j) {
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string()) {
      UsageError(path + ": every message needs a string \"role\"");
    }
    pb::ChatMessage* cm = chat.add_messages();
    cm->set_role(m["role"].get<std::string>());
    if (m.contains("content") && m["content"].is_string()) {
      cm->set_content(m["content"].get<std::string>());
    }
  }
  return chat;
}

std::shared_ptr<grpc::Channel> Channel(const Args& a) {
  const std::string address = a.Get("--address").value_or("127.0.0.1:50051");
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  if (auto ca = a.Get("--tls-ca")) {
    grpc::SslCredentialsOptions o;
    o.pem_root_certs = ReadFile(*ca);
    if (auto cert = a.Get("--tls-cert")) o.pem_cert_chain = ReadFile(*cert);
    if (auto key = a.Get("--tls-key")) o.pem_private_key = ReadFile(*key);
    if (auto name = a.Get("--tls-server-name")) {
      args.SetSslTargetNameOverride(*name);
    }
    return grpc::CreateCustomChannel(address, grpc::SslCredentials(o), args);
  }
  return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
}

void Prepare(const Args& a, grpc::ClientContext* ctx) {
  std::optional<std::string> token = a.Get("--token");
  if (!token) {
    if (auto f = a.Get("--token-file")) {
      std::string t = ReadFile(*f);
      while (!t.empty() && (t.back() == '\n' || t.back() == '\r' || t.back() == ' ')) t.pop_back();
      token = t;
    } else if (const char* e = std::getenv("EXPERTSERVE_TOKEN")) {
      token = e;
    }
  }
  if (token) ctx->AddMetadata("authorization", absl::StrCat("Bearer ", *token));
  if (auto t = a.Get("--timeout")) {
    double s;
    if (!absl::SimpleAtod(*t, &s) || s <= 0) UsageError("--timeout: expected seconds > 0");
    ctx->set_deadline(std::chrono::system_clock::now() +
                      std::chrono::microseconds(static_cast<int64_t>(s * 1e6)));
  }
}

const char* CodeName(grpc::StatusCode c) {
  static const char* kNames[] = {"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT",
                                 "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
                                 "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
                                 "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
                                 "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
                                 "UNAUTHENTICATED"};
  const int i = static_cast<int>(c);
  return i >= 0 && i <= 16 ? kNames[i] : "UNKNOWN";
}

int Fail(const Args& a, const grpc::Status& st) {
  std::fprintf(stderr, "error: %s: %s\n", CodeName(st.error_code()),
               st.error_message().c_str());
  if (a.Flag("--json")) {
    std::printf("%s\n", json({{"error", {{"code", CodeName(st.error_code())},
                                         {"message", st.error_message()}}}})
                            .dump()
                            .c_str());
  }
  return 1;
}

const char* FinishName(pb::FinishReason r) {
  switch (r) {
    case pb::FINISH_REASON_STOP:
      return "stop";
    case pb::FINISH_REASON_LENGTH:
      return "length";
    case pb::FINISH_REASON_ABORT:
      return "abort";
    case pb::FINISH_REASON_ERROR:
      return "error";
    default:
      return "unspecified";
  }
}

json Logprobs(const google::protobuf::RepeatedPtrField<pb::PositionLogprobs>& lps) {
  json out = json::array();
  for (const pb::PositionLogprobs& p : lps) {
    json top = json::array();
    for (const pb::TokenLogprob& t : p.top()) top.push_back({t.token_id(), t.logprob()});
    out.push_back({{"token_id", p.chosen().token_id()},
                   {"logprob", p.chosen().logprob()},
                   {"rank", p.rank()},
                   {"top", top}});
  }
  return out;
}

json Routing(const pb::RoutingDecision& r) {
  return {{"model", r.model()},
          {"adapter", r.adapter()},
          {"category", r.category()},
          {"confidence", r.confidence()},
          {"explicit", r.explicit_target()}};
}

// Fills the input oneof from --prompt / --prompt-ids / --messages.
template <typename Req>
void SetInput(const Args& a, bool chat, Req* req) {
  int given = (a.Get("--prompt") ? 1 : 0) + (a.Get("--prompt-ids") ? 1 : 0) +
              (a.Get("--messages") ? 1 : 0);
  if (given != 1) UsageError("give exactly one of --prompt, --prompt-ids, --messages");
  if (auto m = a.Get("--messages")) {
    *req->mutable_chat() = Messages(*m);
  } else if (auto p = a.Get("--prompt")) {
    if (chat) {
      pb::ChatInput* c = req->mutable_chat();
      if (auto sys = a.Get("--system")) {
        pb::ChatMessage* s = c->add_messages();
        s->set_role("system");
        s->set_content(*sys);
      }
      pb::ChatMessage* u = c->add_messages();
      u->set_role("user");
      u->set_content(*p);
    } else {
      req->set_text(*p);
    }
  } else if constexpr (std::is_same_v<Req, pb::GenerateRequest>) {
    auto ids = Ids("--prompt-ids", *a.Get("--prompt-ids"));
    req->mutable_token_ids()->mutable_ids()->Add(ids.begin(), ids.end());
  } else {
    UsageError("--prompt-ids is only for generate");
  }
}

int Generate(const Args& a, bool chat) {
  pb::GenerateRequest req;
  req.set_model(a.Get("--model").value_or(""));
  req.set_adapter(a.Get("--adapter").value_or(""));
  req.set_request_id(a.Get("--request-id").value_or(""));
  req.set_priority(Number<int32_t>(a, "--priority", 0));
  SetInput(a, chat, &req);
  pb::SamplingParams* s = req.mutable_sampling();
  if (a.Get("--max-tokens")) s->set_max_tokens(Number<int32_t>(a, "--max-tokens", 16));
  if (a.Get("--temperature")) s->set_temperature(Number<float>(a, "--temperature", 1));
  if (a.Get("--top-p")) s->set_top_p(Number<float>(a, "--top-p", 1));
  if (a.Get("--top-k")) s->set_top_k(Number<int32_t>(a, "--top-k", 0));
  if (a.Get("--min-p")) s->set_min_p(Number<float>(a, "--min-p", 0));
  if (a.Get("--seed")) s->set_seed(Number<uint64_t>(a, "--seed", 0));
  if (a.Get("--n")) s->set_n(Number<int32_t>(a, "--n", 1));
  if (a.Get("--logprobs")) s->set_logprobs(Number<int32_t>(a, "--logprobs", 0));
  if (a.Get("--repetition-penalty")) {
    s->set_repetition_penalty(Number<float>(a, "--repetition-penalty", 1));
  }
  if (a.Get("--presence-penalty")) {
    s->set_presence_penalty(Number<float>(a, "--presence-penalty", 0));
  }
  if (a.Get("--frequency-penalty")) {
    s->set_frequency_penalty(Number<float>(a, "--frequency-penalty", 0));
  }
  for (const std::string& stop : a.All("--stop")) s->add_stop(stop);
  for (const std::string& id : a.All("--stop-id")) {
    for (int32_t x : Ids("--stop-id", id)) s->add_stop_token_ids(x);
  }
  s->set_ignore_eos(a.Flag("--ignore-eos"));
  s->set_include_stop_str_in_output(a.Flag("--include-stop-str"));
  if (a.Flag("--keep-special-tokens")) s->set_skip_special_tokens(false);

  auto stub = pb::Inference::NewStub(Channel(a));
  grpc::ClientContext ctx;
  Prepare(a, &ctx);
  const bool as_json = a.Flag("--json");
  auto reader = stub->GenerateStream(&ctx, req);
  pb::GenerateStreamResponse msg;
  struct Sample {
    std::vector<int32_t> ids;
    std::string text;
    google::protobuf::RepeatedPtrField<pb::PositionLogprobs> logprobs;
    std::string finish = "unspecified";
    std::string stop_string;
    std::optional<int32_t> stop_token_id;
  };
  std::map<int, Sample> samples;
  json head = json::object();
  std::vector<int32_t> prompt_ids;
  pb::GenerateFinal final_msg;
  bool got_final = false;
  while (reader->Read(&msg)) {
    if (msg.has_routing()) head["routing"] = Routing(msg.routing());
    if (!msg.request_id().empty()) head["request_id"] = msg.request_id();
    prompt_ids.insert(prompt_ids.end(), msg.prompt_token_ids().begin(),
                      msg.prompt_token_ids().end());
    for (const pb::SampleDelta& d : msg.deltas()) {
      Sample& smp = samples[d.index()];
      smp.ids.insert(smp.ids.end(), d.token_ids().begin(), d.token_ids().end());
      smp.text += d.text();
      for (const auto& lp : d.logprobs()) *smp.logprobs.Add() = lp;
      if (!as_json && d.index() == 0) {
        std::fwrite(d.text().data(), 1, d.text().size(), stdout);
        std::fflush(stdout);
      }
    }
    if (msg.has_final()) {
      final_msg = msg.final();
      got_final = true;
    }
  }
  grpc::Status st = reader->Finish();
  if (!st.ok()) {
    if (!as_json) std::printf("\n");
    return Fail(a, st);
  }
  for (const pb::SampleFinish& f : final_msg.samples()) {
    Sample& smp = samples[f.index()];
    smp.finish = FinishName(f.finish_reason());
    smp.stop_string = f.stop_string();
    if (f.has_stop_token_id()) smp.stop_token_id = f.stop_token_id();
  }
  if (!as_json) {
    std::printf("\n");
    return 0;
  }
  auto sample_json = [](const Sample& s) {
    json j = {{"token_ids", s.ids},
              {"text", s.text},
              {"logprobs", Logprobs(s.logprobs)},
              {"finish_reason", s.finish},
              {"stop_string", s.stop_string}};
    j["stop_token_id"] = s.stop_token_id ? json(*s.stop_token_id) : json(nullptr);
    return j;
  };
  json out = head;
  out["prompt_token_ids"] = prompt_ids;
  Sample first = samples.count(0) ? samples[0] : Sample();
  const json first_json = sample_json(first);
  for (auto it = first_json.begin(); it != first_json.end(); ++it) out[it.key()] = it.value();
  if (samples.size() > 1) {
    json all = json::array();
    for (const auto& [i, s] : samples) all.push_back(sample_json(s));
    out["samples"] = all;
  }
  out["usage"] = {{"prompt_tokens", final_msg.usage().prompt_tokens()},
                  {"completion_tokens", final_msg.usage().completion_tokens()},
                  {"cached_tokens", final_msg.usage().cached_tokens()}};
  out["timings"] = {{"queue_seconds", final_msg.timings().queue_seconds()},
                    {"time_to_first_token_seconds",
                     final_msg.timings().time_to_first_token_seconds()},
                    {"total_seconds", final_msg.timings().total_seconds()}};
  out["complete"] = got_final;
  std::printf("%s\n", out.dump(-1, ' ', false, json::error_handler_t::replace).c_str());
  return 0;
}

int List(const Args& a) {
  auto stub = pb::Inference::NewStub(Channel(a));
  grpc::ClientContext ctx;
  Prepare(a, &ctx);
  pb::ListModelsResponse resp;
  grpc::Status st = stub->ListModels(&ctx, pb::ListModelsRequest(), &resp);
  if (!st.ok()) return Fail(a, st);
  json models = json::array();
  for (const pb::ModelInfo& m : resp.models()) {
    json adapters = json::array();
    for (const pb::AdapterInfo& ad : m.adapters()) {
      adapters.push_back({{"name", ad.name()},
                          {"state", pb::ModelState_Name(ad.state())},
                          {"tier", pb::MemoryTier_Name(ad.tier())}});
    }
    models.push_back({{"name", m.name()},
                      {"architecture", m.architecture()},
                      {"state", pb::ModelState_Name(m.state())},
                      {"tier", pb::MemoryTier_Name(m.tier())},
                      {"max_context_tokens", m.max_context_tokens()},
                      {"has_chat_template", m.has_chat_template()},
                      {"adapters", adapters}});
    if (!a.Flag("--json")) {
      std::vector<std::string> names;
      for (const pb::AdapterInfo& ad : m.adapters()) names.push_back(ad.name());
      std::printf("%-16s %-12s %-18s context=%d adapters=[%s]\n", m.name().c_str(),
                  m.architecture().c_str(), pb::ModelState_Name(m.state()).c_str(),
                  m.max_context_tokens(), absl::StrJoin(names, ",").c_str());
    }
  }
  if (a.Flag("--json")) std::printf("%s\n", json({{"models", models}}).dump().c_str());
  return 0;
}

int Route(const Args& a) {
  pb::RouteRequest req;
  req.set_model(a.Get("--model").value_or(""));
  req.set_adapter(a.Get("--adapter").value_or(""));
  if (auto m = a.Get("--messages")) {
    *req.mutable_chat() = Messages(*m);
  } else if (auto p = a.Get("--prompt")) {
    req.set_text(*p);
  }
  auto stub = pb::Inference::NewStub(Channel(a));
  grpc::ClientContext ctx;
  Prepare(a, &ctx);
  pb::RouteResponse resp;
  grpc::Status st = stub->Route(&ctx, req, &resp);
  if (!st.ok()) return Fail(a, st);
  if (a.Flag("--json")) {
    std::printf("%s\n", json({{"routing", Routing(resp.routing())}}).dump().c_str());
  } else {
    std::printf("model=%s adapter=%s category=%s confidence=%.3f explicit=%s\n",
                resp.routing().model().c_str(), resp.routing().adapter().c_str(),
                resp.routing().category().c_str(), resp.routing().confidence(),
                resp.routing().explicit_target() ? "true" : "false");
  }
  return 0;
}

int Tokenize(const Args& a) {
  pb::TokenizeRequest req;
  req.set_model(a.Get("--model").value_or(""));
  SetInput(a, false, &req);
  if (a.Flag("--no-special-tokens")) req.set_add_special_tokens(false);
  auto stub = pb::Inference::NewStub(Channel(a));
  grpc::ClientContext ctx;
  Prepare(a, &ctx);
  pb::TokenizeResponse resp;
  grpc::Status st = stub->Tokenize(&ctx, req, &resp);
  if (!st.ok()) return Fail(a, st);
  std::vector<int32_t> ids(resp.token_ids().begin(), resp.token_ids().end());
  if (a.Flag("--json")) {
    std::printf("%s\n", json({{"token_ids", ids}}).dump().c_str());
  } else {
    std::printf("%s\n", absl::StrJoin(ids, ",").c_str());
  }
  return 0;
}

int Detokenize(const Args& a) {
  pb::DetokenizeRequest req;
  req.set_model(a.Get("--model").value_or(""));
  auto ids = Ids("--ids", a.Get("--ids").value_or(""));
  req.mutable_token_ids()->Add(ids.begin(), ids.end());
  if (a.Flag("--keep-special-tokens")) req.set_skip_special_tokens(false);
  auto stub = pb::Inference::NewStub(Channel(a));
  grpc::ClientContext ctx;
  Prepare(a, &ctx);
  pb::DetokenizeResponse resp;
  grpc::Status st = stub->Detokenize(&ctx, req, &resp);
  if (!st.ok()) return Fail(a, st);
  if (a.Flag("--json")) {
    std::printf("%s\n",
                json({{"text", resp.text()}}).dump(-1, ' ', false, json::error_handler_t::replace)
                    .c_str());
  } else {
    std::printf("%s\n", resp.text().c_str());
  }
  return 0;
}

int LoadAdapter(const Args& a, bool load) {
  auto stub = pb::Admin::NewStub(Channel(a));
  grpc::ClientContext ctx;
  Prepare(a, &ctx);
  grpc::Status st;
  json out;
  if (load) {
    pb::LoadAdapterRequest req;
    req.set_name(a.Get("--name").value_or(""));
    req.set_path(a.Get("--path").value_or(""));
    req.set_base_model(a.Get("--base-model").value_or(""));
    pb::LoadAdapterResponse resp;
    st = stub->LoadAdapter(&ctx, req, &resp);
    out = {{"name", resp.adapter().name()},
           {"base_model", resp.adapter().base_model()},
           {"routed_experts_replaced", resp.routed_experts_replaced()},
           {"bytes_copied", resp.bytes_copied()},
           {"warnings", std::vector<std::string>(resp.warnings().begin(),
                                                 resp.warnings().end())}};
  } else {
    pb::UnloadAdapterRequest req;
    req.set_name(a.Get("--name").value_or(""));
    pb::UnloadAdapterResponse resp;
    st = stub->UnloadAdapter(&ctx, req, &resp);
    out = {{"name", req.name()}, {"unloaded", true}};
  }
  if (!st.ok()) return Fail(a, st);
  std::printf("%s\n", a.Flag("--json") ? out.dump().c_str() : "OK");
  return 0;
}

int Health(const Args& a) {
  auto stub = grpc::health::v1::Health::NewStub(Channel(a));
  grpc::ClientContext ctx;
  Prepare(a, &ctx);
  grpc::health::v1::HealthCheckRequest req;
  req.set_service(a.Get("--service").value_or(""));
  grpc::health::v1::HealthCheckResponse resp;
  grpc::Status st = stub->Check(&ctx, req, &resp);
  if (!st.ok()) return Fail(a, st);
  const std::string name =
      grpc::health::v1::HealthCheckResponse::ServingStatus_Name(resp.status());
  if (a.Flag("--json")) {
    std::printf("%s\n", json({{"service", req.service()}, {"status", name}}).dump().c_str());
  } else {
    std::printf("%s\n", name.c_str());
  }
  return resp.status() == grpc::health::v1::HealthCheckResponse::SERVING ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  Args a = Parse(argc, argv);
  if (a.command == "generate") return Generate(a, false);
  if (a.command == "chat") return Generate(a, true);
  if (a.command == "list") return List(a);
  if (a.command == "route") return Route(a);
  if (a.command == "tokenize") return Tokenize(a);
  if (a.command == "detokenize") return Detokenize(a);
  if (a.command == "load-adapter") return LoadAdapter(a, true);
  if (a.command == "unload-adapter") return LoadAdapter(a, false);
  if (a.command == "health") return Health(a);
  UsageError(absl::StrCat("unknown command \"", a.command, "\""));
}
