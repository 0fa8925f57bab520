// Contract tests for the store interfaces. Every implementation is instantiated with the same
// assertions (INSTANTIATE_TEST_SUITE_P below); the durable stores join the list as they land.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <thread>

#include "persistence/memory_stores.hpp"
#include "persistence/migrations.hpp"
#include "persistence/pg_client.hpp"
#include "persistence/pg_stores.hpp"
#include "persistence/redis_stores.hpp"
#include "persistence/revocation_mirror.hpp"
#include "test_records.hpp"
#include "protocols/clock.hpp"
#include "protocols/crypto.hpp"

namespace {

using namespace credo;
using namespace credo::persistence;

struct backend {
  std::string name;
  std::function<stores()> make;
};

void PrintTo(const backend& b, std::ostream* os) { *os << b.name; }

class store_contract : public ::testing::TestWithParam<backend> {
 protected:
  void SetUp() override { s = GetParam().make(); }
  stores s;
};

using test_records::user;

TEST_P(store_contract, users_unique_email_and_lookup) {
  ASSERT_TRUE(s.users->create(user("u1", "a@x.io"), {}));
  auto dup = s.users->create(user("u2", "a@x.io"), {});
  EXPECT_EQ(dup.error(), errc::email_taken);
  auto by_email = s.users->find_by_email("a@x.io");
  ASSERT_TRUE(by_email && by_email->has_value());
  EXPECT_EQ((*by_email)->id, "u1");
  auto missing = s.users->find_by_id("nope");
  ASSERT_TRUE(missing);
  EXPECT_FALSE(missing->has_value());
}

TEST_P(store_contract, users_update_and_erase_free_the_email) {
  ASSERT_TRUE(s.users->create(user("u1", "a@x.io"), {}));
  auto u = user("u1", "b@x.io");
  ASSERT_TRUE(s.users->update(u, {}));
  EXPECT_FALSE(s.users->find_by_email("a@x.io")->has_value());
  ASSERT_TRUE(s.users->erase("u1", {}));
  EXPECT_FALSE(s.users->find_by_id("u1")->has_value());
  EXPECT_TRUE(s.users->create(user("u3", "b@x.io"), {}));
  EXPECT_EQ(s.users->update(user("ghost", "g@x.io"), {}).error(), errc::not_found);
}

TEST_P(store_contract, clients_conflict_on_duplicate_id) {
  client_record c;
  c.client_id = "app";
  ASSERT_TRUE(s.clients->create(c, {}));
  EXPECT_EQ(s.clients->create(c, {}).error(), errc::conflict);
  EXPECT_TRUE(s.clients->find("app")->has_value());
  EXPECT_FALSE(s.clients->find("other")->has_value());
}

TEST_P(store_contract, sessions_index_every_refresh_hash_and_user) {
  session_record r;
  r.id = "s1";
  r.user_id = "u1";
  r.expires_at = unix_now() + 100;
  refresh_family_record f;
  f.family_id = "s1";
  f.current_hash = "h2";
  f.previous_hash = "h1";
  r.families.push_back(f);
  r.revision = 1;
  ASSERT_TRUE(s.sessions->save(r));
  EXPECT_EQ(**s.sessions->find_by_refresh_hash("h1"), "s1");
  EXPECT_EQ(**s.sessions->find_by_refresh_hash("h2"), "s1");
  EXPECT_FALSE(s.sessions->find_by_refresh_hash("h3")->has_value());
  EXPECT_EQ(s.sessions->list_for_user("u1")->size(), 1u);
  ASSERT_TRUE(s.sessions->erase(r));
  EXPECT_FALSE(s.sessions->load("s1")->has_value());
  EXPECT_TRUE(s.sessions->list_for_user("u1")->empty());
}

TEST_P(store_contract, expired_sessions_do_not_resolve_refresh_hashes) {
  session_record r;
  r.id = "old";
  r.user_id = "u1";
  r.expires_at = unix_now() - 1;
  refresh_family_record f;
  f.current_hash = "hx";
  r.families.push_back(f);
  r.revision = 1;
  ASSERT_TRUE(s.sessions->save(r));
  EXPECT_FALSE(s.sessions->find_by_refresh_hash("hx")->has_value());
}

// Fencing: two owners that loaded the same revision cannot both write; a stale owner can
// neither overwrite nor erase what the current one wrote.
TEST_P(store_contract, session_writes_are_fenced_by_revision) {
  session_record r;
  r.id = "fenced";
  r.user_id = "u1";
  r.expires_at = unix_now() + 100;
  r.device = "first";
  r.revision = 1;
  ASSERT_TRUE(s.sessions->save(r));
  EXPECT_EQ(s.sessions->save(r).error(), errc::conflict);  // revision 1 is taken
  auto current = r, stale = r;
  current.device = "current owner";
  current.revision = 2;
  stale.device = "stale owner";
  stale.revision = 2;
  ASSERT_TRUE(s.sessions->save(current));
  EXPECT_EQ(s.sessions->save(stale).error(), errc::conflict);
  auto loaded = s.sessions->load("fenced");
  ASSERT_TRUE(loaded && loaded->has_value());
  EXPECT_EQ((*loaded)->device, "current owner");
  EXPECT_EQ((*loaded)->revision, 2);
  stale.revision = 1;  // what the stale owner last saw
  EXPECT_EQ(s.sessions->erase(stale).error(), errc::conflict);
  EXPECT_TRUE(s.sessions->load("fenced")->has_value());
  ASSERT_TRUE(s.sessions->erase(current));
  EXPECT_FALSE(s.sessions->load("fenced")->has_value());
  EXPECT_TRUE(s.sessions->erase(current));  // already gone
  session_record again = r;  // a session id used afresh starts over at revision 1
  EXPECT_TRUE(s.sessions->save(again));
}

TEST_P(store_contract, consents_replace_per_user) {
  ASSERT_TRUE(s.consents->save("u1", {{{"app", "read", 1, 0, 0}}, 1}, {}));
  EXPECT_EQ(s.consents->load("u1")->records.size(), 1u);
  EXPECT_EQ(s.consents->save("u1", {{}, 1}, {}).error(), errc::conflict);  // fenced
  EXPECT_EQ(s.consents->load("u1")->records.size(), 1u);
  ASSERT_TRUE(s.consents->save("u1", {{}, 2}, {}));
  EXPECT_TRUE(s.consents->load("u1")->records.empty());
  EXPECT_EQ(s.consents->load("u1")->revision, 2);  // emptied, still fenced
  EXPECT_EQ(s.consents->save("u1", {{}, 1}, {}).error(), errc::conflict);
  EXPECT_TRUE(s.consents->load("nobody")->records.empty());
  EXPECT_EQ(s.consents->load("nobody")->revision, 0);
}

TEST_P(store_contract, revocations_and_cutoffs) {
  ASSERT_TRUE(s.revocations->revoke_token("j1", unix_now() + 60));
  EXPECT_TRUE(*s.revocations->is_token_revoked("j1"));
  EXPECT_FALSE(*s.revocations->is_token_revoked("j2"));
  EXPECT_EQ(*s.revocations->cutoff("u", "c", "s"), 0);
  ASSERT_TRUE(s.revocations->add_cutoff("u", "c", "s", 50));
  ASSERT_TRUE(s.revocations->add_cutoff("u", "c", "s", 40));  // never moves backwards
  EXPECT_EQ(*s.revocations->cutoff("u", "c", "s"), 50);
  EXPECT_EQ(*s.revocations->cutoff("u", "c", "t"), 0);
}

TEST_P(store_contract, revocation_snapshot_lists_live_entries) {
  ASSERT_TRUE(s.revocations->revoke_token("j1", unix_now() + 60));
  ASSERT_TRUE(s.revocations->add_cutoff("u", "c", "s", 50));
  ASSERT_TRUE(s.revocations->add_cutoff("u", "", "", 70));
  auto snap = s.revocations->snapshot();
  ASSERT_TRUE(snap);
  ASSERT_EQ(snap->tokens.size(), 1u);
  EXPECT_EQ(snap->tokens[0].first, "j1");
  EXPECT_GT(snap->tokens[0].second, unix_now());
  ASSERT_EQ(snap->cutoffs.size(), 2u);
  for (auto& c : snap->cutoffs) {
    EXPECT_EQ(c.user_id, "u");
    EXPECT_EQ(c.cutoff, c.client_id.empty() ? 70 : 50);
    EXPECT_EQ(c.scope, c.client_id.empty() ? "" : "s");
  }
}

// The local set in front of the store: fails closed until loaded, then answers from memory.
TEST_P(store_contract, revocation_mirror_loads_and_writes_through) {
  ASSERT_TRUE(s.revocations->revoke_token("old", unix_now() + 60));
  revocation_mirror mirror{s.revocations};
  EXPECT_EQ(mirror.is_token_revoked("old").error(), errc::temporarily_unavailable);
  EXPECT_EQ(mirror.cutoff("u", "", "").error(), errc::temporarily_unavailable);
  ASSERT_TRUE(mirror.sync());
  EXPECT_TRUE(*mirror.is_token_revoked("old"));
  ASSERT_TRUE(mirror.revoke_token("new", unix_now() + 60));
  ASSERT_TRUE(mirror.add_cutoff("u", "", "", 9));
  EXPECT_TRUE(*s.revocations->is_token_revoked("new"));
  EXPECT_EQ(*s.revocations->cutoff("u", "", ""), 9);
  revocation_mirror other{s.revocations};  // a second node sees the first one's writes
  ASSERT_TRUE(other.sync());
  EXPECT_TRUE(*other.is_token_revoked("new"));
  EXPECT_EQ(*other.cutoff("u", "", ""), 9);
}

TEST_P(store_contract, codes_are_consumed_once) {
  authorization_code_record c;
  c.code_hash = "ch";
  c.expires_at = unix_now() + 60;
  ASSERT_TRUE(s.codes->put(c));
  auto first = s.codes->consume("ch");
  ASSERT_TRUE(first && first->has_value());
  EXPECT_FALSE((*first)->used);
  auto second = s.codes->consume("ch");
  ASSERT_TRUE(second && second->has_value());
  EXPECT_TRUE((*second)->used);
  EXPECT_FALSE(s.codes->consume("other")->has_value());
}

TEST_P(store_contract, audit_newest_first_filtered_and_scrubbed) {
  for (int i = 0; i < 5; ++i) {
    audit_event e;
    e.event_id = std::to_string(i);
    e.subject = i % 2 ? "u1" : "u2";
    e.ip = "10.0.0.1";
    ASSERT_TRUE(s.audit->append({e}));
  }
  auto all = s.audit->query("", 10);
  ASSERT_EQ(all->size(), 5u);
  EXPECT_EQ(all->front().event_id, "4");
  auto u1 = s.audit->query("u1", 1);
  ASSERT_EQ(u1->size(), 1u);
  EXPECT_EQ(u1->front().event_id, "3");
  ASSERT_TRUE(s.audit->scrub_subject("u1"));
  auto scrubbed = s.audit->query("u1", 10);  // named: a range-for over *temporary dangles
  for (auto& e : *scrubbed)
    EXPECT_TRUE(e.ip.empty());
  auto kept = s.audit->query("u2", 10);
  for (auto& e : *kept)
    EXPECT_EQ(e.ip, "10.0.0.1");
}

audit_event event(const std::string& id, const std::string& subject) {
  return test_records::event(id, "test.event", subject);
}

// A change and its events are one unit: both or neither.
TEST_P(store_contract, events_commit_with_their_change_only) {
  ASSERT_TRUE(s.users->create(user("u1", "a@x.io"), {event("e1", "u1")}));
  EXPECT_EQ(s.users->create(user("u2", "a@x.io"), {event("e2", "u2")}).error(), errc::email_taken);
  client_record c;
  c.client_id = "app";
  ASSERT_TRUE(s.clients->create(c, {event("e3", "")}));
  EXPECT_EQ(s.clients->create(c, {event("e4", "")}).error(), errc::conflict);
  EXPECT_EQ(s.users->erase("ghost", {event("e5", "ghost")}).error(), errc::not_found);
  ASSERT_TRUE(s.consents->save("u1", {{{"app", "read", 1, 0, 0}}, 1},
                               {event("e6", "u1"), event("e7", "u1")}));
  EXPECT_EQ(s.consents->save("u1", {{}, 1}, {event("e8", "u1")}).error(), errc::conflict);
  auto all = s.audit->query("", 100);
  ASSERT_TRUE(all);
  std::vector<std::string> ids;
  for (auto& e : *all)
    ids.push_back(e.event_id);
  std::sort(ids.begin(), ids.end());
  EXPECT_EQ(ids, (std::vector<std::string>{"e1", "e3", "e6", "e7"}));
}

TEST_P(store_contract, keys_upsert_and_erase) {
  protocols::signing_key_record k{"k1", "pem", 1, 0};
  ASSERT_TRUE(s.keys->save(k, {}));
  k.retired_at = 5;
  ASSERT_TRUE(s.keys->save(k, {}));
  auto all = s.keys->load_all();
  ASSERT_EQ(all->size(), 1u);
  EXPECT_EQ(all->front().retired_at, 5);
  ASSERT_TRUE(s.keys->erase("k1"));
  EXPECT_TRUE(s.keys->load_all()->empty());
}

TEST_P(store_contract, buckets_round_trip_expire_and_erase) {
  bucket_record r;
  r.bucket = {12345, 1'700'000'000'000};
  r.lockout.failures = {1, 2};
  r.lockout.attempts.push_back({"a1", 99});
  r.lockout.level = 2;
  r.lockout.locked_until_ms = 77;
  EXPECT_FALSE(s.buckets->load("lockout:x")->has_value());
  ASSERT_TRUE(s.buckets->save("lockout:x", r, unix_now_ms() + 60'000));
  auto back = s.buckets->load("lockout:x");
  ASSERT_TRUE(back && back->has_value());
  EXPECT_EQ((*back)->bucket.units, 12345);
  EXPECT_EQ((*back)->bucket.updated_ms, 1'700'000'000'000);
  EXPECT_EQ((*back)->lockout.failures, (std::vector<std::int64_t>{1, 2}));
  ASSERT_EQ((*back)->lockout.attempts.size(), 1u);
  EXPECT_EQ((*back)->lockout.attempts[0].id, "a1");
  EXPECT_EQ((*back)->lockout.level, 2);
  EXPECT_EQ((*back)->lockout.locked_until_ms, 77);
  ASSERT_TRUE(s.buckets->erase("lockout:x"));
  EXPECT_FALSE(s.buckets->load("lockout:x")->has_value());
  // A record past its expiry is gone (the store may forget it; neither backend returns it).
  ASSERT_TRUE(s.buckets->save("login.ip:192.0.2.1", r, unix_now_ms() - 1));
  for (int i = 0; i < 50 && s.buckets->load("login.ip:192.0.2.1")->has_value(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds{10});
  EXPECT_FALSE(s.buckets->load("login.ip:192.0.2.1")->has_value());
}

// The PostgreSQL stores over a fresh schema (random name) on the server of
// CREDO_TEST_DATABASE_URL, with the outbox on; the stores PostgreSQL does not keep come from
// memory.
stores make_postgres_stores(const std::string& url) {
  auto s = make_memory_stores();
  auto options = parse_database_url(url);
  if (!options) {
    ADD_FAILURE() << "CREDO_TEST_DATABASE_URL is malformed: " << options.description();
    return s;
  }
  options->schema = "test_" + protocols::sha256_hex(protocols::random_bytes(16)).substr(0, 20);
  auto pg = std::make_shared<pg_client>(*options);
  if (auto st = migrate(*pg); !st)
    ADD_FAILURE() << "migrate: " << to_string(st.error()) << " " << st.description();
  auto p = make_pg_stores(pg, {protocols::random_bytes(32), true});
  s.users = p.users;
  s.clients = p.clients;
  s.consents = p.consents;
  s.audit = p.audit;
  s.keys = p.keys;
  s.outbox = p.outbox;
  return s;
}

void add_postgres_backend(std::vector<backend>& out, bool required) {
  const char* url = std::getenv("CREDO_TEST_DATABASE_URL");
  if (url && *url)
    out.push_back({"postgres", [u = std::string{url}] { return make_postgres_stores(u); }});
  else if (required)
    out.push_back({"postgres_not_started", [] {
                     ADD_FAILURE()
                       << "CREDO_REQUIRE_BACKENDS=1 but CREDO_TEST_DATABASE_URL is unset";
                     return make_memory_stores();
                   }});
}

// The Redis backend runs when scripts/test.sh has started a Redis (CREDO_TEST_REDIS_URL); there
// CREDO_REQUIRE_BACKENDS=1 turns a missing URL into a failure instead of a silent skip. Each
// test gets its own key prefix on the shared server.
std::vector<backend> backends() {
  std::vector<backend> out{{"memory", [] { return make_memory_stores(); }}};
  const char* url = std::getenv("CREDO_TEST_REDIS_URL");
  const char* required = std::getenv("CREDO_REQUIRE_BACKENDS");
  if (url && *url) {
    out.push_back({"redis", [u = std::string{url}] {
                     auto s = make_memory_stores();
                     auto options = parse_redis_url(u);
                     if (!options)
                       ADD_FAILURE() << "CREDO_TEST_REDIS_URL is malformed";
                     auto client = std::make_shared<redis_client>(options.value_or(redis_options{}));
                     auto prefix = "test:" + protocols::random_token(9) + ":";
                     s.sessions = make_redis_session_store(client, prefix);
                     s.revocations = make_redis_revocation_store(client, prefix);
                     s.codes = make_redis_code_store(client, prefix);
                     s.buckets = make_redis_bucket_store(client, prefix);
                     return s;
                   }});
  } else if (required && std::string{required} == "1") {
    out.push_back({"redis_not_started", [] {
                     ADD_FAILURE() << "CREDO_REQUIRE_BACKENDS=1 but CREDO_TEST_REDIS_URL is unset";
                     return make_memory_stores();
                   }});
  }
  add_postgres_backend(out, required && std::string{required} == "1");
  return out;
}

INSTANTIATE_TEST_SUITE_P(backends, store_contract, ::testing::ValuesIn(backends()),
                         [](const auto& info) { return info.param.name; });

TEST(memory_audit_store, keeps_a_bounded_window) {
  auto s = make_memory_stores(3);
  for (int i = 0; i < 10; ++i) {
    audit_event e;
    e.event_id = std::to_string(i);
    s.audit->append({e});
  }
  auto all = s.audit->query("", 100);
  ASSERT_EQ(all->size(), 3u);
  EXPECT_EQ(all->front().event_id, "9");
}

}  // namespace
