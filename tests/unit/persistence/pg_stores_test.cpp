// PostgreSQL specifics beyond the store contract: migrations under concurrency, key encryption at
// rest, the audit outbox, atomic consent replacement, failure mapping and URL parsing. Runs
// against the server of CREDO_TEST_DATABASE_URL (scripts/test.sh starts one); skipped without
// it unless CREDO_REQUIRE_BACKENDS=1. Each test works in a fresh schema.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "persistence/migrations.hpp"
#include "persistence/pg_client.hpp"
#include "persistence/pg_stores.hpp"
#include "protocols/clock.hpp"
#include "protocols/crypto.hpp"
#include "protocols/jwt.hpp"
#include "test_records.hpp"

namespace {

using namespace credo;
using namespace credo::persistence;
using namespace std::chrono_literals;

std::string fresh_schema() {
  return "test_" + protocols::sha256_hex(protocols::random_bytes(16)).substr(0, 20);
}

// Options for a fresh schema on the test server; nullopt (with the test skipped or failed) when
// there is no server.
std::optional<pg_options> test_options() {
  const char* url = std::getenv("CREDO_TEST_DATABASE_URL");
  if (!url || !*url)
    return std::nullopt;
  auto o = parse_database_url(url);
  if (!o) {
    ADD_FAILURE() << "CREDO_TEST_DATABASE_URL is malformed: " << o.description();
    return std::nullopt;
  }
  o->schema = fresh_schema();
  return *o;
}

bool backends_required() {
  const char* r = std::getenv("CREDO_REQUIRE_BACKENDS");
  return r && std::string{r} == "1";
}

using test_records::event;
using test_records::user;

class pg_stores_test : public ::testing::Test {
 protected:
  void SetUp() override {
    auto o = test_options();
    if (!o) {
      if (backends_required())
        FAIL() << "CREDO_REQUIRE_BACKENDS=1 but CREDO_TEST_DATABASE_URL is unset";
      GTEST_SKIP() << "CREDO_TEST_DATABASE_URL is unset";
    }
    options = *o;
    pg = std::make_shared<pg_client>(options);
    auto st = migrate(*pg);
    ASSERT_TRUE(st) << to_string(st.error()) << " " << st.description();
    kek = protocols::random_bytes(32);
    s = make_pg_stores(pg, {kek, true});
  }

  // One value from a raw query in the test's schema.
  template <class T>
  T scalar(const std::string& sql) {
    auto r = pg->transact([&](pqxx::work& w) -> result<T> { return w.exec1(sql)[0].as<T>(); });
    EXPECT_TRUE(r) << r.description();
    return r ? *r : T{};
  }

  std::vector<std::string> outbox_topics(const std::string& event_id) {
    auto r = pg->transact([&](pqxx::work& w) -> result<std::vector<std::string>> {
      std::vector<std::string> out;
      for (const auto& row :
           w.exec_params("SELECT topic FROM audit_outbox WHERE event_id = $1 ORDER BY topic",
                         event_id))
        out.push_back(row[0].as<std::string>());
      return out;
    });
    EXPECT_TRUE(r) << r.description();
    return r ? *r : std::vector<std::string>{};
  }

  pg_options options;
  std::shared_ptr<pg_client> pg;
  std::string kek;
  stores s;
};

TEST_F(pg_stores_test, concurrent_migrations_apply_each_version_once) {
  // Four "nodes" (one client each) start together on a schema nobody has migrated.
  auto fresh = options;
  fresh.schema = fresh_schema();
  std::vector<std::shared_ptr<pg_client>> nodes;
  for (int i = 0; i < 4; ++i)
    nodes.push_back(std::make_shared<pg_client>(fresh));
  std::vector<status> results(4, status{errc::internal_error});
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i)
    threads.emplace_back([&, i] { results[i] = migrate(*nodes[i]); });
  for (auto& t : threads)
    t.join();
  for (auto& r : results)
    EXPECT_TRUE(r) << to_string(r.error()) << " " << r.description();
  auto rows = nodes[0]->transact([](pqxx::work& w) -> result<std::vector<std::pair<int, int>>> {
    std::vector<std::pair<int, int>> out;
    for (const auto& row : w.exec(
           "SELECT version, count(*) FROM schema_migrations GROUP BY version ORDER BY version"))
      out.emplace_back(row[0].as<int>(), row[1].as<int>());
    return out;
  });
  ASSERT_TRUE(rows) << rows.description();
  ASSERT_EQ(rows->size(), migrations().size());
  for (std::size_t i = 0; i < rows->size(); ++i) {
    EXPECT_EQ((*rows)[i].first, migrations()[i].version);
    EXPECT_EQ((*rows)[i].second, 1);
  }
  EXPECT_TRUE(migrate(*nodes[1]));  // and again: nothing left to do
}

