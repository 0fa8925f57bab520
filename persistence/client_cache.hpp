#pragma once
// A read-through cache in front of a durable client store. Client authentication runs on every
// token, introspection and revocation request; the records change only when a client is
// registered, so each node keeps the ones it has seen. An entry is re-read after `fresh`; when
// the store cannot be reached, an entry younger than `stale` is still used, so clients keep
// authenticating (and introspection keeps working) while PostgreSQL is down.
#include <chrono>
#include <memory>

#include "persistence/stores.hpp"

namespace credo::persistence {

std::shared_ptr<client_store> make_cached_client_store(
  std::shared_ptr<client_store> durable, std::chrono::seconds fresh = std::chrono::seconds{30},
  std::chrono::seconds stale = std::chrono::hours{1}, std::size_t capacity = 10000);

}  // namespace credo::persistence
