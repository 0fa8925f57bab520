// The rate-limit entity through its registry, on a real actor system with the in-memory stores:
// exact under concurrent takes, and its state survives a crash (a restart does not hand out a
// fresh burst).
#include <caf/all.hpp>
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "actors/audit_log.hpp"
#include "actors/entities.hpp"
#include "persistence/memory_stores.hpp"
#include "protocols/messages.hpp"
#include "test_system.hpp"

namespace {

using namespace credo;

struct rate_limit_entity_test : ::testing::Test {
  rate_limit_entity_test() : sys(test_system::config()) {
    auto c = std::make_shared<actors::node_context>();
    c->node_id = "test";
    c->stores = persistence::make_memory_stores();
    c->audit = std::make_shared<actors::audit_log>("test", c->stores.audit);
    ctx = c;
    entities = actors::spawn_entities(sys, ctx, {}, 1);
  }
  ~rate_limit_entity_test() override { actors::stop_entities(entities); }

  template <class Reply, class Msg>
  Reply ask(Msg msg) {
    caf::scoped_actor self{sys};
    Reply out{};
    self->request(entities.rate_limits, std::chrono::seconds{5}, std::move(msg))
      .receive([&](Reply& r) { out = r; }, [&](caf::error& e) { ADD_FAILURE() << sys.render(e); });
    return out;
  }

  /// Crashes the entity of `key` and waits until its registry has seen it go (a request sent
  /// before that would reach the dying entity and get an error, as a real client would).
  void crash(const std::string& key) {
    auto before = entities.rate_limit_stats->failures.load();
    EXPECT_TRUE(ask<bool>(protocols::rate_limit_crash{key}));
    for (int i = 0; i < 500 && entities.rate_limit_stats->failures.load() == before; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds{2});
    EXPECT_GT(entities.rate_limit_stats->failures.load(), before);
  }

  caf::actor_system sys;
  actors::context_ptr ctx;
  actors::entity_handles entities;
};

const protocols::bucket_rule hourly{10, 3'600'000};

TEST_F(rate_limit_entity_test, concurrent_takes_never_exceed_the_bucket) {
  constexpr int n = 40;
  std::vector<std::unique_ptr<caf::scoped_actor>> senders;
  std::vector<caf::response_handle<caf::blocking_actor, caf::message, true>> handles;
  for (int i = 0; i < n; ++i) {
    senders.push_back(std::make_unique<caf::scoped_actor>(sys));
    handles.push_back((*senders.back())
                        ->request(entities.rate_limits, std::chrono::seconds{5},
                                  protocols::bucket_take{"users.ip:192.0.2.1", hourly, 1}));
  }
  std::int64_t granted = 0;
  for (auto& h : handles)
    h.receive([&](protocols::bucket_grant& g) { granted += g.granted; },
              [&](caf::error& e) { ADD_FAILURE() << sys.render(e); });
  EXPECT_EQ(granted, 10);
  auto last = ask<protocols::bucket_grant>(protocols::bucket_take{"users.ip:192.0.2.1", hourly, 1});
  EXPECT_EQ(last.granted, 0);
  EXPECT_GT(last.retry_ms, 0);
  EXPECT_LE(last.retry_ms, 360'000);
}

TEST_F(rate_limit_entity_test, a_crashed_bucket_restarts_with_its_state) {
  auto g = ask<protocols::bucket_grant>(protocols::bucket_take{"k", hourly, 8});
  ASSERT_EQ(g.granted, 8);
  crash("k");
  // The restarted entity loads what the crashed one flushed when it stopped.
  auto after = ask<protocols::bucket_grant>(protocols::bucket_take{"k", hourly, 8});
  EXPECT_EQ(after.granted, 2);
}

TEST_F(rate_limit_entity_test, lockout_attempts_are_written_before_they_are_allowed) {
  protocols::lockout_policy p;
  p.threshold = 2;
  auto a = ask<protocols::lockout_answer>(protocols::lockout_begin{"lockout:u", "a1", p});
  ASSERT_TRUE(a.allowed);
  auto stored = ctx->stores.buckets->load("lockout:u");
  ASSERT_TRUE(stored && stored->has_value());
  EXPECT_EQ((*stored)->lockout.attempts.size(), 1u);
  EXPECT_TRUE(ask<protocols::lockout_answer>(protocols::lockout_end{"lockout:u", "a1", false, p}).allowed);
  ASSERT_TRUE(ask<protocols::lockout_answer>(protocols::lockout_begin{"lockout:u", "a2", p}).allowed);
  crash("lockout:u");
  auto locked = ask<protocols::lockout_answer>(protocols::lockout_end{"lockout:u", "a2", false, p});
  EXPECT_FALSE(locked.allowed);  // the attempt outlived the crash
  EXPECT_EQ(locked.lockouts, 1);
  EXPECT_FALSE(ask<protocols::lockout_answer>(protocols::lockout_begin{"lockout:u", "a3", p}).allowed);
}

TEST_F(rate_limit_entity_test, invalid_rules_are_refused) {
  caf::scoped_actor self{sys};
  bool refused = false;
  self->request(entities.rate_limits, std::chrono::seconds{5},
                protocols::bucket_take{"k2", protocols::bucket_rule{0, 0}, 1})
    .receive([&](protocols::bucket_grant&) {}, [&](caf::error&) { refused = true; });
  EXPECT_TRUE(refused);
}

}  // namespace
