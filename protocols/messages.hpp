#pragma once
// Every message exchanged between front actors and entity actors, locally today and between
// nodes once the cluster lands. Plain structs with inspect(); one type-id block (credo_types).
// Replies that fail carry a caf::error made from credo::errc (CAF_ERROR_CODE_ENUM below).
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include <caf/actor.hpp>
#include <caf/atom.hpp>
#include <caf/error.hpp>
#include <caf/meta/type_name.hpp>
#include <caf/type_id.hpp>

#include "persistence/records.hpp"
#include "protocols/errc.hpp"
#include "protocols/rate_limit.hpp"

CAF_ERROR_CODE_ENUM(credo::errc, "credo")

namespace credo::protocols {

/// Who caused a change, for the audit event it emits.
struct origin {
  std::string request_id;
  std::string ip;
};

/// Tokens handed to a client. `refresh_token` is empty for client_credentials.
struct token_grant {
  std::string access_token;
  std::string refresh_token;
  std::string scope;
  std::string session_id;
  std::string jti;
  std::int64_t expires_in = 0;
};

// -- session entity (key: session_id) -----------------------------------------------------------

/// Creates the session and its login grant (family id = session id). Reply: token_grant.
struct session_open {
  std::string session_id;
  std::string user_id;
  std::string client_id;
  std::string scope;
  std::string device;
  origin from;
};

/// Adds the grant of an authorization-code exchange. Reply: token_grant.
struct session_add_family {
  std::string session_id;
  std::string family_id;
  std::string client_id;
  std::string scope;
  std::int64_t consent_expires_at = 0;
  origin from;
};

/// Rotates a refresh token. Reply: token_grant, or errc::invalid_grant (reuse revokes the family).
struct session_refresh {
  std::string session_id;
  std::string refresh_hash;
  std::string client_id;  // authenticated client; must own the family
  // Set by the front after a consent check for a third-party grant: the consent's current
  // expiry (0: none) replaces the one recorded when the grant was made.
  bool consent_checked = false;
  std::int64_t consent_expires_at = 0;
  origin from;
  // Set by a front that sends the refresh again because the owner it first went to died
  // before answering: that answer provably never reached the client (it would have come back
  // through this front), so if the presented token is the previous one, the last rotation is
  // taken back instead of counting as reuse.
  bool owner_died = false;
  // Random per front request (kept when it is sent again): the family records the attempt of
  // its last rotation, so owner_died takes back only a rotation this very request made.
  std::string attempt_id = {};
};

/// Ends the session: every family revoked, every access token revoked. Reply: bool (true if it
/// existed).
struct session_end {
  std::string session_id;
  std::string reason;  // "logout", "deleted", "password_changed", "user_erased", ...
  origin from;
};

/// Revokes one family, found by refresh hash (RFC 7009) or by family id (code replay).
/// Reply: bool (true if something was revoked).
struct session_revoke_family {
  std::string session_id;
  std::string refresh_hash;
  std::string family_id;
  std::string client_id;  // empty: any client (internal callers)
  origin from;
};

/// RFC 7662 view of a refresh token. Reply: refresh_info.
struct session_inspect_refresh {
  std::string session_id;
  std::string refresh_hash;
};

struct refresh_info {
  bool active = false;
  std::string sub;
  std::string client_id;
  std::string scope;
  std::string session_id;
  std::int64_t iat = 0;
  std::int64_t exp = 0;
};

// -- consent entity (key: user_id) ---------------------------------------------------------------

/// Reply: consent_list with the records now in force for that client.
struct consent_grant {
  std::string user_id;
  std::string client_id;
  std::vector<std::string> scopes;
  std::int64_t expires_in = 0;  // 0: no expiry
  origin from;
};

/// Reply: consent_list with every record of the user.
struct consent_query {
  std::string user_id;
};

/// Reply: bool; errc::not_found if nothing active matched.
struct consent_revoke {
  std::string user_id;
  std::string client_id;
  std::string scope;
  origin from;
};

/// Reply: consent_check_result.
struct consent_check {
  std::string user_id;
  std::string client_id;
  std::vector<std::string> scopes;
};

/// Removes every record (user erased). Reply: bool.
struct consent_erase {
  std::string user_id;
  origin from;
};

/// Fault injection (credod --enable-fault-injection only): the entity answers true and then
/// fails, so that its supervisor restarts it. Reply: bool.
struct session_crash {
  std::string session_id;
};
struct consent_crash {
  std::string user_id;
};

/// To the audit writer: events of one change, written all or none. Reply: bool (true), or an
/// error when the audit store could not take them.
struct audit_append {
  std::vector<persistence::audit_event> events;
};

struct consent_list {
  std::vector<persistence::consent_record> records;
};

struct consent_check_result {
  bool granted = false;
  std::vector<std::string> missing;
  std::int64_t expires_at = 0;  // earliest expiry among the checked scopes, 0: none
};

// -- rate limits (docs/decisions/0011-rate-limits.md) ---------------------------------------------

/// Takes up to `want` tokens from the bucket `key`, whose rule travels with the request (a
/// bucket needs no configuration of its own). Reply: bucket_grant.
struct bucket_take {
  std::string key;
  bucket_rule rule;
  std::int64_t want = 1;
};
struct bucket_grant {
  std::int64_t granted = 0;
  std::int64_t remaining = 0;  // whole tokens left after the grant
  std::int64_t reset_ms = 0;   // until the bucket is full again
  std::int64_t retry_ms = 0;   // until one token is back (when nothing was granted)
};

/// Starts a password check for the account key `key` (a hash of the email). Reply:
/// lockout_answer; the check may run only if allowed.
struct lockout_begin {
  std::string key;
  std::string attempt_id;
  lockout_policy policy;
};
/// The check `attempt_id` ended. Reply: lockout_answer (not allowed: this failure locked).
struct lockout_end {
  std::string key;
  std::string attempt_id;
  bool success = false;
  lockout_policy policy;
};
struct lockout_answer {
  bool allowed = false;
  std::int64_t retry_ms = 0;
  std::int64_t remaining = 0;
  std::int64_t lockouts = 0;  // the account's lockout level after this (for the audit event)
};
/// Fault injection, as session_crash. Reply: bool.
struct rate_limit_crash {
  std::string key;
};

// -- routing -------------------------------------------------------------------------------------

/// The registries an entity key can belong to; a node's card names one registry per kind.
enum class entity_kind : std::uint8_t { session = 0, consent = 1, rate_limit = 2 };
inline constexpr std::size_t entity_kind_count = 3;

/// The entity key and kind of every entity request, and the type its entity replies with.
template <class T>
struct route_of;
#define CREDO_ROUTE(msg, kind_, field, reply_)                                          \
  template <>                                                                             \
  struct route_of<msg> {                                                                  \
    static constexpr entity_kind kind = entity_kind::kind_;                               \
    using reply = reply_;                                                                 \
    static const std::string& key(const msg& m) { return m.field; }                       \
  };
CREDO_ROUTE(session_open, session, session_id, token_grant)
CREDO_ROUTE(session_add_family, session, session_id, token_grant)
CREDO_ROUTE(session_refresh, session, session_id, token_grant)
CREDO_ROUTE(session_end, session, session_id, bool)
CREDO_ROUTE(session_revoke_family, session, session_id, bool)
CREDO_ROUTE(session_inspect_refresh, session, session_id, refresh_info)
CREDO_ROUTE(consent_grant, consent, user_id, consent_list)
CREDO_ROUTE(consent_query, consent, user_id, consent_list)
CREDO_ROUTE(consent_revoke, consent, user_id, bool)
CREDO_ROUTE(consent_check, consent, user_id, consent_check_result)
CREDO_ROUTE(consent_erase, consent, user_id, bool)
CREDO_ROUTE(session_crash, session, session_id, bool)
CREDO_ROUTE(consent_crash, consent, user_id, bool)
CREDO_ROUTE(bucket_take, rate_limit, key, bucket_grant)
CREDO_ROUTE(lockout_begin, rate_limit, key, lockout_answer)
CREDO_ROUTE(lockout_end, rate_limit, key, lockout_answer)
CREDO_ROUTE(rate_limit_crash, rate_limit, key, bool)
#undef CREDO_ROUTE

template <class... Ts>
struct type_list {};
/// Every entity request type (each has a route_of), for code that handles them all.
using routed_messages =
  type_list<session_open, session_add_family, session_refresh, session_end, session_revoke_family,
            session_inspect_refresh, session_crash, consent_grant, consent_query, consent_revoke,
            consent_check, consent_erase, consent_crash, bucket_take, lockout_begin, lockout_end,
            rate_limit_crash>;
/// Fault injection (--enable-fault-injection): refused by every node that runs without it.
template <class T>
inline constexpr bool is_crash_message = std::is_same_v<T, session_crash>
                                         || std::is_same_v<T, consent_crash>
                                         || std::is_same_v<T, rate_limit_crash>;

// -- cluster (between the gates of two nodes; docs/decisions/0013-cluster-gate.md) --------------

/// What a node tells its peers about itself. Its gate is the only actor of a node that other
/// processes can address: every message between nodes goes from one gate to the other.
struct member_card {
  std::string node;         // --node-id
  std::string incarnation;  // random per process start: a restarted node is a new member
  std::string address;      // its cluster HOST:PORT, for peers that learn of it second-hand
  caf::actor gate;
};

/// Join step 1, initiator -> responder's gate. Answered with a cluster_challenge_reply sent to
/// `reply_to` (the initiator's gate). All join messages are one-way: no CAF request crosses
/// nodes, so no reply can be forged by guessing a request id.
struct cluster_challenge {
  std::string nonce;
  caf::actor reply_to;
};
/// The responder proves it holds the cluster secret and hands out a nonce for step 2, or says
/// why it cannot admit anyone now (`refusal`: "starting" or "leaving"; then no proof).
struct cluster_challenge_reply {
  std::string initiator_nonce;  // the challenge's, so the initiator finds its join
  std::string nonce;
  std::string proof;  // HMAC(secret, responder | initiator nonce | responder nonce)
  std::string refusal;
};
/// Step 2: the initiator proves it holds the secret. Answered with a cluster_welcome sent to
/// `card.gate`.
struct cluster_hello {
  member_card card;
  std::string nonce;  // the responder's, from step 1 (single use)
  std::string proof;  // HMAC(secret, initiator | nonce | node | incarnation)
};
/// The responder's card and the addresses of every member it knows. `proof` is an HMAC under
/// the pair's link key (derived from the secret and both nonces) over the card: it shows the
/// welcome comes from the node that answered the challenge. The key itself never travels.
struct cluster_welcome {
  member_card card;
  std::vector<std::string> addresses;
  std::int64_t ring_version = 0;
  std::string initiator_nonce;
  std::string proof;
};
/// Gossip of a member's view after a change: peers adopt a higher ring version and connect to
/// addresses they do not know yet.
struct cluster_view {
  std::vector<std::string> addresses;
  std::int64_t ring_version = 0;
};
/// Every message between two members after their join, sealed (AES-256-GCM) under the key of
/// its direction, derived from the link key of their join: the receiving link acts on it only
/// if it opens under a key it shares with `from` (of that incarnation) and `seq` was not seen
/// before. The sealed body is a link_body. A process that takes over the route to a member (CAF
/// lets a connection claim any node id) can drop envelopes, but neither read nor forge them.
struct cluster_envelope {
  std::string from;
  std::string incarnation;  // the sender's
  std::uint64_t seq = 0;    // per sender and key: the nonce, and the replay check
  std::string sealed;
};
/// The content of an envelope. `call` != 0 with `reply` false: an entity request (`payload` one
/// of the route_of types, `forwarded` as in protocols::forwarded_atom), answered by a body with
/// `reply` true and the same `call` whose payload is the reply or a caf::error. `call` == 0: a
/// one-way message between membership actors (cluster_view, leave_atom, left_atom,
/// revocation_snapshot, keys_changed_atom).
struct link_body {
  std::uint64_t call = 0;
  bool reply = false;
  bool forwarded = false;
  caf::message payload;
};

// -- inspect -------------------------------------------------------------------------------------

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, origin& x) {
  return f(caf::meta::type_name("origin"), x.request_id, x.ip);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, token_grant& x) {
  return f(caf::meta::type_name("token_grant"), x.access_token, x.refresh_token, x.scope,
           x.session_id, x.jti, x.expires_in);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, session_open& x) {
  return f(caf::meta::type_name("session_open"), x.session_id, x.user_id, x.client_id, x.scope,
           x.device, x.from);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, session_add_family& x) {
  return f(caf::meta::type_name("session_add_family"), x.session_id, x.family_id, x.client_id,
           x.scope, x.consent_expires_at, x.from);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, session_refresh& x) {
  return f(caf::meta::type_name("session_refresh"), x.session_id, x.refresh_hash, x.client_id,
           x.consent_checked, x.consent_expires_at, x.from, x.owner_died, x.attempt_id);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, session_end& x) {
  return f(caf::meta::type_name("session_end"), x.session_id, x.reason, x.from);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, session_revoke_family& x) {
  return f(caf::meta::type_name("session_revoke_family"), x.session_id, x.refresh_hash,
           x.family_id, x.client_id, x.from);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, session_inspect_refresh& x) {
  return f(caf::meta::type_name("session_inspect_refresh"), x.session_id, x.refresh_hash);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, refresh_info& x) {
  return f(caf::meta::type_name("refresh_info"), x.active, x.sub, x.client_id, x.scope,
           x.session_id, x.iat, x.exp);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, consent_grant& x) {
  return f(caf::meta::type_name("consent_grant"), x.user_id, x.client_id, x.scopes, x.expires_in,
           x.from);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, consent_query& x) {
  return f(caf::meta::type_name("consent_query"), x.user_id);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, consent_revoke& x) {
  return f(caf::meta::type_name("consent_revoke"), x.user_id, x.client_id, x.scope, x.from);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, consent_check& x) {
  return f(caf::meta::type_name("consent_check"), x.user_id, x.client_id, x.scopes);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, consent_erase& x) {
  return f(caf::meta::type_name("consent_erase"), x.user_id, x.from);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, consent_list& x) {
  return f(caf::meta::type_name("consent_list"), x.records);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, audit_append& x) {
  return f(caf::meta::type_name("audit_append"), x.events);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, consent_check_result& x) {
  return f(caf::meta::type_name("consent_check_result"), x.granted, x.missing, x.expires_at);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, session_crash& x) {
  return f(caf::meta::type_name("session_crash"), x.session_id);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, consent_crash& x) {
  return f(caf::meta::type_name("consent_crash"), x.user_id);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, bucket_rule& x) {
  return f(caf::meta::type_name("bucket_rule"), x.capacity, x.period_ms);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, lockout_policy& x) {
  return f(caf::meta::type_name("lockout_policy"), x.threshold, x.window_ms, x.base_ms, x.max_ms,
           x.attempt_ttl_ms);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, bucket_take& x) {
  return f(caf::meta::type_name("bucket_take"), x.key, x.rule, x.want);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, bucket_grant& x) {
  return f(caf::meta::type_name("bucket_grant"), x.granted, x.remaining, x.reset_ms, x.retry_ms);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, lockout_begin& x) {
  return f(caf::meta::type_name("lockout_begin"), x.key, x.attempt_id, x.policy);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, lockout_end& x) {
  return f(caf::meta::type_name("lockout_end"), x.key, x.attempt_id, x.success, x.policy);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, lockout_answer& x) {
  return f(caf::meta::type_name("lockout_answer"), x.allowed, x.retry_ms, x.remaining,
           x.lockouts);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, rate_limit_crash& x) {
  return f(caf::meta::type_name("rate_limit_crash"), x.key);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, member_card& x) {
  return f(caf::meta::type_name("member_card"), x.node, x.incarnation, x.address, x.gate);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, cluster_challenge& x) {
  return f(caf::meta::type_name("cluster_challenge"), x.nonce, x.reply_to);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, cluster_challenge_reply& x) {
  return f(caf::meta::type_name("cluster_challenge_reply"), x.initiator_nonce, x.nonce, x.proof,
           x.refusal);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, cluster_hello& x) {
  return f(caf::meta::type_name("cluster_hello"), x.card, x.nonce, x.proof);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, cluster_welcome& x) {
  return f(caf::meta::type_name("cluster_welcome"), x.card, x.addresses, x.ring_version,
           x.initiator_nonce, x.proof);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, cluster_view& x) {
  return f(caf::meta::type_name("cluster_view"), x.addresses, x.ring_version);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, cluster_envelope& x) {
  return f(caf::meta::type_name("cluster_envelope"), x.from, x.incarnation, x.seq, x.sealed);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, link_body& x) {
  return f(caf::meta::type_name("link_body"), x.call, x.reply, x.forwarded, x.payload);
}

}  // namespace credo::protocols

