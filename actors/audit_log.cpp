#include "actors/audit_log.hpp"

#include "persistence/audit_json.hpp"
#include "protocols/clock.hpp"
#include "protocols/crypto.hpp"

namespace credo::actors {

audit_log::audit_log(std::string node, std::shared_ptr<persistence::audit_store> store)
  : node_(std::move(node)), store_(std::move(store)) {}

persistence::audit_event audit_log::make(const std::string& type, const audit_fields& fields,
                                         nlohmann::json data) const {
  persistence::audit_event e;
  e.event_id = protocols::uuid_v4();
  e.type = type;
  e.occurred_at_ms = unix_now_ms();
  e.subject = fields.subject;
  e.client_id = fields.client_id;
  e.session_id = fields.session_id;
  e.ip = fields.ip;
  e.request_id = fields.request_id;
  e.node = node_;
  e.data_json = data.dump();
  return e;
}

status audit_log::record(const std::string& type, const audit_fields& fields,
                         nlohmann::json data) {
  return store_->append({make(type, fields, std::move(data))});
}

nlohmann::json audit_log::to_json(const persistence::audit_event& e) {
  return persistence::audit_event_json(e);
}

}  // namespace credo::actors
