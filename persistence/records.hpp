#pragma once
// Plain data as the stores keep it. No behaviour here; invariants live in the actors that own
// each record (session: actors/session_actor.cpp, consent: actors/consent_actor.cpp).
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "protocols/rate_limit.hpp"

namespace credo::persistence {

struct user_record {
  std::string id;  // UUID; also the pseudonymous subject id kept in audit events
  std::string email;  // lower-cased
  std::string name;
  std::string password_hash;  // Argon2id PHC string
  std::int64_t created_at = 0;
  std::int64_t updated_at = 0;
};

struct client_record {
  std::string client_id;
  std::string secret_hash;  // hex HMAC-SHA-256 of the secret; empty for public clients
  std::vector<std::string> redirect_uris;
  std::vector<std::string> scopes;
  std::vector<std::string> grant_types;
  std::int64_t created_at = 0;
  // May sign users in with their password at /auth/login (the operator's own apps); any other
  // client uses the authorization code flow (RFC 9700 2.4: no password grant for third parties).
  bool first_party = false;
  bool is_public() const { return secret_hash.empty(); }
};

/// An access token issued from a family, kept so that revoking the family can revoke it.
struct issued_access_token {
  std::string jti;
  std::int64_t exp = 0;
};

/// One grant: the refresh-token chain of a login or of one authorization-code exchange.
struct refresh_family_record {
  std::string family_id;  // session id for the login grant; sha256 of the code for code grants
  std::string client_id;
  std::string scope;  // space-separated
  std::string current_hash;   // sha256 hex of the refresh token that may be used next
  std::string previous_hash;  // the token it replaced (grace replay, reuse detection)
  std::vector<std::string> used_fingerprints;  // 16-hex-char prefixes of older used tokens
  std::int64_t rotated_at = 0;
  std::int64_t created_at = 0;
  std::int64_t consent_expires_at = 0;  // 0: not consent-gated or no expiry
  bool revoked = false;
  std::vector<issued_access_token> access_tokens;  // live ones only (pruned on write)
  // The token.refreshed event of the last rotation: stored (committed) iff the rotation was
  // acknowledged to the client; a node taking over a session reads it to tell a real replay
  // from a retry of a refresh whose owner died before answering.
  std::string rotation_event_id;
  std::string rotation_attempt;  // attempt id of the refresh request that made that rotation
};

struct session_record {
  std::string id;
  std::string user_id;
  std::string device;
  std::string ip;
  std::int64_t created_at = 0;
  std::int64_t last_seen_at = 0;
  std::int64_t expires_at = 0;  // absolute end of the session and of its refresh tokens
  std::vector<refresh_family_record> families;
  // Grants revoked before they were issued (a replayed authorization code racing its first
  // exchange): add_family refuses these ids.
  std::vector<std::string> revoked_family_ids;
  // Fencing token: the store takes a write only on top of the revision the writer loaded, so
  // an owner whose state is stale (another node changed the session meanwhile) cannot write.
  std::int64_t revision = 0;
};

struct consent_record {
  std::string client_id;
  std::string scope;  // one scope per record
  std::int64_t granted_at = 0;
  std::int64_t expires_at = 0;  // 0: no expiry
  std::int64_t revoked_at = 0;  // 0: not revoked
  bool expiry_reported = false;  // the consent.expired audit event was emitted
};

struct authorization_code_record {
  std::string code_hash;
  std::string client_id;
  std::string redirect_uri;
  std::string scope;
  std::string code_challenge;
  std::string user_id;
  std::string session_id;
  std::int64_t expires_at = 0;
  std::int64_t consent_expires_at = 0;
  bool used = false;
};

struct audit_event {
  std::string event_id;
  std::string type;
  std::int64_t occurred_at_ms = 0;
  std::string subject;
  std::string client_id;
  std::string session_id;
  std::string ip;
  std::string request_id;
  std::string node;
  std::string data_json = "{}";  // a JSON object, never containing secrets
};

/// Everything a revocation store holds, for loading a node's local revocation set.
struct revocation_snapshot {
  struct cutoff_entry {
    std::string user_id;
    std::string client_id;
    std::string scope;
    std::int64_t cutoff = 0;
  };
  std::vector<std::pair<std::string, std::int64_t>> tokens;  // jti, exp
  std::vector<cutoff_entry> cutoffs;
  /// Unix ms when the node that made these revocations sent them to its peers (0: not sent;
  /// a peer reports now minus this as the propagation lag).
  std::int64_t sent_at_ms = 0;
};

/// A rate-limit entity's state (actors/rate_limit_entity.cpp): a token bucket, or the lockout
/// of one account, depending on its key.
struct bucket_record {
  protocols::token_bucket bucket;
  protocols::lockout_state lockout;
};

}  // namespace credo::persistence