namespace credo::persistence {
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, revocation_snapshot::cutoff_entry& x) {
  return f(caf::meta::type_name("cutoff_entry"), x.user_id, x.client_id, x.scope, x.cutoff);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, revocation_snapshot& x) {
  return f(caf::meta::type_name("revocation_snapshot"), x.tokens, x.cutoffs, x.sent_at_ms);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, consent_record& x) {
  return f(caf::meta::type_name("consent_record"), x.client_id, x.scope, x.granted_at,
           x.expires_at, x.revoked_at, x.expiry_reported);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, audit_event& x) {
  return f(caf::meta::type_name("audit_event"), x.event_id, x.type, x.occurred_at_ms, x.subject,
           x.client_id, x.session_id, x.ip, x.request_id, x.node, x.data_json);
}
}  // namespace credo::persistence

CAF_BEGIN_TYPE_ID_BLOCK(credo_types, caf::first_custom_type_id)
  CAF_ADD_TYPE_ID(credo_types, (credo::protocols::origin))
  CAF_ADD_TYPE_ID(credo_types, (credo::protocols::token_grant))
  CAF_ADD_TYPE_ID(credo_types, (credo::protocols::session_open))
  CAF_ADD_TYPE_ID(credo_types, (credo::protocols::session_add_family))
  CAF_ADD_TYPE_ID(credo_types, (credo::protocols::session_refresh))
  CAF_ADD_TYPE_ID(credo_types, (credo::protocols::session_end))
  CAF_ADD_TYPE_ID(credo_types, (credo::protocols::session_revoke_family))
  CAF_ADD_TYPE_ID(credo_types, (credo::protocols::session_inspect_refresh))
  CAF_ADD_TYPE_ID(credo_types, (credo::protocols::refresh_info))
  CAF_ADD_TYPE_ID(credo_types, (credo::protocols::consent_grant))
  CAF_ADD_TYPE_ID(credo_types, (credo::protocols::consent_query))
  CAF_ADD_TYPE_ID(credo_types, (credo::protocols::consent_revoke))
  CAF_ADD_TYPE_ID(credo_types, (credo::protocols::consent_check))
  CAF_ADD_TYPE_ID(credo_types, (credo::protocols::consent_erase))
  CAF_ADD_TYPE_ID(credo_types, (credo::protocols::consent_list))
  CAF_ADD_TYPE_ID(credo_types, (credo::protocols::consent_check_result))
  CAF_ADD_TYPE_ID(credo_types, (credo::persistence::consent_record))
  CAF_ADD_TYPE_ID(credo_types, (credo::persistence::audit_event))
  CAF_ADD_TYPE_ID(credo_types, (credo::protocols::audit_append))
  CAF_ADD_TYPE_ID(credo_types, (credo::protocols::session_crash))
  CAF_ADD_TYPE_ID(credo_types, (credo::protocols::consent_crash))
  CAF_ADD_TYPE_ID(credo_types, (credo::protocols::member_card))
  CAF_ADD_TYPE_ID(credo_types, (credo::protocols::cluster_challenge))
  CAF_ADD_TYPE_ID(credo_types, (credo::protocols::cluster_challenge_reply))
  CAF_ADD_TYPE_ID(credo_types, (credo::protocols::cluster_hello))
  CAF_ADD_TYPE_ID(credo_types, (credo::protocols::cluster_welcome))
  CAF_ADD_TYPE_ID(credo_types, (credo::protocols::cluster_view))
  CAF_ADD_TYPE_ID(credo_types, (credo::protocols::cluster_envelope))
  CAF_ADD_TYPE_ID(credo_types, (credo::protocols::bucket_rule))
  CAF_ADD_TYPE_ID(credo_types, (credo::protocols::lockout_policy))
  CAF_ADD_TYPE_ID(credo_types, (credo::protocols::bucket_take))
  CAF_ADD_TYPE_ID(credo_types, (credo::protocols::bucket_grant))
  CAF_ADD_TYPE_ID(credo_types, (credo::protocols::lockout_begin))
  CAF_ADD_TYPE_ID(credo_types, (credo::protocols::lockout_end))
  CAF_ADD_TYPE_ID(credo_types, (credo::protocols::lockout_answer))
  CAF_ADD_TYPE_ID(credo_types, (credo::protocols::rate_limit_crash))
  CAF_ADD_TYPE_ID(credo_types, (credo::persistence::revocation_snapshot))
  CAF_ADD_ATOM(credo_types, credo::protocols, passivate_atom, "passivate")
  // An entity request one registry passed to the owner it knows of: served there or refused,
  // never passed on again (no forwarding loops while two nodes' rings differ).
  CAF_ADD_ATOM(credo_types, credo::protocols, forwarded_atom, "forwarded")
  // Registry -> entity: the key moved to another node; stop after the messages before this.
  CAF_ADD_ATOM(credo_types, credo::protocols, handoff_atom, "handoff")
  // Membership -> registries, with a bool "members left": the ring changed; hand off the keys
  // this node no longer owns (every key when members left).
  CAF_ADD_ATOM(credo_types, credo::protocols, ring_changed_atom, "ringchg")
  // Between membership actors: a peer rotated the signing key; reload keys from the store.
  CAF_ADD_ATOM(credo_types, credo::protocols, keys_changed_atom, "keyschg")
  CAF_ADD_ATOM(credo_types, credo::protocols, hash_password_atom, "hashpw")
  CAF_ADD_ATOM(credo_types, credo::protocols, verify_password_atom, "verifypw")
  // Rate-limit entity -> itself: write its bucket behind to the store.
  CAF_ADD_ATOM(credo_types, credo::protocols, flush_atom, "flush")
  // credod -> its membership actor, and that actor -> every peer: this node is stopping; take
  // it out of the ring now (docs/decisions/0012-operability.md, graceful leave).
  CAF_ADD_ATOM(credo_types, credo::protocols, leave_atom, "leave")
  // A peer's answer to leave_atom: it took the leaving node out of its ring.
  CAF_ADD_ATOM(credo_types, credo::protocols, left_atom, "left")
CAF_END_TYPE_ID_BLOCK(credo_types)