TEST_F(pg_stores_test, private_keys_are_stored_sealed) {
  auto key = protocols::generate_signing_key(unix_now());
  ASSERT_TRUE(s.keys->save(key, {}));
  auto stored = pg->transact([&](pqxx::work& w) -> result<std::string> {
    auto row = w.exec_params1("SELECT private_key_enc FROM signing_keys WHERE kid = $1", key.kid);
    return pqxx::binarystring{row[0]}.str();
  });
  ASSERT_TRUE(stored) << stored.description();
  EXPECT_EQ(stored->size(), 12 + key.private_pem.size() + 16);
  EXPECT_EQ(stored->find("PRIVATE KEY"), std::string::npos);
  EXPECT_EQ(stored->find(key.private_pem.substr(40, 32)), std::string::npos);
  auto all = s.keys->load_all();
  ASSERT_TRUE(all) << all.description();
  ASSERT_EQ(all->size(), 1u);
  EXPECT_EQ(all->front().private_pem, key.private_pem);
  EXPECT_EQ(all->front().kid, key.kid);
}

TEST_F(pg_stores_test, a_wrong_key_encryption_key_fails_load_without_key_material) {
  auto key = protocols::generate_signing_key(unix_now());
  ASSERT_TRUE(s.keys->save(key, {}));
  auto other_kek = protocols::random_bytes(32);
  auto wrong = make_pg_stores(pg, {other_kek, false});
  auto all = wrong.keys->load_all();
  ASSERT_FALSE(all);
  EXPECT_EQ(all.error(), errc::internal_error);
  EXPECT_NE(all.description().find("key-encryption key does not match"), std::string::npos)
    << all.description();
  EXPECT_EQ(all.description().find("PRIVATE"), std::string::npos);
  EXPECT_EQ(all.description().find(key.private_pem.substr(40, 16)), std::string::npos);
  EXPECT_EQ(all.description().find(kek), std::string::npos);
  EXPECT_EQ(all.description().find(other_kek), std::string::npos);

  auto short_kek = make_pg_stores(pg, {"too short", false});
  EXPECT_EQ(short_kek.keys->save(key, {}).error(), errc::internal_error);
  EXPECT_EQ(short_kek.keys->load_all().error(), errc::internal_error);
}

