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
// - a cluster_envelope from a member (or a node admitted or leaving), by node name and
//   incarnation, goes to that member's link actor, which opens it only if it was sealed under
//   a key of their join (peer_link.hpp);
// - join messages (challenge, challenge reply, hello, welcome; at most 200 challenges a
//   second) go to the membership actor, which checks them against the cluster secret and its
//   own nonces;
// - anything else (requests, responses, exit and down messages, envelopes of strangers) is
//   dropped and counted. Link requests (which CAF hands to an actor directly) and monitor
//   requests of other processes are ignored: nothing can link to the gate or grow it.
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>

#include <caf/fwd.hpp>
#include <caf/actor.hpp>
#include <caf/actor_addr.hpp>

namespace credo::cluster {

/// The link actor of each node whose envelopes the gate passes on, by gate_key(node,
/// incarnation): a restarted node (new incarnation) and its old self have links of their own.
/// Weak handles: the gate lives as long as CAF's middleman publishes it, and must not keep the
/// actors (and through their peers' proxies the middleman) alive in a cycle.
using gate_table = std::unordered_map<std::string, caf::actor_addr>;
inline std::string gate_key(const std::string& node, const std::string& incarnation) {
  return node + '\n' + incarnation;
}

/// Shared by the gate (any thread that delivers network messages) and the membership actor,
/// which writes the table on every change of its peers.
struct gate_state {
  caf::actor_addr membership;  // set before the gate is created, never changed (weak)
  std::atomic<std::shared_ptr<const gate_table>> peers{std::make_shared<const gate_table>()};
  // Messages from strangers (credo_cluster_stranger_messages_total): dropped by the gate, or
  // envelopes a link could not open.
  std::shared_ptr<std::atomic<std::uint64_t>> dropped =
    std::make_shared<std::atomic<std::uint64_t>>(0);
  std::atomic<std::int64_t> last_warned_ms{0};
  // Join challenges: a token bucket (200 a second, bursts of 200), refilled on use.
  std::atomic<std::int64_t> join_tokens{200};
  std::atomic<std::int64_t> join_refill_ms{0};
};

/// Creates the gate of a node (not yet published).
caf::actor make_gate(caf::actor_system& sys, std::shared_ptr<gate_state> st);

}  // namespace credo::cluster
