// expertserve: loads and validates the config, loads the models into their
// engines and serves the gRPC API until SIGTERM/SIGINT, then shuts down
// gracefully. Logic lives in the libraries; this file only sequences them.
#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_join.h"
#include "server/config/command_line.h"
#include "server/config/config.h"
#include "server/admin_service.h"
#include "server/kserve_service.h"
#include "server/launch_flags.h"
#include "server/server.h"
#ifdef ES_HAVE_ENGINE_RUNTIME
#include "server/model_host.h"
#endif

namespace cfg = expertserve::server::config;
namespace es = expertserve::server;

namespace {

es::ServerOptions OptionsFrom(const cfg::ServerConfig& c) {
  es::ServerOptions o;
  o.listen = c.server.listen;
  o.grpc = c.server.grpc;
  o.tls = c.server.tls;
  o.reflection = c.server.reflection;
  o.limits.max_request_bytes = c.limits.max_request_bytes;
  o.limits.max_prompt_tokens = c.limits.max_prompt_tokens;
  o.limits.max_tokens = c.limits.max_tokens;
  o.limits.max_stop_strings = c.limits.max_stop_strings;
  o.limits.max_logprobs = c.limits.max_logprobs;
  o.limits.max_stream_buffer_bytes = static_cast<int64_t>(c.limits.max_stream_buffer_bytes);
  // Admission bound: what the engines can run plus what they may queue.
  o.admission_capacity =
      (c.scheduler.max_num_seqs + c.scheduler.max_waiting_requests) *
      static_cast<int64_t>(c.models.size());
  o.log_format = c.logging.format == cfg::LogFormat::kJson ? es::RequestLogFormat::kJson
                                                           : es::RequestLogFormat::kText;
  if (c.server.metrics.enabled) o.metrics_listen = c.server.metrics.listen;
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string_view program = argc > 0 ? argv[0] : "expertserve";
  std::vector<std::string> args(argv + (argc > 0 ? 1 : 0), argv + argc);

  es::LaunchFlags flags;
  if (es::UsesQuickStartFlags(args)) {
    absl::StatusOr<es::LaunchFlags> f = es::ParseLaunchFlags(args);
    if (!f.ok()) {
      std::fprintf(stderr, "%s: %s\n\n%s%s", std::string(program).c_str(),
                   std::string(f.status().message()).c_str(), cfg::Usage(program).c_str(),
                   es::QuickStartUsage().c_str());
      return 2;
    }
    flags = *std::move(f);
  } else {
    // The config library's own parser: its behaviour and messages as they are.
    absl::StatusOr<cfg::CommandLine> cl = cfg::ParseCommandLine(args);
    if (!cl.ok()) {
      std::fprintf(stderr, "%s: %s\n\n%s%s", std::string(program).c_str(),
                   std::string(cl.status().message()).c_str(),
                   cfg::Usage(program).c_str(), es::QuickStartUsage().c_str());
      return 2;
    }
    flags.config_path = cl->config_path;
    flags.check = cl->check;
    flags.help = cl->help;
  }
  if (flags.help) {
    std::printf("%s%s", cfg::Usage(program).c_str(), es::QuickStartUsage().c_str());
    return 0;
  }

  absl::StatusOr<cfg::ServerConfig> config = es::BuildConfig(flags);
  if (!config.ok()) {
    std::fprintf(stderr, "%s\n", std::string(config.status().message()).c_str());
    return 1;
  }
  if (flags.check) {
    std::printf("config OK: %s\n", cfg::Summary(*config).c_str());
    return 0;
  }
  const std::string source = flags.config_path.empty() ? "(command line)" : flags.config_path;
  std::printf("config %s loaded: %s\n", source.c_str(), cfg::Summary(*config).c_str());
  std::fflush(stdout);

  // SIGTERM/SIGINT are taken synchronously by sigwait below; block them
  // before any thread starts so every thread inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

#ifdef ES_HAVE_ENGINE_RUNTIME
  es::ModelCatalog catalog;
  absl::StatusOr<std::unique_ptr<es::ModelHost>> host = es::ModelHost::Load(*config, &catalog);
  if (!host.ok()) {
    std::fprintf(stderr, "expertserve: %s\n", std::string(host.status().message()).c_str());
    return 1;
  }
  absl::StatusOr<es::Authenticator> auth = es::Authenticator::FromConfig(config->server.auth);
  if (!auth.ok()) {
    std::fprintf(stderr, "expertserve: %s\n", std::string(auth.status().message()).c_str());
    return 1;
  }
  es::ServerOptions options = OptionsFrom(*config);
  if (flags.log_format == "json") options.log_format = es::RequestLogFormat::kJson;
  if (flags.log_format == "text") options.log_format = es::RequestLogFormat::kText;
  if (flags.log_format == "none") options.log_format = es::RequestLogFormat::kNone;
  absl::StatusOr<std::unique_ptr<es::Server>> server =
      es::Server::Start(options, &catalog, *std::move(auth),
                        {[](es::ServiceContext* ctx) -> std::unique_ptr<grpc::Service> {
                           return std::make_unique<es::KServeService>(ctx);
                         },
                         [&host](es::ServiceContext* ctx) -> std::unique_ptr<grpc::Service> {
                           return std::make_unique<es::AdminService>(ctx, host->get());
                         }});
  if (!server.ok()) {
    std::fprintf(stderr, "expertserve: %s\n", std::string(server.status().message()).c_str());
    return 1;
  }
  std::printf("expertserve: listening on %s\n",
              absl::StrJoin((*server)->addresses(), ", ").c_str());
  if ((*server)->metrics_port() != 0) {
    const std::string& l = config->server.metrics.listen;
    std::printf("expertserve: metrics on %s:%d\n", l.substr(0, l.rfind(':')).c_str(),
                (*server)->metrics_port());
  }
  std::fflush(stdout);

  int sig = 0;
  sigwait(&signals, &sig);
  std::printf("expertserve: %s received; draining (grace period %s)\n",
              sig == SIGTERM ? "SIGTERM" : "SIGINT",
              absl::FormatDuration(config->server.shutdown_grace_period).c_str());
  std::fflush(stdout);
  const int64_t cancelled = (*server)->Shutdown(config->server.shutdown_grace_period);
  std::printf("expertserve: stopped (%lld requests cancelled at the end of the grace period)\n",
              static_cast<long long>(cancelled));
  std::fflush(stdout);
  // Engines stop before the server object (their sinks use its context).
  host->reset();
  server->reset();
  return 0;
#else
  std::fprintf(stderr,
               "expertserve: built without the engine runtime (engine/runtime); "
               "only --check is available\n");
  return 1;
#endif
}
