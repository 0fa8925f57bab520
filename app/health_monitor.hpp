#pragma once
// Keeps the node's readiness current: every interval it pings each configured backend, retries
// the start-up work that needs the database (migrations, signing keys) until it succeeded, and
// loads the local revocation set from Redis (at once when Redis comes back, then periodically).
// One thread; /health/ready reads the result without waiting on any backend.
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "actors/context.hpp"
#include "app/backends.hpp"

namespace credo::actors {
struct publisher_stats;
}

namespace credo::app {

struct health_monitor_options {
  std::chrono::milliseconds interval{500};
  std::chrono::seconds revocation_sync{30};
};

class health_monitor {
 public:
  /// `bootstrap` runs until it succeeds; readiness stays not-ready until then.
  health_monitor(const backends& b, std::shared_ptr<actors::readiness> health,
                 std::shared_ptr<const actors::publisher_stats> kafka,
                 std::function<status()> bootstrap, health_monitor_options options = {});
  ~health_monitor();
  health_monitor(const health_monitor&) = delete;
  health_monitor& operator=(const health_monitor&) = delete;

  /// One round of checks (also run by the thread).
  void check();

 private:
  void run();

  const backends& b_;
  std::shared_ptr<actors::readiness> health_;
  std::shared_ptr<const actors::publisher_stats> kafka_;
  std::function<status()> bootstrap_;
  health_monitor_options options_;
  std::chrono::steady_clock::time_point last_sync_{};
  std::string last_bootstrap_error_;
  std::mutex mtx_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace credo::app
