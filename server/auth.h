// Bearer-token authentication with per-token permissions. Checked in the
// handlers (not an AuthMetadataProcessor, which gRPC runs only over TLS), so
// it works with and without TLS. Secrets are compared in constant time (over
// SHA-256 digests, so neither content nor length leaks through timing) and
// never logged: only a token's configured name is.
#ifndef EXPERTSERVE_SERVER_AUTH_H_
#define EXPERTSERVE_SERVER_AUTH_H_

#include <array>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/status/statusor.h"
#include "server/config/config.h"

namespace expertserve::server {

enum class Permission { kInference, kAdmin };

// Immutable after construction: thread-safe.
class Authenticator {
 public:
  struct Token {
    std::string name;
    std::string secret;
    bool inference = false;
    bool admin = false;
  };
  // Disabled (every call allowed) when `tokens` is empty.
  explicit Authenticator(std::vector<Token> tokens);

  // Reads each token's secret from its file (first line, trailing
  // whitespace stripped) or environment variable. kInvalidArgument /
  // kNotFound name the token (never print the secret).
  static absl::StatusOr<Authenticator> FromConfig(const config::AuthConfig& auth);

  bool enabled() const { return !tokens_.empty(); }

  // `authorization`: the "authorization" metadata value, if present.
  // Returns the token's name. kUnauthenticated for a missing, malformed or
  // unknown token; kPermissionDenied if it lacks `needed`.
  absl::StatusOr<std::string> Check(std::optional<absl::string_view> authorization,
                                    Permission needed) const;

 private:
  struct Entry {
    std::string name;
    std::array<unsigned char, 32> digest;
    bool inference;
    bool admin;
  };
  std::vector<Entry> tokens_;
};

}  // namespace expertserve::server

#endif  // EXPERTSERVE_SERVER_AUTH_H_
