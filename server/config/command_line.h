// The `expertserve` command line. A small hand parser rather than absl flags:
// the binary has few flags, and absl's --help exits non-zero and lists
// library-internal flags. Thread-safe (no state).
#ifndef EXPERTSERVE_SERVER_CONFIG_COMMAND_LINE_H_
#define EXPERTSERVE_SERVER_CONFIG_COMMAND_LINE_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace expertserve::server::config {

struct CommandLine {
  std::string config_path;  // --config FILE (required unless --help)
  bool check = false;       // --check: validate the config and exit
  bool help = false;        // --help / -h
};

// `args` excludes the program name. Accepts "--flag value" and "--flag=value".
// Errors: kInvalidArgument naming the bad argument.
absl::StatusOr<CommandLine> ParseCommandLine(
    const std::vector<std::string>& args);

// Usage text for --help and for command-line errors.
std::string Usage(std::string_view program);

}  // namespace expertserve::server::config

#endif  // EXPERTSERVE_SERVER_CONFIG_COMMAND_LINE_H_
