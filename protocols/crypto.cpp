#include "protocols/crypto.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <algorithm>
#include <array>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>

namespace credo::protocols {

namespace {

constexpr char b64url_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
constexpr char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

constexpr std::uint8_t invalid = 0xFF;

constexpr std::array<std::uint8_t, 256> make_table(const char* alphabet) {
  std::array<std::uint8_t, 256> t{};
  for (auto& v : t) v = invalid;
  for (std::uint8_t i = 0; i < 64; ++i) t[static_cast<unsigned char>(alphabet[i])] = i;
  return t;
}

constexpr auto b64url_table = make_table(b64url_alphabet);
constexpr auto b64_table = make_table(b64_alphabet);

std::string encode(std::string_view data, const char* alphabet, bool pad) {
  std::string out;
  out.reserve((data.size() + 2) / 3 * 4);
  const auto* p = reinterpret_cast<const unsigned char*>(data.data());
  std::size_t i = 0;
  for (; i + 3 <= data.size(); i += 3) {
    const std::uint32_t v = (std::uint32_t{p[i]} << 16) | (std::uint32_t{p[i + 1]} << 8) | p[i + 2];
    out.push_back(alphabet[(v >> 18) & 63]);
    out.push_back(alphabet[(v >> 12) & 63]);
    out.push_back(alphabet[(v >> 6) & 63]);
    out.push_back(alphabet[v & 63]);
  }
  const std::size_t rest = data.size() - i;
  if (rest == 1) {
    const std::uint32_t v = std::uint32_t{p[i]} << 16;
    out.push_back(alphabet[(v >> 18) & 63]);
    out.push_back(alphabet[(v >> 12) & 63]);
    if (pad) out.append("==");
  } else if (rest == 2) {
    const std::uint32_t v = (std::uint32_t{p[i]} << 16) | (std::uint32_t{p[i + 1]} << 8);
    out.push_back(alphabet[(v >> 18) & 63]);
    out.push_back(alphabet[(v >> 12) & 63]);
    out.push_back(alphabet[(v >> 6) & 63]);
    if (pad) out.push_back('=');
  }
  return out;
}

// Decodes unpadded text. Rejects a length of 1 mod 4 (cannot come from any input) and non-zero
// unused bits in the last character, so every byte string has exactly one accepted encoding:
// a token cannot be altered into a different string that decodes to the same bytes.
std::optional<std::string> decode_unpadded(std::string_view text,
                                           const std::array<std::uint8_t, 256>& table) {
  if (text.size() % 4 == 1) return std::nullopt;
  std::string out;
  out.reserve(text.size() / 4 * 3 + 2);
  std::uint32_t acc = 0;
  int bits = 0;
  for (const char c : text) {
    const std::uint8_t v = table[static_cast<unsigned char>(c)];
    if (v == invalid) return std::nullopt;
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  if (bits > 0 && (acc & ((1u << bits) - 1)) != 0) return std::nullopt;
  return out;
}

}  // namespace

std::string random_bytes(std::size_t n) {
  std::string out(n, '\0');
  std::size_t done = 0;
  while (done < n) {
    const std::size_t chunk = std::min<std::size_t>(n - done, INT_MAX);
    if (RAND_bytes(reinterpret_cast<unsigned char*>(out.data() + done),
                   static_cast<int>(chunk)) != 1) {
      // Returning predictable bytes would mint guessable tokens; dying is the safe failure.
      std::fputs("credo: RAND_bytes failed, aborting\n", stderr);
      std::abort();
    }
    done += chunk;
  }
  return out;
}

std::string random_token(std::size_t bytes) { return base64url_encode(random_bytes(bytes)); }

std::string base64url_encode(std::string_view data) {
  return encode(data, b64url_alphabet, false);
}

std::optional<std::string> base64url_decode(std::string_view text) {
  return decode_unpadded(text, b64url_table);
}

std::string base64_encode(std::string_view data) { return encode(data, b64_alphabet, true); }

std::optional<std::string> base64_decode(std::string_view text) {
  if (text.size() % 4 != 0) return std::nullopt;
  std::size_t pad = 0;
  if (!text.empty() && text.back() == '=') {
    pad = (text.size() >= 2 && text[text.size() - 2] == '=') ? 2 : 1;
  }
  // Any '=' left in the body is rejected by the table lookup.
  return decode_unpadded(text.substr(0, text.size() - pad), b64_table);
}

std::string sha256(std::string_view data) {
  std::string out(32, '\0');
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), reinterpret_cast<unsigned char*>(out.data()), &len,
                 EVP_sha256(), nullptr) != 1 ||
      len != 32) {
    std::fputs("credo: SHA-256 failed, aborting\n", stderr);
    std::abort();
  }
  return out;
}

std::string sha256_hex(std::string_view data) {
  static constexpr char hex[] = "0123456789abcdef";
  const std::string digest = sha256(data);
  std::string out;
  out.reserve(64);
  for (const char c : digest) {
    const auto b = static_cast<unsigned char>(c);
    out.push_back(hex[b >> 4]);
    out.push_back(hex[b & 15]);
  }
  return out;
}

std::string hmac_sha256(std::string_view key, std::string_view data) {
  std::string out(32, '\0');
  unsigned int len = 0;
  // HMAC() rejects a null key pointer even when the length is zero.
  static const unsigned char empty_key = 0;
  const void* key_ptr = key.empty() ? &empty_key : static_cast<const void*>(key.data());
  if (key.size() > INT_MAX ||
      HMAC(EVP_sha256(), key_ptr, static_cast<int>(key.size()),
           reinterpret_cast<const unsigned char*>(data.data()), data.size(),
           reinterpret_cast<unsigned char*>(out.data()), &len) == nullptr ||
      len != 32) {
    std::fputs("credo: HMAC-SHA-256 failed, aborting\n", stderr);
    std::abort();
  }
  return out;
}

