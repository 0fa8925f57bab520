#pragma once
// Bounded cache of verified access tokens for the introspection fast path: a hit skips the
// signature check. Thread-safe (sharded locks). Revocation is NOT checked here: callers check
// the revocation set on every hit.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

#include <string>

#include <nlohmann/json.hpp>

namespace credo::protocols {

/// What the cache keeps per token: the verified claims and, computed once, the RFC 7662
/// response body for the token while it is active.
struct verified_token {
  nlohmann::json claims;
  std::string introspection;
};

class verified_token_cache {
 public:
  explicit verified_token_cache(std::size_t capacity);
  ~verified_token_cache();

  /// A cached token, nullptr if absent or if exp <= now.
  std::shared_ptr<const verified_token> find(std::string_view token, std::int64_t now) const;
  /// Caches `verified` until `exp`. When full, evicts some entries (expired ones first).
  void insert(std::string_view token, std::shared_ptr<const verified_token> verified,
              std::int64_t exp);
  /// Drops everything (after key rotation removes a key, for instance).
  void clear();
  std::size_t size() const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace credo::protocols
