#pragma once
// The actor-system configuration of the actor tests: Credo's message types, CAF's log quiet.
// One static configuration (CAF keeps a reference to it for the system's life).
#include <caf/all.hpp>

#include "protocols/messages.hpp"

namespace credo::test_system {

inline caf::actor_system_config& config() {
  static caf::actor_system_config cfg;
  static bool once = [] {
    cfg.add_message_types<caf::id_block::credo_types>();
    cfg.set("logger.verbosity", caf::atom("quiet"));
    return true;
  }();
  (void) once;
  return cfg;
}

}  // namespace credo::test_system
