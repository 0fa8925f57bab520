#include "protocols/jwt.hpp"

#include <gtest/gtest.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <atomic>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <thread>

#include "protocols/crypto.hpp"

namespace credo::protocols {
namespace {

using json = nlohmann::json;

constexpr const char* issuer = "https://credo.test";
constexpr std::int64_t now = 1'700'000'000;

// --- An independent ES256 signer, so tests can forge arbitrary headers and payloads. ---

EVP_PKEY* read_pem(const std::string& pem) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  EVP_PKEY* k = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  if (!k) throw std::runtime_error("bad pem");
  return k;
}

std::string es256_sign(const std::string& pem, std::string_view input) {
  EVP_PKEY* k = read_pem(pem);
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  unsigned char der[80];
  std::size_t der_len = sizeof der;
  EVP_DigestSignInit(ctx, nullptr, EVP_sha256(), nullptr, k);
  EVP_DigestSign(ctx, der, &der_len, reinterpret_cast<const unsigned char*>(input.data()),
                 input.size());
  EVP_MD_CTX_free(ctx);
  EVP_PKEY_free(k);
  const unsigned char* p = der;
  ECDSA_SIG* sig = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der_len));
  std::string out(64, '\0');
  BN_bn2binpad(ECDSA_SIG_get0_r(sig), reinterpret_cast<unsigned char*>(out.data()), 32);
  BN_bn2binpad(ECDSA_SIG_get0_s(sig), reinterpret_cast<unsigned char*>(out.data()) + 32, 32);
  ECDSA_SIG_free(sig);
  return out;
}

std::string public_pem(const std::string& private_pem) {
  EVP_PKEY* k = read_pem(private_pem);
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PUBKEY(bio, k);
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<std::size_t>(len));
  BIO_free(bio);
  EVP_PKEY_free(k);
  return out;
}

// Signs raw header and payload text (lets tests put invalid JSON under a valid signature).
std::string forge_raw(const std::string& pem, std::string_view header, std::string_view payload) {
  const std::string input = base64url_encode(header) + "." + base64url_encode(payload);
  return input + "." + base64url_encode(es256_sign(pem, input));
}

std::string forge(const std::string& pem, const json& header, const json& payload) {
  return forge_raw(pem, header.dump(), payload.dump());
}

class jwt_test : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(ring_.load({key_})); }

  json claims() const {
    return {{"iss", issuer}, {"sub", "user-1"},       {"aud", "api"},
            {"exp", now + 600}, {"iat", now}, {"jti", uuid_v4()}, {"scope", "openid"}};
  }
  json header() const { return {{"alg", "ES256"}, {"typ", "at+jwt"}, {"kid", key_.kid}}; }
  jwt_verify_options options(std::int64_t leeway = 0) const { return {issuer, now, leeway}; }
  jwt_error verify_error(const std::string& token, std::int64_t leeway = 0) const {
    return ring_.verify(token, options(leeway)).error;
  }
  std::string forged(const json& payload) const { return forge(key_.private_pem, header(), payload); }
  std::string forged_header(const json& h) const { return forge(key_.private_pem, h, claims()); }

  signing_key_record key_ = generate_signing_key(now - 100);
  key_ring ring_;
};

// --- Keys and round trips ---

TEST_F(jwt_test, generated_key_is_pkcs8_pem_with_random_kid) {
  EXPECT_EQ(key_.private_pem.rfind("-----BEGIN PRIVATE KEY-----", 0), 0u);
  EXPECT_EQ(key_.kid.size(), 16u);
  EXPECT_EQ(key_.created_at, now - 100);
  EXPECT_EQ(key_.retired_at, 0);
  EXPECT_NE(generate_signing_key(now).kid, key_.kid);
}

TEST_F(jwt_test, sign_then_verify_round_trip) {
  const json c = claims();
  const std::string token = ring_.sign(c);
  const auto r = ring_.verify(token, options());
  ASSERT_TRUE(r) << to_string(r.error);
  ASSERT_NE(r.claims, nullptr);
  EXPECT_EQ(*r.claims, c);
}

