#include "cluster/remote_calls.hpp"

namespace credo::cluster {

std::uint64_t remote_calls::add(const std::string& node, std::function<void()> fail) {
  std::lock_guard guard{mtx_};
  auto id = ++next_;
  calls_[node].emplace(id, std::move(fail));
  return id;
}

void remote_calls::done(const std::string& node, std::uint64_t id) {
  std::lock_guard guard{mtx_};
  if (auto i = calls_.find(node); i != calls_.end()) {
    i->second.erase(id);
    if (i->second.empty())
      calls_.erase(i);
  }
}

void remote_calls::fail_node(const std::string& node) {
  std::unordered_map<std::uint64_t, std::function<void()>> failed;
  {
    std::lock_guard guard{mtx_};
    if (auto i = calls_.find(node); i != calls_.end()) {
      failed = std::move(i->second);
      calls_.erase(i);
    }
  }
  for (auto& [id, fail] : failed)
    fail();
}

void remote_calls::fail(const std::string& node, std::uint64_t id) {
  std::function<void()> f;
  {
    std::lock_guard guard{mtx_};
    auto i = calls_.find(node);
    if (i == calls_.end())
      return;
    auto c = i->second.find(id);
    if (c == i->second.end())
      return;
    f = std::move(c->second);
    i->second.erase(c);
    if (i->second.empty())
      calls_.erase(i);
  }
  f();
}

std::size_t remote_calls::size() const {
  std::lock_guard guard{mtx_};
  std::size_t n = 0;
  for (auto& [node, calls] : calls_)
    n += calls.size();
  return n;
}

}  // namespace credo::cluster
