// A real Prometheus server (Debian's `prometheus` package), started on
// loopback, scrapes a real expertserve's metrics endpoint; the test asks
// Prometheus's HTTP API for the expected series. Skipped when the
// prometheus binary is not installed.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "expertserve/v1/inference.grpc.pb.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/server_e2e/server_process.h"

namespace expertserve::testing {
namespace {

namespace fs = std::filesystem;
namespace pb = ::expertserve::v1;

constexpr char kPrometheus[] = "/usr/bin/prometheus";

int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  socklen_t len = sizeof(a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

// The first sample value of an instant query, or nullopt.
std::optional<double> Query(int port, const std::string& encoded_query) {
  std::optional<std::string> body = HttpGet(port, "/api/v1/query?query=" + encoded_query);
  if (!body) return std::nullopt;
  nlohmann::json j = nlohmann::json::parse(*body, nullptr, false);
  if (!j.is_object() || j.value("status", "") != "success") return std::nullopt;
  const auto& result = j["data"]["result"];
  if (!result.is_array() || result.empty()) return std::nullopt;
  return std::stod(result[0]["value"][1].get<std::string>());
}

TEST(PrometheusTest, ScrapesServerMetrics) {
  if (!fs::exists(kPrometheus)) GTEST_SKIP() << "apt-get install prometheus";
  ServerProcess server;
  server.ExpectMetrics();
  ASSERT_TRUE(server.Start({"--model", "tiny=" + BinaryDir() + "/test-models/server_e2e/qwen3",
                            "--port", "0", "--metrics-port", "0", "--kv-cache-mib", "32",
                            "--log-format", "none"}))
      << server.output();
  auto stub = pb::Inference::NewStub(
      grpc::CreateChannel(server.address(), grpc::InsecureChannelCredentials()));
  for (int i = 0; i < 3; ++i) {
    pb::GenerateRequest req;
    req.set_model("tiny");
    req.mutable_token_ids()->add_ids(5);
    req.mutable_sampling()->set_max_tokens(7);
    req.mutable_sampling()->set_ignore_eos(true);
    grpc::ClientContext ctx;
    pb::GenerateResponse resp;
    ASSERT_TRUE(stub->Generate(&ctx, req, &resp).ok());
  }

  const fs::path dir = fs::path(::testing::TempDir()) / absl::StrCat("es_prom_", getpid());
  fs::remove_all(dir);
  fs::create_directories(dir / "data");
  std::ofstream(dir / "prometheus.yml") << absl::StrCat(
      "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
      "scrape_configs:\n"
      "  - job_name: expertserve\n"
      "    static_configs: [{targets: ['127.0.0.1:", server.metrics_port(), "']}]\n");
  const int port = FreePort();
  const std::string log = (dir / "prometheus.log").string();
  const pid_t pid = fork();
  if (pid == 0) {
    const std::string cfg = "--config.file=" + (dir / "prometheus.yml").string();
    const std::string data = "--storage.tsdb.path=" + (dir / "data").string();
    const std::string listen = absl::StrCat("--web.listen-address=127.0.0.1:", port);
    freopen(log.c_str(), "w", stdout);
    freopen(log.c_str(), "a", stderr);
    execl(kPrometheus, kPrometheus, cfg.c_str(), data.c_str(), listen.c_str(),
          static_cast<char*>(nullptr));
    _exit(127);
  }
  std::optional<double> up, tokens, success, ttft_count;
  for (int i = 0; i < 300 && !(up && tokens && success && ttft_count); ++i) {
    absl::SleepFor(absl::Milliseconds(100));
    up = Query(port, "up%7Bjob%3D%22expertserve%22%7D");
    tokens = Query(port, "expertserve:generation_tokens_total");
    success = Query(port, "sum(expertserve:request_success_total)");
    ttft_count = Query(port, "expertserve:time_to_first_token_seconds_count");
  }
  kill(pid, SIGTERM);
  int status;
  waitpid(pid, &status, 0);
  std::ifstream in(log);
  const std::string prom_log((std::istreambuf_iterator<char>(in)), {});
  ASSERT_TRUE(up.has_value()) << prom_log;
  EXPECT_EQ(*up, 1);
  ASSERT_TRUE(tokens.has_value());
  EXPECT_EQ(*tokens, 21);
  ASSERT_TRUE(success.has_value());
  EXPECT_EQ(*success, 3);
  ASSERT_TRUE(ttft_count.has_value());
  EXPECT_EQ(*ttft_count, 3);
  EXPECT_EQ(server.Stop(), 0);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace expertserve::testing