TEST_F(jwt_test, signed_token_has_expected_header_and_raw_signature) {
  const std::string token = ring_.sign(claims());
  const auto dot1 = token.find('.');
  const auto dot2 = token.rfind('.');
  const auto header_text = base64url_decode(token.substr(0, dot1));
  ASSERT_TRUE(header_text);
  EXPECT_EQ(json::parse(*header_text), header());
  const auto sig = base64url_decode(token.substr(dot2 + 1));
  ASSERT_TRUE(sig);
  EXPECT_EQ(sig->size(), 64u);
}

TEST_F(jwt_test, independently_signed_token_verifies) {
  EXPECT_EQ(verify_error(forged(claims())), jwt_error::none);
}

TEST_F(jwt_test, signatures_are_randomised) {
  const json c = claims();
  EXPECT_NE(ring_.sign(c), ring_.sign(c));
}

TEST_F(jwt_test, typ_is_required_and_case_insensitive) {
  json h = header();
  h.erase("typ");  // RFC 9068: a JWT that does not say it is an access token is not one
  EXPECT_EQ(verify_error(forged_header(h)), jwt_error::wrong_type);
  h["typ"] = "JWT";  // e.g. an ID token signed with the same key
  EXPECT_EQ(verify_error(forged_header(h)), jwt_error::wrong_type);
  h["typ"] = 1;
  EXPECT_EQ(verify_error(forged_header(h)), jwt_error::wrong_type);
  h["typ"] = "AT+JWT";
  EXPECT_EQ(verify_error(forged_header(h)), jwt_error::none);
  h["typ"] = "application/at+jwt";
  EXPECT_EQ(verify_error(forged_header(h)), jwt_error::none);
  h["typ"] = "Application/AT+JWT";
  EXPECT_EQ(verify_error(forged_header(h)), jwt_error::none);
}

TEST_F(jwt_test, leeway_accepts_slightly_expired_and_early_tokens) {
  json c = claims();
  c["exp"] = now - 5;
  EXPECT_EQ(verify_error(forged(c)), jwt_error::expired);
  EXPECT_EQ(verify_error(forged(c), 30), jwt_error::none);
  c = claims();
  c["nbf"] = now + 5;
  c["iat"] = now + 5;
  EXPECT_EQ(verify_error(forged(c), 30), jwt_error::none);
}

TEST_F(jwt_test, nbf_in_past_is_accepted) {
  json c = claims();
  c["nbf"] = now - 10;
  EXPECT_EQ(verify_error(forged(c)), jwt_error::none);
}

// --- Algorithm attacks ---

TEST_F(jwt_test, rejects_alg_none) {
  json h = {{"alg", "none"}, {"typ", "at+jwt"}, {"kid", key_.kid}};
  const std::string token =
      base64url_encode(h.dump()) + "." + base64url_encode(claims().dump()) + ".";
  EXPECT_EQ(verify_error(token), jwt_error::unsupported_alg);
}

TEST_F(jwt_test, rejects_alg_none_variants_and_case) {
  for (const char* alg : {"None", "NONE", "es256", "Es256", "ES256 ", "ES384", "RS256", "PS256"}) {
    json h = header();
    h["alg"] = alg;
    EXPECT_EQ(verify_error(forged_header(h)), jwt_error::unsupported_alg) << alg;
  }
}

TEST_F(jwt_test, rejects_hs256_keyed_with_public_key_pem) {
  // Algorithm confusion: an attacker who knows the public key uses it as an HMAC secret.
  const json h = {{"alg", "HS256"}, {"typ", "at+jwt"}, {"kid", key_.kid}};
  const std::string input = base64url_encode(h.dump()) + "." + base64url_encode(claims().dump());
  const std::string token =
      input + "." + base64url_encode(hmac_sha256(public_pem(key_.private_pem), input));
  EXPECT_EQ(verify_error(token), jwt_error::unsupported_alg);
}