TEST_F(pg_stores_test, outbox_rows_travel_with_their_change) {
  ASSERT_TRUE(s.users->create(user("u1", "a@x.io"), {event("e1", "user.registered", "u1")}));
  EXPECT_EQ(outbox_topics("e1"), std::vector<std::string>{"credo.audit.events"});

  ASSERT_TRUE(s.consents->save("u1", {{{"app", "read", 1, 0, 0}}, 1},
                               {event("e2", "consent.granted", "u1")}));
  EXPECT_EQ(outbox_topics("e2"),
            (std::vector<std::string>{"credo.audit.events", "credo.consent.events"}));

  // Failed changes write neither the event nor an outbox row.
  EXPECT_EQ(s.users->create(user("u2", "a@x.io"), {event("e3", "user.registered", "u2")}).error(),
            errc::email_taken);
  auto ghost = s.users->update(user("ghost", "g@x.io"), {event("e4", "user.updated", "ghost")});
  EXPECT_EQ(ghost.error(), errc::not_found);
  ASSERT_TRUE(s.users->create(user("u5", "b@x.io"), {}));
  EXPECT_EQ(s.users->update(user("u5", "a@x.io"), {event("e5", "user.updated", "u5")}).error(),
            errc::email_taken);
  for (const char* id : {"e3", "e4", "e5"}) {
    EXPECT_TRUE(outbox_topics(id).empty()) << id;
    EXPECT_EQ(scalar<int>(std::string{"SELECT count(*) FROM audit_events WHERE event_id = '"} +
                          id + "'"),
              0)
      << id;
  }

  // append: an event of a change owned elsewhere, with its row; a repeated id adds nothing.
  ASSERT_TRUE(s.audit->append({event("e6", "session.created", "u1")}));
  ASSERT_TRUE(s.audit->append({event("e6", "session.created", "u1")}));
  EXPECT_EQ(outbox_topics("e6"), std::vector<std::string>{"credo.audit.events"});

  EXPECT_EQ(*s.outbox->backlog(), 4);
  auto pending = s.outbox->pending(10);
  ASSERT_TRUE(pending) << pending.description();
  ASSERT_EQ(pending->size(), 4u);
  EXPECT_TRUE(std::is_sorted(pending->begin(), pending->end(),
                             [](auto& a, auto& b) { return a.id < b.id; }));
  EXPECT_EQ((*pending)[0].event.event_id, "e1");
  EXPECT_EQ((*pending)[0].event.type, "user.registered");
  EXPECT_EQ((*pending)[0].event.ip, "10.0.0.1");
  EXPECT_EQ(nlohmann::json::parse((*pending)[0].event.data_json), nlohmann::json({{"k", "v"}}));
  EXPECT_EQ((*pending)[3].event.event_id, "e6");

  auto first_two = s.outbox->pending(2);
  ASSERT_EQ(first_two->size(), 2u);
  ASSERT_TRUE(s.outbox->mark_published({(*first_two)[0].id, (*first_two)[1].id}));
  ASSERT_TRUE(s.outbox->mark_published({(*first_two)[0].id}));  // again: harmless
  ASSERT_TRUE(s.outbox->mark_published({}));
  EXPECT_EQ(*s.outbox->backlog(), 2);
  auto rest = s.outbox->pending(10);
  ASSERT_EQ(rest->size(), 2u);
  EXPECT_EQ(rest->front().id, (*pending)[2].id);
}

TEST_F(pg_stores_test, outbox_pending_reads_only_its_batch_whatever_the_statistics) {
  // A backlog on a table autovacuum has not analyzed (a fresh database after an outage). A plan
  // that reads every pending row (bitmap scan, join to every event, sort) takes over 200 ms here;
  // reading 500 in index order takes about 5 ms. The budget is a statement timeout of 50 ms.
  constexpr int backlog = 50000;
  auto filled = pg->transact([&](pqxx::work& w) -> status {
    w.exec("SET LOCAL statement_timeout = '2min'");
    w.exec("ALTER TABLE audit_events SET (autovacuum_enabled = false)");
    w.exec("ALTER TABLE audit_outbox SET (autovacuum_enabled = false)");
    w.exec_params(
      "INSERT INTO audit_events (event_id, type, occurred_at_ms, subject, data)"
      " SELECT md5(g::text) || '-' || g, 'token.issued', g, 'client-' || (g % 50),"
      " (SELECT jsonb_object_agg('k' || k, md5((g * k)::text)) FROM generate_series(1, 8) k)"
      " FROM generate_series(1, $1) g",
      backlog);
    w.exec("INSERT INTO audit_outbox (event_id, topic)"
           " SELECT event_id, 'credo.audit.events' FROM audit_events ORDER BY seq");
    return ok();
  });
  ASSERT_TRUE(filled) << filled.description();
  ASSERT_EQ(scalar<std::int64_t>("SELECT count(*) FROM pg_stats WHERE schemaname ="
                                 " current_schema() AND tablename = 'audit_outbox'"),
            0);

  auto quick = options;
  quick.statement_timeout_ms = 50;
  auto impatient = make_pg_stores(std::make_shared<pg_client>(quick), {kek, true});
  auto check = [&](const char* when) {
    // Three tries, so that one stall of a shared machine does not fail the test.
    result<std::vector<outbox_entry>> rows{errc::internal_error, "not run"};
    for (int i = 0; i < 3 && !rows; ++i)
      rows = impatient.outbox->pending(500);
    ASSERT_TRUE(rows) << when << ": " << rows.description();
    ASSERT_EQ(rows->size(), 500u) << when;
    EXPECT_EQ(rows->front().event.occurred_at_ms, 1) << when;
    EXPECT_EQ(rows->back().event.occurred_at_ms, 500) << when;
    EXPECT_TRUE(std::is_sorted(rows->begin(), rows->end(),
                               [](auto& a, auto& b) { return a.id < b.id; }))
      << when;
  };
  check("never analyzed");
  // Statistics taken with the backlog there.
  ASSERT_TRUE(pg->transact([](pqxx::work& w) -> status {
    w.exec("ANALYZE audit_events");
    w.exec("ANALYZE audit_outbox");
    return ok();
  }));
  check("analyzed");
}

