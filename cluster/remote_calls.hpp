#pragma once
// Entity requests in flight to other nodes. CAF 0.17 lets a request to a dead node wait out its
// whole deadline (it has no node-down event that fails them); the membership actor calls
// fail_node() when a peer goes, which fails each of them at once, so the client can retry and
// the key's new owner serves it.
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <unordered_map>

namespace credo::cluster {

class remote_calls {
 public:
  /// Registers a request to `node`; `fail` answers it if the node goes first.
  std::uint64_t add(const std::string& node, std::function<void()> fail);
  /// The request `id` was answered (or timed out).
  void done(const std::string& node, std::uint64_t id);
  /// Runs `fail` of every request still in flight to `node`.
  void fail_node(const std::string& node);
  /// Runs `fail` of the request `id` if it is still in flight.
  void fail(const std::string& node, std::uint64_t id);
  std::size_t size() const;

 private:
  mutable std::mutex mtx_;
  std::uint64_t next_ = 0;
  std::unordered_map<std::string, std::unordered_map<std::uint64_t, std::function<void()>>> calls_;
};

}  // namespace credo::cluster
