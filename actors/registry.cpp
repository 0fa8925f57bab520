#include "actors/registry.hpp"

namespace credo::actors::detail {

caf::actor activate(registry_actor* self, const entity_factory& factory, supervisor_stats& stats,
                    const registry_options&, const std::string& key) {
  auto& st = self->state;
  if (auto i = st.children.find(key); i != st.children.end())
    return i->second;
  if (auto q = st.quarantined_until.find(key); q != st.quarantined_until.end()) {
    if (self->clock().now() < q->second)
      return {};
    st.quarantined_until.erase(q);
    stats.quarantined = static_cast<std::int64_t>(st.quarantined_until.size());
  }
  auto child = factory(self, key);
  st.children.emplace(key, child);
  st.keys.emplace(child.address(), key);
  stats.live = static_cast<std::int64_t>(st.children.size());
  if (auto r = st.restarting.find(key); r != st.restarting.end()) {
    st.restarting.erase(r);
    ++stats.restarts;
  }
  return child;
}

void on_down(registry_actor* self, supervisor_stats& stats, const registry_options& options,
             const caf::down_msg& msg) {
  auto& st = self->state;
  auto k = st.keys.find(msg.source);
  if (k == st.keys.end())
    return;
  auto key = k->second;
  st.keys.erase(k);
  if (auto s = st.stopping.find(key); s != st.stopping.end() && s->second == msg.source) {
    // A passivated or handed-off entity is gone: messages held meanwhile are routed again (to
    // a fresh activation, or to the key's new owner), in the order they arrived.
    st.stopping.erase(s);
    auto h = st.held.find(key);
    if (h != st.held.end()) {
      auto held = std::move(h->second);
      st.held.erase(h);
      auto me = caf::actor_cast<caf::actor>(self);
      for (auto& deliver : held)
        deliver(me);
    }
    return;
  }
  st.children.erase(key);
  stats.live = static_cast<std::int64_t>(st.children.size());
  if (!msg.reason || msg.reason == caf::exit_reason::normal)
    return;
  ++stats.failures;
  stats.set_last_failure(self->system().render(msg.reason));
  auto now = self->clock().now();
  auto& times = st.failures[key];
  times.push_back(now);
  while (!times.empty() && now - times.front() > options.restart_window)
    times.pop_front();
  if (static_cast<int>(times.size()) > options.max_restarts) {
    st.quarantined_until[key] = now + options.quarantine;
    stats.quarantined = static_cast<std::int64_t>(st.quarantined_until.size());
    st.failures.erase(key);
    st.restarting.erase(key);
    return;
  }
  st.restarting[key] = true;
  if (st.restarting.size() > 100000)  // bound memory under a storm of distinct failing keys
    st.restarting.clear();
}

void on_ring_changed(registry_actor* self, supervisor_stats& stats,
                     const registry_placement& where, bool members_left) {
  if (!where.own)
    return;
  auto& st = self->state;
  auto ring = where.own->current();
  for (auto i = st.children.begin(); i != st.children.end();) {
    if (!members_left && where.own->route_of(where.kind, i->first, ring).local) {
      ++i;
      continue;
    }
    // Still in `keys`: its down message ends the stop and routes what was held meanwhile.
    st.stopping.emplace(i->first, i->second.address());
    self->send(i->second, protocols::handoff_atom::value);
    i = st.children.erase(i);
  }
  stats.live = static_cast<std::int64_t>(st.children.size());
}

}  // namespace credo::actors::detail
