#pragma once
// A member's link actor: this node's side of its traffic with one peer
// (docs/decisions/0013-cluster-gate.md). A local actor: other processes cannot address it.
// - Outgoing: it stands in the ring for the peer's registries. Fronts and registries send it
//   entity requests (`T` or `forwarded_atom, T`) as they would a registry; it sends each to
//   the peer's gate in an envelope with a call id and answers the request when the peer's
//   reply envelope comes back (or fails it when the peer goes).
// - Incoming: the gate hands it the envelopes from its peer that carry a right key. A call is
//   passed to this node's registry of its kind (crash messages only with fault injection) and
//   its answer sent back; a reply answers the call it names; any other payload goes to the
//   membership actor (views, leave, revocations, key rotations).
#include <array>
#include <chrono>
#include <string>

#include <caf/fwd.hpp>
#include <caf/actor.hpp>

#include "protocols/messages.hpp"

namespace credo::cluster {

struct link_config {
  std::string self_node;
  std::string peer_node;
  caf::actor peer_gate;
  std::string key;  // sent in every envelope to the peer
  std::array<caf::actor, protocols::entity_kind_count> registries;  // this node's
  caf::actor membership;
  bool accept_crash = false;  // --enable-fault-injection
  std::chrono::milliseconds deadline{5000};  // of a call from the peer to a local registry
};

/// A one-way message from a member, for the membership actor (local only: cannot cross nodes).
struct peer_said {
  std::string node;
  caf::message payload;
};
/// Membership -> link: the peer is gone; fail the calls waiting for it and stop.
struct link_close {};

/// Spawns the link actor of one peer, linked to the calling actor (the membership actor).
caf::actor spawn_peer_link(caf::event_based_actor* parent, link_config cfg);

}  // namespace credo::cluster

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(credo::cluster::peer_said)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(credo::cluster::link_close)
