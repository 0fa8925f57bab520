#include "protocols/crypto.hpp"

#include <gtest/gtest.h>

#include <regex>
#include <set>
#include <string>

namespace credo::protocols {
namespace {

std::string hex(std::string_view raw) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  for (const char c : raw) {
    const auto b = static_cast<unsigned char>(c);
    out.push_back(digits[b >> 4]);
    out.push_back(digits[b & 15]);
  }
  return out;
}

TEST(base64url, rfc4648_vectors_without_padding) {
  EXPECT_EQ(base64url_encode(""), "");
  EXPECT_EQ(base64url_encode("f"), "Zg");
  EXPECT_EQ(base64url_encode("fo"), "Zm8");
  EXPECT_EQ(base64url_encode("foo"), "Zm9v");
  EXPECT_EQ(base64url_encode("foob"), "Zm9vYg");
  EXPECT_EQ(base64url_encode("fooba"), "Zm9vYmE");
  EXPECT_EQ(base64url_encode("foobar"), "Zm9vYmFy");
}

TEST(base64url, uses_url_alphabet) {
  EXPECT_EQ(base64url_encode("\xfb\xff\xbf"), "-_-_");
  EXPECT_EQ(base64url_decode("-_-_"), std::string("\xfb\xff\xbf"));
}

TEST(base64url, round_trips_every_length_and_byte) {
  std::string all;
  for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
  for (std::size_t n = 0; n <= all.size(); ++n) {
    const std::string data = all.substr(0, n);
    const auto back = base64url_decode(base64url_encode(data));
    ASSERT_TRUE(back.has_value()) << n;
    EXPECT_EQ(*back, data) << n;
  }
  for (int i = 0; i < 50; ++i) {
    const std::string data = random_bytes(static_cast<std::size_t>(i));
    EXPECT_EQ(base64url_decode(base64url_encode(data)), data);
  }
}

TEST(base64url, rejects_padding) {
  EXPECT_FALSE(base64url_decode("Zg=="));
  EXPECT_FALSE(base64url_decode("Zm8="));
  EXPECT_FALSE(base64url_decode("="));
}

TEST(base64url, rejects_characters_outside_alphabet) {
  EXPECT_FALSE(base64url_decode("Zm9v+mFy"));
  EXPECT_FALSE(base64url_decode("Zm9v/mFy"));
  EXPECT_FALSE(base64url_decode("Zm9v YmFy"));
  EXPECT_FALSE(base64url_decode("Zm9v\nYmFy"));
  EXPECT_FALSE(base64url_decode(std::string_view("Zm\0v", 4)));
  EXPECT_FALSE(base64url_decode("Zm9v.YmFy"));
  EXPECT_FALSE(base64url_decode("Zm9v\xc3\xa9"));
}

TEST(base64url, rejects_impossible_lengths) {
  EXPECT_FALSE(base64url_decode("Z"));
  EXPECT_FALSE(base64url_decode("Zm9vY"));
}

TEST(base64url, rejects_non_canonical_trailing_bits) {
  // "Zh" decodes to 'f' with non-zero unused bits; only "Zg" is the encoding of "f".
  EXPECT_FALSE(base64url_decode("Zh"));
  EXPECT_FALSE(base64url_decode("Zm9"));
  EXPECT_EQ(base64url_decode("Zm8"), std::string("fo"));
}

TEST(base64url, empty_decodes_to_empty) { EXPECT_EQ(base64url_decode(""), std::string()); }

TEST(base64, rfc4648_vectors_with_padding) {
  EXPECT_EQ(base64_encode(""), "");
  EXPECT_EQ(base64_encode("f"), "Zg==");
  EXPECT_EQ(base64_encode("fo"), "Zm8=");
  EXPECT_EQ(base64_encode("foo"), "Zm9v");
  EXPECT_EQ(base64_encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(base64_encode("\xfb\xff\xbf"), "+/+/");
  EXPECT_EQ(base64_decode("Zg=="), std::string("f"));
  EXPECT_EQ(base64_decode("Zm8="), std::string("fo"));
  EXPECT_EQ(base64_decode("dXNlcjpwYXNz"), std::string("user:pass"));
}

TEST(base64, rejects_missing_or_misplaced_padding_and_url_alphabet) {
  EXPECT_FALSE(base64_decode("Zg"));
  EXPECT_FALSE(base64_decode("Zg="));
  EXPECT_FALSE(base64_decode("Z==="));
  EXPECT_FALSE(base64_decode("===="));
  EXPECT_FALSE(base64_decode("Zg==Zg=="));
  EXPECT_FALSE(base64_decode("Z=g="));
  EXPECT_FALSE(base64_decode("-_-_"));
  EXPECT_FALSE(base64_decode("Zh=="));
}

TEST(base64, round_trips) {
  for (int i = 0; i < 40; ++i) {
    const std::string data = random_bytes(static_cast<std::size_t>(i));
    EXPECT_EQ(base64_decode(base64_encode(data)), data);
  }
}

TEST(pkce, rfc7636_appendix_b_vector) {
  const std::string verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
  const std::string challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
  EXPECT_TRUE(pkce_valid_verifier(verifier));
  EXPECT_TRUE(pkce_valid_challenge(challenge));
  EXPECT_EQ(base64url_encode(sha256(verifier)), challenge);
  EXPECT_TRUE(pkce_s256_matches(verifier, challenge));
}

TEST(pkce, wrong_verifier_does_not_match) {
  EXPECT_FALSE(pkce_s256_matches("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXj",
                                 "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"));
  EXPECT_FALSE(pkce_s256_matches("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
                                 "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cN"));
}

TEST(pkce, rejects_bad_verifiers) {
  EXPECT_FALSE(pkce_valid_verifier(std::string(42, 'a')));
  EXPECT_TRUE(pkce_valid_verifier(std::string(43, 'a')));
  EXPECT_TRUE(pkce_valid_verifier(std::string(128, '~')));
  EXPECT_FALSE(pkce_valid_verifier(std::string(129, 'a')));
  EXPECT_FALSE(pkce_valid_verifier(std::string(42, 'a') + "+"));
  EXPECT_FALSE(pkce_valid_verifier(std::string(42, 'a') + "="));
  EXPECT_FALSE(pkce_valid_verifier(std::string(42, 'a') + " "));
  EXPECT_FALSE(pkce_valid_verifier(std::string(42, 'a') + std::string(1, '\0')));
  EXPECT_FALSE(pkce_valid_verifier(""));
  EXPECT_TRUE(pkce_valid_verifier("abcdefghijklmnopqrstuvwxyz-._~ABCDEFGHIJKLM0123"));
  // A malformed verifier never matches, even if its hash happened to equal the challenge.
  const std::string short_verifier(42, 'a');
  EXPECT_FALSE(pkce_s256_matches(short_verifier, base64url_encode(sha256(short_verifier))));
}

TEST(pkce, rejects_bad_challenges) {
  EXPECT_FALSE(pkce_valid_challenge("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-c"));
  EXPECT_FALSE(pkce_valid_challenge("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM="));
  EXPECT_FALSE(pkce_valid_challenge("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw+cM"));
  EXPECT_FALSE(pkce_s256_matches("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
                                 "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM="));
}

TEST(sha256, known_vectors) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256("abc").size(), 32u);
  EXPECT_EQ(hex(sha256("abc")), sha256_hex("abc"));
}

