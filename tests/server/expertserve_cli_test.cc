// Runs the real `expertserve` binary: --check exit codes and output.
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

struct Result {
  int exit_code = -1;
  std::string output;  // stdout and stderr, interleaved
};

std::string Binary() {
  // ctest sets ES_BINARY_DIR; the compile-time path covers direct runs.
  if (const char* dir = std::getenv("ES_BINARY_DIR")) {
    fs::path p = fs::path(dir) / "bin" / "expertserve";
    if (fs::exists(p)) return p.string();
  }
  return ES_EXPERTSERVE_BINARY;
}

Result RunExpertserve(const std::string& args) {
  Result r;
  const std::string cmd = absl::StrCat(Binary(), " ", args, " 2>&1");
  FILE* pipe = ::popen(cmd.c_str(), "r");
  if (pipe == nullptr) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), pipe)) > 0) {
    r.output.append(buf.data(), n);
  }
  const int status = ::pclose(pipe);
  if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  return r;
}

class ExpertserveCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) /
           absl::StrCat("es_cli_",
                        ::testing::UnitTest::GetInstance()
                            ->current_test_info()
                            ->name(),
                        "_", ::getpid());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "ckpt" / "chat");
    fs::create_directories(dir_ / "ckpt" / "moe");
    fs::create_directories(dir_ / "adapters" / "math");
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::string Write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ / name) << text;
    return (dir_ / name).string();
  }
  fs::path dir_;
};

constexpr char kGood[] = R"yaml(models:
  - {name: chat, path: ckpt/chat}
  - {name: moe, path: ckpt/moe}
adapters:
  - {name: math, path: adapters/math, base_model: moe}
router:
  categories:
    - {name: chat, examples: [hello]}
    - {name: math, examples: [what is 2+2]}
  routes: {chat: chat, math: {model: moe, adapter: math}}
  default_target: chat
)yaml";

TEST_F(ExpertserveCliTest, CheckAcceptsGoodConfig) {
  const std::string file = Write("good.yaml", kGood);
  Result r = RunExpertserve(absl::StrCat("--config ", file, " --check"));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output,
            "config OK: 2 models, 1 adapter, 2 router categories\n");
  // --config=FILE form, flags in any order.
  r = RunExpertserve(absl::StrCat("--check --config=", file));
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

TEST_F(ExpertserveCliTest, CheckRejectsBadConfigListingEveryError) {
  const std::string file = Write("bad.yaml", R"yaml(models:
  - {name: chat, path: ckpt/nope}
adapters:
  - {name: math, path: adapters/math, base_model: moe}
scheduler: {max_num_seqs: 0}
)yaml");
  Result r = RunExpertserve(absl::StrCat("--config ", file, " --check"));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_THAT(r.output, HasSubstr("3 errors"));
  EXPECT_THAT(r.output, HasSubstr(absl::StrCat(
                            file, ":2:24: models[0].path: expected an "
                                  "existing checkpoint directory")));
  EXPECT_THAT(r.output, HasSubstr(absl::StrCat(
                            file, ":4:51: adapters[0].base_model: unknown "
                                  "model \"moe\"")));
  EXPECT_THAT(r.output, HasSubstr(absl::StrCat(
                            file, ":5:27: scheduler.max_num_seqs: expected "
                                  "an integer in [1, 1048576], found 0")));
}

TEST_F(ExpertserveCliTest, MissingFileAndUsageErrors) {
  Result r = RunExpertserve("--config /nonexistent/x.yaml --check");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_THAT(r.output, HasSubstr("does not exist"));

  r = RunExpertserve("");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_THAT(r.output, HasSubstr("--config FILE is required"));
  EXPECT_THAT(r.output, HasSubstr("Usage:"));

  r = RunExpertserve("--config");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  r = RunExpertserve("--bogus");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_THAT(r.output, HasSubstr("unknown argument \"--bogus\""));
}

TEST_F(ExpertserveCliTest, HelpExitsZero) {
  Result r = RunExpertserve("--help");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("--config FILE"));
  EXPECT_THAT(r.output, HasSubstr("--check"));
}

}  // namespace
