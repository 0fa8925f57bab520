#include "cluster/peer_link.hpp"

#include <algorithm>
#include <deque>
#include <unordered_map>
#include <vector>

#include <caf/all.hpp>

#include "protocols/crypto.hpp"

namespace credo::cluster {
namespace {

using protocols::cluster_envelope;
using protocols::link_body;

/// A call to the peer waits at most this long for its reply (the requester's own deadline is
/// shorter; this only frees the entry).
constexpr std::chrono::seconds call_lifetime{10};
/// Messages held while the peer's gate is being checked (link_suspend); more fail at once.
constexpr std::size_t max_held = 10000;
/// Largest sealed envelope opened (the HTTP layer bounds every request far below this).
constexpr std::size_t max_sealed = 4 << 20;

struct link_expire {
  std::uint64_t call;
};

/// One key of the link: what this side seals with, and what it opens with.
struct link_key_state {
  std::string send_key;
  std::string recv_key;
  std::uint64_t send_seq = 0;
  std::uint64_t recv_high = 0;  // highest sequence number opened
  std::uint64_t recv_seen = 0;  // bit i: recv_high - i was opened (a window of 64)
  bool confirmed = false;       // the peer holds this key
};

struct link_state {
  link_config cfg;
  std::vector<link_key_state> keys;  // the newest last; at most three
  std::uint64_t next_call = 0;
  std::unordered_map<std::uint64_t, caf::response_promise> pending;
  bool suspended = false;
  std::deque<cluster_envelope> held;
  static inline const char* name = "cluster_link";
};

using link_actor = caf::stateful_actor<link_state>;

}  // namespace
}  // namespace credo::cluster

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(credo::cluster::link_expire)

