#pragma once
// What every actor and front handler of a node shares: configuration, stores, signing keys and
// the audit log. Immutable after start except through the thread-safe members.
#include <cstdint>
#include <memory>
#include <string>

#include "persistence/stores.hpp"
#include "protocols/jwt.hpp"

namespace credo::actors {

struct token_settings {
  std::string issuer;
  std::int64_t access_ttl = 900;          // seconds
  std::int64_t session_ttl = 30 * 86400;  // absolute session and refresh-token life
  std::int64_t refresh_grace = 0;         // --refresh-grace-seconds
  std::int64_t code_ttl = 60;
};

class audit_log;

struct node_context {
  std::string node_id;
  token_settings tokens;
  persistence::stores stores;
  std::shared_ptr<protocols::key_ring> keys;
  std::shared_ptr<audit_log> audit;
};

using context_ptr = std::shared_ptr<const node_context>;

}  // namespace credo::actors
