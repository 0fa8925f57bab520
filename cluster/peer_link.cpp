#include "cluster/peer_link.hpp"

#include <unordered_map>

#include <caf/all.hpp>

namespace credo::cluster {
namespace {

using protocols::cluster_envelope;

/// A call to the peer waits at most this long for its reply (the requester's own deadline is
/// shorter; this only frees the entry).
constexpr std::chrono::seconds call_lifetime{10};

struct link_expire {
  std::uint64_t call;
};

struct link_state {
  link_config cfg;
  std::uint64_t next_call = 0;
  std::unordered_map<std::uint64_t, caf::response_promise> pending;
  static inline const char* name = "cluster_link";
};

using link_actor = caf::stateful_actor<link_state>;

}  // namespace
}  // namespace credo::cluster

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(credo::cluster::link_expire)

namespace credo::cluster {
namespace {

void to_peer(link_actor* self, std::uint64_t call, bool reply, bool forwarded,
             caf::message payload) {
  auto& cfg = self->state.cfg;
  // Without a sender: CAF registers the sender of a message to another node, which would make
  // this actor addressable by strangers (see gate.hpp).
  caf::anon_send(cfg.peer_gate, cluster_envelope{cfg.self_node, cfg.key, call, reply, forwarded,
                                                 std::move(payload)});
}

/// An entity request of this node for the peer's registry.
void call_peer(link_actor* self, caf::message msg, bool forwarded) {
  auto rp = self->make_response_promise();
  if (!rp.pending())
    return;
  auto& st = self->state;
  auto id = ++st.next_call;
  st.pending.emplace(id, std::move(rp));
  to_peer(self, id, false, forwarded, std::move(msg));
  self->delayed_send(self, call_lifetime, link_expire{id});
}

void answer(link_actor* self, std::uint64_t call, caf::message payload) {
  to_peer(self, call, true, false, std::move(payload));
}

/// The peer's entity request `T` for this node's registry of its kind.
template <class T>
bool serve(link_actor* self, cluster_envelope& e) {
  if (!e.payload.match_elements<T>())
    return false;
  auto& cfg = self->state.cfg;
  auto call = e.call;
  if constexpr (protocols::is_crash_message<T>) {
    if (!cfg.accept_crash) {
      answer(self, call, caf::make_message(caf::make_error(
                           errc::invalid_request, "fault injection is off on this node")));
      return true;
    }
  }
  auto& registry = cfg.registries[static_cast<std::size_t>(protocols::route_of<T>::kind)];
  auto msg = e.payload.get_as<T>(0);
  auto on_reply = [self, call](typename protocols::route_of<T>::reply& r) {
    answer(self, call, caf::make_message(std::move(r)));
  };
  auto on_error = [self, call](caf::error& err) {
    answer(self, call, caf::make_message(std::move(err)));
  };
  if (e.forwarded)
    self->request(registry, cfg.deadline, protocols::forwarded_atom::value, std::move(msg))
      .then(on_reply, on_error);
  else
    self->request(registry, cfg.deadline, std::move(msg)).then(on_reply, on_error);
  return true;
}

template <class... Ts>
void serve_any(link_actor* self, cluster_envelope& e, protocols::type_list<Ts...>) {
  if (!(serve<Ts>(self, e) || ...))
    answer(self, e.call, caf::make_message(caf::make_error(errc::invalid_request,
                                                           "not an entity request")));
}

void on_envelope(link_actor* self, cluster_envelope& e) {
  auto& st = self->state;
  if (e.from != st.cfg.peer_node)  // the gate checked it; a second look costs nothing
    return;
  if (e.reply) {
    auto i = st.pending.find(e.call);
    if (i == st.pending.end())
      return;
    auto rp = std::move(i->second);
    st.pending.erase(i);
    if (e.payload.match_elements<caf::error>())
      rp.deliver(e.payload.get_as<caf::error>(0));
    else
      rp.deliver(std::move(e.payload));
    return;
  }
  // A leaving peer is still served: it routes its calls to the members while it drains.
  if (e.call != 0)
    return serve_any(self, e, protocols::routed_messages{});
  self->send(st.cfg.membership, peer_said{st.cfg.peer_node, std::move(e.payload)});
}

template <class... Ts>
caf::behavior link_behavior(link_actor* self, link_config cfg, protocols::type_list<Ts...>) {
  self->state.cfg = std::move(cfg);
  return {
    [self](Ts& m) { call_peer(self, caf::make_message(std::move(m)), false); }...,
    [self](protocols::forwarded_atom, Ts& m) {
      call_peer(self, caf::make_message(std::move(m)), true);
    }...,
    [self](cluster_envelope& e) { on_envelope(self, e); },
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
      self->quit();
    },
  };
}

caf::behavior peer_link(link_actor* self, link_config cfg) {
  return link_behavior(self, std::move(cfg), protocols::routed_messages{});
}

}  // namespace

caf::actor spawn_peer_link(caf::event_based_actor* parent, link_config cfg) {
  return parent->spawn<caf::linked>(peer_link, std::move(cfg));
}

}  // namespace credo::cluster
