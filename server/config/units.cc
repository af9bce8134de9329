#include "server/config/units.h"

#include <array>
#include <cctype>
#include <cstdint>
#include <string>
#include "absl/strings/string_view.h"
#include <utility>

#include "absl/numeric/int128.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "server/config/diagnostics.h"

namespace expertserve::server::config {
namespace {

constexpr absl::string_view kSizeHelp =
    "expected a size such as \"512MiB\", \"2GiB\", \"1.5GiB\", \"64KiB\", "
    "\"10GB\" or a plain byte count (units: B, KiB, MiB, GiB, TiB = powers of "
    "1024; KB, MB, GB, TB = powers of 1000)";

struct Unit {
  absl::string_view name;
  uint64_t multiplier;
};

constexpr uint64_t kKi = 1024;
constexpr std::array<Unit, 9> kUnits = {{
    {"B", 1},
    {"KiB", kKi},
    {"MiB", kKi * kKi},
    {"GiB", kKi * kKi * kKi},
    {"TiB", kKi * kKi * kKi * kKi},
    {"KB", 1000},
    {"MB", 1000 * 1000},
    {"GB", 1000ull * 1000 * 1000},
    {"TB", 1000ull * 1000 * 1000 * 1000},
}};

absl::Status SizeError(absl::string_view text, absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat(why, "; ", kSizeHelp, ", found ", Quote(text)));
}

}  // namespace

absl::StatusOr<uint64_t> ParseSize(std::string_view std_text) {
  absl::string_view text(std_text.data(), std_text.size());
  const absl::string_view original = text;
  text = absl::StripAsciiWhitespace(text);
  if (text.empty()) return SizeError(original, "empty size");
  if (text[0] == '-') return SizeError(original, "a size cannot be negative");

  // Split "<digits>[.<digits>][ ]<unit>". Exact integer arithmetic (128-bit)
  // keeps "1.5GiB" exact where a double would round large values.
  size_t i = 0;
  absl::string_view int_digits, frac_digits;
  while (i < text.size() && absl::ascii_isdigit(text[i])) ++i;
  int_digits = text.substr(0, i);
  if (i < text.size() && text[i] == '.') {
    const size_t start = ++i;
    while (i < text.size() && absl::ascii_isdigit(text[i])) ++i;
    frac_digits = text.substr(start, i - start);
  }
  if (int_digits.empty() && frac_digits.empty()) {
    return SizeError(original, "no number");
  }
  absl::string_view unit_text = absl::StripLeadingAsciiWhitespace(text.substr(i));
  uint64_t multiplier = 1;
  if (!unit_text.empty()) {
    bool found = false;
    for (const Unit& unit : kUnits) {
      if (unit.name == unit_text) {
        multiplier = unit.multiplier;
        found = true;
        break;
      }
    }
    if (!found) {
      return SizeError(original,
                       absl::StrCat("unknown unit \"", unit_text, "\""));
    }
  }
  if (int_digits.size() > 20 || frac_digits.size() > 18) {
    return SizeError(original, "too many digits");
  }

  absl::uint128 value = 0;
  for (char c : int_digits) value = value * 10 + static_cast<uint64_t>(c - '0');
  absl::uint128 scaled = value * multiplier;
  // Fraction: frac / 10^n * multiplier must be a whole number of bytes.
  absl::uint128 frac = 0, denom = 1;
  for (char c : frac_digits) {
    frac = frac * 10 + static_cast<uint64_t>(c - '0');
    denom *= 10;
  }
  const absl::uint128 frac_scaled = frac * multiplier;
  if (frac_scaled % denom != 0) {
    return SizeError(original, "not a whole number of bytes");
  }
  scaled += frac_scaled / denom;
  if (scaled > absl::uint128(UINT64_MAX)) {
    return SizeError(original, "too large (must fit in 64 bits)");
  }
  return absl::Uint128Low64(scaled);
}

std::string FormatSize(uint64_t bytes) {
  static constexpr std::array<std::pair<absl::string_view, uint64_t>, 4> kBinary =
      {{{"TiB", kKi * kKi * kKi * kKi},
        {"GiB", kKi * kKi * kKi},
        {"MiB", kKi * kKi},
        {"KiB", kKi}}};
  if (bytes != 0) {
    for (const auto& [name, mult] : kBinary) {
      if (bytes % mult == 0) return absl::StrCat(bytes / mult, name);
    }
  }
  return absl::StrCat(bytes, "B");
}

absl::StatusOr<absl::Duration> ParseDuration(std::string_view std_text) {
  absl::string_view text(std_text.data(), std_text.size());
  const absl::string_view stripped = absl::StripAsciiWhitespace(text);
  absl::Duration d;
  // absl::ParseDuration also accepts "inf" and signs; a config never wants
  // either, and a bare number other than "0" is ambiguous (seconds? ms?).
  if (stripped.empty() || stripped[0] == '-' || stripped[0] == '+' ||
      !absl::ParseDuration(stripped, &d) || d == absl::InfiniteDuration()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "expected a duration such as \"30s\", \"500ms\", \"2m\" or \"1h30m\" "
        "(units: ns, us, ms, s, m, h), found ",
        Quote(text)));
  }
  return d;
}

}  // namespace expertserve::server::config
