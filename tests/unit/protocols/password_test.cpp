#include "protocols/password.hpp"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace credo::protocols {
namespace {

// Small parameters keep the suite fast; one test below runs the production defaults.
constexpr argon2_params fast{1, 64, 1};

TEST(password, hash_then_verify) {
  const std::string h = hash_password("correct horse battery staple", fast);
  EXPECT_EQ(h.rfind("$argon2id$v=19$m=64,t=1,p=1$", 0), 0u) << h;
  EXPECT_TRUE(verify_password("correct horse battery staple", h));
}

TEST(password, wrong_password_fails) {
  const std::string h = hash_password("secret", fast);
  EXPECT_FALSE(verify_password("Secret", h));
  EXPECT_FALSE(verify_password("", h));
  EXPECT_FALSE(verify_password("secret ", h));
}

TEST(password, salts_differ) {
  EXPECT_NE(hash_password("same", fast), hash_password("same", fast));
}

TEST(password, embedded_nul_and_empty_passwords) {
  const std::string pw("a\0b", 3);
  const std::string h = hash_password(pw, fast);
  EXPECT_TRUE(verify_password(pw, h));
  EXPECT_FALSE(verify_password("a", h));
  const std::string e = hash_password("", fast);
  EXPECT_TRUE(verify_password("", e));
}

TEST(password, malformed_hashes_are_false) {
  EXPECT_FALSE(verify_password("x", ""));
  EXPECT_FALSE(verify_password("x", "not a hash"));
  EXPECT_FALSE(verify_password("x", "$argon2id$v=19$m=64,t=1,p=1$"));
  EXPECT_FALSE(verify_password("x", "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$!!!!"));
  std::string h = hash_password("x", fast);
  EXPECT_FALSE(verify_password("x", h.substr(0, h.size() - 5)));
  EXPECT_FALSE(verify_password("x", h + std::string(1, '\0')));
  // An argon2i hash is not accepted where argon2id is expected.
  std::string i_variant = h;
  i_variant.replace(0, 9, "$argon2i");
  EXPECT_FALSE(verify_password("x", i_variant));
}

TEST(password, default_params_are_owasp) {
  const std::string h = hash_password("pw");
  EXPECT_NE(h.find("m=19456,t=2,p=1"), std::string::npos) << h;
  EXPECT_TRUE(verify_password("pw", h));
}

TEST(password, dummy_hash_is_cached_valid_and_per_params) {
  const std::string& a = dummy_password_hash(fast);
  const std::string& b = dummy_password_hash(fast);
  EXPECT_EQ(&a, &b);
  EXPECT_NE(a.find("m=64,t=1,p=1"), std::string::npos);
  EXPECT_FALSE(verify_password("anything", a));
  const std::string& c = dummy_password_hash(argon2_params{2, 64, 1});
  EXPECT_NE(&a, &c);
  EXPECT_NE(c.find("m=64,t=2,p=1"), std::string::npos);
}

TEST(password, dummy_hash_is_thread_safe) {
  constexpr argon2_params p{1, 128, 1};
  std::vector<const std::string*> seen(8);
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < seen.size(); ++i)
    threads.emplace_back([&, i] { seen[i] = &dummy_password_hash(p); });
  for (auto& t : threads) t.join();
  for (const auto* s : seen) EXPECT_EQ(s, seen[0]);
}

}  // namespace
}  // namespace credo::protocols
