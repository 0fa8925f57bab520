#include "protocols/jwt.hpp"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <algorithm>
#include <cctype>
#include <limits>
#include <mutex>
#include <stdexcept>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "protocols/crypto.hpp"

namespace credo::protocols {

namespace {

using json = nlohmann::json;

// Far above any token we mint; bounds the work an unauthenticated caller can make us do.
constexpr std::size_t max_token_size = 16 * 1024;
constexpr std::size_t coord_size = 32;  // P-256 field element
constexpr std::size_t jose_sig_size = 2 * coord_size;

struct pkey_deleter {
  void operator()(EVP_PKEY* p) const noexcept { EVP_PKEY_free(p); }
};
struct md_ctx_deleter {
  void operator()(EVP_MD_CTX* p) const noexcept { EVP_MD_CTX_free(p); }
};
struct bio_deleter {
  void operator()(BIO* p) const noexcept { BIO_free(p); }
};
struct bn_deleter {
  void operator()(BIGNUM* p) const noexcept { BN_free(p); }
};
struct ecdsa_sig_deleter {
  void operator()(ECDSA_SIG* p) const noexcept { ECDSA_SIG_free(p); }
};
using pkey_ptr = std::unique_ptr<EVP_PKEY, pkey_deleter>;
using md_ctx_ptr = std::unique_ptr<EVP_MD_CTX, md_ctx_deleter>;
using bio_ptr = std::unique_ptr<BIO, bio_deleter>;
using bn_ptr = std::unique_ptr<BIGNUM, bn_deleter>;
using ecdsa_sig_ptr = std::unique_ptr<ECDSA_SIG, ecdsa_sig_deleter>;

struct parsed_key {
  std::string kid;
  pkey_ptr pkey;
  std::string x;  // raw big-endian public coordinates, left-padded to 32 bytes
  std::string y;
  std::string header_b64;  // the signing header for this kid, encoded once
  // Initialised once and only ever copied (EVP_MD_CTX_copy_ex reads its source): a fresh
  // EVP_Digest*Init per call re-fetches the algorithms through OpenSSL 3.0's global method store
  // and the key's operation cache, both behind locks that every signing thread would contend.
  md_ctx_ptr sign_template;
  md_ctx_ptr verify_template;
  std::int64_t created_at = 0;
  std::int64_t retired_at = 0;
};

std::string pem_of(EVP_PKEY* pkey) {
  bio_ptr bio(BIO_new(BIO_s_mem()));
  // PEM_write_bio_PrivateKey emits unencrypted PKCS#8 ("BEGIN PRIVATE KEY") in OpenSSL 3.
  if (!bio || PEM_write_bio_PrivateKey(bio.get(), pkey, nullptr, nullptr, 0, nullptr, nullptr) != 1)
    throw std::runtime_error("PEM_write_bio_PrivateKey failed");
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(len));
}

bool coordinate(EVP_PKEY* pkey, const char* name, std::string& out) {
  BIGNUM* raw = nullptr;
  if (EVP_PKEY_get_bn_param(pkey, name, &raw) != 1) return false;
  bn_ptr bn(raw);
  out.assign(coord_size, '\0');
  return BN_bn2binpad(bn.get(), reinterpret_cast<unsigned char*>(out.data()),
                      static_cast<int>(coord_size)) == static_cast<int>(coord_size);
}

// Parses and checks one record: only P-256 EC keys are acceptable for ES256.
std::optional<parsed_key> parse_record(const signing_key_record& r) {
  if (r.kid.empty() || r.private_pem.size() > std::numeric_limits<int>::max()) return std::nullopt;
  bio_ptr bio(BIO_new_mem_buf(r.private_pem.data(), static_cast<int>(r.private_pem.size())));
  if (!bio) return std::nullopt;
  pkey_ptr pkey(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (!pkey || !EVP_PKEY_is_a(pkey.get(), "EC")) return std::nullopt;
  char group[64] = {};
  std::size_t group_len = 0;
  if (EVP_PKEY_get_utf8_string_param(pkey.get(), OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group,
                                     &group_len) != 1 ||
      std::string_view(group, group_len) != "prime256v1")
    return std::nullopt;
  parsed_key k;
  if (!coordinate(pkey.get(), OSSL_PKEY_PARAM_EC_PUB_X, k.x) ||
      !coordinate(pkey.get(), OSSL_PKEY_PARAM_EC_PUB_Y, k.y))
    return std::nullopt;
  k.sign_template.reset(EVP_MD_CTX_new());
  k.verify_template.reset(EVP_MD_CTX_new());
  if (!k.sign_template || !k.verify_template ||
      EVP_DigestSignInit_ex(k.sign_template.get(), nullptr, "SHA256", nullptr, nullptr,
                            pkey.get(), nullptr) != 1 ||
      EVP_DigestVerifyInit_ex(k.verify_template.get(), nullptr, "SHA256", nullptr, nullptr,
                              pkey.get(), nullptr) != 1)
    return std::nullopt;
  // Each copy is used for exactly one message: finalise in place rather than duplicate again.
  EVP_MD_CTX_set_flags(k.sign_template.get(), EVP_MD_CTX_FLAG_FINALISE);
  EVP_MD_CTX_set_flags(k.verify_template.get(), EVP_MD_CTX_FLAG_FINALISE);
  k.kid = r.kid;
  k.pkey = std::move(pkey);
  // The kid comes from storage: dump() escapes it; replace keeps bad UTF-8 from throwing.
  const json header = {{"alg", "ES256"}, {"typ", "at+jwt"}, {"kid", r.kid}};
  k.header_b64 = base64url_encode(header.dump(-1, ' ', false, json::error_handler_t::replace));
  k.created_at = r.created_at;
  k.retired_at = r.retired_at;
  return k;
}

// JOSE (RFC 7518 3.4) carries ECDSA as fixed-width r||s; OpenSSL speaks DER.
bool der_to_jose(const unsigned char* der, std::size_t der_len, std::string& out) {
  const unsigned char* p = der;
  ecdsa_sig_ptr sig(d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der_len)));
  if (!sig) return false;
  const BIGNUM* r = nullptr;
  const BIGNUM* s = nullptr;
  ECDSA_SIG_get0(sig.get(), &r, &s);
  out.assign(jose_sig_size, '\0');
  auto* o = reinterpret_cast<unsigned char*>(out.data());
  return BN_bn2binpad(r, o, coord_size) == static_cast<int>(coord_size) &&
         BN_bn2binpad(s, o + coord_size, coord_size) == static_cast<int>(coord_size);
}

