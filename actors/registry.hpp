#pragma once
// The per-node entity registry and supervisor of one entity kind. It activates an entity actor
// on the first message for its key (the actor loads its state from the store), forwards every
// message to it with delegate() so the entity answers the original requester, and watches it:
// - an entity that fails is dropped and re-activated (restarted) from the store on the next
//   message; the requests queued in its mailbox get an error reply (503 at the front);
// - more than `max_restarts` failures of one key within `restart_window` quarantine the key
//   for `quarantine` (answers errc::temporarily_unavailable);
// - an idle entity asks to passivate; the registry stops routing to it first and holds new
//   messages for the key until the old entity is gone, so no message is lost and two copies of
//   one entity never run at once (the new copy loads what the old one wrote).
// In a cluster (an ownership is given) the registry serves only the keys this node owns:
// - a message for a key another node owns is passed to that node's registry, marked
//   forwarded; a forwarded message for a key this node does not own either is refused
//   (errc::temporarily_unavailable) rather than passed on, so two rings that disagree for a
//   moment cannot bounce a request between them;
// - when the ring changes, entities of keys that moved are handed off: told to stop after the
//   messages already queued, their new messages held and then routed to the new owner;
// - when members left, every entity is handed off (and reloaded on its next message): while
//   this node was cut off, others may have owned and changed its keys, so what it holds in
//   memory may be stale. The stores' revision check refuses any write based on such state.
#include <atomic>
#include <chrono>
#include <deque>
#include <vector>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>

#include <caf/all.hpp>

#include "actors/supervisor_stats.hpp"
#include "cluster/ownership.hpp"
#include "cluster/remote_calls.hpp"
#include "protocols/messages.hpp"

namespace credo::actors {

/// Where a registry sits in the cluster; `own` null: single node, every key is local.
struct registry_placement {
  std::shared_ptr<const cluster::ownership> own;
  protocols::entity_kind kind = protocols::entity_kind::session;
  /// Requests passed to another node, failed at once if it dies (null: not tracked).
  std::shared_ptr<cluster::remote_calls> in_flight;
};

struct registry_options {
  std::chrono::milliseconds idle_timeout{std::chrono::minutes{5}};
  int max_restarts = 5;
  std::chrono::milliseconds restart_window{std::chrono::seconds{10}};
  std::chrono::milliseconds quarantine{std::chrono::seconds{30}};
};

/// Spawns (monitored) the entity for `key`. Receives the registry so the entity can ask to
/// passivate.
using entity_factory = std::function<caf::actor(caf::event_based_actor* registry,
                                                const std::string& key)>;

struct registry_state {
  std::unordered_map<std::string, caf::actor> children;
  std::map<caf::actor_addr, std::string> keys;
  std::unordered_map<std::string, std::deque<caf::actor_clock::time_point>> failures;
  std::unordered_map<std::string, caf::actor_clock::time_point> quarantined_until;
  std::unordered_map<std::string, bool> restarting;  // failed; next activation is a restart
  // Passivating entities and the messages that arrived for their keys meanwhile.
  // Released by re-sending them to the registry itself (`me`) once the old entity is gone.
  std::unordered_map<std::string, caf::actor_addr> stopping;
  std::unordered_map<std::string, std::vector<std::function<void(const caf::actor& me)>>> held;
  static inline const char* name = "entity_registry";
};

using registry_actor = caf::stateful_actor<registry_state>;

/// Work for a registry from another thread (a failed forward, from the membership actor).
struct registry_task {
  std::function<void()> run;
};

}  // namespace credo::actors

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(credo::actors::registry_task)  // local only, never crosses nodes

