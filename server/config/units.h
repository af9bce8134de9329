// Human-readable sizes and durations for the server config ("2GiB", "30s").
// Thread-safe: free functions without state.
#ifndef EXPERTSERVE_SERVER_CONFIG_UNITS_H_
#define EXPERTSERVE_SERVER_CONFIG_UNITS_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace expertserve::server::config {

// Parses a byte size: a plain non-negative integer ("1048576"), or a number
// (integer or decimal fraction) followed by an optional space and a unit:
//   binary  KiB MiB GiB TiB (powers of 1024), decimal KB MB GB TB (powers of
//   1000), and B (bytes).
// Units are case-sensitive. The value must be a whole number of bytes
// ("1.5GiB" is fine, "1.5B" is not) and fit in 64 bits.
// Errors: kInvalidArgument with a message naming the accepted forms.
absl::StatusOr<uint64_t> ParseSize(std::string_view text);

// Formats bytes with the largest binary unit that divides it exactly
// ("2GiB", "1536MiB", "100B"). ParseSize(FormatSize(x)) == x.
std::string FormatSize(uint64_t bytes);

// Parses a non-negative, finite duration: a sequence of decimal numbers each
// with a unit ns, us, ms, s, m or h ("30s", "500ms", "2m", "1h30m", "1.5s");
// "0" alone is zero. Errors: kInvalidArgument.
absl::StatusOr<absl::Duration> ParseDuration(std::string_view text);

}  // namespace expertserve::server::config

#endif  // EXPERTSERVE_SERVER_CONFIG_UNITS_H_
