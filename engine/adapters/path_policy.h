// Where adapters may be loaded from: the server resolves every adapter
// directory a client or config names through ResolveAdapterDir, so an Admin
// RPC cannot make the server read files outside the configured roots.
#ifndef EXPERTSERVE_ENGINE_ADAPTERS_PATH_POLICY_H_
#define EXPERTSERVE_ENGINE_ADAPTERS_PATH_POLICY_H_

#include <filesystem>
#include <span>

#include "absl/status/statusor.h"

namespace expertserve::engine::adapters {

// Resolves `requested` (absolute, or relative to the first root) to the
// canonical path of an existing directory that lies inside one of `roots`
// after every symlink and ".." is resolved (so neither traversal nor a
// symlink pointing out of a root escapes). Errors: kInvalidArgument for an
// empty path or no configured roots, kPermissionDenied when the resolved
// directory is outside every root, kNotFound when it does not exist or is not
// a directory. Pure function of the filesystem: thread-safe.
absl::StatusOr<std::filesystem::path> ResolveAdapterDir(
    std::span<const std::filesystem::path> roots,
    const std::filesystem::path& requested);

}  // namespace expertserve::engine::adapters

#endif  // EXPERTSERVE_ENGINE_ADAPTERS_PATH_POLICY_H_
