#include "persistence/pg_stores.hpp"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <limits>

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "persistence/pg_client.hpp"
#include "protocols/crypto.hpp"

namespace credo::persistence {
namespace {

constexpr const char* audit_topic = "credo.audit.events";
constexpr const char* consent_topic = "credo.consent.events";

constexpr const char* event_columns =
  "event_id, type, occurred_at_ms, subject, client_id, session_id, ip, request_id, node, data";
// The same columns to read, from audit_events as `e` in the outbox join.
constexpr const char* event_select =
  "e.event_id, e.type, e.occurred_at_ms, e.subject, e.client_id, e.session_id, e.ip,"
  " e.request_id, e.node, e.data::text";

// SQL LIMIT from a size_t: anything past int64 means "no limit" anyway.
std::int64_t sql_limit(std::size_t n) {
  return static_cast<std::int64_t>(
    std::min<std::size_t>(n, static_cast<std::size_t>(std::numeric_limits<std::int64_t>::max())));
}

/// Reads the ten columns of event_select starting at `at`.
audit_event read_event(const pqxx::row& r, pqxx::row::size_type at) {
  audit_event e;
  e.event_id = r[at].as<std::string>();
  e.type = r[at + 1].as<std::string>();
  e.occurred_at_ms = r[at + 2].as<std::int64_t>();
  e.subject = r[at + 3].as<std::string>();
  e.client_id = r[at + 4].as<std::string>();
  e.session_id = r[at + 5].as<std::string>();
  e.ip = r[at + 6].as<std::string>();
  e.request_id = r[at + 7].as<std::string>();
  e.node = r[at + 8].as<std::string>();
  e.data_json = r[at + 9].as<std::string>();
  return e;
}

/// One statement for all the events of a write: the events travel as one JSON array, are
/// inserted in order, and each event that is new (a change retried with the same events
/// publishes once) gets its outbox rows: the audit topic ($2), and the consent topic ($3) for
/// consent changes. One round trip whatever the batch size (the audit writer's group commits).
std::string make_insert_events_sql(bool outbox) {
  std::string sql =
    std::string{"WITH e AS (INSERT INTO audit_events ("} + event_columns +
    ") SELECT d->>'event_id', d->>'type', (d->>'occurred_at_ms')::bigint, d->>'subject',"
    " d->>'client_id', d->>'session_id', d->>'ip', d->>'request_id', d->>'node', d->'data'"
    " FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS a (d, n) ORDER BY n"
    " ON CONFLICT (event_id) DO NOTHING RETURNING event_id, type)";
  if (!outbox)
    return sql + " SELECT count(*) FROM e";
  return sql + " INSERT INTO audit_outbox (event_id, topic) SELECT e.event_id, t.topic FROM e"
               " JOIN (VALUES (0, $2::text), (1, $3::text)) AS t (k, topic)"
               " ON t.k = 0 OR left(e.type, 8) = 'consent.' ORDER BY t.k";
}

/// Writes audit events, and their outbox rows when the outbox is on, into a transaction.
class event_writer {
 public:
  explicit event_writer(bool outbox) : outbox_(outbox) {}

  void write(pqxx::work& w, const audit_events& events) const {
    if (events.empty())
      return;
    auto docs = nlohmann::json::array();
    for (const auto& e : events) {
      auto data = nlohmann::json::parse(e.data_json, nullptr, false);
      if (data.is_discarded() || !data.is_object())
        data = nlohmann::json::object();
      docs.push_back({{"event_id", e.event_id}, {"type", e.type},
                      {"occurred_at_ms", e.occurred_at_ms}, {"subject", e.subject},
                      {"client_id", e.client_id}, {"session_id", e.session_id}, {"ip", e.ip},
                      {"request_id", e.request_id}, {"node", e.node}, {"data", std::move(data)}});
    }
    // Invalid UTF-8 in a field is replaced, not thrown: one bad event must not block a batch.
    auto json = docs.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    static const std::string with_outbox = make_insert_events_sql(true);
    static const std::string without_outbox = make_insert_events_sql(false);
    if (outbox_)
      w.exec_params(with_outbox, json, audit_topic, consent_topic);
    else
      w.exec_params(without_outbox, json);
  }