TEST_F(pg_stores_test, outbox_prune_deletes_only_rows_published_long_enough_ago) {
  for (int i = 1; i <= 6; ++i)
    ASSERT_TRUE(s.audit->append({event("e" + std::to_string(i), "session.created", "u1")}));
  auto rows = s.outbox->pending(10);
  ASSERT_TRUE(rows && rows->size() == 6u);
  std::vector<std::int64_t> ids;
  for (const auto& r : *rows)
    ids.push_back(r.id);
  // e1..e3 published two hours ago, e4 just now, e5 and e6 pending.
  ASSERT_TRUE(s.outbox->mark_published({ids[0], ids[1], ids[2], ids[3]}));
  ASSERT_TRUE(pg->transact([&](pqxx::work& w) -> status {
    w.exec_params("UPDATE audit_outbox SET published_at = now() - interval '2 hours'"
                  " WHERE id = ANY($1::bigint[])",
                  "{" + std::to_string(ids[0]) + "," + std::to_string(ids[1]) + "," +
                    std::to_string(ids[2]) + "}");
    return ok();
  }));
  auto remaining = [&] {
    return scalar<std::string>(
      "SELECT coalesce(string_agg(event_id, ',' ORDER BY id), '') FROM audit_outbox");
  };

  auto n = s.outbox->prune_published(std::chrono::hours{1}, 2);  // the limit holds
  ASSERT_TRUE(n) << n.description();
  EXPECT_EQ(*n, 2);
  n = s.outbox->prune_published(std::chrono::hours{1}, 10);
  ASSERT_TRUE(n) << n.description();
  EXPECT_EQ(*n, 1);
  EXPECT_EQ(remaining(), "e4,e5,e6");
  EXPECT_EQ(*s.outbox->prune_published(std::chrono::hours{1}, 10), 0);

  // Older than nothing: every published row, never a pending one.
  EXPECT_EQ(*s.outbox->prune_published(std::chrono::seconds{0}, 10), 1);
  EXPECT_EQ(remaining(), "e5,e6");
  EXPECT_EQ(*s.outbox->backlog(), 2);
  EXPECT_EQ(s.outbox->pending(10)->size(), 2u);
  // The events themselves stay.
  EXPECT_EQ(scalar<std::int64_t>("SELECT count(*) FROM audit_events"), 6);
}

TEST_F(pg_stores_test, no_outbox_rows_when_the_outbox_is_off) {
  auto plain = make_pg_stores(pg, {kek, false});
  EXPECT_EQ(plain.outbox, nullptr);
  ASSERT_TRUE(plain.audit->append({event("e1", "consent.granted", "u1")}));
  EXPECT_EQ(s.audit->query("u1", 10)->size(), 1u);
  EXPECT_EQ(*s.outbox->backlog(), 0);
}

TEST_F(pg_stores_test, consent_save_is_all_or_nothing) {
  std::vector<consent_record> before{{"app", "read", 1, 0, 0, false},
                                     {"app", "write", 2, 99, 0, true}};
  ASSERT_TRUE(s.consents->save("u1", {before, 1}, {}));
  auto loaded = s.consents->load("u1");
  ASSERT_EQ(loaded->records.size(), 2u);
  EXPECT_EQ(loaded->revision, 1);
  EXPECT_EQ(loaded->records[1].scope, "write");
  EXPECT_EQ(loaded->records[1].expires_at, 99);
  EXPECT_TRUE(loaded->records[1].expiry_reported);

  // The event cannot be stored (PostgreSQL text holds no NUL): the records stay as they were.
  auto bad = event("e1", "consent.revoked", "u1");
  bad.request_id = std::string{"r\0secret", 8};
  auto st = s.consents->save("u1", {{{"other", "x", 3, 0, 0, false}}, 2}, {bad});
  EXPECT_EQ(st.error(), errc::internal_error);
  EXPECT_EQ(st.description().find("secret"), std::string::npos);
  loaded = s.consents->load("u1");
  ASSERT_EQ(loaded->records.size(), 2u);
  EXPECT_EQ(loaded->revision, 1);  // the revision did not move either
  EXPECT_EQ(loaded->records[0].client_id, "app");
}

