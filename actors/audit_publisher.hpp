#pragma once
// The audit publisher: one actor per node that drains the audit outbox to Kafka. A row is marked
// published only after the brokers acknowledged it (acks=all), so a row is delivered at least
// once; consumers deduplicate by event_id.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include <caf/fwd.hpp>
#include <caf/actor.hpp>

#include "persistence/kafka_producer.hpp"
#include "persistence/stores.hpp"

namespace credo::actors {

/// What the publisher reports. Written by the publisher actor only; read by anyone (readiness,
/// /metrics) without messaging the actor.
struct publisher_stats {
  /// The last publish or probe reached the brokers (false until the first one did).
  std::atomic<bool> kafka_ok{false};
  std::atomic<std::int64_t> published{0};  // rows acknowledged by Kafka and marked published
  std::atomic<std::int64_t> failures{0};   // rounds that failed (store or Kafka) and backed off
  std::atomic<std::int64_t> backlog{0};    // rows waiting, as of the last look (an estimate)
  /// Unix ms now minus occurred_at of the oldest delivered event of the last published batch
  /// (the batch's worst change-to-acknowledged latency); -1: none yet.
  std::atomic<std::int64_t> last_latency_ms{-1};
  /// Unix ms of the last round that ended without error (an empty outbox counts).
  std::atomic<std::int64_t> last_success_ms{0};

  void set_last_error(std::string what) {
    std::lock_guard guard{mtx_};
    last_error_ = std::move(what);
  }
  std::string last_error() const {
    std::lock_guard guard{mtx_};
    return last_error_;
  }

 private:
  mutable std::mutex mtx_;
  std::string last_error_;
};

struct audit_publisher_options {
  std::size_t batch_size = 500;                      // rows per pending() / publish round
  std::chrono::milliseconds idle_interval{20};       // next look after an empty or partial batch
  std::chrono::milliseconds backoff_min{100};        // first retry delay after an error
  /// Doubling stops here; retries never stop. Short, so that a recovered broker or database is
  /// used within about a second; a failed round while Kafka is down costs little.
  std::chrono::milliseconds backoff_max{1000};
  std::chrono::milliseconds probe_interval{1000};    // broker probe while nothing is published
  std::chrono::milliseconds probe_timeout{250};
  /// Published rows older than prune_after are deleted from the outbox, at most prune_limit per
  /// call and one call per prune_interval; while a call deletes a full prune_limit, the next
  /// follows in the next round, so that pruning keeps up with any publishing rate.
  std::chrono::seconds prune_after{3600};
  std::size_t prune_limit = 10000;  // 0: never prune
  std::chrono::milliseconds prune_interval{60000};
  /// The outbox may be read: false until the schema exists (credod: until the node is
  /// bootstrapped). Meanwhile the publisher looks again every idle_interval and touches neither
  /// the outbox nor Kafka; that is not a failure. Empty: always ready.
  std::function<bool()> ready;
};

/// Spawns the publisher detached (publish() blocks on delivery reports, at most the producer's
/// delivery_bound()). It runs until it receives an exit message; the producer is flushed (bounded)
/// when the last reference to it goes.
caf::actor spawn_audit_publisher(caf::actor_system& sys,
                                 std::shared_ptr<persistence::outbox_store> outbox,
                                 std::shared_ptr<persistence::kafka_producer> producer,
                                 std::shared_ptr<publisher_stats> stats,
                                 audit_publisher_options options = {});

}  // namespace credo::actors
