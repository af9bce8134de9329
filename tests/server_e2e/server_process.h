// Runs a real `expertserve` process on loopback for end-to-end tests: any
// free port (--port 0; the address is read from its stdout), bounded start
// and stop times, SIGKILL if it ever hangs.
#ifndef EXPERTSERVE_TESTS_SERVER_E2E_SERVER_PROCESS_H_
#define EXPERTSERVE_TESTS_SERVER_E2E_SERVER_PROCESS_H_

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace expertserve::testing {

inline std::string BinaryDir() {
  const char* d = std::getenv("ES_BINARY_DIR");
  return d != nullptr ? d : ES_DEFAULT_BINARY_DIR;
}
inline std::string SourceDir() {
  const char* d = std::getenv("ES_SOURCE_DIR");
  return d != nullptr ? d : ES_DEFAULT_SOURCE_DIR;
}

// Not thread-safe (one test thread drives it).
class ServerProcess {
 public:
  // `args` after the binary; `env` entries "K=V" added to the environment.
  bool Start(const std::vector<std::string>& args, const std::vector<std::string>& env = {},
             absl::Duration timeout = absl::Seconds(30)) {
    int out[2];
    if (pipe(out) != 0) return false;
    pid_ = fork();
    if (pid_ == 0) {
      dup2(out[1], 1);
      dup2(out[1], 2);
      close(out[0]);
      for (const std::string& e : env) putenv(const_cast<char*>(e.c_str()));
      std::vector<std::string> all = {BinaryDir() + "/bin/expertserve"};
      all.insert(all.end(), args.begin(), args.end());
      std::vector<char*> argv;
      for (std::string& a : all) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    close(out[1]);
    fd_ = out[0];
    const absl::Time deadline = absl::Now() + timeout;
    while (absl::Now() < deadline) {
      ReadAvailable(absl::Milliseconds(50));
      for (const std::string& line : Lines()) {
        if (absl::StartsWith(line, "expertserve: listening on ")) {
          address_ = line.substr(std::string("expertserve: listening on ").size());
        }
        if (absl::StartsWith(line, "expertserve: metrics on ")) {
          const std::string m = line.substr(std::string("expertserve: metrics on ").size());
          absl::SimpleAtoi(m.substr(m.rfind(':') + 1), &metrics_port_);
        }
      }
      if (!address_.empty() && (metrics_port_ != 0 || !expect_metrics_)) return true;
      int status;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return false;
      }
    }
    return false;
  }
  void ExpectMetrics() { expect_metrics_ = true; }

  // SIGTERM, then waits up to `timeout` for exit; returns the exit code
  // (-1 if it had to be killed).
  int Stop(absl::Duration timeout = absl::Seconds(20)) {
    if (pid_ <= 0) return exit_code_;
    kill(pid_, SIGTERM);
    return Wait(timeout);
  }
  void Signal(int sig) {
    if (pid_ > 0) kill(pid_, sig);
  }
  int Wait(absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    while (pid_ > 0) {
      int status;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        pid_ = -1;
        break;
      }
      if (absl::Now() > deadline) {
        kill(pid_, SIGKILL);
        waitpid(pid_, &status, 0);
        pid_ = -1;
        exit_code_ = -1;
        break;
      }
      ReadAvailable(absl::Milliseconds(10));
    }
    ReadAvailable(absl::ZeroDuration());
    return exit_code_;
  }
  ~ServerProcess() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      int status;
      waitpid(pid_, &status, 0);
    }
    if (fd_ >= 0) close(fd_);
  }

  const std::string& address() const { return address_; }
  int metrics_port() const { return metrics_port_; }
  const std::string& output() {
    ReadAvailable(absl::ZeroDuration());
    return output_;
  }

 private:
  void ReadAvailable(absl::Duration wait) {
    if (fd_ < 0) return;
    pollfd p{fd_, POLLIN, 0};
    int ms = static_cast<int>(absl::ToInt64Milliseconds(wait));
    while (poll(&p, 1, ms) > 0) {
      char buf[4096];
      const ssize_t n = read(fd_, buf, sizeof(buf));
      if (n <= 0) break;
      output_.append(buf, static_cast<size_t>(n));
      ms = 0;
    }
  }
  std::vector<std::string> Lines() const {
    std::vector<std::string> out;
    size_t start = 0;
    for (size_t i = 0; i < output_.size(); ++i) {
      if (output_[i] == '\n') {
        out.push_back(output_.substr(start, i - start));
        start = i + 1;
      }
    }
    return out;
  }

  pid_t pid_ = -1;
  int fd_ = -1;
  int exit_code_ = -1;
  bool expect_metrics_ = false;
  std::string output_;
  std::string address_;
  int metrics_port_ = 0;
};

// A plain HTTP/1.0 GET on 127.0.0.1:port (metrics and the Prometheus API).
std::optional<std::string> HttpGet(int port, const std::string& path);

}  // namespace expertserve::testing

#endif  // EXPERTSERVE_TESTS_SERVER_E2E_SERVER_PROCESS_H_
