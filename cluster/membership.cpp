#include "cluster/membership.hpp"

#include <algorithm>
#include <map>
#include <optional>
#include <set>

#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <caf/openssl/all.hpp>
#include <nlohmann/json.hpp>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "cluster/gate.hpp"
#include "cluster/peer_link.hpp"
#include "protocols/clock.hpp"
#include "protocols/crypto.hpp"
#include "protocols/log.hpp"

namespace credo::cluster::detail {

// Commands from this node's own threads (credod, the revocation mirror, proxies of peers'
// gates). Their types cannot cross the network (no type id), so no peer, and no stranger, can
// send them; and this actor is not addressable from outside anyway (gate.hpp).
struct local_leave {
  std::chrono::milliseconds timeout;
};
struct local_leave_deadline {};
struct local_revocations {
  persistence::revocation_snapshot snapshot;
};
struct local_keys_changed {};
/// The proxy of a peer's gate terminated: the link to that node is lost.
struct local_peer_gone {
  caf::actor_addr gate;
  caf::error reason;
};
/// Check again whether a member whose gate proxy died is alive.
struct local_verify_retry {
  std::string node;
  caf::error reason;
  int tries;
};

}  // namespace credo::cluster::detail

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(credo::cluster::detail::local_leave)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(credo::cluster::detail::local_leave_deadline)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(credo::cluster::detail::local_revocations)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(credo::cluster::detail::local_keys_changed)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(credo::cluster::detail::local_peer_gone)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(credo::cluster::detail::local_verify_retry)

