#pragma once
// A member's link actor: this node's side of its traffic with one peer
// (docs/decisions/0013-cluster-gate.md). A local actor: other processes cannot address it.
// - It seals every message to the peer (AES-256-GCM under the key of that direction, derived
//   from the link key of their join; the sequence number is the nonce) and opens every
//   envelope the gate hands it from the peer; one that does not open under a key it holds, or
//   repeats a sequence number, is dropped and counted as a stranger's.
// - Outgoing: it stands in the ring for the peer's registries. Fronts and registries send it
//   entity requests (`T` or `forwarded_atom, T`) as they would a registry; it sends each with a
//   call id and answers the request when the peer's reply comes back (or fails it when the
//   peer goes). Membership messages come from the membership actor (link_send).
// - Incoming: a call is passed to this node's registry of its kind (crash messages only with
//   fault injection) and its answer sent back; a reply answers the call it names; any other
//   payload goes to the membership actor (views, leave, revocations, key rotations).
#include <array>
#include <atomic>
#include <chrono>
#include <memory>
#include <initializer_list>
#include <string>
#include <string_view>

#include <caf/fwd.hpp>
#include <caf/actor.hpp>
#include <caf/message.hpp>

#include "protocols/messages.hpp"

namespace credo::cluster {

struct link_config {
  std::string self_node;
  std::string self_incarnation;
  std::string peer_node;
  std::string peer_incarnation;
  caf::actor peer_gate;
  std::string key;  // the link key of the join that made this link
  bool key_confirmed = false;  // the peer holds it already (this node got its welcome)
  std::array<caf::actor, protocols::entity_kind_count> registries;  // this node's
  caf::actor membership;
  bool accept_crash = false;  // --enable-fault-injection
  std::chrono::milliseconds deadline{5000};  // of a call from the peer to a local registry
  std::shared_ptr<std::atomic<std::uint64_t>> dropped;  // envelopes that did not open
};

/// A one-way message from a member, for the membership actor (local only: cannot cross nodes).
struct peer_said {
  std::string node;
  std::string incarnation;
  caf::message payload;
};
/// Membership -> link: send `payload` to the peer (one-way).
struct link_send {
  caf::message payload;
};
/// Membership -> link: another join with the peer completed; accept its key too. A link seals
/// under the newest key the peer is known to hold: one it used itself, or (`confirmed`) the key
/// of a welcome it sent.
struct link_add_key {
  std::string key;
  bool confirmed = false;
};
/// Membership -> link: the proxy of the peer's gate died but the peer may be alive (CAF lets
/// any connection kill a proxy); hold outgoing messages until link_resume or link_close.
struct link_suspend {};
struct link_resume {
  caf::actor gate;
};
/// Membership -> link: the peer is gone; fail the calls waiting for it and stop.
struct link_close {};

/// Spawns the link actor of one peer, linked to the calling actor (the membership actor).
caf::actor spawn_peer_link(caf::event_based_actor* parent, link_config cfg);

/// The fields one after another, each as "<length>:<bytes>": the input of every MAC and key
/// derivation of the cluster links, so that no two field lists give the same text.
std::string length_prefixed(std::initializer_list<std::string_view> fields);

/// The key of one direction of a link (exposed for tests).
std::string direction_key(const std::string& link_key, const std::string& from_node,
                          const std::string& from_incarnation, const std::string& to_node,
                          const std::string& to_incarnation);

}  // namespace credo::cluster

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(credo::cluster::peer_said)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(credo::cluster::link_send)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(credo::cluster::link_add_key)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(credo::cluster::link_suspend)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(credo::cluster::link_resume)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(credo::cluster::link_close)
