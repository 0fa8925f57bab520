#include "persistence/migrations.hpp"

#include <set>
#include <string>

#include <pqxx/pqxx>

namespace credo::persistence {
namespace {

// Held for the migrating transaction; the same constant on every node.
constexpr long long migration_lock_key = 0x437265646f0002;  // "Credo" 0002

// Timestamps are unix seconds (milliseconds where the column says _ms), as in records.hpp.
// Empty strings rather than NULLs mirror the records, which have no "absent" state.
constexpr std::string_view v1_sql = R"sql(
CREATE TABLE users (
  id            text PRIMARY KEY,
  email         text NOT NULL UNIQUE,
  name          text NOT NULL DEFAULT '',
  password_hash text NOT NULL DEFAULT '',
  created_at    bigint NOT NULL DEFAULT 0,
  updated_at    bigint NOT NULL DEFAULT 0
);

CREATE TABLE oauth_clients (
  client_id     text PRIMARY KEY,
  secret_hash   text NOT NULL DEFAULT '',
  redirect_uris jsonb NOT NULL DEFAULT '[]',
  scopes        jsonb NOT NULL DEFAULT '[]',
  grant_types   jsonb NOT NULL DEFAULT '[]',
  created_at    bigint NOT NULL DEFAULT 0
);

-- A user's records are replaced as a whole; position keeps the order they were saved in, and
-- the primary key doubles as the index on user_id.
CREATE TABLE consents (
  user_id         text NOT NULL,
  position        integer NOT NULL,
  client_id       text NOT NULL,
  scope           text NOT NULL,
  granted_at      bigint NOT NULL DEFAULT 0,
  expires_at      bigint NOT NULL DEFAULT 0,
  revoked_at      bigint NOT NULL DEFAULT 0,
  expiry_reported boolean NOT NULL DEFAULT false,
  PRIMARY KEY (user_id, position)
);

-- private_key_enc: AES-256-GCM nonce || ciphertext || tag under the key-encryption key, with
-- the kid as associated data (a row copied under another kid does not decrypt).
CREATE TABLE signing_keys (
  kid             text PRIMARY KEY,
  private_key_enc bytea NOT NULL,
  created_at      bigint NOT NULL DEFAULT 0,
  retired_at      bigint NOT NULL DEFAULT 0
);

CREATE TABLE audit_events (
  seq            bigserial NOT NULL UNIQUE,
  event_id       text PRIMARY KEY,
  type           text NOT NULL DEFAULT '',
  occurred_at_ms bigint NOT NULL DEFAULT 0,
  subject        text NOT NULL DEFAULT '',
  client_id      text NOT NULL DEFAULT '',
  session_id     text NOT NULL DEFAULT '',
  ip             text NOT NULL DEFAULT '',
  request_id     text NOT NULL DEFAULT '',
  node           text NOT NULL DEFAULT '',
  data           jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_events_subject_seq ON audit_events (subject, seq);

-- One row per (event, Kafka topic), written in the transaction of the event; the audit
-- publisher drains the unpublished ones in id order.
CREATE TABLE audit_outbox (
  id            bigserial PRIMARY KEY,
  event_id      text NOT NULL REFERENCES audit_events (event_id) ON DELETE CASCADE,
  topic         text NOT NULL,
  created_at_ms bigint NOT NULL DEFAULT (extract(epoch FROM clock_timestamp()) * 1000)::bigint,
  published_at  timestamptz
);
CREATE INDEX audit_outbox_pending ON audit_outbox (id) WHERE published_at IS NULL;
)sql";

std::set<int> applied_versions(pqxx::work& w) {
  std::set<int> out;
  for (const auto& row : w.exec("SELECT version FROM schema_migrations"))
    out.insert(row[0].as<int>());
  return out;
}

}  // namespace

const std::vector<migration>& migrations() {
  static const std::vector<migration> all{
    {1, "users, clients, consents, signing keys, audit events and outbox", v1_sql},
    {2, "consent revisions (fencing of consent writes)",
     "CREATE TABLE consent_revisions (user_id text PRIMARY KEY, revision bigint NOT NULL)"},
    {3, "first-party clients (may use /auth/login)",
     "ALTER TABLE oauth_clients ADD COLUMN first_party boolean NOT NULL DEFAULT false"},
  };
  return all;
}

status migrate(pg_client& pg) {
  return pg.transact([](pqxx::work& w) -> status {
    // Waiting behind another node's migration is expected; the pool's statement timeout is not
    // meant for schema changes.
    w.exec("SET LOCAL statement_timeout = '10min'");
    w.exec("SELECT pg_advisory_xact_lock(" + std::to_string(migration_lock_key) + ")");
    w.exec(
      "CREATE TABLE IF NOT EXISTS schema_migrations ("
      " version integer PRIMARY KEY,"
      " name text NOT NULL,"
      " applied_at timestamptz NOT NULL DEFAULT now())");
    auto applied = applied_versions(w);
    for (const auto& m : migrations()) {
      if (applied.count(m.version))
        continue;
      w.exec(std::string{m.sql});
      w.exec_params("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", m.version,
                    std::string{m.name});
    }
    return ok();
  });
}

}  // namespace credo::persistence
