#include "server/auth.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <cstdlib>
#include <fstream>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace expertserve::server {
namespace {

std::array<unsigned char, 32> Digest(absl::string_view s) {
  std::array<unsigned char, 32> d;
  SHA256(reinterpret_cast<const unsigned char*>(s.data()), s.size(), d.data());
  return d;
}

}  // namespace

Authenticator::Authenticator(std::vector<Token> tokens) {
  for (Token& t : tokens) {
    tokens_.push_back({std::move(t.name), Digest(t.secret), t.inference, t.admin});
    // Overwrite the plaintext copy we were handed.
    OPENSSL_cleanse(t.secret.data(), t.secret.size());
  }
}

absl::StatusOr<Authenticator> Authenticator::FromConfig(const config::AuthConfig& auth) {
  std::vector<Token> tokens;
  for (const config::AuthToken& t : auth.tokens) {
    Token token;
    token.name = t.name;
    if (!t.token_file.empty()) {
      std::ifstream in(t.token_file);
      if (!in) {
        return absl::NotFoundError(absl::StrCat("auth token '", t.name,
                                                "': cannot read token_file ",
                                                t.token_file));
      }
      std::getline(in, token.secret);
    } else if (!t.token_env.empty()) {
      const char* v = std::getenv(t.token_env.c_str());
      if (v == nullptr) {
        return absl::NotFoundError(absl::StrCat("auth token '", t.name,
                                                "': environment variable ",
                                                t.token_env, " is not set"));
      }
      token.secret = v;
    }
    token.secret = std::string(absl::StripTrailingAsciiWhitespace(token.secret));
    if (token.secret.size() < 16) {
      return absl::InvalidArgumentError(absl::StrCat(
          "auth token '", t.name, "': the secret is shorter than 16 bytes"));
    }
    for (config::Permission p : t.permissions) {
      if (p == config::Permission::kInference) token.inference = true;
      if (p == config::Permission::kAdmin) token.admin = true;
    }
    tokens.push_back(std::move(token));
  }
  return Authenticator(std::move(tokens));
}

absl::StatusOr<std::string> Authenticator::Check(
    std::optional<absl::string_view> authorization, Permission needed) const {
  if (tokens_.empty()) return std::string();
  if (!authorization.has_value()) {
    return absl::UnauthenticatedError(
        "missing bearer token: send metadata 'authorization: Bearer <token>'");
  }
  absl::string_view v = *authorization;
  if (!absl::StartsWithIgnoreCase(v, "bearer ")) {
    return absl::UnauthenticatedError(
        "malformed authorization metadata: expected 'Bearer <token>'");
  }
  v.remove_prefix(7);
  const std::array<unsigned char, 32> d = Digest(v);
  // Compare against every token (no early exit) so timing does not reveal
  // which, if any, matched.
  const Entry* match = nullptr;
  for (const Entry& e : tokens_) {
    if (CRYPTO_memcmp(d.data(), e.digest.data(), d.size()) == 0) match = &e;
  }
  if (match == nullptr) return absl::UnauthenticatedError("invalid bearer token");
  const bool allowed = needed == Permission::kAdmin ? match->admin : match->inference;
  if (!allowed) {
    return absl::PermissionDeniedError(absl::StrCat(
        "token '", match->name, "' lacks the '",
        needed == Permission::kAdmin ? "admin" : "inference", "' permission"));
  }
  return match->name;
}

}  // namespace expertserve::server
