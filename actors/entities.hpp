#pragma once
// Entity actors of this node and the registries that supervise them.
#include <memory>

#include <caf/fwd.hpp>
#include <caf/actor.hpp>

#include "actors/context.hpp"
#include "actors/registry.hpp"
#include "actors/supervisor_stats.hpp"

namespace credo::actors {

struct entity_handles {
  caf::actor sessions;  // registry: session_* messages
  caf::actor consents;  // registry: consent_* messages
  caf::actor rate_limits;  // registry: bucket_take, lockout_begin, lockout_end
  caf::actor hasher;    // pool: (hash_password_atom, pw) -> string; (verify_password_atom, pw, hash) -> bool
  caf::actor audit_writer;  // group commits of the session entities' audit events
  /// Set by stop_entities: the hasher pool refuses queued work.
  std::shared_ptr<std::atomic<bool>> stopping = std::make_shared<std::atomic<bool>>(false);
  std::shared_ptr<supervisor_stats> session_stats;
  std::shared_ptr<supervisor_stats> consent_stats;
  std::shared_ptr<supervisor_stats> rate_limit_stats;
  /// The registry of `kind` on this node.
  const caf::actor& registry(protocols::entity_kind kind) const {
    switch (kind) {
      case protocols::entity_kind::session: return sessions;
      case protocols::entity_kind::consent: return consents;
      case protocols::entity_kind::rate_limit: break;
    }
    return rate_limits;
  }
  supervisor_stats& stats(protocols::entity_kind kind) const {
    switch (kind) {
      case protocols::entity_kind::session: return *session_stats;
      case protocols::entity_kind::consent: return *consent_stats;
      case protocols::entity_kind::rate_limit: break;
    }
    return *rate_limit_stats;
  }
};

/// Spawns the session, consent and rate-limit registries, the password hasher pool and the audit writer.
/// `own` (cluster mode) makes the registries serve only the keys this node owns; requests they
/// pass to another node are tracked in `in_flight`, so that node's death fails them at once.
entity_handles spawn_entities(caf::actor_system& sys, context_ptr ctx, registry_options options,
                              int hasher_threads,
                              std::shared_ptr<const cluster::ownership> own = nullptr,
                              std::shared_ptr<cluster::remote_calls> in_flight = nullptr);

/// Sends every actor of `h` an exit message (at shutdown).
void stop_entities(const entity_handles& h);

/// Session entity: owns one session record and its refresh-token families. Grants are answered
/// once `audit_writer` has stored their events.
caf::behavior session_entity(caf::event_based_actor* self, context_ptr ctx, std::string sid,
                             caf::actor registry, std::chrono::milliseconds idle,
                             caf::actor audit_writer);

/// Consent entity: owns one user's consent records.
caf::behavior consent_entity(caf::event_based_actor* self, context_ptr ctx, std::string user_id,
                             caf::actor registry, std::chrono::milliseconds idle);

/// Rate-limit entity: owns one token bucket or one account's lockout; buckets are written
/// to the store `flush_delay` after a change, lockouts before every answer.
caf::behavior rate_limit_entity(caf::event_based_actor* self, context_ptr ctx, std::string key,
                                caf::actor registry, std::chrono::milliseconds idle,
                                std::chrono::milliseconds flush_delay);

}  // namespace credo::actors
