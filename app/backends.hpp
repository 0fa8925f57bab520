#pragma once
// Chooses and opens the node's stores from the process contract (API.md): PostgreSQL when
// DATABASE_URL is set, Redis when REDIS_URL is set, Kafka (through the PostgreSQL outbox) when
// KAFKA_BROKERS is set; the in-memory embedded default for whatever is not configured. Opening
// makes no connection, so an unreachable backend at start is not fatal (the health monitor
// reports it and the clients reconnect with backoff).
#include <memory>
#include <string>

#include "persistence/stores.hpp"
#include "protocols/result.hpp"

namespace credo::persistence {
class pg_client;
class redis_client;
class revocation_mirror;
class kafka_producer;
}  // namespace credo::persistence

namespace credo::app {

struct backend_config {
  std::string database_url;
  std::string redis_url;
  std::string kafka_brokers;
  std::string key_encryption_key;  // base64 or hex of 32 bytes; required with a database
};

struct backends {
  persistence::stores stores;
  std::shared_ptr<persistence::pg_client> database;             // null: in memory
  std::shared_ptr<persistence::redis_client> redis;             // null: in memory
  std::shared_ptr<persistence::revocation_mirror> revocations;  // null: in memory
  std::shared_ptr<persistence::kafka_producer> kafka;           // null: no Kafka
  std::string describe() const;                                 // e.g. "postgres+redis+kafka"
};

/// Validates the configuration (malformed URL, Kafka without a database, a database without a
/// key-encryption key) with a message that never repeats a password or key.
result<backends> open_backends(const backend_config& config);

/// Applies migrations (when a database is configured); run before serving, and again by the
/// health monitor until it succeeds.
status prepare_database(const backends& b);

}  // namespace credo::app
