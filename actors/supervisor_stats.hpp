#pragma once
// Counters a supervisor publishes for /admin/actors and /metrics. Written by the supervisor
// actor only, read by anyone.
#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>

namespace credo::actors {

struct supervisor_stats {
  explicit supervisor_stats(std::string k) : kind(std::move(k)) {}
  const std::string kind;
  std::atomic<std::int64_t> live{0};
  std::atomic<std::int64_t> restarts{0};
  std::atomic<std::int64_t> failures{0};
  // High-water of requests sent to this kind and not yet answered (queued in the registry's or
  // an entity's mailbox, or being handled): CAF 0.17 offers no safe way to read a mailbox's
  // length from inside the actor, so the senders count.
  std::atomic<std::int64_t> max_mailbox{0};
  std::atomic<std::int64_t> in_flight{0};
  std::atomic<std::int64_t> quarantined{0};

  void set_last_failure(std::string what) {
    std::lock_guard guard{mtx_};
    last_failure_ = std::move(what);
  }
  std::string last_failure() const {
    std::lock_guard guard{mtx_};
    return last_failure_;
  }
  void observe_mailbox(std::int64_t n) {
    auto cur = max_mailbox.load(std::memory_order_relaxed);
    while (n > cur && !max_mailbox.compare_exchange_weak(cur, n, std::memory_order_relaxed)) {
    }
  }

 private:
  mutable std::mutex mtx_;
  std::string last_failure_;
};

}  // namespace credo::actors