TEST_F(pg_stores_test, concurrent_consent_saves_never_mix_and_each_revision_has_one_writer) {
  // Writers load, change and save on top of what they loaded, retrying when fenced off. Every
  // successful save must be a new revision (no lost update), and the user ends with one
  // writer's set, whole.
  std::vector<std::thread> writers;
  std::atomic<int> saved{0};
  std::atomic<int> errors{0};
  for (int w = 1; w <= 4; ++w)
    writers.emplace_back([&, w] {
      for (int round = 0; round < 10; ++round) {
        for (int attempt = 0; attempt < 200; ++attempt) {
          auto cur = s.consents->load("u1");
          if (!cur) {
            ++errors;
            break;
          }
          consent_set next{{}, cur->revision + 1};
          for (int i = 0; i < w + round % 3; ++i)
            next.records.push_back({"app", "s" + std::to_string(i), w, 0, 0, false});
          auto st = s.consents->save("u1", next, {});
          if (st) {
            ++saved;
            break;
          }
          if (st.error() != errc::conflict) {
            ++errors;
            break;
          }
        }
      }
    });
  for (auto& t : writers)
    t.join();
  EXPECT_EQ(errors, 0);
  EXPECT_EQ(saved, 40);
  auto loaded = s.consents->load("u1");
  ASSERT_TRUE(loaded && !loaded->records.empty());
  EXPECT_EQ(loaded->revision, 40);
  auto writer = loaded->records.front().granted_at;
  for (auto& c : loaded->records)
    EXPECT_EQ(c.granted_at, writer);
  // A writer that loaded an old revision changes nothing.
  EXPECT_EQ(s.consents->save("u1", {{}, 40}, {}).error(), errc::conflict);
  EXPECT_FALSE(s.consents->load("u1")->records.empty());
}

TEST_F(pg_stores_test, clients_round_trip_their_lists) {
  client_record c{"app", "abcd", {"https://a/cb", "https://b/cb"}, {"openid", "read"},
                  {"authorization_code", "refresh_token"}, 7};
  ASSERT_TRUE(s.clients->create(c, {}));
  auto found = s.clients->find("app");
  ASSERT_TRUE(found && found->has_value());
  EXPECT_EQ((*found)->redirect_uris, c.redirect_uris);
  EXPECT_EQ((*found)->scopes, c.scopes);
  EXPECT_EQ((*found)->grant_types, c.grant_types);
  EXPECT_EQ((*found)->secret_hash, "abcd");
  EXPECT_EQ((*found)->created_at, 7);
}

TEST_F(pg_stores_test, ping_answers_and_a_statement_timeout_is_temporary) {
  EXPECT_TRUE(pg->ping());
  auto quick = options;
  quick.statement_timeout_ms = 100;
  pg_client impatient{quick};
  auto r = impatient.transact([](pqxx::work& w) -> status {
    w.exec("SELECT pg_sleep(2)");
    return ok();
  });
  EXPECT_EQ(r.error(), errc::temporarily_unavailable);
  EXPECT_TRUE(impatient.ping());  // the connection survived the cancelled statement
}

TEST_F(pg_stores_test, a_full_pool_makes_callers_wait_a_bounded_time) {
  auto small = options;
  small.pool_size = 1;
  small.acquire_timeout_ms = 200;
  pg_client one{small};
  std::atomic<bool> holding{false};
  std::thread holder{[&] {
    (void)one.transact([&](pqxx::work& w) -> status {
      holding = true;
      w.exec("SELECT pg_sleep(1)");
      return ok();
    });
  }};
  while (!holding)
    std::this_thread::sleep_for(5ms);
  auto start = std::chrono::steady_clock::now();
  auto st = one.ping();
  auto waited = std::chrono::steady_clock::now() - start;
  holder.join();
  EXPECT_EQ(st.error(), errc::temporarily_unavailable);
  EXPECT_LT(waited, 900ms);
  EXPECT_TRUE(one.ping());  // the connection came back
}