TEST_F(jwt_test, rejects_hs256_keyed_with_jwk_coordinates) {
  const json jwk = ring_.jwks()["keys"][0];
  const std::string pub = "\x04" + *base64url_decode(jwk["x"].get<std::string>()) +
                          *base64url_decode(jwk["y"].get<std::string>());
  const json h = {{"alg", "HS256"}, {"typ", "at+jwt"}, {"kid", key_.kid}};
  const std::string input = base64url_encode(h.dump()) + "." + base64url_encode(claims().dump());
  const std::string token = input + "." + base64url_encode(hmac_sha256(pub, input));
  EXPECT_EQ(verify_error(token), jwt_error::unsupported_alg);
}

TEST_F(jwt_test, rejects_missing_alg) {
  json h = header();
  h.erase("alg");
  EXPECT_EQ(verify_error(forged_header(h)), jwt_error::malformed);
}

TEST_F(jwt_test, rejects_non_string_alg) {
  json h = header();
  h["alg"] = json::array({"ES256"});
  EXPECT_EQ(verify_error(forged_header(h)), jwt_error::malformed);
}

TEST_F(jwt_test, rejects_crit_header) {
  json h = header();
  h["crit"] = json::array({"exp"});
  EXPECT_EQ(verify_error(forged_header(h)), jwt_error::malformed);
}

// --- Keys ---

TEST_F(jwt_test, rejects_unknown_kid) {
  json h = header();
  h["kid"] = "no-such-kid";
  EXPECT_EQ(verify_error(forged_header(h)), jwt_error::unknown_kid);
}

TEST_F(jwt_test, rejects_missing_kid) {
  json h = header();
  h.erase("kid");
  EXPECT_EQ(verify_error(forged_header(h)), jwt_error::malformed);
}

TEST_F(jwt_test, rejects_non_string_kid) {
  json h = header();
  h["kid"] = 7;
  EXPECT_EQ(verify_error(forged_header(h)), jwt_error::malformed);
}

TEST_F(jwt_test, rejects_token_from_different_key_with_same_kid) {
  signing_key_record impostor = generate_signing_key(now);
  impostor.kid = key_.kid;
  key_ring other;
  ASSERT_TRUE(other.load({impostor}));
  EXPECT_EQ(verify_error(other.sign(claims())), jwt_error::bad_signature);
}

TEST_F(jwt_test, rejects_token_from_unknown_ring) {
  key_ring other;
  ASSERT_TRUE(other.load({generate_signing_key(now)}));
  EXPECT_EQ(verify_error(other.sign(claims())), jwt_error::unknown_kid);
}

// --- Signature ---

TEST_F(jwt_test, rejects_tampered_payload) {
  const std::string token = ring_.sign(claims());
  const auto dot1 = token.find('.');
  const auto dot2 = token.rfind('.');
  json c = claims();
  c["sub"] = "admin";
  const std::string tampered =
      token.substr(0, dot1 + 1) + base64url_encode(c.dump()) + token.substr(dot2);
  EXPECT_EQ(verify_error(tampered), jwt_error::bad_signature);
}

TEST_F(jwt_test, rejects_tampered_header) {
  const std::string token = ring_.sign(claims());
  const auto dot1 = token.find('.');
  json h = header();
  h["typ"] = "AT+JWT";  // still acceptable, but not what was signed
  const std::string tampered = base64url_encode(h.dump()) + token.substr(dot1);
  EXPECT_EQ(verify_error(tampered), jwt_error::bad_signature);
}

TEST_F(jwt_test, rejects_flipped_signature_bit) {
  std::string token = ring_.sign(claims());
  const auto dot2 = token.rfind('.');
  std::string sig = *base64url_decode(token.substr(dot2 + 1));
  sig[10] = static_cast<char>(sig[10] ^ 0x01);
  token = token.substr(0, dot2 + 1) + base64url_encode(sig);
  EXPECT_EQ(verify_error(token), jwt_error::bad_signature);
}

TEST_F(jwt_test, rejects_65_byte_signature) {
  std::string token = ring_.sign(claims());
  const auto dot2 = token.rfind('.');
  const std::string sig = *base64url_decode(token.substr(dot2 + 1));
  EXPECT_EQ(verify_error(token.substr(0, dot2 + 1) + base64url_encode(sig + '\0')),
            jwt_error::bad_signature);
  EXPECT_EQ(verify_error(token.substr(0, dot2 + 1) + base64url_encode(std::string(1, '\0') + sig)),
            jwt_error::bad_signature);
}

