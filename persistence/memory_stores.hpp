#pragma once
// The embedded default: every store in process memory. Single node only; nothing survives a
// restart. The audit store keeps a bounded window of the newest events.
#include <cstddef>

#include "persistence/stores.hpp"

namespace credo::persistence {

stores make_memory_stores(std::size_t audit_capacity = 200000);

/// The in-memory revocation set alone (also the local set in front of a durable one).
std::shared_ptr<revocation_store> make_memory_revocation_store();

}  // namespace credo::persistence
