#pragma once
// Bounded cache of verified access tokens for the introspection fast path: a hit skips the
// signature check. Thread-safe (sharded locks). Revocation is NOT checked here: callers check
// the revocation set on every hit.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

namespace credo::protocols {

class verified_token_cache {
 public:
  explicit verified_token_cache(std::size_t capacity);
  ~verified_token_cache();

  /// Claims of a cached token, nullptr if absent or if exp <= now.
  std::shared_ptr<const nlohmann::json> find(std::string_view token, std::int64_t now) const;
  /// Caches `claims` until `exp`. When full, evicts some entries (expired ones first).
  void insert(std::string_view token, std::shared_ptr<const nlohmann::json> claims,
              std::int64_t exp);
  /// Drops everything (after key rotation removes a key, for instance).
  void clear();
  std::size_t size() const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace credo::protocols