 private:
  bool outbox_;
};

/// What every store here holds: the client and the audit writer.
class pg_store_base {
 public:  // inherited constructors keep this access
  pg_store_base(std::shared_ptr<pg_client> pg, event_writer events)
    : pg_(std::move(pg)), events_(events) {}

 protected:
  std::shared_ptr<pg_client> pg_;
  event_writer events_;
};

// ---- users

constexpr const char* user_columns = "id, email, name, password_hash, created_at, updated_at";

user_record read_user(const pqxx::row& r) {
  user_record u;
  u.id = r[0].as<std::string>();
  u.email = r[1].as<std::string>();
  u.name = r[2].as<std::string>();
  u.password_hash = r[3].as<std::string>();
  u.created_at = r[4].as<std::int64_t>();
  u.updated_at = r[5].as<std::int64_t>();
  return u;
}

class pg_user_store final : public user_store, pg_store_base {
 public:
  using pg_store_base::pg_store_base;

  status create(const user_record& u, const audit_events& events) override {
    return pg_->transact([&](pqxx::work& w) -> status {
      // No conflict target: a taken id or email both leave the row out, told apart below.
      auto r = w.exec_params(std::string{"INSERT INTO users ("} + user_columns +
                               ") VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                             u.id, u.email, u.name, u.password_hash, u.created_at, u.updated_at);
      if (r.affected_rows() == 0)
        return email_in_use(w, u.email) ? errc::email_taken : errc::conflict;
      events_.write(w, events);
      return ok();
    });
  }

  result<std::optional<user_record>> find_by_id(const std::string& id) override {
    return find("id", id);
  }

  result<std::optional<user_record>> find_by_email(const std::string& email) override {
    return find("email", email);
  }

  status update(const user_record& u, const audit_events& events) override {
    // A new email that another user holds raises a unique violation: email_taken.
    return pg_->transact(
      [&](pqxx::work& w) -> status {
        auto r = w.exec_params(
          "UPDATE users SET email = $2, name = $3, password_hash = $4, created_at = $5,"
          " updated_at = $6 WHERE id = $1",
          u.id, u.email, u.name, u.password_hash, u.created_at, u.updated_at);
        if (r.affected_rows() == 0)
          return errc::not_found;
        events_.write(w, events);
        return ok();
      },
      errc::email_taken);
  }

  status erase(const std::string& id, const audit_events& events) override {
    return pg_->transact([&](pqxx::work& w) -> status {
      if (w.exec_params("DELETE FROM users WHERE id = $1", id).affected_rows() == 0)
        return errc::not_found;
      events_.write(w, events);
      return ok();
    });
  }

 private:
  static bool email_in_use(pqxx::work& w, const std::string& email) {
    return !w.exec_params("SELECT 1 FROM users WHERE email = $1", email).empty();
  }

  // `column` is one of two literals above, never input.
  result<std::optional<user_record>> find(const char* column, const std::string& value) {
    return pg_->transact([&](pqxx::work& w) -> result<std::optional<user_record>> {
      auto r = w.exec_params(std::string{"SELECT "} + user_columns + " FROM users WHERE " +
                               column + " = $1",
                             value);
      if (r.empty())
        return std::optional<user_record>{};
      return std::optional<user_record>{read_user(r[0])};
    });
  }
};

// ---- clients

std::string json_list(const std::vector<std::string>& v) { return nlohmann::json(v).dump(); }

std::vector<std::string> parse_list(const pqxx::field& f) {
  return nlohmann::json::parse(f.c_str()).get<std::vector<std::string>>();
}

class pg_client_store final : public client_store, pg_store_base {
 public:
  using pg_store_base::pg_store_base;