TEST_F(jwt_test, rejects_63_byte_and_empty_signature) {
  std::string token = ring_.sign(claims());
  const auto dot2 = token.rfind('.');
  const std::string sig = *base64url_decode(token.substr(dot2 + 1));
  EXPECT_EQ(verify_error(token.substr(0, dot2 + 1) + base64url_encode(sig.substr(1))),
            jwt_error::bad_signature);
  EXPECT_EQ(verify_error(token.substr(0, dot2 + 1)), jwt_error::bad_signature);
}

TEST_F(jwt_test, rejects_der_encoded_signature) {
  // A DER signature is what OpenSSL produces natively; JOSE requires the raw 64-byte form.
  const std::string token = ring_.sign(claims());
  const auto dot2 = token.rfind('.');
  const std::string input = token.substr(0, dot2);
  EVP_PKEY* k = read_pem(key_.private_pem);
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  unsigned char der[80];
  std::size_t der_len = sizeof der;
  EVP_DigestSignInit(ctx, nullptr, EVP_sha256(), nullptr, k);
  EVP_DigestSign(ctx, der, &der_len, reinterpret_cast<const unsigned char*>(input.data()),
                 input.size());
  EVP_MD_CTX_free(ctx);
  EVP_PKEY_free(k);
  const std::string der_sig(reinterpret_cast<const char*>(der), der_len);
  EXPECT_EQ(verify_error(input + "." + base64url_encode(der_sig)), jwt_error::bad_signature);
}

TEST_F(jwt_test, rejects_all_zero_signature) {
  const std::string token = ring_.sign(claims());
  const auto dot2 = token.rfind('.');
  EXPECT_EQ(verify_error(token.substr(0, dot2 + 1) + base64url_encode(std::string(64, '\0'))),
            jwt_error::bad_signature);
}

// --- Structure ---

TEST_F(jwt_test, rejects_two_parts) {
  const std::string token = ring_.sign(claims());
  EXPECT_EQ(verify_error(token.substr(0, token.rfind('.'))), jwt_error::malformed);
}

TEST_F(jwt_test, rejects_four_parts) {
  EXPECT_EQ(verify_error(ring_.sign(claims()) + ".AAAA"), jwt_error::malformed);
}

TEST_F(jwt_test, rejects_empty_and_dots_only) {
  EXPECT_EQ(verify_error(""), jwt_error::malformed);
  EXPECT_EQ(verify_error(".."), jwt_error::malformed);
  EXPECT_EQ(verify_error("..."), jwt_error::malformed);
}

TEST_F(jwt_test, rejects_non_base64url_part) {
  const std::string token = ring_.sign(claims());
  EXPECT_EQ(verify_error("*" + token), jwt_error::malformed);
  EXPECT_EQ(verify_error(token + "="), jwt_error::malformed);
  EXPECT_EQ(verify_error(token + " "), jwt_error::malformed);
}

TEST_F(jwt_test, rejects_header_that_is_not_json) {
  EXPECT_EQ(verify_error(forge_raw(key_.private_pem, "not json", claims().dump())),
            jwt_error::malformed);
}

TEST_F(jwt_test, rejects_header_that_is_not_an_object) {
  EXPECT_EQ(verify_error(forge_raw(key_.private_pem, "[\"ES256\"]", claims().dump())),
            jwt_error::malformed);
  EXPECT_EQ(verify_error(forge_raw(key_.private_pem, "\"ES256\"", claims().dump())),
            jwt_error::malformed);
}

TEST_F(jwt_test, rejects_header_with_trailing_garbage) {
  EXPECT_EQ(verify_error(forge_raw(key_.private_pem, header().dump() + "x", claims().dump())),
            jwt_error::malformed);
  EXPECT_EQ(verify_error(forge_raw(key_.private_pem, header().dump() + "{}", claims().dump())),
            jwt_error::malformed);
}

TEST_F(jwt_test, rejects_payload_that_is_not_an_object) {
  EXPECT_EQ(verify_error(forge_raw(key_.private_pem, header().dump(), "[1,2]")),
            jwt_error::malformed);
  EXPECT_EQ(verify_error(forge_raw(key_.private_pem, header().dump(), "42")),
            jwt_error::malformed);
}

