#pragma once
// The gate: the only actor of a node that another process can address over the cluster port
// (docs/decisions/0013-cluster-gate.md). CAF delivers a network message to any local actor
// whose id is in the actor registry, takes the sender's node from the message itself (BASP
// routed messages name any node), and lets an exit message with reason `kill` end any
// scheduled actor whatever its handlers say. So no scheduled actor of a node is ever
// published, named in a message to another node, or the sender of one: the gate is published,
// members know only the gate, and every message between nodes is a one-way send from one
// gate to the other, without a sender. The gate is not a scheduled actor: it has no mailbox
// and no exit handling, and acts on each message as it is enqueued:
// - a cluster_envelope whose `from` is a member (or a node admitted or leaving) and whose
//   key is a link key agreed with it goes to that member's link actor;
// - join messages (challenge, challenge reply, hello, welcome) go to the membership actor,
//   which checks them against the cluster secret and its own nonces;
// - anything else (requests, responses, exit and down messages, envelopes with a wrong key)
//   is dropped and counted.
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <caf/fwd.hpp>
#include <caf/actor.hpp>

namespace credo::cluster {

/// A node whose envelopes the gate passes on: the link keys agreed with it (one per completed
/// join between the two nodes; both directions may join at once) and its link actor.
struct gate_peer {
  std::vector<std::string> keys;
  caf::actor link;
};
using gate_table = std::unordered_map<std::string, gate_peer>;

/// Shared by the gate (any thread that delivers network messages) and the membership actor,
/// which writes the table on every change of its peers.
struct gate_state {
  caf::actor membership;  // set before the gate is created, never changed
  std::atomic<std::shared_ptr<const gate_table>> peers{std::make_shared<const gate_table>()};
  std::atomic<std::uint64_t> dropped{0};  // messages from strangers (credo_cluster_stranger_messages_total)
  std::atomic<std::int64_t> last_warned_ms{0};
};

/// Creates the gate of a node (not yet published).
caf::actor make_gate(caf::actor_system& sys, std::shared_ptr<gate_state> st);

}  // namespace credo::cluster
