// expertserve: loads and validates the config, then (from issue 6 on) serves.
// Logic lives in the libraries; this file only sequences them.
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "server/config/command_line.h"
#include "server/config/config.h"

namespace cfg = expertserve::server::config;

int main(int argc, char** argv) {
  const std::string_view program = argc > 0 ? argv[0] : "expertserve";
  std::vector<std::string> args(argv + (argc > 0 ? 1 : 0), argv + argc);
  absl::StatusOr<cfg::CommandLine> cl = cfg::ParseCommandLine(args);
  if (!cl.ok()) {
    std::fprintf(stderr, "%s: %s\n\n%s", std::string(program).c_str(),
                 std::string(cl.status().message()).c_str(),
                 cfg::Usage(program).c_str());
    return 2;
  }
  if (cl->help) {
    std::printf("%s", cfg::Usage(program).c_str());
    return 0;
  }

  absl::StatusOr<cfg::ServerConfig> config = cfg::LoadConfigFile(cl->config_path);
  if (!config.ok()) {
    std::fprintf(stderr, "%s\n", std::string(config.status().message()).c_str());
    return 1;
  }
  if (cl->check) {
    std::printf("config OK: %s\n", cfg::Summary(*config).c_str());
    return 0;
  }
  std::printf("config %s loaded: %s\n", cl->config_path.c_str(),
              cfg::Summary(*config).c_str());
  std::printf(
      "expertserve: the gRPC server arrives with issue 6; exiting after "
      "loading the config.\n");
  return 0;
}
