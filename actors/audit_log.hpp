#pragma once
// Builds audit events in the one shape of API.md. Events of PostgreSQL-owned changes go to the
// store write of the change (one transaction with their outbox rows); the others are appended
// here. The audit publisher actor drains the outbox to Kafka.
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "persistence/stores.hpp"

namespace credo::actors {

struct audit_fields {
  std::string subject;
  std::string client_id;
  std::string session_id;
  std::string ip;
  std::string request_id;
};

class audit_log {
 public:
  audit_log(std::string node, std::shared_ptr<persistence::audit_store> store);

  /// One event, not yet stored: pass it to the store write of the change it describes.
  /// `data` must never hold a secret (password, token, code, client secret).
  persistence::audit_event make(const std::string& type, const audit_fields& fields,
                                nlohmann::json data = nlohmann::json::object()) const;

  /// Appends one event of a change owned outside PostgreSQL (with its outbox row). Returns the
  /// store's status so that callers can fail a change whose event was lost.
  status record(const std::string& type, const audit_fields& fields,
                nlohmann::json data = nlohmann::json::object());

  /// The API.md JSON shape of an event.
  static nlohmann::json to_json(const persistence::audit_event& e);

 private:
  std::string node_;
  std::shared_ptr<persistence::audit_store> store_;
};

}  // namespace credo::actors
