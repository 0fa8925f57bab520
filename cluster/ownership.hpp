#pragma once
// Who owns an entity key: rendezvous (highest random weight) hashing of the key over the live
// members of the ring. Every node computes the same owner from the same member list, and a
// member that leaves moves only the keys it owned. The membership actor replaces the ring on
// every change; any thread reads it (one atomic load per lookup). Without a ring (single node)
// this node owns every key.
#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <caf/actor.hpp>

#include "protocols/messages.hpp"

namespace credo::cluster {

struct ring_member {
  std::string node;
  std::uint64_t seed = 0;  // hash of the node name
  std::array<caf::actor, protocols::entity_kind_count> registries;
};

struct ring {
  std::int64_t version = 0;
  std::vector<ring_member> members;  // this node included
};

/// 64-bit FNV-1a: stable across processes and builds, unlike std::hash.
std::uint64_t stable_hash(std::string_view s) noexcept;

/// The member that owns `key` in `r`; null only for an empty ring.
const ring_member* owner_in(const ring& r, std::string_view key) noexcept;

class ownership {
 public:
  explicit ownership(std::string self_node) : self_(std::move(self_node)) {}
  const std::string& self() const { return self_; }

  std::shared_ptr<const ring> current() const { return ring_.load(std::memory_order_acquire); }
  void replace(std::shared_ptr<const ring> r) { ring_.store(std::move(r), std::memory_order_release); }

  /// The registry of `kind` that owns `key` and whether it is this node's; `node` names the
  /// owner. Single node (no ring): this node, with an empty registry handle (use the local one).
  struct route {
    caf::actor registry;
    std::string_view node;
    bool local = true;
  };
  route route_of(protocols::entity_kind kind, std::string_view key,
                 const std::shared_ptr<const ring>& r) const;

  bool owns(std::string_view key) const;

  /// True while `registry` of `node` is in the current ring: a request sent to it will be
  /// failed by remote_calls::fail_node if the node goes (the ring changes before that runs).
  bool is_member(std::string_view node, const caf::actor& registry) const;

  /// False until the node has joined the cluster (or found itself alone): before that its ring
  /// holds only itself, and serving entities from it would split the cluster's brain.
  bool serving() const { return serving_.load(std::memory_order_acquire); }
  void set_serving() { serving_.store(true, std::memory_order_release); }

 private:
  std::string self_;
  std::atomic<bool> serving_{false};
  std::atomic<std::shared_ptr<const ring>> ring_;
};

}  // namespace credo::cluster