namespace credo::cluster {
namespace {

using detail::local_keys_changed;
using detail::local_leave;
using detail::local_leave_deadline;
using detail::local_peer_gone;
using detail::local_verify_retry;
using detail::local_revocations;
using protocols::cluster_challenge;
using protocols::cluster_challenge_reply;
using protocols::cluster_envelope;
using protocols::cluster_hello;
using protocols::cluster_view;
using protocols::cluster_welcome;
using protocols::member_card;

constexpr std::size_t max_nonce = 64;
constexpr std::size_t max_name = 128;
constexpr std::size_t max_addresses = 256;
constexpr std::size_t max_issued_nonces = 1024;
constexpr std::chrono::milliseconds verify_timeout{500};
constexpr std::int64_t nonce_life_ms = 10000;

struct peer {
  member_card card;
  caf::actor link;  // holds the link keys of the joins with it
  std::int64_t last_seen_ms = 0;
};

/// A join this node started, by the nonce of its challenge.
struct join {
  std::string address;
  caf::actor remote;          // the gate this node connected to
  std::string key;            // set once the responder proved it holds the secret
  std::int64_t started_ms = 0;
};

/// A responder nonce handed out in a challenge reply, until the hello that uses it.
struct issued_nonce {
  std::int64_t at_ms = 0;
  std::string initiator_nonce;
};

struct membership_state {
  membership_config cfg;
  std::shared_ptr<gate_state> gate;
  member_card self_card;
  std::map<std::string, peer> peers;                // by node name
  // Nodes this node admitted (their hello was right) that have not yet sent a message with
  // the link key: the gate passes their envelopes, the first makes them members. A node
  // becomes a member on each side only once it can read the other's envelopes.
  std::map<std::string, peer> admitted;
  std::map<caf::actor_addr, std::string> by_addr;   // peer gate -> node name
  std::set<std::string> connecting;                 // addresses with a join under way
  std::map<std::string, join> joins;                // by initiator nonce
  std::map<std::string, issued_nonce> issued;       // by responder nonce
  std::map<caf::actor_addr, peer> retired;          // peers that left gracefully, still linked
  std::int64_t ring_version = 1;
  int ticks_ready = 0;  // ready ticks spent without peers (the first only starts attempts)
  std::int64_t alone_since_ms = 0;  // every seed attempt failing since then (0: not alone)
  std::int64_t seed_busy_ms = 0;    // last time a seed answered "starting" or "leaving"
  bool settled = false;
  bool leaving = false;  // this node is stopping: out of its own ring, admits no one
  std::optional<caf::typed_response_promise<bool>> leave_promise;  // until every peer answered
  std::set<std::string> leave_pending;
  std::set<std::string> verifying;  // members whose gate proxy died, being checked
  std::map<std::string, std::int64_t> lost;  // addresses of removed members -> since (ms)
  static inline const char* name = "cluster_membership";
};

using membership_actor = caf::stateful_actor<membership_state>;

void finish_leave(membership_actor* self);
void remove_member_named(membership_actor* self, const std::string& name, const caf::error& why);

bool split_address(const std::string& a, std::string& host, std::uint16_t& port) {
  auto colon = a.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 >= a.size() || a.size() > 300)
    return false;
  host = a.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  unsigned long v = 0;
  for (auto c : a.substr(colon + 1)) {
    if (c < '0' || c > '9' || v > 65535)
      return false;
    v = v * 10 + static_cast<unsigned long>(c - '0');
  }
  if (v == 0 || v > 65535)
    return false;
  port = static_cast<std::uint16_t>(v);
  return true;
}

bool valid_card(const member_card& c) {
  return !c.node.empty() && c.node.size() <= max_name && !c.incarnation.empty()
         && c.incarnation.size() <= max_name && c.address.size() <= 300 && c.gate;
}

std::string link_key(const std::string& secret, const std::string& initiator_nonce,
                     const std::string& responder_nonce) {
  return protocols::hmac_sha256(
    secret, length_prefixed({"credo-cluster-v1|link", initiator_nonce, responder_nonce}));
}

/// What a proof binds a card to: every field, the gate by node and actor id.
std::string card_text(const member_card& c) {
  auto gate = c.gate ? std::to_string(c.gate->id()) + "@" + caf::to_string(c.gate->node()) : "";
  return length_prefixed({c.node, c.incarnation, c.address, gate});
}

/// The responder proves it holds the secret on the initiator's nonce.
std::string responder_proof(const std::string& secret, const std::string& initiator_nonce,
                            const std::string& responder_nonce) {
  return protocols::hmac_sha256(
    secret, length_prefixed({"credo-cluster-v1|responder", initiator_nonce, responder_nonce}));
}

/// The initiator proves it holds the secret on both nonces, over its whole card (a relay of its
/// hello with another gate or address does not verify).
std::string initiator_proof(const std::string& secret, const std::string& initiator_nonce,
                            const std::string& responder_nonce, const member_card& card) {
  return protocols::hmac_sha256(
    secret, length_prefixed({"credo-cluster-v1|initiator", initiator_nonce, responder_nonce,
                             card_text(card)}));
}

/// The responder's proof in its welcome: the pair's link key over its card.
std::string welcome_proof(const std::string& key, const std::string& initiator_nonce,
                          const member_card& card) {
  return protocols::hmac_sha256(
    key, length_prefixed({"credo-cluster-v1|welcome", initiator_nonce, card_text(card)}));
}

std::vector<std::string> known_addresses(const membership_state& st) {
  std::vector<std::string> out{st.self_card.address};
  for (auto& [name, p] : st.peers)
    out.push_back(p.card.address);
  return out;
}

/// The gate's table: members, admitted nodes and leaving members (whose replies still count),
/// each incarnation with its own link.
void publish_gate(membership_actor* self) {
  auto& st = self->state;
  auto t = std::make_shared<gate_table>();
  for (auto& [addr, p] : st.retired)
    (*t)[gate_key(p.card.node, p.card.incarnation)] = p.link.address();
  for (auto* m : {&st.admitted, &st.peers})
    for (auto& [name, p] : *m)
      (*t)[gate_key(p.card.node, p.card.incarnation)] = p.link.address();
  st.gate->peers.store(std::move(t), std::memory_order_release);
}

/// Rebuilds the ring and the status from the member list, and tells the local registries.
void publish_ring(membership_actor* self, bool members_left = false) {
  auto& st = self->state;
  auto r = std::make_shared<ring>();
  r->version = st.ring_version;
  auto add = [&r](const std::string& node, auto registry_of) {
    ring_member m;
    m.node = node;
    m.seed = stable_hash(node);
    for (std::size_t k = 0; k < protocols::entity_kind_count; ++k)
      m.registries[k] = registry_of(k);
    r->members.push_back(std::move(m));
  };
  if (!st.leaving)  // a leaving node routes every key to the others (none left: to itself)
    add(st.self_card.node, [&st](std::size_t k) { return st.cfg.registries[k]; });
  for (auto& [name, p] : st.peers)  // a peer's link stands in for its registries
    add(name, [&p](std::size_t) { return p.link; });
  st.cfg.own->replace(std::move(r));
  for (auto& reg : st.cfg.registries)
    self->send(reg, protocols::ring_changed_atom::value, members_left);
}

void publish_status(membership_actor* self) {
  auto& st = self->state;
  cluster_status::view v;
  v.node = st.self_card.node;
  v.ring_version = st.ring_version;
  v.members.push_back({st.self_card.node, st.self_card.address, "up", unix_now_ms()});
  for (auto& [name, p] : st.peers)
    v.members.push_back({name, p.card.address, "up", p.last_seen_ms});
  st.cfg.status->set(std::move(v));
}

/// A one-way message to a member, sealed and sent by its link.
template <class... Ts>
void tell(membership_actor* self, const peer& p, Ts&&... xs) {
  self->send(p.link, link_send{caf::make_message(std::forward<Ts>(xs)...)});
}

void send_view(membership_actor* self, const peer& p) {
  auto& st = self->state;
  tell(self, p, cluster_view{known_addresses(st), st.ring_version});
}

void settle(membership_actor* self) {
  auto& st = self->state;
  if (st.settled || st.leaving)
    return;
  st.settled = true;
  st.cfg.own->set_serving();
  if (st.cfg.on_settled)
    st.cfg.on_settled();
  log::info("cluster joined", {{"members", st.peers.size() + 1}});
}

void changed(membership_actor* self, bool members_left) {
  ++self->state.ring_version;
  publish_ring(self, members_left);
  publish_status(self);
  for (auto& [name, p] : self->state.peers)
    send_view(self, p);
}

caf::actor new_link(membership_actor* self, const member_card& card, const std::string& key,
                    bool confirmed) {
  auto& st = self->state;
  link_config lc;
  lc.self_node = st.self_card.node;
  lc.self_incarnation = st.self_card.incarnation;
  lc.peer_node = card.node;
  lc.peer_incarnation = card.incarnation;
  lc.peer_gate = card.gate;
  lc.key = key;
  lc.key_confirmed = confirmed;
  lc.dropped = st.gate->dropped;
  lc.registries = st.cfg.registries;
  lc.membership = caf::actor_cast<caf::actor>(self);
  lc.accept_crash = st.cfg.accept_crash;
  return spawn_peer_link(self, std::move(lc));
}

void close_link(membership_actor* self, const caf::actor& link) {
  if (link)
    self->send(link, link_close{});
}


/// Watches the peer's gate: its proxy terminates when the link to that node is lost (or the
/// heartbeats stop). A local-only message: no stranger can claim a peer went down.
void watch(membership_actor* self, const caf::actor& gate) {
  auto me = caf::actor_cast<caf::actor_addr>(self);
  auto addr = gate.address();
  caf::actor_cast<caf::strong_actor_ptr>(gate)->get()->attach_functor(
    [me, addr](const caf::error& reason) {
      if (auto m = caf::actor_cast<caf::actor>(me))
        caf::anon_send(m, local_peer_gone{addr, reason});
    });
}

/// `card` completed a join with this node under `key`, and can read this node's envelopes
/// (`confirmed`: this node got its welcome, so it holds the key).
void add_member(membership_actor* self, const member_card& card, const std::string& key,
                bool confirmed) {
  auto& st = self->state;
  if (card.node == st.self_card.node || st.leaving)  // a join that completes while leaving
    return;
  for (auto& [addr, r] : st.retired)  // a join that completes while the peer leaves
    if (r.card.node == card.node && r.card.incarnation == card.incarnation)
      return;
  if (auto a = st.admitted.find(card.node);
      a != st.admitted.end() && a->second.card.incarnation != card.incarnation) {
    close_link(self, a->second.link);
    st.admitted.erase(a);
  }
  bool replaced = false;
  caf::actor old_link;
  if (auto i = st.peers.find(card.node); i != st.peers.end()) {
    if (i->second.card.incarnation == card.incarnation) {
      // Both nodes joined each other at once, or joined again: its link takes this key too.
      self->send(i->second.link, link_add_key{key, confirmed});
      i->second.last_seen_ms = unix_now_ms();
      return;
    }
    // The same node name, started again: the old incarnation is gone (or about to be noticed).
    st.by_addr.erase(i->second.card.gate.address());
    st.verifying.erase(card.node);
    old_link = i->second.link;
    st.peers.erase(i);
    replaced = true;
  }
  peer p;
  if (auto a = st.admitted.find(card.node);
      a != st.admitted.end() && a->second.card.incarnation == card.incarnation) {
    p = std::move(a->second);  // its link already serves the envelopes of its first message
    st.admitted.erase(a);
    if (!key.empty())
      self->send(p.link, link_add_key{key, confirmed});
  } else {
    p.card = card;
    p.link = new_link(self, card, key, confirmed);
  }
  p.last_seen_ms = unix_now_ms();
  watch(self, card.gate);
  st.by_addr[card.gate.address()] = card.node;
  st.peers[card.node] = std::move(p);
  publish_gate(self);
  log::info("cluster member joined", {{"member", card.node}, {"address", card.address}});
  changed(self, replaced);
  // After the ring changed: a call routed with the old ring after this is failed by its sender
  // (ownership::is_member), one routed before it here.
  if (replaced && st.cfg.on_peer_down)
    st.cfg.on_peer_down(card.node);
  // Last: its failures of the calls still waiting must not come before the failover above.
  close_link(self, old_link);
  settle(self);
}

/// A peer is stopping (graceful leave): out of the ring at once. Its entities still answer what
/// was sent to them before (its link passes replies on); its link loss later fails only what
/// is left then.
void retire_member(membership_actor* self, const std::string& name) {
  auto& st = self->state;
  auto i = st.peers.find(name);
  if (i == st.peers.end())
    return;
  if (st.verifying.count(name)) {  // its gate's handle already died: it is gone
    remove_member_named(self, name, caf::make_error(errc::temporarily_unavailable, "left"));
    return;
  }
  auto addr = i->second.card.gate.address();
  st.by_addr.erase(addr);
  st.retired[addr] = std::move(i->second);
  st.peers.erase(i);
  publish_gate(self);
  log::info("cluster member leaving", {{"member", name}});
  changed(self, false);
}

void remove_member(membership_actor* self, const caf::actor_addr& who, const caf::error& why) {
  auto& st = self->state;
  if (auto r = st.retired.find(who); r != st.retired.end()) {
    auto name = r->second.card.node;
    auto link = r->second.link;
    st.retired.erase(r);
    publish_gate(self);
    log::info("cluster member left", {{"member", name}});
    // Calls still unanswered have lost their node; a new incarnation's calls are its own.
    if (!st.peers.count(name) && st.cfg.on_peer_down)
      st.cfg.on_peer_down(name);
    close_link(self, link);  // after the failover of its calls, see add_member
    return;
  }
  auto i = st.by_addr.find(who);
  if (i == st.by_addr.end())
    return;
  auto name = i->second;
  st.by_addr.erase(i);
  st.verifying.erase(name);
  caf::actor link;
  if (auto p = st.peers.find(name); p != st.peers.end()) {
    link = p->second.link;
    st.lost[p->second.card.address] = unix_now_ms();  // tried again for a while (tick)
    st.peers.erase(p);
  }
  publish_gate(self);
  log::warn("cluster member left", {{"member", name}, {"reason", self->system().render(why)}});
  changed(self, true);
  if (st.cfg.on_peer_down)  // after the ring changed, see add_member
    st.cfg.on_peer_down(name);
  close_link(self, link);  // after the failover of its calls, see add_member
  if (st.leave_promise && st.leave_pending.erase(name) && st.leave_pending.empty())
    finish_leave(self);
}

void remove_member_named(membership_actor* self, const std::string& name, const caf::error& why) {
  auto i = self->state.peers.find(name);
  if (i != self->state.peers.end())
    remove_member(self, i->second.card.gate.address(), why);
}

/// Asks the middleman for the gate at `name`'s address; a fresh handle for its gate proves it
/// is alive. `tries` more attempts when the answer is the dead proxy itself (the middleman has
/// not yet dropped it from its cache).
void verify_peer(membership_actor* self, const std::string& name, const caf::error& why,
                 int tries) {
  auto& st = self->state;
  auto i = st.peers.find(name);
  std::string host;
  std::uint16_t port = 0;
  if (i == st.peers.end() || !split_address(i->second.card.address, host, port)) {
    st.verifying.erase(name);
    return remove_member_named(self, name, why);
  }
  auto incarnation = i->second.card.incarnation;
  auto mm = st.cfg.tls ? self->system().openssl_manager().actor_handle()
                       : self->system().middleman().actor_handle();
  self->request(mm, verify_timeout, caf::connect_atom::value, host, port)
    .then(
      [self, name, why, tries, incarnation](const caf::node_id&, caf::strong_actor_ptr& ptr,
                                            const std::set<std::string>&) {
        auto& st = self->state;
        auto i = st.peers.find(name);
        if (i == st.peers.end() || i->second.card.incarnation != incarnation)
          return (void) st.verifying.erase(name);
        auto& p = i->second;
        // Handles compare by node and actor id: the dead proxy and a fresh one of the same gate
        // are told apart by their control blocks.
        auto fresh = caf::actor_cast<caf::actor>(ptr);
        bool same_proxy = ptr.get() == caf::actor_cast<caf::strong_actor_ptr>(p.card.gate).get();
        if (fresh && same_proxy && tries > 0) {  // the middleman still caches the dead proxy
          self->delayed_send(self, std::chrono::milliseconds{50},
                             local_verify_retry{name, why, tries - 1});
          return;
        }
        if (!fresh || same_proxy || fresh->node() != p.card.gate->node()
            || fresh->id() != p.card.gate->id()) {
          st.verifying.erase(name);
          return remove_member_named(self, name, why);
        }
        // Alive, and the same process: a proxy killed by a down message from elsewhere.
        log::warn("cluster: the handle of a live member's gate was killed (a forged down "
                  "message?); keeping the member",
                  {{"member", name}});
        st.by_addr.erase(p.card.gate.address());
        p.card.gate = fresh;
        st.by_addr[fresh.address()] = name;
        watch(self, fresh);
        self->send(p.link, link_resume{fresh});
        st.verifying.erase(name);
      },
      [self, name, why](caf::error&) {
        self->state.verifying.erase(name);
        remove_member_named(self, name, why);
      });
}

/// The proxy of a peer's gate died: the link to it is lost or its heartbeats stopped, or (CAF
/// lets any connection send a BASP down message) someone killed the proxy. A member is removed
/// only once a new connection to its address does not reach the same process.
void peer_gone(membership_actor* self, const caf::actor_addr& who, const caf::error& why) {
  auto& st = self->state;
  auto i = st.by_addr.find(who);
  if (i == st.by_addr.end() || st.leaving)
    return remove_member(self, who, why);  // a leaving peer, or this node is leaving
  auto name = i->second;
  if (!st.verifying.insert(name).second)
    return;
  self->send(st.peers[name].link, link_suspend{});
  verify_peer(self, name, why, 3);
}

/// The leave is over (every peer answered, or its time ran out): out of this node's own ring,
/// so its entities hand off and its fronts route every key to the survivors.
void finish_leave(membership_actor* self) {
  auto& st = self->state;
  if (!st.leave_promise)
    return;
  publish_ring(self);
  publish_status(self);
  log::info("cluster left", {{"members", st.peers.size()}, {"unanswered", st.leave_pending.size()}});
  st.leave_promise->deliver(true);
  st.leave_promise.reset();
}

void end_join(membership_actor* self, std::map<std::string, join>::iterator j) {
  self->state.connecting.erase(j->second.address);
  self->state.joins.erase(j);
}

/// Joins the node at `address`: connect (asynchronously, through the middleman actor: a
/// blocking remote_actor could hang on a hung peer), then the challenge to its gate. The rest
/// of the join arrives as messages through this node's gate; `tick` ends joins that stall.
void connect(membership_actor* self, const std::string& address) {
  auto& st = self->state;
  std::string host;
  std::uint16_t port = 0;
  if (st.leaving || address == st.self_card.address || st.connecting.count(address)
      || !split_address(address, host, port))
    return;
  for (auto& [name, p] : st.peers)
    if (p.card.address == address)
      return;
  st.connecting.insert(address);
  auto mm = st.cfg.tls ? self->system().openssl_manager().actor_handle()
                       : self->system().middleman().actor_handle();
  self->request(mm, st.cfg.connect_timeout, caf::connect_atom::value, host, port)
    .then(
      [self, address](const caf::node_id&, caf::strong_actor_ptr& ptr,
                      const std::set<std::string>&) {
        auto& st = self->state;
        auto remote = caf::actor_cast<caf::actor>(ptr);
        bool known = false;  // a seed name that leads to a member (a Kubernetes service name)
        for (auto* map : {&st.peers, &st.admitted})
          for (auto& [name, p] : *map)
            known |= p.card.gate == remote;
        if (!remote || remote == st.self_card.gate || st.leaving || known) {
          st.connecting.erase(address);
          return;
        }
        auto mine = protocols::random_token(24);
        st.joins[mine] = join{address, remote, {}, unix_now_ms()};
        caf::anon_send(remote, cluster_challenge{mine, st.self_card.gate});
      },
      [self, address](caf::error&) { self->state.connecting.erase(address); });
}

bool is_ready(const membership_state& st) {
  return !st.cfg.ready || st.cfg.ready();
}

/// A one-way message of a member (or of an admitted node, which it makes a member).
void on_peer_message(membership_actor* self, peer_said& m) {
  auto& st = self->state;
  auto& msg = m.payload;
  if (auto a = st.admitted.find(m.node);
      a != st.admitted.end() && a->second.card.incarnation == m.incarnation) {
    auto card = a->second.card;
    add_member(self, card, {}, true);  // its link holds the key it sealed this under
  }
  auto i = st.peers.find(m.node);
  if (i == st.peers.end() || i->second.card.incarnation != m.incarnation) {
    // A leaving member still tells what it revokes or rotates while it drains.
    for (auto& [addr, p] : st.retired)
      if (p.card.node == m.node && p.card.incarnation == m.incarnation) {
        if (msg.match_elements<persistence::revocation_snapshot>() && st.cfg.on_revocations)
          st.cfg.on_revocations(msg.get_as<persistence::revocation_snapshot>(0));
        else if (msg.match_elements<protocols::keys_changed_atom>() && st.cfg.on_keys_changed)
          st.cfg.on_keys_changed();
      }
    return;
  }
  auto& p = i->second;
  p.last_seen_ms = unix_now_ms();
  if (msg.match_elements<cluster_view>()) {
    auto& v = msg.get_as<cluster_view>(0);
    if (v.ring_version > st.ring_version) {
      st.ring_version = v.ring_version;
      publish_ring(self);
    }
    if (v.addresses.size() <= max_addresses && is_ready(st))
      for (auto& a : v.addresses)
        connect(self, a);
  } else if (msg.match_elements<protocols::leave_atom>()) {
    tell(self, p, protocols::left_atom::value);  // before retiring: p is moved out
    retire_member(self, m.node);
  } else if (msg.match_elements<protocols::left_atom>()) {
    if (st.leave_promise && st.leave_pending.erase(m.node) && st.leave_pending.empty())
      finish_leave(self);
  } else if (msg.match_elements<persistence::revocation_snapshot>()) {
    if (st.cfg.on_revocations)
      st.cfg.on_revocations(msg.get_as<persistence::revocation_snapshot>(0));
  } else if (msg.match_elements<protocols::keys_changed_atom>()) {
    if (st.cfg.on_keys_changed)
      st.cfg.on_keys_changed();
  }
}

caf::behavior membership_behavior(membership_actor* self, membership_config cfg,
                                  std::shared_ptr<gate_state> gate) {
  auto& st = self->state;
  st.cfg = std::move(cfg);
  st.gate = std::move(gate);
  st.self_card.node = st.cfg.node;
  st.self_card.incarnation = st.cfg.incarnation;
  // Links end normally when their peer goes (link_close). One that fails takes its peer out
  // (it rejoins through the view exchange); an exit from any other linked actor (a link
  // replaced before) changes nothing; credod's (anon_send_exit) ends the actor.
  self->set_exit_handler([self](caf::exit_msg& m) {
    auto& st = self->state;
    if (!m.source || m.source == self->address()) {  // anon_send_exit names the receiver
      self->quit(m.reason);
      return;
    }
    if (!m.reason || m.reason == caf::exit_reason::normal)
      return;
    for (auto& [name, p] : st.peers)
      if (p.link.address() == m.source) {
        log::error("cluster link failed", {{"member", name},
                                           {"reason", self->system().render(m.reason)}});
        auto gate = p.card.gate.address();
        return remove_member(self, gate, m.reason);
      }
    for (auto a = st.admitted.begin(); a != st.admitted.end(); ++a)
      if (a->second.link.address() == m.source) {
        st.admitted.erase(a);
        return publish_gate(self);
      }
    for (auto r = st.retired.begin(); r != st.retired.end(); ++r)
      if (r->second.link.address() == m.source) {
        auto gate = r->first;
        return remove_member(self, gate, m.reason);
      }
  });
  return {
    // From start_membership, once published: the gate and the address peers reach it on.
    [self](caf::publish_atom, const std::string& address, const caf::actor& gate) {
      self->state.self_card.address = address;
      self->state.self_card.gate = gate;
      publish_ring(self);
      publish_status(self);
      self->send(self, caf::tick_atom::value);
    },
    [self](caf::tick_atom) {
      auto& st = self->state;
      auto now = unix_now_ms();
      for (auto i = st.issued.begin(); i != st.issued.end();)
        i = now - i->second.at_ms > nonce_life_ms ? st.issued.erase(i) : std::next(i);
      for (auto j = st.joins.begin(); j != st.joins.end();) {
        auto next = std::next(j);
        if (now - j->second.started_ms > st.cfg.connect_timeout.count())
          end_join(self, j);
        j = next;
      }
      bool gate_changed = false;
      for (auto a = st.admitted.begin(); a != st.admitted.end();) {
        if (now - a->second.last_seen_ms > 2 * st.cfg.connect_timeout.count()) {
          close_link(self, a->second.link);
          a = st.admitted.erase(a);
          gate_changed = true;
        } else {
          ++a;
        }
      }
      if (gate_changed)
        publish_gate(self);
      // A member that sent nothing for 12 ticks (it dropped this node, or its envelopes no
      // longer open here) is removed; it rejoins through the addresses tried below.
      std::vector<std::string> silent;
      for (auto& [name, p] : st.peers)  // (a leaving node hears nothing: its peers retired it)
        if (now - p.last_seen_ms > 12 * st.cfg.tick.count() && !st.verifying.count(name)
            && !st.leaving)
          silent.push_back(name);
      for (auto& name : silent)
        remove_member_named(self, name, caf::make_error(errc::temporarily_unavailable,
                                                        "no message from the member"));
      for (auto l = st.lost.begin(); l != st.lost.end();)
        l = now - l->second > 60000 ? st.lost.erase(l) : std::next(l);
      for (auto& [name, p] : st.peers)
        send_view(self, p);
      if (is_ready(st)) {
        for (auto& [address, since] : st.lost)
          connect(self, address);
        // Alone: no seeds, or every seed attempt has failed for two connect timeouts with no
        // seed saying it is starting or leaving (all seeds down). One failed round is not
        // enough: a slow or restarting seed would split the cluster. Checked before this
        // tick's attempts start, or a seed that stays down would keep `connecting` busy.
        if (st.cfg.seeds.empty()) {
          settle(self);
        } else if (!st.peers.empty()) {
          st.alone_since_ms = 0;
        } else if (st.ticks_ready++ > 0 && st.connecting.empty()) {
          if (st.alone_since_ms == 0)
            st.alone_since_ms = now;
          else if (now - std::max(st.alone_since_ms, st.seed_busy_ms)
                   >= 2 * st.cfg.connect_timeout.count())
            settle(self);
        }
        for (auto& seed : st.cfg.seeds)
          connect(self, seed);
      }
      publish_status(self);
      self->delayed_send(self, st.cfg.tick, caf::tick_atom::value);
    },
    // Join, responder side, step 1: prove the secret on the initiator's nonce.
    [self](cluster_challenge& c) {
      auto& st = self->state;
      if (!c.reply_to || c.reply_to->node() == self->node() || c.nonce.empty()
          || c.nonce.size() > max_nonce)
        return;
      if (!is_ready(st) || st.leaving) {
        caf::anon_send(c.reply_to, cluster_challenge_reply{c.nonce, {}, {},
                                                           st.leaving ? "leaving" : "starting"});
        return;
      }
      if (st.issued.size() >= max_issued_nonces)  // the oldest goes
        st.issued.erase(std::min_element(st.issued.begin(), st.issued.end(), [](auto& a, auto& b) {
          return a.second.at_ms < b.second.at_ms;
        }));
      auto mine = protocols::random_token(24);
      st.issued[mine] = issued_nonce{unix_now_ms(), c.nonce};
      caf::anon_send(c.reply_to, cluster_challenge_reply{
                                   c.nonce, mine, responder_proof(st.cfg.secret, c.nonce, mine), {}});
    },
    // Join, initiator side: the responder proved the secret (or is starting or leaving).
    [self](cluster_challenge_reply& r) {
      auto& st = self->state;
      auto j = st.joins.find(r.initiator_nonce);
      if (j == st.joins.end() || !j->second.key.empty())
        return;
      if (!r.refusal.empty()) {
        // The peer is starting or leaving: a cluster may be there, do not settle alone yet.
        st.seed_busy_ms = unix_now_ms();
        return end_join(self, j);
      }
      if (r.nonce.empty() || r.nonce.size() > max_nonce
          || !protocols::constant_time_equal(
            r.proof, responder_proof(st.cfg.secret, r.initiator_nonce, r.nonce))) {
        log::warn("cluster peer refused: it does not hold the cluster secret",
                  {{"address", j->second.address}});
        return end_join(self, j);
      }
      j->second.key = link_key(st.cfg.secret, r.initiator_nonce, r.nonce);
      caf::anon_send(j->second.remote,
                     cluster_hello{st.self_card, r.nonce,
                                   initiator_proof(st.cfg.secret, r.initiator_nonce, r.nonce,
                                                   st.self_card)});
    },
    // Join, responder side, step 2: the initiator proved the secret.
    [self](cluster_hello& h) {
      auto& st = self->state;
      if (st.leaving)
        return;
      auto i = st.issued.find(h.nonce);
      if (i == st.issued.end())
        return;
      // The proof is checked before the nonce is spent: a wrong hello cannot burn it.
      if (!valid_card(h.card) || h.card.node == st.self_card.node
          || !protocols::constant_time_equal(
            h.proof, initiator_proof(st.cfg.secret, i->second.initiator_nonce, h.nonce, h.card))) {
        log::warn("cluster join refused: bad proof of the cluster secret",
                  {{"node", h.card.node.substr(0, max_name)}});
        return;
      }
      auto initiator_nonce = std::move(i->second.initiator_nonce);
      st.issued.erase(i);
      auto key = link_key(st.cfg.secret, initiator_nonce, h.nonce);
      if (auto p = st.peers.find(h.card.node);
          p != st.peers.end() && p->second.card.incarnation == h.card.incarnation) {
        // Joined again (or both ways at once): its link accepts this key from now on, and
        // seals under it once the peer has used it.
        self->send(p->second.link, link_add_key{key, false});
      } else {
        // Admitted: the gate passes its envelopes now, its first one makes it a member (it
        // has read the welcome and can open this node's envelopes).
        auto& a = st.admitted[h.card.node];
        if (a.link && a.card.incarnation != h.card.incarnation) {
          close_link(self, a.link);
          a = peer{};
        }
        if (!a.link) {
          a.card = h.card;
          a.link = new_link(self, h.card, key, false);
        } else {
          self->send(a.link, link_add_key{key, false});
        }
        a.last_seen_ms = unix_now_ms();
        publish_gate(self);
      }
      caf::anon_send(h.card.gate,
                     cluster_welcome{st.self_card, known_addresses(st), st.ring_version,
                                     initiator_nonce,
                                     welcome_proof(key, initiator_nonce, st.self_card)});
    },
    // Join, initiator side, done: the responder admitted this node.
    [self](cluster_welcome& w) {
      auto& st = self->state;
      auto j = st.joins.find(w.initiator_nonce);
      if (j == st.joins.end() || j->second.key.empty() || !valid_card(w.card)
          || !protocols::constant_time_equal(
            w.proof, welcome_proof(j->second.key, w.initiator_nonce, w.card)))
        return;
      auto key = j->second.key;
      auto remote = j->second.remote;
      end_join(self, j);
      if (w.card.gate != remote)
        return;
      add_member(self, w.card, key, true);
      if (w.ring_version > st.ring_version) {
        st.ring_version = w.ring_version;
        publish_ring(self);
        publish_status(self);
      }
      if (w.addresses.size() <= max_addresses)
        for (auto& a : w.addresses)
          connect(self, a);
    },
    [self](peer_said& m) { on_peer_message(self, m); },
    [self](local_peer_gone& g) { peer_gone(self, g.gate, g.reason); },
    [self](local_verify_retry& r) { verify_peer(self, r.node, r.reason, r.tries); },
    // This node is stopping (credod on SIGTERM): tell every peer; once each took this node out
    // of its ring, or when `timeout` runs out, leave this node's own ring too.
    [self](local_leave& l) -> caf::result<bool> {
      auto& st = self->state;
      if (st.leaving)
        return false;
      st.leaving = true;
      auto rp = self->make_response_promise<bool>();
      st.leave_promise = rp;
      st.leave_pending.clear();
      for (auto& [name, p] : st.peers) {
        st.leave_pending.insert(name);
        tell(self, p, protocols::leave_atom::value);
      }
      if (st.leave_pending.empty()) {
        finish_leave(self);
        return rp;
      }
      self->delayed_send(self, l.timeout, local_leave_deadline{});
      return rp;
    },
    [self](local_leave_deadline) { finish_leave(self); },
    [self](local_revocations& r) {
      for (auto& [name, p] : self->state.peers)
        tell(self, p, r.snapshot);
    },
    [self](local_keys_changed) {
      for (auto& [name, p] : self->state.peers)
        tell(self, p, protocols::keys_changed_atom::value);
    },
  };
}

}  // namespace


