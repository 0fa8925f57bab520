// The session entity through its registry, on a real actor system with the in-memory stores.
#include <caf/all.hpp>
#include <gtest/gtest.h>

#include "actors/audit_log.hpp"
#include "actors/entities.hpp"
#include "persistence/memory_stores.hpp"
#include "protocols/crypto.hpp"
#include "protocols/messages.hpp"
#include "test_system.hpp"

namespace {

using namespace credo;

struct session_entity_test : ::testing::Test {
  session_entity_test() : sys(test_system::config()) {
    auto c = std::make_shared<actors::node_context>();
    c->node_id = "test";
    c->tokens.issuer = "http://issuer.test";
    c->stores = persistence::make_memory_stores();
    c->keys = std::make_shared<protocols::key_ring>();
    c->keys->load({protocols::generate_signing_key(1)});
    c->audit = std::make_shared<actors::audit_log>("test", c->stores.audit);
    ctx = c;
    entities = actors::spawn_entities(sys, ctx, {}, 1);
  }
  ~session_entity_test() override {
    actors::stop_entities(entities);
  }

  protocols::token_grant open(const std::string& sid) {
    caf::scoped_actor self{sys};
    protocols::token_grant out;
    self->request(entities.sessions, std::chrono::seconds{5},
                  protocols::session_open{sid, "user-1", "credo", "openid", "dev", {}})
      .receive([&](protocols::token_grant& g) { out = g; },
               [&](caf::error& e) { ADD_FAILURE() << sys.render(e); });
    return out;
  }

