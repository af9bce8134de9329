#include "server/config/units.h"

#include <cstdint>
#include <string>

#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/config/diagnostics.h"
#include "tests/fixtures/status_matchers.h"

namespace expertserve::server::config {
namespace {

using ::expertserve::testing::StatusIs;
using ::testing::HasSubstr;

TEST(ParseSizeTest, AcceptsDocumentedForms) {
  struct Case {
    const char* text;
    uint64_t want;
  };
  const Case cases[] = {
      {"0", 0},
      {"1048576", 1048576},
      {"100B", 100},
      {"64KiB", 64 * 1024},
      {"512MiB", 512ull * 1024 * 1024},
      {"2GiB", 2ull * 1024 * 1024 * 1024},
      {"1.5GiB", 1610612736ull},  // 1.5 * 2^30
      {"0.5KiB", 512},
      {"1TiB", 1ull << 40},
      {"10GB", 10000000000ull},
      {"5MB", 5000000},
      {"3KB", 3000},
      {"2TB", 2000000000000ull},
      {"1 KiB", 1024},  // a space before the unit is fine
      {"  7MiB  ", 7ull << 20},
  };
  for (const Case& c : cases) {
    absl::StatusOr<uint64_t> got = ParseSize(c.text);
    ASSERT_TRUE(got.ok()) << c.text << ": " << got.status();
    EXPECT_EQ(*got, c.want) << c.text;
  }
  // The largest value that fits: 2^64 - 1 bytes.
  absl::StatusOr<uint64_t> max = ParseSize("18446744073709551615");
  ASSERT_TRUE(max.ok());
  EXPECT_EQ(*max, UINT64_MAX);
}

TEST(ParseSizeTest, RejectsBadSizesWithReason) {
  struct Case {
    const char* text;
    const char* why;
  };
  const Case cases[] = {
      {"", "empty size"},
      {"-1", "cannot be negative"},
      {"-1GiB", "cannot be negative"},
      {"2gb", "unknown unit \"gb\""},
      {"2 gigs", "unknown unit \"gigs\""},
      {"2GiBs", "unknown unit \"GiBs\""},
      {"1e9", "unknown unit \"e9\""},
      {"1.5B", "not a whole number of bytes"},
      {"0.1KiB", "not a whole number of bytes"},
      {"GiB", "no number"},
      {".", "no number"},
      {"1.2.3", "unknown unit \".3\""},
      {"18446744073709551616", "too large"},
      {"20000000TiB", "too large"},
      {"123456789012345678901", "too many digits"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<uint64_t> got = ParseSize(c.text);
    EXPECT_THAT(got, StatusIs(absl::StatusCode::kInvalidArgument,
                              HasSubstr(c.why)))
        << c.text;
    // Every message names the accepted forms and echoes the input.
    EXPECT_THAT(got.status().message(), HasSubstr("512MiB")) << c.text;
  }
}

TEST(FormatSizeTest, RoundTripsThroughParseSize) {
  const uint64_t values[] = {0,       1,        1023,        1024,
                             1536,    3 << 20,  1610612736,  5ull << 40,
                             1000000, UINT64_MAX};
  for (uint64_t v : values) {
    const std::string text = FormatSize(v);
    absl::StatusOr<uint64_t> back = ParseSize(text);
    ASSERT_TRUE(back.ok()) << text;
    EXPECT_EQ(*back, v) << text;
  }
  EXPECT_EQ(FormatSize(2ull << 30), "2GiB");
  EXPECT_EQ(FormatSize(1536ull << 20), "1536MiB");
  EXPECT_EQ(FormatSize(100), "100B");
}

TEST(ParseDurationTest, AcceptsUnits) {
  EXPECT_EQ(*ParseDuration("30s"), absl::Seconds(30));
  EXPECT_EQ(*ParseDuration("500ms"), absl::Milliseconds(500));
  EXPECT_EQ(*ParseDuration("2m"), absl::Minutes(2));
  EXPECT_EQ(*ParseDuration("1h30m"), absl::Minutes(90));
  EXPECT_EQ(*ParseDuration("1.5s"), absl::Milliseconds(1500));
  EXPECT_EQ(*ParseDuration("250us"), absl::Microseconds(250));
  EXPECT_EQ(*ParseDuration("0"), absl::ZeroDuration());
}

TEST(ParseDurationTest, RejectsBareNumbersSignsAndInfinity) {
  for (const char* text : {"30", "-1s", "+1s", "inf", "abc", "", "10 s",
                           "1d"}) {
    EXPECT_THAT(ParseDuration(text),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         HasSubstr("expected a duration such as \"30s\"")))
        << text;
  }
}

TEST(SuggestTest, FindsNearMissesOnly) {
  const std::vector<absl::string_view> keys = {"models", "adapters", "router",
                                               "max_batched_tokens"};
  EXPECT_EQ(Suggest("modles", keys), "models");   // transposition
  EXPECT_EQ(Suggest("Models", keys), "models");   // case
  EXPECT_EQ(Suggest("adapter", keys), "adapters");
  EXPECT_EQ(Suggest("max_batch_tokens", keys), "max_batched_tokens");
  EXPECT_EQ(Suggest("routes", keys), "router");
  EXPECT_EQ(Suggest("xyz", keys), "");
  EXPECT_EQ(Suggest("completely_unrelated", keys), "");
}

}  // namespace
}  // namespace expertserve::server::config
