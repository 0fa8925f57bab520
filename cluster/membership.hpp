#pragma once
// Cluster membership: each node publishes its gate (cluster/gate.hpp) on its cluster address
// (CAF io::middleman, or caf::openssl for TLS links), joins through any reachable seed, learns
// every member from the members it meets, and watches each peer's gate. Joining is a
// challenge-response on a shared cluster secret in both directions, in one-way messages
// between gates: a node that cannot prove it holds the secret never becomes a member, and the
// gate drops every message that does not come from a member with the link key agreed in its
// join (docs/decisions/0013-cluster-gate.md). Each member gets a link actor
// (cluster/peer_link.hpp) that carries its entity requests and stands in the ring for its
// registries.
//
// A peer is removed when CAF reports its link down (the proxy of its gate terminates): at once
// on a connection loss, and after the middleman's connection timeout when heartbeats stop (a
// frozen or partitioned node; set middleman.heartbeat-interval and connection-timeout on every
// node alike). Every change
// bumps the ring version, replaces the ownership ring and tells the local registries, which
// hand off the keys that moved. Peers exchange their views every tick (heartbeat of the
// membership protocol and anti-entropy): each adopts the highest ring version it hears and
// connects to every address it did not know.
#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <caf/fwd.hpp>
#include <caf/actor.hpp>

#include "cluster/ownership.hpp"
#include "persistence/records.hpp"
#include "protocols/result.hpp"

namespace credo::cluster {

/// What /admin/cluster shows; written by the membership actor, read by any thread.
class cluster_status {
 public:
  struct member {
    std::string node;
    std::string address;
    std::string status;       // "up"
    std::int64_t last_seen_ms = 0;
  };
  struct view {
    std::string node;
    std::vector<member> members;  // this node first
    std::int64_t ring_version = 0;
  };
  view snapshot() const {
    std::lock_guard guard{mtx_};
    return view_;
  }
  void set(view v) {
    std::lock_guard guard{mtx_};
    view_ = std::move(v);
  }

 private:
  mutable std::mutex mtx_;
  view view_;
};

struct membership_config {
  std::string node;                      // --node-id
  std::string incarnation;               // random per start
  std::string host;                      // --cluster HOST (published there, and advertised)
  std::uint16_t port = 0;                // --cluster PORT (0: any free port)
  std::vector<std::string> seeds;        // HOST:PORT
  std::string secret;                    // the shared cluster secret
  bool tls = false;                      // links through caf::openssl
  bool accept_crash = false;             // --enable-fault-injection: peers may send *_crash
  std::array<caf::actor, protocols::entity_kind_count> registries;  // this node's
  std::shared_ptr<ownership> own;
  std::shared_ptr<cluster_status> status;
  /// The node may take keys: until then it neither joins nor admits anyone (a node that has
  /// not loaded its schema, keys and revocation list would answer wrongly for them).
  std::function<bool()> ready;
  std::chrono::milliseconds tick{250};   // view exchange with peers and seed retries
  std::chrono::milliseconds connect_timeout{3000};
  /// A peer left or died: fail at once what is in flight to it. Called on the actor's thread,
  /// after the ring without the peer is published.
  std::function<void(const std::string& node)> on_peer_down;
  /// A peer revoked tokens or raised cut-offs: apply them to the local revocation set.
  std::function<void(const persistence::revocation_snapshot&)> on_revocations;
  /// A peer rotated the signing key: reload the keys from the store (must not block long).
  std::function<void()> on_keys_changed;
  /// The node joined a member, or tried every seed and found none: it serves from now on.
  std::function<void()> on_settled;
};

/// How cluster links are made. TLS is mutual: every node presents a certificate signed by
/// the cluster's CA and refuses peers without one (caf::openssl with no certificate would fall
/// back to anonymous TLS, so all three files are required).
struct link_options {
  bool tls = false;
  std::string certificate;  // PEM files
  std::string key;
  std::string cafile;
  std::chrono::milliseconds heartbeat{200};
  std::chrono::milliseconds connection_timeout{1000};  // no heartbeat for this long: link down
};

/// Loads the TLS files as caf::openssl will (it loads them per connection and throws from its
/// network thread on failure): a certificate and key that parse and match, and a CA file. An
/// encrypted key is refused (no passphrase prompt). errc::invalid_request with the reason.
status check_tls_files(const link_options& o);

/// Loads CAF's middleman (and caf::openssl) into `cfg` with heartbeats on. Call before the
/// actor system is built.
void configure_links(caf::actor_system_config& cfg, const link_options& o);

struct gate_state;
struct membership {
  caf::actor actor;
  std::string address;  // HOST:PORT as published (the port resolved)
  std::shared_ptr<const gate_state> gate;  // its count of messages from strangers
};

/// Spawns the membership actor and publishes the node's gate on cfg.host:cfg.port. Also takes
/// CAF's named actors (SpawnServ, ConfigServ) out of the actor registry: no peer needs them,
/// and they would answer anyone. Errors: the port is in use, or TLS was asked for without the
/// openssl module loaded.
result<membership> start_membership(caf::actor_system& sys, membership_config cfg);

/// Tells every peer (from any thread): tokens this node revoked, or a new signing key.
void broadcast_revocations(const caf::actor& membership, persistence::revocation_snapshot s);
void broadcast_keys_changed(const caf::actor& membership);

/// Graceful leave (SIGTERM): every peer takes this node out of its ring, then this node does,
/// so its entities hand off and its fronts route every key to the survivors. Blocks until
/// then, at most `timeout`; false if that ran out.
bool leave_cluster(caf::actor_system& sys, const caf::actor& membership,
                   std::chrono::milliseconds timeout);

}  // namespace credo::cluster