status check_tls_files(const link_options& o) {
  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx{SSL_CTX_new(TLS_method()), SSL_CTX_free};
  if (!ctx)
    return {errc::internal_error, "cannot create a TLS context"};
  SSL_CTX_set_default_passwd_cb(ctx.get(), [](char*, int, int, void*) { return 0; });
  auto bad = [](const char* what, const std::string& file) -> status {
    ERR_clear_error();
    return {errc::invalid_request, std::string{what} + " '" + file + "'"};
  };
  if (SSL_CTX_use_certificate_chain_file(ctx.get(), o.certificate.c_str()) != 1)
    return bad("cannot load the cluster TLS certificate", o.certificate);
  if (SSL_CTX_use_PrivateKey_file(ctx.get(), o.key.c_str(), SSL_FILETYPE_PEM) != 1)
    return bad("cannot load the cluster TLS key (PEM, not encrypted)", o.key);
  if (SSL_CTX_check_private_key(ctx.get()) != 1)
    return bad("the cluster TLS key does not match the certificate", o.key);
  if (SSL_CTX_load_verify_locations(ctx.get(), o.cafile.c_str(), nullptr) != 1)
    return bad("cannot load the cluster TLS CA file", o.cafile);
  return ok();
}

void configure_links(caf::actor_system_config& cfg, const link_options& o) {
  cfg.load<caf::io::middleman>();
  cfg.set("middleman.heartbeat-interval", caf::timespan{o.heartbeat});
  cfg.set("middleman.connection-timeout", caf::timespan{o.connection_timeout});
  if (o.tls) {
    cfg.load<caf::openssl::manager>();
    cfg.openssl_certificate = o.certificate;
    cfg.openssl_key = o.key;
    cfg.openssl_cafile = o.cafile;
  }
}

