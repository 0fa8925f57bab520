#include "protocols/password.hpp"

#include <argon2.h>

#include <map>
#include <mutex>
#include <stdexcept>
#include <tuple>

#include "protocols/crypto.hpp"

namespace credo::protocols {

namespace {

constexpr std::size_t salt_len = 16;
constexpr std::size_t hash_len = 32;

}  // namespace

std::string hash_password(std::string_view password, const argon2_params& params) {
  const std::string salt = random_bytes(salt_len);
  const std::size_t encoded_len = argon2_encodedlen(params.t_cost, params.m_cost_kib,
                                                    params.parallelism, salt_len, hash_len,
                                                    Argon2_id);
  std::string encoded(encoded_len, '\0');
  const int rc = argon2id_hash_encoded(params.t_cost, params.m_cost_kib, params.parallelism,
                                       password.data(), password.size(), salt.data(),
                                       salt.size(), hash_len, encoded.data(), encoded.size());
  if (rc != ARGON2_OK) {
    // Only bad parameters (configuration) or out-of-memory get here; neither is a client error.
    throw std::runtime_error(std::string("argon2id_hash_encoded: ") + argon2_error_message(rc));
  }
  // argon2_encodedlen counts the terminating NUL; keep only the text.
  encoded.resize(encoded.find('\0'));
  return encoded;
}

bool verify_password(std::string_view password, std::string_view encoded) {
  // argon2id_verify reads a C string: an embedded NUL would silently truncate the hash.
  if (encoded.find('\0') != std::string_view::npos) return false;
  const std::string encoded_z(encoded);
  // libargon2 decodes the hash, recomputes and compares in constant time; any malformed input
  // comes back as a decoding error, which is simply "no match".
  return argon2id_verify(encoded_z.c_str(), password.data(), password.size()) == ARGON2_OK;
}

const std::string& dummy_password_hash(const argon2_params& params) {
  using key = std::tuple<std::uint32_t, std::uint32_t, std::uint32_t>;
  static std::mutex mtx;
  // std::map never moves its nodes, so the returned reference stays valid for the process.
  static std::map<key, std::string> cache;
  const key k{params.t_cost, params.m_cost_kib, params.parallelism};
  {
    std::lock_guard lock(mtx);
    if (auto it = cache.find(k); it != cache.end()) return it->second;
  }
  // Hash outside the lock: a first call for one params value must not stall the others. Two
  // racing first calls both hash; the first insert wins and both return the same string.
  std::string hash = hash_password(random_token(), params);
  std::lock_guard lock(mtx);
  return cache.try_emplace(k, std::move(hash)).first->second;
}

}  // namespace credo::protocols