namespace credo::actors {
namespace detail {

caf::actor activate(registry_actor* self, const entity_factory& factory,
                    supervisor_stats& stats, const registry_options& options,
                    const std::string& key);

void on_down(registry_actor* self, supervisor_stats& stats, const registry_options& options,
             const caf::down_msg& msg);

/// Hands off the entities of keys this node no longer owns (all of them if members left).
void on_ring_changed(registry_actor* self, supervisor_stats& stats,
                     const registry_placement& where, bool members_left);

/// Bound on messages held for one passivating key.
inline constexpr std::size_t max_held = 10000;
/// Deadline of a request passed to its owner on another node (the front's is 5 s).
inline constexpr std::chrono::seconds forward_deadline{5};

/// Passes `msg` to its owner's registry on another node, tracked in `where.in_flight`: this
/// node may learn of the owner's death before the requester does, and then fails the request at
/// once instead of leaving it to its deadline (a delegated request would be lost with the node).
template <class T>
void forward_tracked(registry_actor* self, const registry_placement& where,
                     const cluster::ownership::route& owner, T msg) {
  using reply = typename protocols::route_of<T>::reply;
  auto rp = std::make_shared<caf::response_promise>(self->make_response_promise());
  auto claim = std::make_shared<std::atomic<bool>>(false);
  std::string node{owner.node};
  // Runs on the membership actor's thread: the promise is delivered on the registry's.
  auto id = where.in_flight->add(node, [rp, claim, me = caf::actor_cast<caf::actor>(self)] {
    caf::anon_send(me, registry_task{[rp, claim] {
      if (!claim->exchange(true))
        rp->deliver(caf::make_error(errc::temporarily_unavailable,
                                    "the node that owns this entity left the cluster; retry"));
    }});
  });
  if (!where.own->is_member(node, owner.registry))
    return where.in_flight->fail(node, id);
  auto calls = where.in_flight;
  self->request(owner.registry, forward_deadline, protocols::forwarded_atom::value, std::move(msg))
    .then(
      [rp, claim, calls, node, id](reply& r) {
        calls->done(node, id);
        if (!claim->exchange(true))
          rp->deliver(std::move(r));
      },
      [rp, claim, calls, node, id](caf::error& e) {
        calls->done(node, id);
        if (!claim->exchange(true))
          rp->deliver(std::move(e));
      });
}

template <class T>
void forward(registry_actor* self, const entity_factory& factory, supervisor_stats& stats,
             const registry_options& options, const registry_placement& where,
             const std::string& key, T& msg, bool forwarded) {
  if (where.own) {
    auto ring = where.own->current();
    auto owner = where.own->route_of(where.kind, key, ring);
    if (!owner.local) {
      if (forwarded || !owner.registry) {
        self->make_response_promise().deliver(
          caf::make_error(errc::temporarily_unavailable, "entity is moving to another node"));
        return;
      }
      if constexpr (requires { typename protocols::route_of<T>::reply; }) {
        if (where.in_flight)
          return forward_tracked(self, where, owner, std::move(msg));
      }
      self->delegate(owner.registry, protocols::forwarded_atom::value, std::move(msg));
      return;
    }
  }
  if (self->state.stopping.count(key)) {
    auto& held = self->state.held[key];
    auto rp = self->make_response_promise();
    if (held.size() >= max_held) {
      rp.deliver(caf::make_error(errc::temporarily_unavailable, "entity is restarting"));
      return;
    }
    held.emplace_back([rp, msg, forwarded](const caf::actor& me) mutable {
      if (forwarded)
        rp.delegate(me, protocols::forwarded_atom::value, std::move(msg));
      else
        rp.delegate(me, std::move(msg));
    });
    return;
  }
  auto child = activate(self, factory, stats, options, key);
  if (!child) {
    self->make_response_promise().deliver(
      caf::make_error(errc::temporarily_unavailable, "entity quarantined after repeated failures"));
    return;
  }
  self->delegate(child, std::move(msg));
}

}  // namespace detail

/// Behaviour of a registry that routes the message types `Ts...`; `key_of(const T&)` must be
/// callable for each of them.
template <class... Ts, class KeyOf>
caf::behavior make_registry(registry_actor* self, entity_factory factory,
                            std::shared_ptr<supervisor_stats> stats, registry_options options,
                            KeyOf key_of, registry_placement where = {}) {
  self->set_down_handler(
    [=](caf::down_msg& msg) { detail::on_down(self, *stats, options, msg); });
  // Children are monitored, not linked (a child failure must not take the registry down), so
  // the registry stops them itself when it is told to exit.
  self->set_exit_handler([=](caf::exit_msg& msg) {
    for (auto& [key, child] : self->state.children)
      self->send_exit(child, msg.reason);
    self->state.children.clear();
    self->state.keys.clear();
    self->state.held.clear();
    self->quit(msg.reason);
  });
  return {
    [=](Ts& msg) {
      detail::forward(self, factory, *stats, options, where, key_of(msg), msg, false);
    }...,
    [=](protocols::forwarded_atom, Ts& msg) {
      detail::forward(self, factory, *stats, options, where, key_of(msg), msg, true);
    }...,
    [](registry_task& t) { t.run(); },
    [=](protocols::ring_changed_atom, bool members_left) {
      detail::on_ring_changed(self, *stats, where, members_left);
    },
    [=](protocols::passivate_atom, const std::string& key) {
      auto i = self->state.children.find(key);
      if (i == self->state.children.end() || i->second.address() != self->current_sender())
        return false;
      // Still in `keys`: its down message ends the stop and releases held messages.
      self->state.stopping.emplace(key, i->second.address());
      self->state.children.erase(i);
      stats->live = static_cast<std::int64_t>(self->state.children.size());
      return true;
    },
  };
}

}  // namespace credo::actors
