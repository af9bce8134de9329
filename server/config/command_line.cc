#include "server/config/command_line.h"

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace expertserve::server::config {

absl::StatusOr<CommandLine> ParseCommandLine(
    const std::vector<std::string>& args) {
  CommandLine cl;
  bool have_config = false;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string arg = args[i];
    std::string value;
    bool has_value = false;
    if (const size_t eq = arg.find('='); arg.starts_with("--") &&
                                         eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg.resize(eq);
      has_value = true;
    }
    if (arg == "--help" || arg == "-h") {
      cl.help = true;
    } else if (arg == "--check") {
      if (has_value) {
        return absl::InvalidArgumentError("--check takes no value");
      }
      cl.check = true;
    } else if (arg == "--config") {
      if (!has_value) {
        if (i + 1 >= args.size()) {
          return absl::InvalidArgumentError("--config needs a file name");
        }
        value = args[++i];
      }
      if (value.empty()) {
        return absl::InvalidArgumentError("--config needs a file name");
      }
      cl.config_path = value;
      have_config = true;
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown argument \"", args[i], "\""));
    }
  }
  if (!cl.help && !have_config) {
    return absl::InvalidArgumentError("--config FILE is required");
  }
  return cl;
}

std::string Usage(std::string_view program) {
  return absl::StrCat(
      "Usage: ", std::string(program), " --config FILE [--check]\n",
      "\n"
      "expertserve: a gRPC inference server for many expert LLMs.\n"
      "\n"
      "  --config FILE  the server's YAML configuration (docs/configuration.md)\n"
      "  --check        validate FILE, print a summary or every error, and exit\n"
      "                 (0 = valid, 1 = invalid)\n"
      "  --help, -h     show this help\n");
}

}  // namespace expertserve::server::config
