#include "engine/adapters/path_policy.h"

#include <string>
#include <system_error>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace expertserve::engine::adapters {
namespace {

// True when `path` equals `root` or lies below it (both canonical).
bool IsWithin(const std::filesystem::path& path,
              const std::filesystem::path& root) {
  auto p = path.begin();
  for (auto r = root.begin(); r != root.end(); ++r, ++p) {
    if (r->empty()) continue;  // a trailing separator
    if (p == path.end() || *p != *r) return false;
  }
  return true;
}

}  // namespace

absl::StatusOr<std::filesystem::path> ResolveAdapterDir(
    std::span<const std::filesystem::path> roots,
    const std::filesystem::path& requested) {
  if (requested.empty()) {
    return absl::InvalidArgumentError("adapter path is empty");
  }
  if (roots.empty()) {
    return absl::InvalidArgumentError(
        "no adapter roots are configured: adapters cannot be loaded from paths");
  }
  std::error_code ec;
  std::vector<std::filesystem::path> canonical_roots;
  std::vector<std::string> shown;
  for (const std::filesystem::path& root : roots) {
    std::filesystem::path c = std::filesystem::weakly_canonical(root, ec);
    if (ec) continue;
    shown.push_back(c.string());
    canonical_roots.push_back(std::move(c));
  }
  const std::filesystem::path joined =
      requested.is_absolute() ? requested : roots.front() / requested;
  // canonical() resolves every symlink and "..", and fails if absent.
  const std::filesystem::path resolved = std::filesystem::canonical(joined, ec);
  if (ec) {
    // Do not reveal whether a path outside the roots exists.
    const std::filesystem::path lexical = joined.lexically_normal();
    bool inside = false;
    for (const auto& r : canonical_roots) inside |= IsWithin(lexical, r);
    if (!inside) {
      return absl::PermissionDeniedError(absl::StrCat(
          "adapter path ", requested.string(),
          " is outside the adapter roots [", absl::StrJoin(shown, ", "), "]"));
    }
    return absl::NotFoundError(absl::StrCat("adapter directory ",
                                            requested.string(),
                                            " does not exist"));
  }
  bool inside = false;
  for (const auto& r : canonical_roots) inside |= IsWithin(resolved, r);
  if (!inside) {
    return absl::PermissionDeniedError(absl::StrCat(
        "adapter path ", requested.string(), " resolves to ", resolved.string(),
        ", outside the adapter roots [", absl::StrJoin(shown, ", "), "]"));
  }
  if (!std::filesystem::is_directory(resolved, ec)) {
    return absl::NotFoundError(absl::StrCat(
        "adapter path ", requested.string(), " is not a directory"));
  }
  return resolved;
}

}  // namespace expertserve::engine::adapters
