#pragma once
// Argon2id password hashing (libargon2). Hashing is CPU-bound (~30 ms with the defaults):
// call it from a thread that may block (the hasher actors), never from an I/O thread.
#include <cstdint>
#include <string>
#include <string_view>

namespace credo::protocols {

struct argon2_params {
  std::uint32_t t_cost = 2;           // iterations (OWASP)
  std::uint32_t m_cost_kib = 19456;   // 19 MiB (OWASP)
  std::uint32_t parallelism = 1;
};

/// PHC-encoded `$argon2id$v=19$m=...,t=...,p=...$salt$hash` with a 16-byte random salt.
std::string hash_password(std::string_view password, const argon2_params& params = {});

/// Verifies against an encoded hash; false for a malformed hash. Constant-time compare inside.
bool verify_password(std::string_view password, std::string_view encoded);

/// A valid encoded hash of a random password with `params`, computed once per params value.
/// Verifying against it lets an unknown email cost the same as a wrong password.
const std::string& dummy_password_hash(const argon2_params& params = {});

}  // namespace credo::protocols