TEST(hmac_sha256, rfc4231_vectors) {
  // Test case 1.
  EXPECT_EQ(hex(hmac_sha256(std::string(20, '\x0b'), "Hi There")),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
  // Test case 2.
  EXPECT_EQ(hex(hmac_sha256("Jefe", "what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  // Test case 6: key longer than the block size.
  EXPECT_EQ(hex(hmac_sha256(std::string(131, '\xaa'),
                            "Test Using Larger Than Block-Size Key - Hash Key First")),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

TEST(hmac_sha256, empty_key_works) {
  EXPECT_EQ(hex(hmac_sha256("", "")),
            "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad");
}

TEST(constant_time_equal, compares_contents_and_lengths) {
  EXPECT_TRUE(constant_time_equal("", ""));
  EXPECT_TRUE(constant_time_equal("abc", "abc"));
  EXPECT_FALSE(constant_time_equal("abc", "abd"));
  EXPECT_FALSE(constant_time_equal("abc", "ab"));
  EXPECT_FALSE(constant_time_equal("", "a"));
  EXPECT_TRUE(constant_time_equal(std::string_view("a\0b", 3), std::string_view("a\0b", 3)));
  EXPECT_FALSE(constant_time_equal(std::string_view("a\0b", 3), std::string_view("a\0c", 3)));
}

TEST(random, sizes_and_uniqueness) {
  EXPECT_EQ(random_bytes(0).size(), 0u);
  EXPECT_EQ(random_bytes(33).size(), 33u);
  EXPECT_EQ(random_token().size(), 43u);  // 32 bytes
  EXPECT_EQ(random_token(12).size(), 16u);
  std::set<std::string> seen;
  for (int i = 0; i < 100; ++i) EXPECT_TRUE(seen.insert(random_token()).second);
  EXPECT_TRUE(base64url_decode(random_token()).has_value());
}

TEST(uuid_v4, canonical_lower_case_version_4_form) {
  const std::regex re("^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$");
  std::set<std::string> seen;
  for (int i = 0; i < 200; ++i) {
    const std::string u = uuid_v4();
    EXPECT_TRUE(std::regex_match(u, re)) << u;
    EXPECT_TRUE(seen.insert(u).second);
  }
}

std::string unhex(std::string_view h) {
  std::string out;
  for (std::size_t i = 0; i + 1 < h.size(); i += 2)
    out.push_back(static_cast<char>(std::stoi(std::string{h.substr(i, 2)}, nullptr, 16)));
  return out;
}

TEST(aead, opens_the_gcm_spec_test_case_16) {
  // McGrew & Viega, "The Galois/Counter Mode of Operation", test case 16 (AES-256, with AAD).
  const auto key = unhex("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308");
  const auto aad = unhex("feedfacedeadbeeffeedfacedeadbeefabaddad2");
  const auto plain = unhex(
      "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
      "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39");
  const auto sealed = unhex(
      "cafebabefacedbaddecaf888"
      "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
      "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662"
      "76fc6ece0f4e1768cddf8853bb2d551b");
  EXPECT_EQ(aead_open(key, sealed, aad), plain);
}

TEST(aead, round_trips_with_a_fresh_nonce_each_time) {
  const auto key = random_bytes(32);
  for (const std::string& plain : {std::string{}, std::string{"x"}, random_bytes(1000)}) {
    const auto a = aead_seal(key, plain, "kid-1");
    const auto b = aead_seal(key, plain, "kid-1");
    ASSERT_TRUE(a && b);
    EXPECT_EQ(a->size(), 12 + plain.size() + 16);
    EXPECT_NE(a->substr(0, 12), b->substr(0, 12));
    EXPECT_EQ(aead_open(key, *a, "kid-1"), plain);
  }
}

TEST(aead, refuses_wrong_key_other_associated_data_and_tampering) {
  const auto key = random_bytes(32);
  const auto sealed = aead_seal(key, "-----BEGIN PRIVATE KEY-----", "kid-1");
  ASSERT_TRUE(sealed);
  EXPECT_FALSE(aead_open(random_bytes(32), *sealed, "kid-1"));
  EXPECT_FALSE(aead_open(key, *sealed, "kid-2"));
  for (const std::size_t at : {std::size_t{0}, std::size_t{15}, sealed->size() - 1}) {
    auto bad = *sealed;
    bad[at] = static_cast<char>(bad[at] ^ 1);
    EXPECT_FALSE(aead_open(key, bad, "kid-1")) << at;
  }
  EXPECT_FALSE(aead_open(key, sealed->substr(0, 27), "kid-1"));
}

TEST(aead, rejects_keys_that_are_not_256_bits) {
  EXPECT_FALSE(aead_seal(random_bytes(16), "x", ""));
  EXPECT_FALSE(aead_open(random_bytes(31), std::string(40, 'a'), ""));
}

}  // namespace
}  // namespace credo::protocols
