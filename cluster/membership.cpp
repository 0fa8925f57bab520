#include "cluster/membership.hpp"

#include <map>
#include <optional>
#include <set>

#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <caf/openssl/all.hpp>
#include <nlohmann/json.hpp>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "protocols/clock.hpp"
#include "protocols/crypto.hpp"
#include "protocols/log.hpp"

namespace credo::cluster::detail {

// Commands from this node's own threads (credod, the revocation mirror). Their types cannot
// cross the network (no type id), so no peer, and no stranger on an insecure link, can send
// them: only `leave_atom`, revocations and `keys_changed_atom` from members come from outside.
struct local_leave {
  std::chrono::milliseconds timeout;
};
struct local_leave_deadline {};
struct local_revocations {
  persistence::revocation_snapshot snapshot;
};
struct local_keys_changed {};

}  // namespace credo::cluster::detail

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(credo::cluster::detail::local_leave)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(credo::cluster::detail::local_leave_deadline)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(credo::cluster::detail::local_revocations)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(credo::cluster::detail::local_keys_changed)

namespace credo::cluster {
namespace {

using detail::local_keys_changed;
using detail::local_leave;
using detail::local_leave_deadline;
using detail::local_revocations;
using protocols::cluster_challenge;
using protocols::cluster_challenge_reply;
using protocols::cluster_hello;
using protocols::cluster_view;
using protocols::cluster_welcome;
using protocols::member_card;

constexpr std::size_t max_nonce = 64;
constexpr std::size_t max_name = 128;
constexpr std::size_t max_addresses = 256;
constexpr std::size_t max_issued_nonces = 1024;
constexpr std::int64_t nonce_life_ms = 10000;

struct peer {
  member_card card;
  std::int64_t last_seen_ms = 0;
};

struct membership_state {
  membership_config cfg;
  member_card self_card;
  std::map<std::string, peer> peers;                // by node name
  std::map<caf::actor_addr, std::string> by_addr;   // peer membership actor -> node name
  std::set<std::string> connecting;                 // addresses with a join under way
  std::map<std::string, std::int64_t> issued;       // responder nonces -> issued at (ms)
  std::map<caf::actor_addr, std::string> retired;  // peers that left gracefully, still linked
  std::int64_t ring_version = 1;
  int ticks_ready = 0;  // ready ticks spent without peers (the first only starts attempts)
  std::int64_t alone_since_ms = 0;  // every seed attempt failing since then (0: not alone)
  std::int64_t seed_busy_ms = 0;    // last time a seed answered "starting" or "leaving"
  bool settled = false;
  bool leaving = false;  // this node is stopping: out of its own ring, admits no one
  std::optional<caf::typed_response_promise<bool>> leave_promise;  // until every peer answered
  std::size_t leave_pending = 0;
  static inline const char* name = "cluster_membership";
};

using membership_actor = caf::stateful_actor<membership_state>;

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
         && c.incarnation.size() <= max_name && c.address.size() <= 300 && c.membership
         && c.registries.size() == protocols::entity_kind_count
         && std::all_of(c.registries.begin(), c.registries.end(), [](auto& r) { return !!r; });
}

std::vector<std::string> known_addresses(const membership_state& st) {
  std::vector<std::string> out{st.self_card.address};
  for (auto& [name, p] : st.peers)
    out.push_back(p.card.address);
  return out;
}

/// Rebuilds the ring and the status from the member list, and tells the local registries.
void publish_ring(membership_actor* self, bool members_left = false) {
  auto& st = self->state;
  auto r = std::make_shared<ring>();
  r->version = st.ring_version;
  auto add = [&r](const member_card& c) {
    ring_member m;
    m.node = c.node;
    m.seed = stable_hash(c.node);
    for (std::size_t k = 0; k < protocols::entity_kind_count; ++k)
      m.registries[k] = c.registries[k];
    r->members.push_back(std::move(m));
  };
  if (!st.leaving)  // a leaving node routes every key to the others (none left: to itself)
    add(st.self_card);
  for (auto& [name, p] : st.peers)
    add(p.card);
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

void send_view(membership_actor* self, const caf::actor& to) {
  auto& st = self->state;
  self->send(to, cluster_view{known_addresses(st), st.ring_version});
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
    send_view(self, p.card.membership);
}

void add_member(membership_actor* self, const member_card& card) {
  auto& st = self->state;
  if (card.node == st.self_card.node || st.leaving)  // a join that completes while leaving
    return;
  bool replaced = false;
  if (auto i = st.peers.find(card.node); i != st.peers.end()) {
    if (i->second.card.incarnation == card.incarnation) {
      i->second.last_seen_ms = unix_now_ms();
      return;
    }
    // The same node name, started again: the old incarnation is gone (or about to be noticed).
    self->demonitor(i->second.card.membership);
    st.by_addr.erase(i->second.card.membership.address());
    st.peers.erase(i);
    replaced = true;
  }
  self->monitor(card.membership);
  st.by_addr[card.membership.address()] = card.node;
  st.peers[card.node] = peer{card, unix_now_ms()};
  log::info("cluster member joined", {{"member", card.node}, {"address", card.address}});
  changed(self, replaced);
  // After the ring changed: a call routed with the old ring after this is failed by its sender
  // (ownership::is_member), one routed before it here.
  if (replaced && st.cfg.on_peer_down)
    st.cfg.on_peer_down(card.node);
  settle(self);
}

/// A peer is stopping (graceful leave): out of the ring at once. Its entities still answer what
/// was sent to them before; its down message later fails only what is left then.
void retire_member(membership_actor* self, const caf::actor_addr& who) {
  auto& st = self->state;
  auto i = st.by_addr.find(who);
  if (i == st.by_addr.end())
    return;
  auto name = i->second;
  st.retired[who] = name;
  st.by_addr.erase(i);
  st.peers.erase(name);
  log::info("cluster member leaving", {{"member", name}});
  changed(self, false);
}

void remove_member(membership_actor* self, const caf::actor_addr& who, const caf::error& why) {
  auto& st = self->state;
  if (auto r = st.retired.find(who); r != st.retired.end()) {
    auto name = r->second;
    st.retired.erase(r);
    log::info("cluster member left", {{"member", name}});
    // Calls still unanswered have lost their node; a new incarnation's calls are its own.
    if (!st.peers.count(name) && st.cfg.on_peer_down)
      st.cfg.on_peer_down(name);
    return;
  }
  auto i = st.by_addr.find(who);
  if (i == st.by_addr.end())
    return;
  auto name = i->second;
  st.by_addr.erase(i);
  st.peers.erase(name);
  log::warn("cluster member left", {{"member", name}, {"reason", self->system().render(why)}});
  changed(self, true);
  if (st.cfg.on_peer_down)  // after the ring changed, see add_member
    st.cfg.on_peer_down(name);
}

/// The leave is over (every peer answered, or its time ran out): out of this node's own ring,
/// so its entities hand off and its fronts route every key to the survivors.
void finish_leave(membership_actor* self) {
  auto& st = self->state;
  if (!st.leave_promise)
    return;
  publish_ring(self);
  publish_status(self);
  log::info("cluster left", {{"members", st.peers.size()}, {"unanswered", st.leave_pending}});
  st.leave_promise->deliver(true);
  st.leave_promise.reset();
}

/// A join attempt failed because the peer is starting or leaving: a cluster may be there.
void note_refusal(membership_actor* self, const caf::error& e) {
  if (e.category() == caf::detail::error_factory<errc>::category
      && e.code() == static_cast<std::uint8_t>(errc::temporarily_unavailable))
    self->state.seed_busy_ms = unix_now_ms();
}

/// Joins the node at `address`: connect (asynchronously, through the middleman actor: a
/// blocking remote_actor could hang on a hung peer), then the two-step handshake.
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
  auto done = [self, address] { self->state.connecting.erase(address); };
  auto mm = st.cfg.tls ? self->system().openssl_manager().actor_handle()
                       : self->system().middleman().actor_handle();
  auto timeout = st.cfg.connect_timeout;
  self->request(mm, timeout, caf::connect_atom::value, host, port)
    .then(
      [self, address, done, timeout](const caf::node_id&, caf::strong_actor_ptr& ptr,
                                     const std::set<std::string>&) {
        auto remote = caf::actor_cast<caf::actor>(ptr);
        if (!remote || remote == self)
          return done();
        auto mine = protocols::random_token(24);
        self->request(remote, timeout, cluster_challenge{mine})
          .then(
            [self, remote, address, done, mine, timeout](cluster_challenge_reply& r) {
              auto& st = self->state;
              if (r.nonce.size() > max_nonce
                  || !protocols::constant_time_equal(
                    r.proof, responder_proof(st.cfg.secret, mine, r.nonce))) {
                log::warn("cluster peer refused: it does not hold the cluster secret",
                          {{"address", address}});
                return done();
              }
              cluster_hello hello{st.self_card, r.nonce,
                                  initiator_proof(st.cfg.secret, r.nonce, st.self_card.node,
                                                  st.self_card.incarnation)};
              self->request(remote, timeout, std::move(hello))
                .then(
                  [self, remote, done](cluster_welcome& w) {
                    done();
                    if (!valid_card(w.card) || w.card.membership != remote)
                      return;
                    add_member(self, w.card);
                    auto& st = self->state;
                    if (w.ring_version > st.ring_version) {
                      st.ring_version = w.ring_version;
                      publish_ring(self);
                      publish_status(self);
                    }
                    if (w.addresses.size() <= max_addresses)
                      for (auto& a : w.addresses)
                        connect(self, a);
                  },
                  [self, done](caf::error& e) {
                    note_refusal(self, e);
                    done();
                  });
            },
            [self, done](caf::error& e) {
              note_refusal(self, e);
              done();
            });
      },
      [done](caf::error&) { done(); });
}

bool is_ready(const membership_state& st) {
  return !st.cfg.ready || st.cfg.ready();
}

bool from_peer(membership_actor* self) {
  auto sender = self->current_sender();
  return sender && self->state.by_addr.count(caf::actor_cast<caf::actor_addr>(sender)) > 0;
}

caf::behavior membership_behavior(membership_actor* self, membership_config cfg) {
  auto& st = self->state;
  st.cfg = std::move(cfg);
  st.self_card.node = st.cfg.node;
  st.self_card.incarnation = st.cfg.incarnation;
  st.self_card.membership = caf::actor_cast<caf::actor>(self);
  st.self_card.registries.assign(st.cfg.registries.begin(), st.cfg.registries.end());
  self->set_down_handler([self](caf::down_msg& m) { remove_member(self, m.source, m.reason); });
  return {
    // From start_membership, once published: the address peers reach this node on.
    [self](caf::publish_atom, const std::string& address) {
      self->state.self_card.address = address;
      publish_ring(self);
      publish_status(self);
      self->send(self, caf::tick_atom::value);
    },
    [self](caf::tick_atom) {
      auto& st = self->state;
      auto now = unix_now_ms();
      for (auto i = st.issued.begin(); i != st.issued.end();)
        i = now - i->second > nonce_life_ms ? st.issued.erase(i) : std::next(i);
      for (auto& [name, p] : st.peers)
        send_view(self, p.card.membership);
      if (is_ready(st)) {
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
    [self](cluster_challenge& c) -> caf::result<cluster_challenge_reply> {
      auto& st = self->state;
      if (!is_ready(st))
        return caf::make_error(errc::temporarily_unavailable, "node is starting");
      if (st.leaving)
        return caf::make_error(errc::temporarily_unavailable, "node is leaving");
      if (c.nonce.empty() || c.nonce.size() > max_nonce)
        return caf::make_error(errc::invalid_request, "bad nonce");
      if (st.issued.size() >= max_issued_nonces)
        st.issued.erase(st.issued.begin());
      auto mine = protocols::random_token(24);
      st.issued[mine] = unix_now_ms();
      return cluster_challenge_reply{mine, responder_proof(st.cfg.secret, c.nonce, mine)};
    },
    [self](cluster_hello& h) -> caf::result<cluster_welcome> {
      auto& st = self->state;
      if (st.leaving)
        return caf::make_error(errc::temporarily_unavailable, "node is leaving");
      auto i = st.issued.find(h.nonce);
      if (i == st.issued.end())
        return caf::make_error(errc::invalid_client, "unknown or used nonce");
      st.issued.erase(i);
      auto sender = caf::actor_cast<caf::actor_addr>(self->current_sender());
      if (!valid_card(h.card) || h.card.membership.address() != sender
          || !protocols::constant_time_equal(
            h.proof, initiator_proof(st.cfg.secret, h.nonce, h.card.node, h.card.incarnation))) {
        log::warn("cluster join refused: bad proof of the cluster secret",
                  {{"node", h.card.node.substr(0, max_name)}});
        return caf::make_error(errc::invalid_client, "join refused");
      }
      add_member(self, h.card);
      return cluster_welcome{st.self_card, known_addresses(st), st.ring_version};
    },
    [self](cluster_view& v) {
      if (!from_peer(self))
        return;
      auto& st = self->state;
      auto name = st.by_addr[caf::actor_cast<caf::actor_addr>(self->current_sender())];
      st.peers[name].last_seen_ms = unix_now_ms();
      if (v.ring_version > st.ring_version) {
        st.ring_version = v.ring_version;
        publish_ring(self);
      }
      if (v.addresses.size() <= max_addresses && is_ready(st))
        for (auto& a : v.addresses)
          connect(self, a);
    },
    // A peer is stopping.
    [self](protocols::leave_atom) {
      if (!from_peer(self))
        return false;
      retire_member(self, caf::actor_cast<caf::actor_addr>(self->current_sender()));
      return true;
    },
    // This node is stopping (credod on SIGTERM): tell every peer; once each took this node out
    // of its ring, or when `timeout` runs out, leave this node's own ring too.
    [self](local_leave& l) -> caf::result<bool> {
      auto& st = self->state;
      if (st.leaving)
        return false;
      st.leaving = true;
      auto rp = self->make_response_promise<bool>();
      st.leave_promise = rp;
      st.leave_pending = st.peers.size();
      if (st.peers.empty()) {
        finish_leave(self);
        return rp;
      }
      auto one_done = [self] {
        if (--self->state.leave_pending == 0)
          finish_leave(self);
      };
      for (auto& [name, p] : st.peers)
        self->request(p.card.membership, l.timeout, protocols::leave_atom::value)
          .then([one_done](bool) { one_done(); }, [one_done](caf::error&) { one_done(); });
      self->delayed_send(self, l.timeout, local_leave_deadline{});
      return rp;
    },
    [self](local_leave_deadline) { finish_leave(self); },
    [self](local_revocations& r) {
      for (auto& [name, p] : self->state.peers)
        self->send(p.card.membership, r.snapshot);
    },
    [self](persistence::revocation_snapshot& s) {
      if (from_peer(self) && self->state.cfg.on_revocations)
        self->state.cfg.on_revocations(s);
    },
    [self](local_keys_changed) {
      for (auto& [name, p] : self->state.peers)
        self->send(p.card.membership, protocols::keys_changed_atom::value);
    },
    [self](protocols::keys_changed_atom) {
      if (from_peer(self) && self->state.cfg.on_keys_changed)
        self->state.cfg.on_keys_changed();
    },
  };
}

}  // namespace

std::string responder_proof(const std::string& secret, const std::string& initiator_nonce,
                            const std::string& responder_nonce) {
  return protocols::hmac_sha256(secret, "credo-cluster-v1|responder|" + initiator_nonce + "|"
                                          + responder_nonce);
}

std::string initiator_proof(const std::string& secret, const std::string& responder_nonce,
                            const std::string& node, const std::string& incarnation) {
  return protocols::hmac_sha256(secret, "credo-cluster-v1|initiator|" + responder_nonce + "|"
                                          + node + "|" + incarnation);
}

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
  auto actor = sys.spawn(membership_behavior, std::move(cfg));
  caf::expected<std::uint16_t> bound = caf::sec::runtime_error;
  if (tls)
    bound = caf::openssl::publish(actor, port, host.c_str(), false);
  else
    bound = sys.middleman().publish(actor, port, host.c_str(), false);
  if (!bound) {
    caf::anon_send_exit(actor, caf::exit_reason::user_shutdown);
    return {errc::internal_error, sys.render(bound.error())};
  }
  auto url_host = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  membership m{actor, url_host + ":" + std::to_string(*bound)};
  caf::anon_send(actor, caf::publish_atom::value, m.address);
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
