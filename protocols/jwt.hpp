#pragma once
// ES256 (ECDSA P-256 / SHA-256) JSON Web Tokens and the signing key ring.
// Why ES256: docs/decisions/0001-es256-access-tokens.md.
#include <cstdint>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace credo::protocols {

/// A signing key as stored (persistence/key_store.hpp). `private_pem` is PKCS#8 PEM.
struct signing_key_record {
  std::string kid;
  std::string private_pem;
  std::int64_t created_at = 0;  // unix seconds
  std::int64_t retired_at = 0;  // unix seconds; 0 while it is the active key
};

/// Generates a fresh P-256 key with a random kid.
signing_key_record generate_signing_key(std::int64_t now);

enum class jwt_error : std::uint8_t {
  none = 0,
  malformed,        // not three base64url parts, bad JSON, missing required header fields
  unsupported_alg,  // alg other than ES256 ("none", HS256, RS256, ... are all refused)
  unknown_kid,      // no key in the ring with that kid
  bad_signature,
  expired,          // exp <= now - leeway
  not_yet_valid,    // nbf or iat > now + leeway
  wrong_issuer,
  wrong_type,       // typ header absent or not "at+jwt" (RFC 9068)
  missing_claim,    // iss, sub, exp, iat or jti absent or of the wrong JSON type
};

std::string_view to_string(jwt_error e) noexcept;

struct jwt_verify_options {
  std::string issuer;       // required iss
  std::int64_t now = 0;     // unix seconds
  std::int64_t leeway = 0;  // seconds of clock skew tolerated
};

struct jwt_verify_result {
  jwt_error error = jwt_error::none;
  std::shared_ptr<const nlohmann::json> claims;  // set iff error == none
  explicit operator bool() const noexcept { return error == jwt_error::none; }
};

/// The set of keys this node signs and verifies with. Thread-safe: many concurrent readers
/// (sign, verify, jwks), rare writers (rotate, load). Holds parsed EVP keys.
class key_ring {
 public:
  key_ring();
  ~key_ring();
  key_ring(const key_ring&) = delete;
  key_ring& operator=(const key_ring&) = delete;

  /// Replaces the ring's contents. Exactly one record should have retired_at == 0 (the active
  /// key); if several do, the newest is active. Returns false if a PEM does not parse.
  bool load(const std::vector<signing_key_record>& records);

  /// kid of the active key, empty if the ring is empty.
  std::string active_kid() const;

  /// Signs `claims` with the active key. Header: {"alg":"ES256","typ":"at+jwt","kid":...}.
  /// Precondition: the ring is not empty.
  std::string sign(const nlohmann::json& claims) const;

  /// Checks structure, alg, kid, signature, exp/nbf/iat and issuer.
  jwt_verify_result verify(std::string_view token, const jwt_verify_options& options) const;

  /// RFC 7517 JWK Set of every key in the ring: kty EC, crv P-256, x, y, kid, alg ES256, use sig.
  nlohmann::json jwks() const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
  mutable std::shared_mutex mtx_;
};

}  // namespace credo::protocols