  status create(const client_record& c, const audit_events& events) override {
    return pg_->transact([&](pqxx::work& w) -> status {
      auto r = w.exec_params(
        "INSERT INTO oauth_clients (client_id, secret_hash, redirect_uris, scopes, grant_types,"
        " created_at, first_party) VALUES ($1, $2, $3::jsonb, $4::jsonb, $5::jsonb, $6, $7)"
        " ON CONFLICT (client_id) DO NOTHING",
        c.client_id, c.secret_hash, json_list(c.redirect_uris), json_list(c.scopes),
        json_list(c.grant_types), c.created_at, c.first_party);
      if (r.affected_rows() == 0)
        return errc::conflict;
      events_.write(w, events);
      return ok();
    });
  }

  result<std::optional<client_record>> find(const std::string& client_id) override {
    return pg_->transact([&](pqxx::work& w) -> result<std::optional<client_record>> {
      auto r = w.exec_params(
        "SELECT client_id, secret_hash, redirect_uris::text, scopes::text, grant_types::text,"
        " created_at, first_party FROM oauth_clients WHERE client_id = $1",
        client_id);
      if (r.empty())
        return std::optional<client_record>{};
      client_record c;
      c.client_id = r[0][0].as<std::string>();
      c.secret_hash = r[0][1].as<std::string>();
      c.redirect_uris = parse_list(r[0][2]);
      c.scopes = parse_list(r[0][3]);
      c.grant_types = parse_list(r[0][4]);
      c.created_at = r[0][5].as<std::int64_t>();
      c.first_party = r[0][6].as<bool>();
      return std::optional<client_record>{std::move(c)};
    });
  }
};

// ---- consents

class pg_consent_store final : public consent_store, pg_store_base {
 public:
  using pg_store_base::pg_store_base;

  result<consent_set> load(const std::string& user_id) override {
    return pg_->transact([&](pqxx::work& w) -> result<consent_set> {
      consent_set out;
      for (const auto& r : w.exec_params(
             "SELECT client_id, scope, granted_at, expires_at, revoked_at, expiry_reported"
             " FROM consents WHERE user_id = $1 ORDER BY position",
             user_id)) {
        consent_record c;
        c.client_id = r[0].as<std::string>();
        c.scope = r[1].as<std::string>();
        c.granted_at = r[2].as<std::int64_t>();
        c.expires_at = r[3].as<std::int64_t>();
        c.revoked_at = r[4].as<std::int64_t>();
        c.expiry_reported = r[5].as<bool>();
        out.records.push_back(std::move(c));
      }
      auto rev = w.exec_params("SELECT revision FROM consent_revisions WHERE user_id = $1", user_id);
      out.revision = rev.empty() ? 0 : rev[0][0].as<std::int64_t>();
      return out;
    });
  }

  status save(const std::string& user_id, const consent_set& set,
              const audit_events& events) override {
    return pg_->transact([&](pqxx::work& w) -> status {
      // The fence: the row lock of the revision row also makes two writers for one user take
      // turns; the one whose revision is stale changes nothing.
      auto fenced = w.exec_params(
        "INSERT INTO consent_revisions (user_id, revision) VALUES ($1, $2)"
        " ON CONFLICT (user_id) DO UPDATE SET revision = EXCLUDED.revision"
        " WHERE consent_revisions.revision = $2 - 1 RETURNING revision",
        user_id, set.revision);
      if (fenced.empty() || set.revision < 1)
        return {errc::conflict, "consents were changed by another owner"};
      w.exec_params("DELETE FROM consents WHERE user_id = $1", user_id);
      for (std::size_t i = 0; i < set.records.size(); ++i) {
        const auto& c = set.records[i];
        w.exec_params(
          "INSERT INTO consents (user_id, position, client_id, scope, granted_at, expires_at,"
          " revoked_at, expiry_reported) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
          user_id, static_cast<int>(i), c.client_id, c.scope, c.granted_at, c.expires_at,
          c.revoked_at, c.expiry_reported);
      }
      events_.write(w, events);
      return ok();
    });
  }
};

// ---- audit

class pg_audit_store final : public audit_store, pg_store_base {
 public:
  using pg_store_base::pg_store_base;