TEST_F(jwt_test, rejects_payload_with_trailing_garbage) {
  EXPECT_EQ(verify_error(forge_raw(key_.private_pem, header().dump(), claims().dump() + "}")),
            jwt_error::malformed);
}

TEST_F(jwt_test, rejects_oversized_token) {
  json c = claims();
  c["pad"] = std::string(20'000, 'a');
  EXPECT_EQ(verify_error(forged(c)), jwt_error::malformed);
}

// --- typ ---

TEST_F(jwt_test, rejects_wrong_typ) {
  json h = header();
  h["typ"] = "JWT";
  EXPECT_EQ(verify_error(forged_header(h)), jwt_error::wrong_type);
}

TEST_F(jwt_test, rejects_non_string_typ) {
  json h = header();
  h["typ"] = 1;
  EXPECT_EQ(verify_error(forged_header(h)), jwt_error::wrong_type);
}

// --- Claims ---

TEST_F(jwt_test, rejects_expired) {
  json c = claims();
  c["exp"] = now - 1;
  EXPECT_EQ(verify_error(forged(c)), jwt_error::expired);
}

TEST_F(jwt_test, rejects_exp_equal_to_now) {
  json c = claims();
  c["exp"] = now;
  EXPECT_EQ(verify_error(forged(c)), jwt_error::expired);
}

TEST_F(jwt_test, rejects_nbf_in_future) {
  json c = claims();
  c["nbf"] = now + 60;
  EXPECT_EQ(verify_error(forged(c)), jwt_error::not_yet_valid);
}

TEST_F(jwt_test, rejects_iat_in_future) {
  json c = claims();
  c["iat"] = now + 60;
  EXPECT_EQ(verify_error(forged(c)), jwt_error::not_yet_valid);
}

TEST_F(jwt_test, rejects_wrong_issuer) {
  json c = claims();
  c["iss"] = "https://evil.test";
  EXPECT_EQ(verify_error(forged(c)), jwt_error::wrong_issuer);
}

TEST_F(jwt_test, rejects_issuer_differing_only_by_trailing_slash) {
  json c = claims();
  c["iss"] = std::string(issuer) + "/";
  EXPECT_EQ(verify_error(forged(c)), jwt_error::wrong_issuer);
}

TEST_F(jwt_test, rejects_each_missing_required_claim) {
  for (const char* name : {"iss", "sub", "exp", "iat", "jti"}) {
    json c = claims();
    c.erase(name);
    EXPECT_EQ(verify_error(forged(c)), jwt_error::missing_claim) << name;
  }
}

TEST_F(jwt_test, rejects_mistyped_string_claims) {
  for (const char* name : {"iss", "sub", "jti"}) {
    json c = claims();
    c[name] = 12;
    EXPECT_EQ(verify_error(forged(c)), jwt_error::missing_claim) << name;
    c[name] = nullptr;
    EXPECT_EQ(verify_error(forged(c)), jwt_error::missing_claim) << name;
  }
}

TEST_F(jwt_test, rejects_non_integer_time_claims) {
  for (const char* name : {"exp", "iat", "nbf"}) {
    json c = claims();
    c[name] = std::to_string(now);
    EXPECT_EQ(verify_error(forged(c)), jwt_error::missing_claim) << name << " as string";
    c[name] = static_cast<double>(now) + 0.5;
    EXPECT_EQ(verify_error(forged(c)), jwt_error::missing_claim) << name << " as float";
    c[name] = true;
    EXPECT_EQ(verify_error(forged(c)), jwt_error::missing_claim) << name << " as bool";
  }
}

TEST_F(jwt_test, rejects_exp_beyond_int64) {
  json c = claims();
  c["exp"] = std::numeric_limits<std::uint64_t>::max();
  EXPECT_EQ(verify_error(forged(c)), jwt_error::missing_claim);
}

// --- Rings ---

TEST_F(jwt_test, key_rotation_keeps_old_tokens_valid) {
  signing_key_record old_key = generate_signing_key(now - 1000);
  key_ring old_ring;
  ASSERT_TRUE(old_ring.load({old_key}));
  const std::string old_token = old_ring.sign(claims());

  old_key.retired_at = now - 10;
  const signing_key_record new_key = generate_signing_key(now - 10);
  key_ring rotated;
  ASSERT_TRUE(rotated.load({old_key, new_key}));
  EXPECT_EQ(rotated.active_kid(), new_key.kid);

  EXPECT_EQ(rotated.verify(old_token, options()).error, jwt_error::none);
  const std::string new_token = rotated.sign(claims());
  EXPECT_EQ(rotated.verify(new_token, options()).error, jwt_error::none);
  const auto header_text = base64url_decode(new_token.substr(0, new_token.find('.')));
  EXPECT_EQ(json::parse(*header_text)["kid"], new_key.kid);
  // The old ring has never heard of the new key.
  EXPECT_EQ(old_ring.verify(new_token, options()).error, jwt_error::unknown_kid);
}

TEST_F(jwt_test, jwks_lists_every_key_with_required_fields) {
  signing_key_record old_key = generate_signing_key(now - 1000);
  old_key.retired_at = now - 10;
  const signing_key_record new_key = generate_signing_key(now - 10);
  key_ring ring;
  ASSERT_TRUE(ring.load({old_key, new_key}));
  const json jwks = ring.jwks();
  ASSERT_TRUE(jwks.contains("keys"));
  ASSERT_EQ(jwks["keys"].size(), 2u);
  std::set<std::string> kids;
  for (const auto& k : jwks["keys"]) {
    EXPECT_EQ(k.size(), 7u) << k.dump();
    EXPECT_EQ(k["kty"], "EC");
    EXPECT_EQ(k["crv"], "P-256");
    EXPECT_EQ(k["alg"], "ES256");
    EXPECT_EQ(k["use"], "sig");
    const auto x = base64url_decode(k["x"].get<std::string>());
    const auto y = base64url_decode(k["y"].get<std::string>());
    ASSERT_TRUE(x && y);
    EXPECT_EQ(x->size(), 32u);
    EXPECT_EQ(y->size(), 32u);
    EXPECT_EQ(k["x"].get<std::string>().size(), 43u);
    EXPECT_FALSE(k.contains("d")) << "private scalar leaked";
    kids.insert(k["kid"].get<std::string>());
  }
  EXPECT_EQ(kids, (std::set<std::string>{old_key.kid, new_key.kid}));
}

TEST_F(jwt_test, jwks_coordinates_match_the_signing_key) {
  // Rebuild the public key from the JWK and verify a ring-made signature with it.
  const json jwk = ring_.jwks()["keys"][0];
  const std::string point = "\x04" + *base64url_decode(jwk["x"].get<std::string>()) +
                            *base64url_decode(jwk["y"].get<std::string>());
  EC_GROUP* group = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
  EC_POINT* pt = EC_POINT_new(group);
  ASSERT_EQ(EC_POINT_oct2point(group, pt, reinterpret_cast<const unsigned char*>(point.data()),
                               point.size(), nullptr),
            1);
  EC_POINT_free(pt);
  EC_GROUP_free(group);
  // Same coordinates as the public key in the PEM.
  EVP_PKEY* k = read_pem(key_.private_pem);
  unsigned char buf[65];
  std::size_t len = 0;
  ASSERT_EQ(EVP_PKEY_get_octet_string_param(k, "encoded-pub-key", buf, sizeof buf, &len), 1);
  EVP_PKEY_free(k);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(buf), len), point);
}