TEST_F(pg_stores_test, a_killed_connection_is_replaced_on_the_next_call) {
  auto tagged = options;
  tagged.conninfo += " application_name='victim_" + options.schema + "'";
  auto victim = std::make_shared<pg_client>(tagged);
  auto users = make_pg_stores(victim, {kek, false}).users;
  ASSERT_TRUE(users->create(user("u1", "a@x.io"), {}));
  // The server ends the pooled session (as on a restart or failover).
  EXPECT_EQ(scalar<int>("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                        " WHERE application_name = 'victim_" + options.schema + "'"),
            1);
  auto found = users->find_by_id("u1");
  ASSERT_TRUE(found) << to_string(found.error()) << " " << found.description();
  EXPECT_TRUE(found->has_value());
}

// Needs no server: nothing listens on port 1.
TEST(pg_client, an_unreachable_server_is_temporarily_unavailable_quickly) {
  pg_options o;
  o.conninfo = "host=127.0.0.1 port=1 dbname=credo user=credo password=secret";
  o.connect_timeout_s = 2;
  auto pg = std::make_shared<pg_client>(o);
  auto s = make_pg_stores(pg, {protocols::random_bytes(32), true});
  auto start = std::chrono::steady_clock::now();
  auto found = s.users->find_by_id("u1");
  EXPECT_EQ(found.error(), errc::temporarily_unavailable);
  EXPECT_EQ(found.description().find("secret"), std::string::npos);
  EXPECT_EQ(s.audit->append({event("e1", "x", "u1")}).error(), errc::temporarily_unavailable);
  EXPECT_EQ(pg->ping().error(), errc::temporarily_unavailable);
  EXPECT_EQ(migrate(*pg).error(), errc::temporarily_unavailable);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
}

TEST(pg_client, rejects_a_schema_name_that_is_not_a_plain_identifier) {
  pg_options o;
  o.schema = "x; DROP TABLE users";
  EXPECT_THROW(pg_client{o}, std::invalid_argument);
}

TEST(parse_database_url, accepts_both_schemes_and_decodes_percent_escapes) {
  auto a = parse_database_url("postgres://credo:s3cret@db.example:6543/credo");
  ASSERT_TRUE(a) << a.description();
  EXPECT_EQ(a->conninfo,
            "user='credo' password='s3cret' host='db.example' port='6543' dbname='credo'");
  auto b = parse_database_url("postgresql://us%40er:p%40ss%3Aw%27d%20x@127.0.0.1/my%20db");
  ASSERT_TRUE(b) << b.description();
  EXPECT_EQ(b->conninfo,
            R"(user='us@er' password='p@ss:w\'d x' host='127.0.0.1' dbname='my db')");
  auto c = parse_database_url("postgres://[::1]:5432/d?sslmode=require&application_name=credo");
  ASSERT_TRUE(c) << c.description();
  EXPECT_EQ(c->conninfo, "host='::1' port='5432' dbname='d' sslmode='require' "
                         "application_name='credo'");
  auto socket = parse_database_url("postgres://u@%2Ftmp%2Fpg/d");
  ASSERT_TRUE(socket) << socket.description();
  EXPECT_EQ(socket->conninfo, "user='u' host='/tmp/pg' dbname='d'");
}

TEST(parse_database_url, rejects_malformed_urls_without_echoing_the_password) {
  for (const char* url : {
         "mysql://u:hunter2@h/db",
         "postgres:/u:hunter2@h/db",
         "hunter2",
         "",
         "postgres://u:hunter2@/db",
         "postgres://u:hunter2@h:99999/db",
         "postgres://u:hunter2@h:port/db",
         "postgres://u:hunter2@h:/db",
         "postgres://u:hunter2%zz@h/db",
         "postgres://u:hunter2%2@h/db",
         "postgres://u:hunter2%00@h/db",
         "postgres://u:hunter2@h/db/extra",
         "postgres://u:hunter2@h/db?sslmode",
         "postgres://u:hunter2@h/db?ssl mode=x",
         "postgres://u:hunter2@[::1/db",
         "postgres://u:hunter2@h o/db",
       }) {
    auto r = parse_database_url(url);
    EXPECT_FALSE(r) << url;
    EXPECT_EQ(r.error(), errc::invalid_request) << url;
    EXPECT_EQ(r.description().find("hunter2"), std::string::npos) << r.description();
  }
}

}  // namespace