  caf::actor_system sys;
  actors::context_ptr ctx;
  actors::entity_handles entities;
};

TEST_F(session_entity_test, concurrent_refreshes_of_one_token_yield_exactly_one_success) {
  auto g = open("s1");
  auto hash = protocols::sha256_hex(g.refresh_token);
  constexpr int n = 64;
  // All requests are in the registry's mailbox before any answer is read.
  std::vector<std::unique_ptr<caf::scoped_actor>> senders;
  std::vector<caf::response_handle<caf::blocking_actor, caf::message, true>> handles;
  for (int i = 0; i < n; ++i) {
    senders.push_back(std::make_unique<caf::scoped_actor>(sys));
    handles.push_back((*senders.back())
                        ->request(entities.sessions, std::chrono::seconds{5},
                                  protocols::session_refresh{"s1", hash, "credo", false, 0, {}}));
  }
  int ok = 0, invalid_grant = 0;
  for (auto& h : handles)
    h.receive([&](protocols::token_grant&) { ++ok; },
              [&](caf::error& e) {
                if (e == caf::make_error(errc::invalid_grant))
                  ++invalid_grant;
                else
                  ADD_FAILURE() << sys.render(e);
              });
  EXPECT_EQ(ok, 1);
  EXPECT_EQ(invalid_grant, n - 1);
}

TEST_F(session_entity_test, rotation_is_written_through_before_the_reply) {
  auto g = open("s2");
  caf::scoped_actor self{sys};
  std::string next;
  self->request(entities.sessions, std::chrono::seconds{5},
                protocols::session_refresh{"s2", protocols::sha256_hex(g.refresh_token), "credo", false, 0, {}})
    .receive([&](protocols::token_grant& r) { next = r.refresh_token; },
             [&](caf::error& e) { FAIL() << sys.render(e); });
  auto stored = ctx->stores.sessions->load("s2");
  ASSERT_TRUE(stored && stored->has_value());
  EXPECT_EQ((*stored)->families.at(0).current_hash, protocols::sha256_hex(next));
  auto sid = ctx->stores.sessions->find_by_refresh_hash(protocols::sha256_hex(next));
  ASSERT_TRUE(sid && sid->has_value());
  EXPECT_EQ(**sid, "s2");
}

TEST_F(session_entity_test, reuse_ends_the_login_session_and_revokes_its_access_tokens) {
  auto g = open("s3");
  auto first_hash = protocols::sha256_hex(g.refresh_token);
  caf::scoped_actor self{sys};
  protocols::token_grant second;
  self->request(entities.sessions, std::chrono::seconds{5},
                protocols::session_refresh{"s3", first_hash, "credo", false, 0, {}})
    .receive([&](protocols::token_grant& r) { second = r; },
             [&](caf::error& e) { FAIL() << sys.render(e); });
  self->request(entities.sessions, std::chrono::seconds{5},
                protocols::session_refresh{"s3", first_hash, "credo", false, 0, {}})
    .receive([&](protocols::token_grant&) { FAIL() << "replay must fail"; },
             [&](caf::error& e) { EXPECT_EQ(e, caf::make_error(errc::invalid_grant)); });
  EXPECT_TRUE(*ctx->stores.revocations->is_token_revoked(g.jti));
  EXPECT_TRUE(*ctx->stores.revocations->is_token_revoked(second.jti));
  self->request(entities.sessions, std::chrono::seconds{5},
                protocols::session_refresh{"s3", protocols::sha256_hex(second.refresh_token),
                                           "credo", false, 0, {}})
    .receive([&](protocols::token_grant&) { FAIL() << "the family is revoked"; },
             [&](caf::error& e) { EXPECT_EQ(e, caf::make_error(errc::invalid_grant)); });
  auto stored = ctx->stores.sessions->load("s3");
  ASSERT_TRUE(stored);
  EXPECT_FALSE(stored->has_value());
}

TEST_F(session_entity_test, refresh_by_another_client_is_refused) {
  auto g = open("s4");
  caf::scoped_actor self{sys};
  self->request(entities.sessions, std::chrono::seconds{5},
                protocols::session_refresh{"s4", protocols::sha256_hex(g.refresh_token), "other",
                                           false, 0, {}})
    .receive([&](protocols::token_grant&) { FAIL() << "wrong client must fail"; },
             [&](caf::error& e) { EXPECT_EQ(e, caf::make_error(errc::invalid_grant)); });
}

TEST_F(session_entity_test, a_grant_revoked_before_it_exists_is_never_issued) {
  open("s5");
  caf::scoped_actor self{sys};
  // A replayed code whose first exchange has not reached the session yet.
  self->request(entities.sessions, std::chrono::seconds{5},
                protocols::session_revoke_family{"s5", "", "code-hash", "", {}})
    .receive([](bool revoked) { EXPECT_TRUE(revoked); },
             [&](caf::error& e) { FAIL() << sys.render(e); });
  self->request(entities.sessions, std::chrono::seconds{5},
                protocols::session_add_family{"s5", "code-hash", "app", "read", 0, {}})
    .receive([](protocols::token_grant&) { FAIL() << "tombstoned grant was issued"; },
             [&](caf::error& e) { EXPECT_EQ(e, caf::make_error(errc::invalid_grant)); });
}

TEST_F(session_entity_test, erased_users_get_no_new_session_or_refresh) {
  auto g = open("s6");
  ctx->stores.revocations->add_cutoff("user-1", "", "", 1);
  caf::scoped_actor self{sys};
  self->request(entities.sessions, std::chrono::seconds{5},
                protocols::session_refresh{"s6", protocols::sha256_hex(g.refresh_token), "credo",
                                           false, 0, {}})
    .receive([](protocols::token_grant&) { FAIL() << "refresh for an erased user"; },
             [&](caf::error& e) { EXPECT_EQ(e, caf::make_error(errc::invalid_grant)); });
  self->request(entities.sessions, std::chrono::seconds{5},
                protocols::session_open{"s7", "user-1", "credo", "openid", "dev", {}})
    .receive([](protocols::token_grant&) { FAIL() << "session for an erased user"; },
             [](caf::error&) {});
}

TEST_F(session_entity_test, registry_counts_live_entities) {
  open("a");
  open("b");
  EXPECT_EQ(entities.session_stats->live.load(), 2);
  EXPECT_EQ(entities.session_stats->failures.load(), 0);
}

}  // namespace