TEST_F(jwt_test, newest_unretired_key_is_active) {
  const signing_key_record a = generate_signing_key(now - 300);
  const signing_key_record b = generate_signing_key(now - 200);
  signing_key_record c = generate_signing_key(now - 100);
  c.retired_at = now - 50;
  key_ring ring;
  ASSERT_TRUE(ring.load({a, c, b}));
  EXPECT_EQ(ring.active_kid(), b.kid);
}

TEST_F(jwt_test, all_retired_ring_still_signs_with_newest) {
  signing_key_record a = generate_signing_key(now - 300);
  signing_key_record b = generate_signing_key(now - 200);
  a.retired_at = b.retired_at = now;
  key_ring ring;
  ASSERT_TRUE(ring.load({b, a}));
  EXPECT_EQ(ring.active_kid(), b.kid);
  EXPECT_TRUE(ring.verify(ring.sign(claims()), options()));
}

TEST_F(jwt_test, empty_ring) {
  key_ring ring;
  EXPECT_EQ(ring.active_kid(), "");
  EXPECT_EQ(ring.jwks()["keys"].size(), 0u);
  EXPECT_EQ(ring.verify(ring_.sign(claims()), options()).error, jwt_error::unknown_kid);
  EXPECT_THROW((void)ring.sign(claims()), std::logic_error);
  ASSERT_TRUE(ring.load({key_}));
  ASSERT_TRUE(ring.load({}));
  EXPECT_EQ(ring.active_kid(), "");
}

