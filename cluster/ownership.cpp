#include "cluster/ownership.hpp"

namespace credo::cluster {
namespace {

// splitmix64's finaliser: spreads the combined hash so that every member gets a fair share.
std::uint64_t mix(std::uint64_t a, std::uint64_t b) noexcept {
  auto z = a ^ (b + 0x9e3779b97f4a7c15ULL + (a << 6) + (a >> 2));
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

}  // namespace

std::uint64_t stable_hash(std::string_view s) noexcept {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

const ring_member* owner_in(const ring& r, std::string_view key) noexcept {
  auto k = stable_hash(key);
  const ring_member* best = nullptr;
  std::uint64_t best_weight = 0;
  for (auto& m : r.members) {
    auto w = mix(m.seed, k);
    if (!best || w > best_weight || (w == best_weight && m.node < best->node)) {
      best = &m;
      best_weight = w;
    }
  }
  return best;
}

ownership::route ownership::route_of(protocols::entity_kind kind, std::string_view key,
                                     const std::shared_ptr<const ring>& r) const {
  if (!r)
    return {{}, self_, true};
  auto* m = owner_in(*r, key);
  if (!m)
    return {{}, self_, true};
  return {m->registries[static_cast<std::size_t>(kind)], m->node, m->node == self_};
}

bool ownership::owns(std::string_view key) const {
  auto r = current();
  if (!r)
    return true;
  auto* m = owner_in(*r, key);
  return !m || m->node == self_;
}

bool ownership::is_member(std::string_view node, const caf::actor& registry) const {
  auto r = current();
  if (!r)
    return false;
  for (auto& m : r->members)
    if (m.node == node)
      for (auto& reg : m.registries)
        if (reg == registry)
          return true;
  return false;
}

}  // namespace credo::cluster
