#pragma once
// Who owns an entity key. Single node today: always this node. The cluster stage replaces the
// body with rendezvous hashing over live members; callers already route through this one
// function.
#include <string>
#include <string_view>

namespace credo::cluster {

struct owner {
  std::string node_id;
  bool local = true;
};

class ownership {
 public:
  explicit ownership(std::string self_node) : self_(std::move(self_node)) {}
  owner owner_of(std::string_view /*key*/) const { return {self_, true}; }
  const std::string& self() const { return self_; }

 private:
  std::string self_;
};

}  // namespace credo::cluster
