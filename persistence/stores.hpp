#pragma once
// Store interfaces. Services and actors depend on these only; implementations live beside them
// (memory_stores.hpp is the embedded default). Every method is thread-safe. Failures are values:
// errc::temporarily_unavailable for a store that cannot be reached, errc::conflict /
// errc::email_taken for uniqueness violations, errc::not_found where stated.
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "persistence/records.hpp"
#include "protocols/jwt.hpp"
#include "protocols/result.hpp"

namespace credo::persistence {

/// Events committed together with a change (possibly none).
using audit_events = std::vector<audit_event>;

class user_store {
 public:
  virtual ~user_store() = default;
  /// errc::email_taken if another user has the (lower-cased) email.
  virtual status create(const user_record& user, const audit_events& events) = 0;
  virtual result<std::optional<user_record>> find_by_id(const std::string& id) = 0;
  virtual result<std::optional<user_record>> find_by_email(const std::string& email) = 0;
  /// Replaces the record with the same id; errc::not_found if absent.
  virtual status update(const user_record& user, const audit_events& events) = 0;
  /// Removes the user and frees the email.
  virtual status erase(const std::string& id, const audit_events& events) = 0;
};

class client_store {
 public:
  virtual ~client_store() = default;
  /// errc::conflict if the client id exists.
  virtual status create(const client_record& client, const audit_events& events) = 0;
  virtual result<std::optional<client_record>> find(const std::string& client_id) = 0;
};

/// Sessions and the refresh-token index. Only the owning session actor writes a session, and
/// every write is fenced by the record's revision: errc::conflict when the stored revision is
/// not the one the writer loaded (another owner wrote since), and nothing is written.
class session_store {
 public:
  virtual ~session_store() = default;
  virtual result<std::optional<session_record>> load(const std::string& session_id) = 0;
  /// Upserts the session, its per-user index entry and the refresh index for every hash in
  /// its families (hash -> session id, kept until the session expires). `session.revision` is
  /// the new revision; the stored one must be `session.revision - 1` (none stored counts as 0).
  virtual status save(const session_record& session) = 0;
  /// Removes the session if its stored revision is `session.revision` (gone already: ok).
  virtual status erase(const session_record& session) = 0;
  virtual result<std::optional<std::string>> find_by_refresh_hash(const std::string& hash) = 0;
  virtual result<std::vector<session_record>> list_for_user(const std::string& user_id) = 0;
};

/// One user's consent records and the revision that fences writes to them.
struct consent_set {
  std::vector<consent_record> records;
  std::int64_t revision = 0;  // 0: never written
};

class consent_store {
 public:
  virtual ~consent_store() = default;
  virtual result<consent_set> load(const std::string& user_id) = 0;
  /// Replaces the user's records. Only the owning consent actor writes, fenced like sessions:
  /// `set.revision` is the new revision and the stored one must be `set.revision - 1`, else
  /// errc::conflict and nothing (events neither) is written.
  virtual status save(const std::string& user_id, const consent_set& set,
                      const audit_events& events) = 0;
};

/// Revoked access tokens and consent cut-offs, consulted on every token check.
class revocation_store {
 public:
  virtual ~revocation_store() = default;
  /// The token with this jti is inactive; the entry may be dropped after `exp`.
  virtual status revoke_token(const std::string& jti, std::int64_t exp) = 0;
  virtual result<bool> is_token_revoked(const std::string& jti) = 0;
  /// Every token for (user, client, scope) issued at or before `cutoff` is inactive. An empty
  /// client and scope cut off every token of the user.
  virtual status add_cutoff(const std::string& user_id, const std::string& client_id,
                            const std::string& scope, std::int64_t cutoff) = 0;
  /// The newest cutoff for (user, client, scope), 0 if none.
  virtual result<std::int64_t> cutoff(const std::string& user_id, const std::string& client_id,
                                      const std::string& scope) = 0;
  /// Every live revocation and cut-off.
  virtual result<revocation_snapshot> snapshot() = 0;
};

class code_store {
 public:
  virtual ~code_store() = default;
  virtual status put(const authorization_code_record& code) = 0;
  /// Marks the code used and returns it as it was before (so `used` tells a replay). Codes are
  /// kept until they expire so that a replay can be detected.
  virtual result<std::optional<authorization_code_record>> consume(const std::string& hash) = 0;
};

class audit_store {
 public:
  virtual ~audit_store() = default;
  /// Records events of a change owned elsewhere (Redis sessions, tokens), with their outbox
  /// rows: all or none.
  virtual status append(const audit_events& events) = 0;
  /// Newest first; empty subject means every subject.
  virtual result<std::vector<audit_event>> query(const std::string& subject, std::size_t limit) = 0;
  /// Removes personal data (ip) from the subject's events; the pseudonymous subject id stays.
  virtual status scrub_subject(const std::string& subject) = 0;
  /// Whether the event with this id was stored (committed).
  virtual result<bool> contains(const std::string& event_id) = 0;
};

/// One unpublished audit event and the Kafka topic it goes to.
struct outbox_entry {
  std::int64_t id = 0;  // increasing in commit order within one store
  std::string topic;    // credo.audit.events or credo.consent.events
  audit_event event;
};

/// The audit outbox (PostgreSQL `audit_outbox`), drained by the audit publisher actor. Rows are
/// written by the audit-writing methods above, in their transactions; published rows are kept a
/// while (a record of what went out) and then deleted by prune_published. The events themselves
/// stay in audit_events.
class outbox_store {
 public:
  virtual ~outbox_store() = default;
  /// The oldest unpublished rows, at most `limit`.
  virtual result<std::vector<outbox_entry>> pending(std::size_t limit) = 0;
  virtual status mark_published(const std::vector<std::int64_t>& ids) = 0;
  /// How many rows wait to be published.
  virtual result<std::int64_t> backlog() = 0;
  /// Deletes at most `limit` rows published more than `older_than` ago; returns how many it
  /// deleted (`limit`: there may be more). Unpublished rows are never deleted.
  virtual result<std::int64_t> prune_published(std::chrono::seconds older_than,
                                               std::size_t limit) = 0;
};

class key_store {
 public:
  virtual ~key_store() = default;
  virtual result<std::vector<protocols::signing_key_record>> load_all() = 0;
  /// Upserts by kid. The PostgreSQL store keeps the private key encrypted with the key-encryption
  /// key of the configuration, never in the clear.
  virtual status save(const protocols::signing_key_record& key, const audit_events& events) = 0;
  virtual status erase(const std::string& kid) = 0;
};

/// Rate-limit buckets and lockouts (Redis in a cluster: the state outlives its owner node).
class bucket_store {
 public:
  virtual ~bucket_store() = default;
  virtual result<std::optional<bucket_record>> load(const std::string& key) = 0;
  /// Replaces the record, which the store may forget after `expires_at_ms` (unix ms).
  virtual status save(const std::string& key, const bucket_record& record,
                      std::int64_t expires_at_ms) = 0;
  virtual status erase(const std::string& key) = 0;
};

/// Every store a node uses, chosen at start from configuration.
struct stores {
  std::shared_ptr<user_store> users;
  std::shared_ptr<client_store> clients;
  std::shared_ptr<session_store> sessions;
  std::shared_ptr<consent_store> consents;
  std::shared_ptr<revocation_store> revocations;
  std::shared_ptr<code_store> codes;
  std::shared_ptr<audit_store> audit;
  std::shared_ptr<key_store> keys;
  std::shared_ptr<bucket_store> buckets;
  std::shared_ptr<outbox_store> outbox;  // null unless KAFKA_BROKERS is configured
};

}  // namespace credo::persistence
