#pragma once
// The audit writer: writes the events of Redis-owned changes (sessions, refresh grants) in group
// commits. Every audit_append that arrived before a flush goes into one audit_store::append (one
// PostgreSQL transaction for all their events and outbox rows); each requester then gets the
// common outcome. Under load one transaction carries the events of many concurrent rotations
// instead of one each; idle, a single append is written at once. Detached: it blocks on the
// store.
#include <memory>

#include <caf/actor.hpp>
#include <caf/fwd.hpp>

#include "persistence/stores.hpp"

namespace credo::actors {

/// Requests: protocols::audit_append -> bool.
caf::actor spawn_audit_writer(caf::actor_system& sys,
                              std::shared_ptr<persistence::audit_store> store);

}  // namespace credo::actors
