#pragma once
// The one JSON shape of an audit event (API.md), shared by /admin/audit, /me/data-export
// (through actors::audit_log::to_json) and the Kafka messages of the audit publisher.
#include <nlohmann/json.hpp>

#include "persistence/records.hpp"
#include "protocols/clock.hpp"

namespace credo::persistence {

/// {"event_id", "type", "occurred_at" (RFC 3339 with ms), "subject", "client_id", "session_id",
/// "ip", "request_id", "node", "data"}; empty optional fields are null, a `data_json` that does
/// not parse becomes {}.
inline nlohmann::json audit_event_json(const audit_event& e) {
  auto nullable = [](const std::string& s) -> nlohmann::json {
    return s.empty() ? nlohmann::json(nullptr) : nlohmann::json(s);
  };
  auto data = nlohmann::json::parse(e.data_json, nullptr, false);
  if (data.is_discarded())
    data = nlohmann::json::object();
  return {{"event_id", e.event_id},
          {"type", e.type},
          {"occurred_at", rfc3339_ms(e.occurred_at_ms)},
          {"subject", nullable(e.subject)},
          {"client_id", nullable(e.client_id)},
          {"session_id", nullable(e.session_id)},
          {"ip", nullable(e.ip)},
          {"request_id", nullable(e.request_id)},
          {"node", e.node},
          {"data", std::move(data)}};
}

}  // namespace credo::persistence