result<membership> start_membership(caf::actor_system& sys, membership_config cfg) {
  auto host = cfg.host;
  auto port = cfg.port;
  auto tls = cfg.tls;
  // CAF's named actors answer any process that names them (ConfigServ even stores what it is
  // sent): no peer uses them, so no process can reach them.
  sys.registry().erase(caf::atom("SpawnServ"));
  sys.registry().erase(caf::atom("ConfigServ"));
  auto gs = std::make_shared<gate_state>();
  auto actor = sys.spawn(membership_behavior, std::move(cfg), gs);
  gs->membership = actor.address();
  auto gate = make_gate(sys, gs);
  caf::expected<std::uint16_t> bound = caf::sec::runtime_error;
  if (tls)
    bound = caf::openssl::publish(gate, port, host.c_str(), false);
  else
    bound = sys.middleman().publish(gate, port, host.c_str(), false);
  if (!bound) {
    caf::anon_send_exit(actor, caf::exit_reason::user_shutdown);
    return {errc::internal_error, sys.render(bound.error())};
  }
  auto url_host = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  membership m{actor, url_host + ":" + std::to_string(*bound), gs};
  caf::anon_send(actor, caf::publish_atom::value, m.address, gate);
  return m;
}

void broadcast_revocations(const caf::actor& membership, persistence::revocation_snapshot s) {
  if (membership)
    caf::anon_send(membership, local_revocations{std::move(s)});
}

void broadcast_keys_changed(const caf::actor& membership) {
  if (membership)
    caf::anon_send(membership, local_keys_changed{});
}

bool leave_cluster(caf::actor_system& sys, const caf::actor& membership,
                   std::chrono::milliseconds timeout) {
  if (!membership)
    return true;
  bool left = false;
  caf::scoped_actor self{sys};
  // The membership actor ends the leave at `timeout` itself; the margin covers the hop.
  self->request(membership, timeout + std::chrono::milliseconds{500}, local_leave{timeout})
    .receive([&left](bool ok) { left = ok; }, [](caf::error&) {});
  return left;
}

}  // namespace credo::cluster