  status append(const audit_events& events) override {
    return pg_->transact([&](pqxx::work& w) -> status {
      events_.write(w, events);
      return ok();
    });
  }

  result<bool> contains(const std::string& event_id) override {
    return pg_->transact([&](pqxx::work& w) -> result<bool> {
      return !w.exec_params("SELECT 1 FROM audit_events WHERE event_id = $1", event_id).empty();
    });
  }

  result<std::vector<audit_event>> query(const std::string& subject, std::size_t limit) override {
    return pg_->transact([&](pqxx::work& w) -> result<std::vector<audit_event>> {
      // Two statements rather than "$1 = '' OR subject = $1", which would not use the index.
      auto select = std::string{"SELECT "} + event_select + " FROM audit_events e ";
      auto r = subject.empty()
                 ? w.exec_params(select + "ORDER BY seq DESC LIMIT $1", sql_limit(limit))
                 : w.exec_params(select + "WHERE subject = $1 ORDER BY seq DESC LIMIT $2",
                                 subject, sql_limit(limit));
      std::vector<audit_event> out;
      out.reserve(r.size());
      for (const auto& row : r)
        out.push_back(read_event(row, 0));
      return out;
    });
  }

  status scrub_subject(const std::string& subject) override {
    return pg_->transact([&](pqxx::work& w) -> status {
      w.exec_params("UPDATE audit_events SET ip = '' WHERE subject = $1 AND ip <> ''", subject);
      return ok();
    });
  }
};

// ---- outbox

class pg_outbox_store final : public outbox_store {
 public:
  explicit pg_outbox_store(std::shared_ptr<pg_client> pg) : pg_(std::move(pg)) {}

  result<std::vector<outbox_entry>> pending(std::size_t limit) override {
    return pg_->transact([&](pqxx::work& w) -> result<std::vector<outbox_entry>> {
      // One plan whatever the statistics say: the oldest `limit` ids in order from the partial
      // index audit_outbox_pending, then each event by primary key. Left to the estimates, the
      // planner may read and sort every pending row (bitmap scan; seen before the first ANALYZE)
      // or hash all of audit_events (seen after one): O(backlog) or O(events) per round instead
      // of O(limit). SET LOCAL ends with this transaction.
      w.exec(
        "SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off;"
        " SET LOCAL enable_sort = off; SET LOCAL enable_hashjoin = off;"
        " SET LOCAL enable_mergejoin = off");
      auto r = w.exec_params(std::string{"SELECT o.id, o.topic, "} + event_select +
                               " FROM (SELECT id, event_id, topic FROM audit_outbox"
                               " WHERE published_at IS NULL ORDER BY id LIMIT $1) o"
                               " JOIN audit_events e ON e.event_id = o.event_id ORDER BY o.id",
                             sql_limit(limit));
      std::vector<outbox_entry> out;
      out.reserve(r.size());
      for (const auto& row : r)
        out.push_back({row[0].as<std::int64_t>(), row[1].as<std::string>(), read_event(row, 2)});
      return out;
    });
  }

  status mark_published(const std::vector<std::int64_t>& ids) override {
    if (ids.empty())
      return ok();
    std::string array = "{";
    for (std::size_t i = 0; i < ids.size(); ++i)
      array += (i ? "," : "") + std::to_string(ids[i]);
    array += "}";
    return pg_->transact([&](pqxx::work& w) -> status {
      w.exec_params(
        "UPDATE audit_outbox SET published_at = now()"
        " WHERE id = ANY($1::bigint[]) AND published_at IS NULL",
        array);
      return ok();
    });
  }

  result<std::int64_t> backlog() override {
    return pg_->transact([&](pqxx::work& w) -> result<std::int64_t> {
      return w.exec("SELECT count(*) FROM audit_outbox WHERE published_at IS NULL")[0][0]
        .as<std::int64_t>();
    });
  }