TEST_F(jwt_test, load_rejects_bad_pem_and_keeps_previous_keys) {
  signing_key_record bad = generate_signing_key(now);
  bad.private_pem = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
  EXPECT_FALSE(ring_.load({bad}));
  EXPECT_EQ(ring_.active_kid(), key_.kid);
  EXPECT_TRUE(ring_.verify(ring_.sign(claims()), options()));
}

TEST_F(jwt_test, load_rejects_non_p256_key) {
  EVP_PKEY* k = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-384");
  ASSERT_NE(k, nullptr);
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(bio, k, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio, &data);
  signing_key_record rec{"p384", std::string(data, static_cast<std::size_t>(len)), now, 0};
  BIO_free(bio);
  EVP_PKEY_free(k);
  key_ring ring;
  EXPECT_FALSE(ring.load({rec}));
}

TEST_F(jwt_test, load_rejects_duplicate_kid) {
  signing_key_record twin = generate_signing_key(now);
  twin.kid = key_.kid;
  key_ring ring;
  EXPECT_FALSE(ring.load({key_, twin}));
}

TEST(jwt_error_names, to_string) {
  EXPECT_EQ(to_string(jwt_error::none), "none");
  EXPECT_EQ(to_string(jwt_error::bad_signature), "bad_signature");
  EXPECT_EQ(to_string(jwt_error::missing_claim), "missing_claim");
}

TEST_F(jwt_test, concurrent_sign_verify_and_reload) {
  const signing_key_record second = generate_signing_key(now - 50);
  std::atomic<bool> stop{false};
  std::atomic<int> failures{0};
  std::vector<std::thread> workers;
  for (int t = 0; t < 4; ++t) {
    workers.emplace_back([&] {
      for (int i = 0; i < 150; ++i) {
        const std::string token = ring_.sign(claims());
        if (!ring_.verify(token, options())) ++failures;
        (void)ring_.jwks();
      }
    });
  }
  std::thread reloader([&] {
    // Both keys stay in the ring, so every token remains verifiable whichever was active.
    for (int i = 0; i < 50 && !stop; ++i) {
      signing_key_record a = key_;
      signing_key_record b = second;
      (i % 2 ? a : b).retired_at = now;
      if (!ring_.load({a, b})) ++failures;
    }
  });
  for (auto& w : workers) w.join();
  stop = true;
  reloader.join();
  EXPECT_EQ(failures, 0);
}

// Garbage never throws and never passes.
TEST_F(jwt_test, random_garbage_is_rejected_without_throwing) {
  const std::string good = ring_.sign(claims());
  for (int i = 0; i < 2000; ++i) {
    std::string t = good;
    const auto pos = static_cast<std::size_t>(static_cast<unsigned char>(random_bytes(1)[0])) *
                     t.size() / 256;
    t[pos] = random_bytes(1)[0];
    jwt_verify_result r;
    EXPECT_NO_THROW(r = ring_.verify(t, options()));
    if (t != good) {
      EXPECT_FALSE(r) << t;
    }
  }
  EXPECT_NO_THROW((void)ring_.verify(std::string(5000, '['), options()));
  const std::string deep = base64url_encode(std::string(10000, '[')) + ".e30.AAAA";
  EXPECT_EQ(verify_error(deep), jwt_error::malformed);
}

}  // namespace
}  // namespace credo::protocols