namespace credo::cluster {
namespace {

std::string nonce_of(std::uint64_t seq) {
  std::string n(12, '\0');
  for (int i = 0; i < 8; ++i)
    n[4 + i] = static_cast<char>((seq >> (56 - 8 * i)) & 0xff);
  return n;
}

std::string associated_data(const std::string& from, const std::string& from_inc,
                            const std::string& to, const std::string& to_inc, std::uint64_t seq) {
  return length_prefixed({"credo-cluster-v1|envelope", from, from_inc, to, to_inc,
                          std::to_string(seq)});
}

void add_key(link_state& st, const std::string& key, bool confirmed) {
  auto& c = st.cfg;
  link_key_state k;
  k.send_key = direction_key(key, c.self_node, c.self_incarnation, c.peer_node, c.peer_incarnation);
  k.recv_key = direction_key(key, c.peer_node, c.peer_incarnation, c.self_node, c.self_incarnation);
  k.confirmed = confirmed;
  for (auto& have : st.keys)
    if (have.send_key == k.send_key) {
      have.confirmed |= confirmed;
      return;
    }
  st.keys.push_back(std::move(k));
  if (st.keys.size() > 3) {
    // Drop the oldest key that is not the one this side seals with.
    auto sealing = std::find_if(st.keys.rbegin(), st.keys.rend(),
                                [](auto& x) { return x.confirmed; });
    auto keep = sealing == st.keys.rend() ? st.keys.end() - 1 : std::prev(sealing.base());
    st.keys.erase(keep == st.keys.begin() ? st.keys.begin() + 1 : st.keys.begin());
  }
}

/// The key to seal with: the newest the peer is known to hold.
link_key_state& sealing_key(link_state& st) {
  for (auto k = st.keys.rbegin(); k != st.keys.rend(); ++k)
    if (k->confirmed)
      return *k;
  return st.keys.back();
}

/// The envelope for `body`, sealed under the newest key; nullopt if it cannot be serialized.
std::optional<cluster_envelope> seal(link_actor* self, link_body& body) {
  auto& st = self->state;
  std::vector<char> buf;
  caf::binary_serializer sink{self->system(), buf};
  if (auto err = sink(body))
    return std::nullopt;
  auto& k = sealing_key(st);
  auto seq = ++k.send_seq;
  auto ad = associated_data(st.cfg.self_node, st.cfg.self_incarnation, st.cfg.peer_node,
                            st.cfg.peer_incarnation, seq);
  auto sealed = protocols::aead_seal(k.send_key, std::string_view{buf.data(), buf.size()}, ad,
                                     nonce_of(seq));
  if (!sealed)
    return std::nullopt;
  return cluster_envelope{st.cfg.self_node, st.cfg.self_incarnation, seq, std::move(*sealed)};
}

/// Opens an envelope of the peer: under which key, replayed or not. nullopt if it does not open.
std::optional<link_body> open(link_actor* self, const cluster_envelope& e) {
  auto& st = self->state;
  if (e.from != st.cfg.peer_node || e.incarnation != st.cfg.peer_incarnation
      || e.sealed.size() > max_sealed || e.seq == 0)
    return std::nullopt;
  auto ad = associated_data(e.from, e.incarnation, st.cfg.self_node, st.cfg.self_incarnation,
                            e.seq);
  if (e.sealed.size() < 12 || e.sealed.compare(0, 12, nonce_of(e.seq)) != 0)
    return std::nullopt;
  // A sequence number every key has seen, or is too old for, is refused before any decryption.
  bool fresh = false;
  for (auto& k : st.keys)
    fresh |= e.seq > k.recv_high
             || (k.recv_high - e.seq < 64 && !((k.recv_seen >> (k.recv_high - e.seq)) & 1));
  if (!fresh)
    return std::nullopt;
  for (auto k = st.keys.rbegin(); k != st.keys.rend(); ++k) {
    auto plain = protocols::aead_open(k->recv_key, e.sealed, ad);
    if (!plain)
      continue;
    // Replay: at most 64 behind the highest, and each number once.
    if (e.seq > k->recv_high) {
      auto shift = e.seq - k->recv_high;
      k->recv_seen = shift >= 64 ? 0 : k->recv_seen << shift;
      k->recv_seen |= 1;
      k->recv_high = e.seq;
    } else {
      auto back = k->recv_high - e.seq;
      if (back >= 64 || (k->recv_seen >> back) & 1)
        return std::nullopt;
      k->recv_seen |= std::uint64_t{1} << back;
    }
    k->confirmed = true;  // the peer sealed under it: it holds it
    link_body body;
    caf::binary_deserializer source{self->system(), plain->data(), plain->size()};
    if (auto err = source(body))
      return std::nullopt;
    return body;
  }
  return std::nullopt;
}

void to_peer(link_actor* self, link_body body) {
  auto& st = self->state;
  auto e = seal(self, body);
  if (!e)
    return;
  if (st.suspended) {
    if (st.held.size() < max_held) {
      st.held.push_back(std::move(*e));
    } else if (body.call != 0 && !body.reply) {
      if (auto i = st.pending.find(body.call); i != st.pending.end()) {
        i->second.deliver(caf::make_error(errc::temporarily_unavailable, "peer unreachable"));
        st.pending.erase(i);
      }
    }
    return;
  }
  // Without a sender: CAF registers the sender of a message to another node, which would make
  // this actor addressable by strangers (see gate.hpp).
  caf::anon_send(st.cfg.peer_gate, std::move(*e));
}

/// An entity request of this node for the peer's registry.
void call_peer(link_actor* self, caf::message msg, bool forwarded) {
  auto rp = self->make_response_promise();
  if (!rp.pending())
    return;
  auto& st = self->state;
  auto id = ++st.next_call;
  st.pending.emplace(id, std::move(rp));
  to_peer(self, link_body{id, false, forwarded, std::move(msg)});
  self->delayed_send(self, call_lifetime, link_expire{id});
}

void answer(link_actor* self, std::uint64_t call, caf::message payload) {
  to_peer(self, link_body{call, true, false, std::move(payload)});
}

/// The peer's entity request `T` for this node's registry of its kind.
template <class T>
bool serve(link_actor* self, link_body& b) {
  if (!b.payload.match_elements<T>())
    return false;
  auto& cfg = self->state.cfg;
  auto call = b.call;
  if constexpr (protocols::is_crash_message<T>) {
    if (!cfg.accept_crash) {
      answer(self, call, caf::make_message(caf::make_error(
                           errc::invalid_request, "fault injection is off on this node")));
      return true;
    }
  }
  auto& registry = cfg.registries[static_cast<std::size_t>(protocols::route_of<T>::kind)];
  auto msg = b.payload.get_as<T>(0);
  auto on_reply = [self, call](typename protocols::route_of<T>::reply& r) {
    answer(self, call, caf::make_message(std::move(r)));
  };
  auto on_error = [self, call](caf::error& err) {
    answer(self, call, caf::make_message(std::move(err)));
  };
  if (b.forwarded)
    self->request(registry, cfg.deadline, protocols::forwarded_atom::value, std::move(msg))
      .then(on_reply, on_error);
  else
    self->request(registry, cfg.deadline, std::move(msg)).then(on_reply, on_error);
  return true;
}

template <class... Ts>
void serve_any(link_actor* self, link_body& b, protocols::type_list<Ts...>) {
  if (!(serve<Ts>(self, b) || ...))
    answer(self, b.call, caf::make_message(caf::make_error(errc::invalid_request,
                                                           "not an entity request")));
}

void on_envelope(link_actor* self, const cluster_envelope& e) {
  auto& st = self->state;
  auto body = open(self, e);
  if (!body) {
    if (st.cfg.dropped)
      ++*st.cfg.dropped;
    return;
  }
  if (body->reply) {
    auto i = st.pending.find(body->call);
    if (i == st.pending.end())
      return;
    auto rp = std::move(i->second);
    st.pending.erase(i);
    if (body->payload.match_elements<caf::error>())
      rp.deliver(body->payload.get_as<caf::error>(0));
    else
      rp.deliver(std::move(body->payload));
    return;
  }
  // A leaving peer is still served: it routes its calls to the members while it drains.
  if (body->call != 0)
    return serve_any(self, *body, protocols::routed_messages{});
  self->send(st.cfg.membership,
             peer_said{st.cfg.peer_node, st.cfg.peer_incarnation, std::move(body->payload)});
}

template <class... Ts>
caf::behavior link_behavior(link_actor* self, link_config cfg, protocols::type_list<Ts...>) {
  auto key = cfg.key;
  auto confirmed = cfg.key_confirmed;
  self->state.cfg = std::move(cfg);
  add_key(self->state, key, confirmed);
  return {
    [self](Ts& m) { call_peer(self, caf::make_message(std::move(m)), false); }...,
    [self](protocols::forwarded_atom, Ts& m) {
      call_peer(self, caf::make_message(std::move(m)), true);
    }...,
    [self](const cluster_envelope& e) { on_envelope(self, e); },
    [self](link_send& m) { to_peer(self, link_body{0, false, false, std::move(m.payload)}); },
    [self](link_add_key& k) { add_key(self->state, k.key, k.confirmed); },
    [self](link_suspend) { self->state.suspended = true; },
    [self](link_resume& r) {
      auto& st = self->state;
      st.cfg.peer_gate = std::move(r.gate);
      st.suspended = false;
      for (auto& e : st.held)
        caf::anon_send(st.cfg.peer_gate, std::move(e));
      st.held.clear();
    },
    [self](link_expire x) {
      auto& pending = self->state.pending;
      if (auto i = pending.find(x.call); i != pending.end()) {
        i->second.deliver(caf::make_error(errc::temporarily_unavailable, "no answer from the peer"));
        pending.erase(i);
      }
    },
    [self](link_close) {
      for (auto& [id, rp] : self->state.pending)
        rp.deliver(caf::make_error(errc::temporarily_unavailable,
                                   "the node that owns this entity left the cluster; retry"));
      self->state.pending.clear();
      self->state.held.clear();
      self->quit();
    },
  };
}

caf::behavior peer_link(link_actor* self, link_config cfg) {
  return link_behavior(self, std::move(cfg), protocols::routed_messages{});
}

}  // namespace

std::string length_prefixed(std::initializer_list<std::string_view> fields) {
  std::string out;
  for (auto f : fields) {
    out += std::to_string(f.size());
    out += ':';
    out += f;
  }
  return out;
}

std::string direction_key(const std::string& link_key, const std::string& from_node,
                          const std::string& from_incarnation, const std::string& to_node,
                          const std::string& to_incarnation) {
  return protocols::hmac_sha256(link_key, length_prefixed({"credo-cluster-v1|direction", from_node,
                                                           from_incarnation, to_node,
                                                           to_incarnation}));
}

caf::actor spawn_peer_link(caf::event_based_actor* parent, link_config cfg) {
  return parent->spawn<caf::linked>(peer_link, std::move(cfg));
}

}  // namespace credo::cluster
