#pragma once
// Small, dependency-free (OpenSSL only) cryptographic helpers. All functions are thread-safe.
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace credo::protocols {

/// `n` bytes from the OpenSSL CSPRNG. Aborts the process if the CSPRNG fails (never returns
/// predictable bytes).
std::string random_bytes(std::size_t n);

/// base64url (no padding) of `bytes` random bytes; default 256 bits.
std::string random_token(std::size_t bytes = 32);

/// RFC 4648 section 5 without padding.
std::string base64url_encode(std::string_view data);
/// Strict: rejects '=' padding, characters outside the alphabet, and impossible lengths.
std::optional<std::string> base64url_decode(std::string_view text);

/// RFC 4648 section 4 with padding (HTTP Basic auth).
std::string base64_encode(std::string_view data);
std::optional<std::string> base64_decode(std::string_view text);

/// Raw 32-byte SHA-256 digest.
std::string sha256(std::string_view data);
/// Lower-case hex of SHA-256; used as the stored form of refresh tokens and codes.
std::string sha256_hex(std::string_view data);
/// Raw HMAC-SHA-256.
std::string hmac_sha256(std::string_view key, std::string_view data);

/// Compares in time that depends only on the lengths.
bool constant_time_equal(std::string_view a, std::string_view b) noexcept;

/// AES-256-GCM with a random 96-bit nonce. Returns nonce (12) || ciphertext || tag (16);
/// `associated_data` is authenticated, not stored (the caller binds the ciphertext to its
/// context, e.g. a key id). nullopt when `key` is not 32 bytes or OpenSSL fails.
std::optional<std::string> aead_seal(std::string_view key, std::string_view plaintext,
                                     std::string_view associated_data);
/// The same with a caller-chosen 96-bit nonce (`nonce` of 12 bytes), which must never repeat
/// under one key: for counters (cluster links seal one message per sequence number).
std::optional<std::string> aead_seal(std::string_view key, std::string_view plaintext,
                                     std::string_view associated_data, std::string_view nonce);
/// Inverse of aead_seal. nullopt when the key is not 32 bytes, the input is too short, or
/// authentication fails (wrong key, tampered data, other associated data).
std::optional<std::string> aead_open(std::string_view key, std::string_view sealed,
                                     std::string_view associated_data);

/// Random (version 4) UUID, lower-case canonical form.
std::string uuid_v4();

/// RFC 7636: a verifier is 43..128 chars of [A-Za-z0-9-._~].
bool pkce_valid_verifier(std::string_view verifier) noexcept;
/// An S256 challenge is exactly 43 base64url characters.
bool pkce_valid_challenge(std::string_view challenge) noexcept;
/// true iff BASE64URL(SHA256(verifier)) == challenge (constant time) and both are well-formed.
bool pkce_s256_matches(std::string_view verifier, std::string_view challenge);

}  // namespace credo::protocols
