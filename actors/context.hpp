#pragma once
// What every actor and front handler of a node shares: configuration, stores, signing keys and
// the audit log. Immutable after start except through the thread-safe members.
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "actors/metrics.hpp"
#include "persistence/stores.hpp"
#include "protocols/jwt.hpp"

namespace credo::actors {

struct token_settings {
  std::string issuer;
  std::int64_t access_ttl = 900;          // seconds
  std::int64_t session_ttl = 30 * 86400;  // absolute session and refresh-token life
  std::int64_t refresh_grace = 0;         // --refresh-grace-seconds
  std::int64_t code_ttl = 60;
  std::int64_t clock_skew = 30;  // --clock-skew: seconds of exp/nbf/iat leeway between nodes
};

class audit_log;
struct publisher_stats;

enum class check_state : std::uint8_t { disabled, ok, failed };

/// What /health/ready reports, kept current by the node's health monitor (app/health_monitor)
/// so that the endpoint never waits on a backend.
struct readiness {
  std::atomic<check_state> database{check_state::disabled};
  std::atomic<check_state> redis{check_state::disabled};
  std::atomic<check_state> kafka{check_state::disabled};
  std::atomic<check_state> cluster{check_state::disabled};
  /// Migrations applied, signing keys loaded: until then only health and metrics are served.
  std::atomic<bool> bootstrapped{false};
  /// --kafka-readiness degraded: Kafka down is reported but keeps the node ready (the outbox
  /// holds the events; a readiness probe would otherwise take every node out of service).
  bool kafka_required = true;
  bool ready() const {
    for (auto* c : {&database, &redis, &kafka, &cluster})
      if (c->load() == check_state::failed && (c != &kafka || kafka_required))
        return false;
    return bootstrapped.load();
  }
};

struct node_context {
  std::string node_id;
  token_settings tokens;
  persistence::stores stores;
  std::shared_ptr<protocols::key_ring> keys;
  std::shared_ptr<audit_log> audit;
  /// Audit events of grants go through the audit writer's group commits (the audit store is
  /// PostgreSQL); false: appended in place (the in-memory store, where a hop costs more than
  /// the append).
  bool group_commit_audit = false;
  /// Several nodes may own a session over time (cluster mode): grants are re-checked against
  /// the store after their audit commit, and replays of unacknowledged rotations recognised.
  bool cluster = false;
  std::shared_ptr<readiness> health = std::make_shared<readiness>();
  std::shared_ptr<publisher_stats> publisher;  // null unless KAFKA_BROKERS is configured
  std::shared_ptr<node_metrics> metrics = std::make_shared<node_metrics>();
};

using context_ptr = std::shared_ptr<const node_context>;

}  // namespace credo::actors
