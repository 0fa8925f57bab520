#include "persistence/client_cache.hpp"

#include <mutex>
#include <shared_mutex>
#include <unordered_map>

namespace credo::persistence {
namespace {

using steady = std::chrono::steady_clock;

class cached_client_store final : public client_store {
 public:
  cached_client_store(std::shared_ptr<client_store> durable, std::chrono::seconds fresh,
                      std::chrono::seconds stale, std::size_t capacity)
    : durable_(std::move(durable)), fresh_(fresh), stale_(stale), capacity_(capacity) {}

  status create(const client_record& client, const audit_events& events) override {
    auto st = durable_->create(client, events);
    if (st)
      remember(client);
    return st;
  }

  result<std::optional<client_record>> find(const std::string& client_id) override {
    auto now = steady::now();
    std::optional<entry> cached;
    {
      std::shared_lock guard{mtx_};
      if (auto i = entries_.find(client_id); i != entries_.end())
        cached = i->second;
    }
    if (cached && now - cached->read_at < fresh_)
      return std::optional<client_record>{cached->client};
    auto found = durable_->find(client_id);
    if (!found) {
      if (cached && now - cached->read_at < stale_)
        return std::optional<client_record>{cached->client};
      return found;
    }
    if (*found)
      remember(**found);
    return found;
  }

 private:
  struct entry {
    client_record client;
    steady::time_point read_at;
  };

  void remember(const client_record& client) {
    std::unique_lock guard{mtx_};
    if (entries_.size() >= capacity_ && !entries_.count(client.client_id))
      entries_.clear();  // rare (more clients than capacity): start over rather than track age
    entries_[client.client_id] = {client, steady::now()};
  }

  std::shared_ptr<client_store> durable_;
  std::chrono::seconds fresh_;
  std::chrono::seconds stale_;
  std::size_t capacity_;
  std::shared_mutex mtx_;
  std::unordered_map<std::string, entry> entries_;
};

}  // namespace

std::shared_ptr<client_store> make_cached_client_store(std::shared_ptr<client_store> durable,
                                                       std::chrono::seconds fresh,
                                                       std::chrono::seconds stale,
                                                       std::size_t capacity) {
  return std::make_shared<cached_client_store>(std::move(durable), fresh, stale, capacity);
}

}  // namespace credo::persistence
