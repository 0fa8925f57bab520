#pragma once
// Builds audit events in the one shape of API.md and appends them to the audit store. The
// audit publisher actor (outbox to Kafka) reads from that store in a later stage.
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

  /// Appends one event. `data` must never hold a secret (password, token, code, client secret).
  /// Returns the store's status so that callers can fail a change whose event was lost.
  status record(const std::string& type, const audit_fields& fields,
                nlohmann::json data = nlohmann::json::object());

  /// The API.md JSON shape of an event.
  static nlohmann::json to_json(const persistence::audit_event& e);

 private:
  std::string node_;
  std::shared_ptr<persistence::audit_store> store_;
};

}  // namespace credo::actors
