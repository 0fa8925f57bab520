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
#include "protocols/messages.hpp"

namespace credo::actors {

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
  std::unordered_map<std::string, caf::actor_addr> stopping;
  std::unordered_map<std::string, std::vector<std::function<void(const caf::actor&)>>> held;
  static inline const char* name = "entity_registry";
};

using registry_actor = caf::stateful_actor<registry_state>;

namespace detail {

caf::actor activate(registry_actor* self, const entity_factory& factory,
                    supervisor_stats& stats, const registry_options& options,
                    const std::string& key);

void on_down(registry_actor* self, const entity_factory& factory, supervisor_stats& stats,
             const registry_options& options, const caf::down_msg& msg);

/// Bound on messages held for one passivating key.
inline constexpr std::size_t max_held = 10000;

template <class T>
void forward(registry_actor* self, const entity_factory& factory, supervisor_stats& stats,
             const registry_options& options, const std::string& key, T& msg) {
  if (self->state.stopping.count(key)) {
    auto& held = self->state.held[key];
    auto rp = self->make_response_promise();
    if (held.size() >= max_held) {
      rp.deliver(caf::make_error(errc::temporarily_unavailable, "entity is restarting"));
      return;
    }
    held.emplace_back([rp, msg](const caf::actor& child) mutable {
      if (child)
        rp.delegate(child, std::move(msg));
      else
        rp.deliver(caf::make_error(errc::temporarily_unavailable, "entity quarantined"));
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
                            KeyOf key_of) {
  self->set_down_handler(
    [=](caf::down_msg& msg) { detail::on_down(self, factory, *stats, options, msg); });
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
    [=](Ts& msg) { detail::forward(self, factory, *stats, options, key_of(msg), msg); }...,
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
