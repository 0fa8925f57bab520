// The client cache in front of the durable client store: fresh entries spare the store, stale
// ones are served only while the store is unreachable.
#include <gtest/gtest.h>

#include <atomic>

#include "persistence/client_cache.hpp"
#include "persistence/memory_stores.hpp"

namespace {

using namespace credo;
using namespace credo::persistence;

/// The in-memory client store, with a switch that makes it unreachable and a read counter.
class switchable_store final : public client_store {
 public:
  status create(const client_record& c, const audit_events& e) override {
    return inner_->create(c, e);
  }
  result<std::optional<client_record>> find(const std::string& id) override {
    ++reads;
    if (down)
      return {errc::temporarily_unavailable, "down"};
    return inner_->find(id);
  }
  std::atomic<bool> down{false};
  std::atomic<int> reads{0};

 private:
  std::shared_ptr<client_store> inner_ = make_memory_stores().clients;
};

client_record app() {
  client_record c;
  c.client_id = "app";
  c.scopes = {"read"};
  return c;
}

TEST(client_cache, fresh_entries_do_not_reach_the_store) {
  auto durable = std::make_shared<switchable_store>();
  auto cache = make_cached_client_store(durable, std::chrono::seconds{30});
  ASSERT_TRUE(cache->create(app(), {}));
  for (int i = 0; i < 5; ++i)
    ASSERT_TRUE(cache->find("app")->has_value());
  EXPECT_EQ(durable->reads.load(), 0);
  EXPECT_FALSE(cache->find("other")->has_value());
  EXPECT_EQ(durable->reads.load(), 1);
}

TEST(client_cache, stale_entries_are_served_only_while_the_store_is_down) {
  auto durable = std::make_shared<switchable_store>();
  ASSERT_TRUE(durable->create(app(), {}));
  // fresh = 0: every read goes to the store first.
  auto cache = make_cached_client_store(durable, std::chrono::seconds{0}, std::chrono::hours{1});
  ASSERT_TRUE(cache->find("app")->has_value());
  durable->down = true;
  auto during = cache->find("app");
  ASSERT_TRUE(during);
  EXPECT_EQ((*during)->scopes, std::vector<std::string>{"read"});
  EXPECT_EQ(cache->find("never-seen").error(), errc::temporarily_unavailable);
  EXPECT_EQ(durable->reads.load(), 3);
}

TEST(client_cache, without_a_stale_window_an_outage_is_an_error) {
  auto durable = std::make_shared<switchable_store>();
  ASSERT_TRUE(durable->create(app(), {}));
  auto cache = make_cached_client_store(durable, std::chrono::seconds{0}, std::chrono::seconds{0});
  ASSERT_TRUE(cache->find("app")->has_value());
  durable->down = true;
  EXPECT_EQ(cache->find("app").error(), errc::temporarily_unavailable);
}

}  // namespace
