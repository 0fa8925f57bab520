#pragma once
// Records the persistence tests build, one definition for every suite.
#include <string>

#include "persistence/records.hpp"

namespace credo::persistence::test_records {

inline user_record user(const std::string& id, const std::string& email) {
  user_record u;
  u.id = id;
  u.email = email;
  u.name = "n";
  u.password_hash = "h";
  u.created_at = u.updated_at = 1;
  return u;
}

inline audit_event event(const std::string& id, const std::string& type,
                         const std::string& subject) {
  audit_event e;
  e.event_id = id;
  e.type = type;
  e.occurred_at_ms = 1000;
  e.subject = subject;
  e.ip = "10.0.0.1";
  e.data_json = R"({"k":"v"})";
  return e;
}

}  // namespace credo::persistence::test_records
