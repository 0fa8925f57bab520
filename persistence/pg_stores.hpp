#pragma once
// PostgreSQL implementations of the durable stores: users, clients, consents, signing keys, the
// audit log and its outbox (schema in migrations.cpp). Each write commits its audit events, and
// with the outbox enabled their outbox rows, in the transaction of the change: all or nothing.
// Sessions, revocations and codes are not kept here (Redis or memory fill those).
#include <memory>
#include <string>

#include "persistence/stores.hpp"

namespace credo::persistence {

class pg_client;

struct pg_store_options {
  /// 32 raw bytes. Signing keys are stored sealed with it (AES-256-GCM); with a key of another
  /// size every key-store call fails with errc::internal_error.
  std::string key_encryption_key;
  /// Write outbox rows (topic credo.audit.events, plus credo.consent.events for consent.*
  /// events) and provide stores::outbox. On when events go to Kafka.
  bool outbox = false;
};

/// Fills users, clients, consents, audit, keys and, with options.outbox, outbox; the others stay
/// null. Expects migrate() to have run.
stores make_pg_stores(std::shared_ptr<pg_client> pg, pg_store_options options);

}  // namespace credo::persistence