  result<std::int64_t> prune_published(std::chrono::seconds older_than,
                                       std::size_t limit) override {
    return pg_->transact([&](pqxx::work& w) -> result<std::int64_t> {
      // A sequential scan that stops after `limit` matches, then a TID scan: no index on
      // published_at to maintain on every publish. Rows are never updated once published, and
      // a row another node deletes first is skipped.
      auto r = w.exec_params(
        "DELETE FROM audit_outbox WHERE ctid = ANY(ARRAY(SELECT ctid FROM audit_outbox"
        " WHERE published_at < now() - $1::bigint * interval '1 second' LIMIT $2))",
        static_cast<std::int64_t>(older_than.count()), sql_limit(limit));
      return static_cast<std::int64_t>(r.affected_rows());
    });
  }

 private:
  std::shared_ptr<pg_client> pg_;
};

// ---- signing keys

class pg_key_store final : public key_store, pg_store_base {
 public:
  pg_key_store(std::shared_ptr<pg_client> pg, event_writer events, std::string kek)
    : pg_store_base(std::move(pg), events), kek_(std::move(kek)) {}

  result<std::vector<protocols::signing_key_record>> load_all() override {
    if (auto st = check_kek(); !st)
      return {st.error(), st.description()};
    using out_type = result<std::vector<protocols::signing_key_record>>;
    return pg_->transact([&](pqxx::work& w) -> out_type {
      std::vector<protocols::signing_key_record> out;
      for (const auto& r : w.exec("SELECT kid, private_key_enc, created_at, retired_at"
                                  " FROM signing_keys ORDER BY created_at, kid")) {
        protocols::signing_key_record k;
        k.kid = r[0].as<std::string>();
        auto pem = protocols::aead_open(kek_, pqxx::binarystring{r[1]}.str(), k.kid);
        if (!pem)
          return {errc::internal_error,
                  "signing key " + k.kid +
                    " does not decrypt: the key-encryption key does not match the one it was"
                    " stored with"};
        k.private_pem = std::move(*pem);
        k.created_at = r[2].as<std::int64_t>();
        k.retired_at = r[3].as<std::int64_t>();
        out.push_back(std::move(k));
      }
      return out;
    });
  }

  status save(const protocols::signing_key_record& key, const audit_events& events) override {
    if (auto st = check_kek(); !st)
      return st;
    // The kid as associated data binds the ciphertext to its row.
    auto sealed = protocols::aead_seal(kek_, key.private_pem, key.kid);
    if (!sealed)
      return {errc::internal_error, "sealing a signing key failed"};
    return pg_->transact([&](pqxx::work& w) -> status {
      w.exec_params(
        "INSERT INTO signing_keys (kid, private_key_enc, created_at, retired_at)"
        " VALUES ($1, $2, $3, $4) ON CONFLICT (kid) DO UPDATE SET"
        " private_key_enc = EXCLUDED.private_key_enc, created_at = EXCLUDED.created_at,"
        " retired_at = EXCLUDED.retired_at",
        key.kid, pqxx::binarystring{sealed->data(), sealed->size()}, key.created_at,
        key.retired_at);
      events_.write(w, events);
      return ok();
    });
  }

  status erase(const std::string& kid) override {
    return pg_->transact([&](pqxx::work& w) -> status {
      w.exec_params("DELETE FROM signing_keys WHERE kid = $1", kid);
      return ok();
    });
  }

 private:
  status check_kek() const {
    if (kek_.size() != 32)
      return {errc::internal_error, "the key-encryption key must be 32 bytes"};
    return ok();
  }
  std::string kek_;
};

}  // namespace

stores make_pg_stores(std::shared_ptr<pg_client> pg, pg_store_options options) {
  event_writer events{options.outbox};
  stores s;
  s.users = std::make_shared<pg_user_store>(pg, events);
  s.clients = std::make_shared<pg_client_store>(pg, events);
  s.consents = std::make_shared<pg_consent_store>(pg, events);
  s.audit = std::make_shared<pg_audit_store>(pg, events);
  s.keys = std::make_shared<pg_key_store>(pg, events, std::move(options.key_encryption_key));
  if (options.outbox)
    s.outbox = std::make_shared<pg_outbox_store>(pg);
  return s;
}

}  // namespace credo::persistence