// Returns the DER length written into `der` (at least 80 bytes), 0 on failure.
int jose_to_der(std::string_view jose, unsigned char* der) {
  const auto* in = reinterpret_cast<const unsigned char*>(jose.data());
  ecdsa_sig_ptr sig(ECDSA_SIG_new());
  bn_ptr r(BN_bin2bn(in, coord_size, nullptr));
  bn_ptr s(BN_bin2bn(in + coord_size, coord_size, nullptr));
  if (!sig || !r || !s || ECDSA_SIG_set0(sig.get(), r.get(), s.get()) != 1) return 0;
  r.release();  // owned by sig now
  s.release();
  if (i2d_ECDSA_SIG(sig.get(), nullptr) > 80) return 0;
  unsigned char* p = der;
  const int len = i2d_ECDSA_SIG(sig.get(), &p);
  return len > 0 ? len : 0;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

// A JSON integer that fits int64 (a float, a string or a huge unsigned is not a valid NumericDate
// here: accepting 1e300 or "123" invites parser-differential bugs).
std::optional<std::int64_t> int_claim(const json& claims, const char* name) {
  const auto it = claims.find(name);
  if (it == claims.end()) return std::nullopt;
  if (it->is_number_unsigned()) {
    const auto v = it->get<std::uint64_t>();
    if (v > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
      return std::nullopt;
    return static_cast<std::int64_t>(v);
  }
  if (it->is_number_integer()) return it->get<std::int64_t>();
  return std::nullopt;
}

bool string_claim(const json& claims, const char* name) {
  const auto it = claims.find(name);
  return it != claims.end() && it->is_string();
}

std::optional<json> parse_object(std::string_view b64) {
  const auto raw = base64url_decode(b64);
  if (!raw) return std::nullopt;
  // No exceptions; strict mode rejects trailing bytes after the value.
  json j = json::parse(*raw, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return std::nullopt;
  return j;
}

}  // namespace

// An immutable snapshot of the ring. Readers copy the shared_ptr under a brief shared lock and
// do the crypto unlocked, so load() never waits behind signatures and a replaced key stays alive
// until the last reader using it is done.
struct key_ring::impl {
  struct state {
    std::vector<parsed_key> keys;  // active first, then newest first
    std::unordered_map<std::string, const parsed_key*> by_kid;
  };
  std::shared_ptr<const state> current = std::make_shared<const state>();
};

signing_key_record generate_signing_key(std::int64_t now) {
  pkey_ptr pkey(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  if (!pkey) throw std::runtime_error("EVP_PKEY_Q_keygen(P-256) failed");
  signing_key_record r;
  r.kid = random_token(12);
  r.private_pem = pem_of(pkey.get());
  r.created_at = now;
  return r;
}

std::string_view to_string(jwt_error e) noexcept {
  switch (e) {
    case jwt_error::none: return "none";
    case jwt_error::malformed: return "malformed";
    case jwt_error::unsupported_alg: return "unsupported_alg";
    case jwt_error::unknown_kid: return "unknown_kid";
    case jwt_error::bad_signature: return "bad_signature";
    case jwt_error::expired: return "expired";
    case jwt_error::not_yet_valid: return "not_yet_valid";
    case jwt_error::wrong_issuer: return "wrong_issuer";
    case jwt_error::wrong_type: return "wrong_type";
    case jwt_error::missing_claim: return "missing_claim";
  }
  return "unknown";
}

key_ring::key_ring() : impl_(std::make_unique<impl>()) {}
key_ring::~key_ring() = default;

bool key_ring::load(const std::vector<signing_key_record>& records) {
  auto next = std::make_shared<impl::state>();
  next->keys.reserve(records.size());
  for (const auto& r : records) {
    auto k = parse_record(r);
    if (!k) return false;
    next->keys.push_back(std::move(*k));
  }
  // Active = newest unretired key. If every key is retired the newest one still signs, so a ring
  // restored from a store whose active key was just retired keeps working until rotation.
  std::stable_sort(next->keys.begin(), next->keys.end(),
                   [](const parsed_key& a, const parsed_key& b) {
                     const bool a_active = a.retired_at == 0;
                     const bool b_active = b.retired_at == 0;
                     if (a_active != b_active) return a_active;
                     return a.created_at > b.created_at;
                   });
  for (const auto& k : next->keys) {
    // Two keys under one kid would make verification depend on which one we happened to pick.
    if (!next->by_kid.emplace(k.kid, &k).second) return false;
  }
  std::shared_ptr<const impl::state> frozen = std::move(next);
  std::unique_lock lock(mtx_);
  impl_->current.swap(frozen);
  lock.unlock();
  // `frozen` (the previous state) is released here, outside the lock.
  return true;
}

std::string key_ring::active_kid() const {
  std::shared_lock lock(mtx_);
  const auto& keys = impl_->current->keys;
  return keys.empty() ? std::string() : keys.front().kid;
}

std::string key_ring::sign(const nlohmann::json& claims) const {
  std::shared_ptr<const impl::state> st;
  {
    std::shared_lock lock(mtx_);
    st = impl_->current;
  }
  if (st->keys.empty()) throw std::logic_error("key_ring::sign on an empty ring");
  const parsed_key& key = st->keys.front();

  std::string token = key.header_b64;
  token.push_back('.');
  // Claims may carry client-supplied strings; replace bad UTF-8 rather than throw mid-request.
  token += base64url_encode(claims.dump(-1, ' ', false, json::error_handler_t::replace));

  md_ctx_ptr ctx(EVP_MD_CTX_new());
  unsigned char der[80];
  std::size_t der_len = sizeof der;
  std::string jose;
  if (!ctx || EVP_MD_CTX_copy_ex(ctx.get(), key.sign_template.get()) != 1 ||
      EVP_DigestSign(ctx.get(), der, &der_len, reinterpret_cast<const unsigned char*>(token.data()),
                     token.size()) != 1 ||
      !der_to_jose(der, der_len, jose))
    throw std::runtime_error("ES256 signing failed");
  token.push_back('.');
  token += base64url_encode(jose);
  return token;
}

jwt_verify_result key_ring::verify(std::string_view token,
                                   const jwt_verify_options& options) const {
  // nlohmann may throw bad_alloc, OpenSSL cannot; the contract is that no input escapes as an
  // exception.
  try {
    const auto fail = [](jwt_error e) { return jwt_verify_result{e, nullptr}; };
    if (token.size() > max_token_size) return fail(jwt_error::malformed);
    const auto dot1 = token.find('.');
    if (dot1 == std::string_view::npos) return fail(jwt_error::malformed);
    const auto dot2 = token.find('.', dot1 + 1);
    if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos)
      return fail(jwt_error::malformed);
    const std::string_view header_b64 = token.substr(0, dot1);
    const std::string_view payload_b64 = token.substr(dot1 + 1, dot2 - dot1 - 1);
    const std::string_view signing_input = token.substr(0, dot2);
    const std::string_view sig_b64 = token.substr(dot2 + 1);

    const auto header = parse_object(header_b64);
    if (!header) return fail(jwt_error::malformed);
    const auto alg = header->find("alg");
    if (alg == header->end() || !alg->is_string()) return fail(jwt_error::malformed);
    // Case-sensitive on purpose (RFC 7515 4.1.1); the algorithm comes from us, never the token.
    if (alg->get_ref<const std::string&>() != "ES256") return fail(jwt_error::unsupported_alg);
    // We implement no extensions, so any critical one must be refused (RFC 7515 4.1.11).
    if (header->contains("crit")) return fail(jwt_error::malformed);
    // RFC 9068 4: an access token must say it is one, so that no other JWT signed with the
    // same keys (an ID token, a logout token) is ever taken for one.
    const auto typ = header->find("typ");
    if (typ == header->end() || !typ->is_string()) return fail(jwt_error::wrong_type);
    const auto& t = typ->get_ref<const std::string&>();
    if (!iequals(t, "at+jwt") && !iequals(t, "application/at+jwt"))
      return fail(jwt_error::wrong_type);
    const auto kid = header->find("kid");
    if (kid == header->end() || !kid->is_string()) return fail(jwt_error::malformed);

    const auto sig = base64url_decode(sig_b64);
    if (!sig) return fail(jwt_error::malformed);

    std::shared_ptr<const impl::state> st;
    {
      std::shared_lock lock(mtx_);
      st = impl_->current;
    }
    const auto found = st->by_kid.find(kid->get_ref<const std::string&>());
    if (found == st->by_kid.end()) return fail(jwt_error::unknown_kid);
    const parsed_key& key = *found->second;

    if (sig->size() != jose_sig_size) return fail(jwt_error::bad_signature);
    unsigned char der[80];
    const int der_len = jose_to_der(*sig, der);
    if (der_len == 0) return fail(jwt_error::bad_signature);
    md_ctx_ptr ctx(EVP_MD_CTX_new());
    if (!ctx || EVP_MD_CTX_copy_ex(ctx.get(), key.verify_template.get()) != 1)
      return fail(jwt_error::bad_signature);
    if (EVP_DigestVerify(ctx.get(), der, static_cast<std::size_t>(der_len),
                         reinterpret_cast<const unsigned char*>(signing_input.data()),
                         signing_input.size()) != 1)
      return fail(jwt_error::bad_signature);

    // Only authenticated bytes reach the payload parser.
    auto claims = parse_object(payload_b64);
    if (!claims) return fail(jwt_error::malformed);
    const auto exp = int_claim(*claims, "exp");
    const auto iat = int_claim(*claims, "iat");
    if (!string_claim(*claims, "iss") || !string_claim(*claims, "sub") ||
        !string_claim(*claims, "jti") || !exp || !iat)
      return fail(jwt_error::missing_claim);
    std::optional<std::int64_t> nbf;
    if (claims->contains("nbf")) {
      nbf = int_claim(*claims, "nbf");
      if (!nbf) return fail(jwt_error::missing_claim);
    }
    if (claims->at("iss").get_ref<const std::string&>() != options.issuer)
      return fail(jwt_error::wrong_issuer);
    if (*exp <= options.now - options.leeway) return fail(jwt_error::expired);
    if (*iat > options.now + options.leeway || (nbf && *nbf > options.now + options.leeway))
      return fail(jwt_error::not_yet_valid);
    return jwt_verify_result{jwt_error::none,
                             std::make_shared<const json>(std::move(*claims))};
  } catch (...) {
    return jwt_verify_result{jwt_error::malformed, nullptr};
  }
}

nlohmann::json key_ring::jwks() const {
  std::shared_ptr<const impl::state> st;
  {
    std::shared_lock lock(mtx_);
    st = impl_->current;
  }
  json keys = json::array();
  for (const auto& k : st->keys) {
    keys.push_back({{"kty", "EC"},
                    {"crv", "P-256"},
                    {"x", base64url_encode(k.x)},
                    {"y", base64url_encode(k.y)},
                    {"kid", k.kid},
                    {"alg", "ES256"},
                    {"use", "sig"}});
  }
  return json{{"keys", std::move(keys)}};
}

}  // namespace credo::protocols