bool constant_time_equal(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  if (a.empty()) return true;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

namespace {

constexpr std::size_t gcm_key_size = 32;
constexpr std::size_t gcm_nonce_size = 12;
constexpr std::size_t gcm_tag_size = 16;

struct cipher_ctx_deleter {
  void operator()(EVP_CIPHER_CTX* c) const noexcept { EVP_CIPHER_CTX_free(c); }
};
using cipher_ctx = std::unique_ptr<EVP_CIPHER_CTX, cipher_ctx_deleter>;

const unsigned char* bytes(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

unsigned char* bytes(std::string& s) { return reinterpret_cast<unsigned char*>(s.data()); }

// Feeds the associated data to an initialised context (encrypt and decrypt alike).
bool gcm_aad(EVP_CIPHER_CTX* ctx, bool encrypt, std::string_view aad) {
  if (aad.empty()) return true;
  if (aad.size() > INT_MAX) return false;
  int len = 0;
  const auto n = static_cast<int>(aad.size());
  return (encrypt ? EVP_EncryptUpdate(ctx, nullptr, &len, bytes(aad), n)
                  : EVP_DecryptUpdate(ctx, nullptr, &len, bytes(aad), n)) == 1;
}

}  // namespace

std::optional<std::string> aead_seal(std::string_view key, std::string_view plaintext,
                                     std::string_view associated_data) {
  return aead_seal(key, plaintext, associated_data, random_bytes(gcm_nonce_size));
}

std::optional<std::string> aead_seal(std::string_view key, std::string_view plaintext,
                                     std::string_view associated_data, std::string_view nonce) {
  if (key.size() != gcm_key_size || nonce.size() != gcm_nonce_size
      || plaintext.size() > INT_MAX - gcm_nonce_size - gcm_tag_size)
    return std::nullopt;
  std::string out{nonce};
  out.resize(gcm_nonce_size + plaintext.size() + gcm_tag_size);
  cipher_ctx ctx{EVP_CIPHER_CTX_new()};
  int len = 0;
  int final_len = 0;
  if (!ctx ||
      EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, bytes(key), bytes(out)) != 1 ||
      !gcm_aad(ctx.get(), true, associated_data) ||
      EVP_EncryptUpdate(ctx.get(), bytes(out) + gcm_nonce_size, &len, bytes(plaintext),
                        static_cast<int>(plaintext.size())) != 1 ||
      EVP_EncryptFinal_ex(ctx.get(), bytes(out) + gcm_nonce_size + len, &final_len) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, static_cast<int>(gcm_tag_size),
                          bytes(out) + gcm_nonce_size + plaintext.size()) != 1)
    return std::nullopt;
  return out;
}

std::optional<std::string> aead_open(std::string_view key, std::string_view sealed,
                                     std::string_view associated_data) {
  if (key.size() != gcm_key_size || sealed.size() < gcm_nonce_size + gcm_tag_size ||
      sealed.size() > INT_MAX)
    return std::nullopt;
  const auto body = sealed.substr(gcm_nonce_size, sealed.size() - gcm_nonce_size - gcm_tag_size);
  std::string tag{sealed.substr(sealed.size() - gcm_tag_size)};  // ctrl wants a mutable buffer
  std::string out(body.size(), '\0');
  cipher_ctx ctx{EVP_CIPHER_CTX_new()};
  int len = 0;
  int final_len = 0;
  if (!ctx ||
      EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, bytes(key), bytes(sealed)) != 1 ||
      !gcm_aad(ctx.get(), false, associated_data) ||
      EVP_DecryptUpdate(ctx.get(), bytes(out), &len, bytes(body),
                        static_cast<int>(body.size())) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, static_cast<int>(gcm_tag_size),
                          tag.data()) != 1 ||
      EVP_DecryptFinal_ex(ctx.get(), bytes(out) + len, &final_len) != 1) {
    OPENSSL_cleanse(out.data(), out.size());  // never hand back unauthenticated plaintext
    return std::nullopt;
  }
  return out;
}

std::string uuid_v4() {
  std::string b = random_bytes(16);
  b[6] = static_cast<char>((static_cast<unsigned char>(b[6]) & 0x0F) | 0x40);
  b[8] = static_cast<char>((static_cast<unsigned char>(b[8]) & 0x3F) | 0x80);
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  out.reserve(36);
  for (std::size_t i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out.push_back('-');
    const auto v = static_cast<unsigned char>(b[i]);
    out.push_back(hex[v >> 4]);
    out.push_back(hex[v & 15]);
  }
  return out;
}

bool pkce_valid_verifier(std::string_view verifier) noexcept {
  if (verifier.size() < 43 || verifier.size() > 128) return false;
  for (const char c : verifier) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '.' || c == '_' || c == '~';
    if (!ok) return false;
  }
  return true;
}

bool pkce_valid_challenge(std::string_view challenge) noexcept {
  if (challenge.size() != 43) return false;
  for (const char c : challenge) {
    if (b64url_table[static_cast<unsigned char>(c)] == invalid) return false;
  }
  return true;
}

bool pkce_s256_matches(std::string_view verifier, std::string_view challenge) {
  if (!pkce_valid_verifier(verifier) || !pkce_valid_challenge(challenge)) return false;
  return constant_time_equal(base64url_encode(sha256(verifier)), challenge);
}

}  // namespace credo::protocols
