#include "protocols/token_cache.hpp"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <string>
#include <thread>
#include <vector>

namespace credo::protocols {
namespace {

std::shared_ptr<const verified_token> claims_for(const std::string& sub) {
  return std::make_shared<const verified_token>(verified_token{nlohmann::json{{"sub", sub}}, ""});
}

TEST(token_cache, miss_then_hit) {
  verified_token_cache cache(100);
  EXPECT_EQ(cache.find("tok", 1000), nullptr);
  cache.insert("tok", claims_for("alice"), 2000);
  const auto hit = cache.find("tok", 1000);
  ASSERT_NE(hit, nullptr);
  EXPECT_EQ(hit->claims["sub"], "alice");
  EXPECT_EQ(cache.find("tok2", 1000), nullptr);
  EXPECT_EQ(cache.size(), 1u);
}

TEST(token_cache, expiry) {
  verified_token_cache cache(100);
  cache.insert("tok", claims_for("alice"), 2000);
  EXPECT_NE(cache.find("tok", 1999), nullptr);
  EXPECT_EQ(cache.find("tok", 2000), nullptr);  // exp <= now
  EXPECT_EQ(cache.find("tok", 1999), nullptr);  // dropped on the expired lookup
  EXPECT_EQ(cache.size(), 0u);
}

TEST(token_cache, insert_replaces) {
  verified_token_cache cache(100);
  cache.insert("tok", claims_for("alice"), 2000);
  cache.insert("tok", claims_for("bob"), 3000);
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_EQ(cache.find("tok", 2500)->claims["sub"], "bob");
}

TEST(token_cache, capacity_is_bounded) {
  verified_token_cache cache(64);
  for (int i = 0; i < 1000; ++i) {
    cache.insert("tok" + std::to_string(i), claims_for("u"), 10'000 + i);
    ASSERT_LE(cache.size(), 64u);
  }
  EXPECT_GT(cache.size(), 0u);
  // The newest insert always survives: eviction runs before it is stored.
  EXPECT_NE(cache.find("tok999", 0), nullptr);
}

TEST(token_cache, expired_entries_are_evicted_before_live_ones) {
  verified_token_cache cache(160);  // 16 shards of 10
  // Fill with entries that expire at 100, let lookups teach the cache "now = 500", then insert
  // live ones: they must displace the dead entries, not each other.
  for (int i = 0; i < 150; ++i) cache.insert("dead" + std::to_string(i), claims_for("d"), 100);
  for (int i = 0; i < 200; ++i) (void)cache.find("probe" + std::to_string(i), 500);
  for (int i = 0; i < 50; ++i) cache.insert("live" + std::to_string(i), claims_for("l"), 10'000);
  for (int i = 0; i < 50; ++i)
    EXPECT_NE(cache.find("live" + std::to_string(i), 500), nullptr) << i;
  EXPECT_LE(cache.size(), 160u);
}

TEST(token_cache, soonest_expiring_evicted_when_all_live) {
  verified_token_cache cache(1);
  cache.insert("a", claims_for("a"), 5000);
  cache.insert("b", claims_for("b"), 6000);
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_EQ(cache.find("a", 0), nullptr);
  EXPECT_NE(cache.find("b", 0), nullptr);
}

TEST(token_cache, zero_capacity_caches_nothing) {
  verified_token_cache cache(0);
  cache.insert("tok", claims_for("alice"), 2000);
  EXPECT_EQ(cache.find("tok", 0), nullptr);
  EXPECT_EQ(cache.size(), 0u);
}

TEST(token_cache, insert_of_already_expired_is_ignored) {
  verified_token_cache cache(10);
  (void)cache.find("x", 1000);  // the cache learns the time only from lookups
  cache.insert("tok", claims_for("alice"), 900);
  EXPECT_EQ(cache.find("tok", 800), nullptr);
}

TEST(token_cache, clear) {
  verified_token_cache cache(100);
  for (int i = 0; i < 20; ++i) cache.insert("t" + std::to_string(i), claims_for("u"), 5000);
  EXPECT_EQ(cache.size(), 20u);
  cache.clear();
  EXPECT_EQ(cache.size(), 0u);
  EXPECT_EQ(cache.find("t1", 0), nullptr);
}

TEST(token_cache, concurrent_use) {
  verified_token_cache cache(256);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 2000; ++i) {
        const std::string tok = "t" + std::to_string(t) + "-" + std::to_string(i % 300);
        cache.insert(tok, claims_for("u"), 10'000 + i);
        (void)cache.find(tok, i);
        if (i % 500 == 0) cache.clear();
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_LE(cache.size(), 256u);
}

}  // namespace
}  // namespace credo::protocols
