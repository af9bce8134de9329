#include "engine/adapters/path_policy.h"

#include <filesystem>
#include <fstream>

#include <unistd.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/fixtures/status_matchers.h"

namespace expertserve::engine::adapters {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::expertserve::testing::StatusIs;

class PathPolicyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    base_ = fs::temp_directory_path() /
            ("es_path_policy_" + std::to_string(::getpid()));
    fs::remove_all(base_);
    fs::create_directories(base_ / "roots" / "a" / "math");
    fs::create_directories(base_ / "roots" / "b" / "law");
    fs::create_directories(base_ / "outside" / "secret");
    fs::create_directories(base_ / "roots" / "a-evil" / "x");
    std::ofstream(base_ / "roots" / "a" / "file.txt") << "x";
    fs::create_directory_symlink(base_ / "outside" / "secret",
                                 base_ / "roots" / "a" / "escape");
    fs::create_directory_symlink(base_ / "roots" / "a" / "math",
                                 base_ / "roots" / "a" / "alias");
    roots_ = {base_ / "roots" / "a", base_ / "roots" / "b"};
  }
  void TearDown() override { fs::remove_all(base_); }

  fs::path base_;
  std::vector<fs::path> roots_;
};

TEST_F(PathPolicyTest, AcceptsDirectoriesInsideAnyRoot) {
  ES_ASSERT_OK_AND_ASSIGN(fs::path p, ResolveAdapterDir(roots_, "math"));
  EXPECT_EQ(p, fs::canonical(base_ / "roots" / "a" / "math"));
  ES_ASSERT_OK_AND_ASSIGN(p, ResolveAdapterDir(roots_, base_ / "roots" / "b" / "law"));
  EXPECT_EQ(p, fs::canonical(base_ / "roots" / "b" / "law"));
  // A symlink that stays inside the roots is fine.
  ES_ASSERT_OK_AND_ASSIGN(p, ResolveAdapterDir(roots_, "alias"));
  EXPECT_EQ(p, fs::canonical(base_ / "roots" / "a" / "math"));
  // ".." that stays inside the roots is fine too.
  ES_ASSERT_OK_AND_ASSIGN(p, ResolveAdapterDir(roots_, "math/../math"));
}

TEST_F(PathPolicyTest, RejectsTraversalSymlinkEscapeAndPrefixTricks) {
  EXPECT_THAT(ResolveAdapterDir(roots_, "../../outside/secret"),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("outside the adapter roots")));
  EXPECT_THAT(ResolveAdapterDir(roots_, "escape"),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("resolves to")));
  EXPECT_THAT(ResolveAdapterDir(roots_, base_ / "outside" / "secret"),
              StatusIs(absl::StatusCode::kPermissionDenied));
  // "roots/a-evil" shares the string prefix "roots/a" but is not inside it.
  EXPECT_THAT(ResolveAdapterDir(roots_, base_ / "roots" / "a-evil" / "x"),
              StatusIs(absl::StatusCode::kPermissionDenied));
  // A missing path outside the roots must not reveal whether it exists.
  EXPECT_THAT(ResolveAdapterDir(roots_, "../../nope"),
              StatusIs(absl::StatusCode::kPermissionDenied));
}

TEST_F(PathPolicyTest, ReportsMissingPathsAndFilesAndEmptyInput) {
  EXPECT_THAT(ResolveAdapterDir(roots_, "missing"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("does not exist")));
  EXPECT_THAT(ResolveAdapterDir(roots_, "file.txt"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("not a directory")));
  EXPECT_THAT(ResolveAdapterDir(roots_, ""),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ResolveAdapterDir({}, "math"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no adapter roots")));
}

}  // namespace
}  // namespace expertserve::engine::adapters
