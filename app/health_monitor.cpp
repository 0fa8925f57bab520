#include "app/health_monitor.hpp"

#include <nlohmann/json.hpp>

#include "actors/audit_publisher.hpp"
#include "persistence/pg_client.hpp"
#include "persistence/redis_client.hpp"
#include "persistence/revocation_mirror.hpp"
#include "protocols/log.hpp"

namespace credo::app {

using actors::check_state;

health_monitor::health_monitor(const backends& b, std::shared_ptr<actors::readiness> health,
                               std::shared_ptr<const actors::publisher_stats> kafka,
                               std::function<status()> bootstrap,
                               health_monitor_options options)
  : b_(b),
    health_(std::move(health)),
    kafka_(std::move(kafka)),
    bootstrap_(std::move(bootstrap)),
    options_(options) {
  // Configured backends count as failed until a check has seen them.
  if (b_.database)
    health_->database = check_state::failed;
  if (b_.redis)
    health_->redis = check_state::failed;
  if (b_.kafka)
    health_->kafka = check_state::failed;
  check();
  thread_ = std::thread{[this] { run(); }};
}

health_monitor::~health_monitor() {
  {
    std::lock_guard guard{mtx_};
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void health_monitor::run() {
  std::unique_lock guard{mtx_};
  while (!cv_.wait_for(guard, options_.interval, [this] { return stop_; })) {
    guard.unlock();
    check();
    guard.lock();
  }
}

void health_monitor::check() {
  auto report = [](std::atomic<check_state>& state, bool up, const char* name) {
    auto next = up ? check_state::ok : check_state::failed;
    if (state.exchange(next) != next)
      up ? log::info("backend reachable", {{"backend", name}})
         : log::warn("backend unreachable; retrying", {{"backend", name}});
  };
  if (b_.database)
    report(health_->database, static_cast<bool>(b_.database->ping()), "postgres");
  if (!health_->bootstrapped.load()) {
    if (auto st = bootstrap_(); st) {
      health_->bootstrapped.store(true, std::memory_order_release);
      log::info("node bootstrapped", nlohmann::json::object());
    } else if (st.description() != last_bootstrap_error_) {
      // Once per distinct reason (a wrong key-encryption key would otherwise go unnoticed).
      last_bootstrap_error_ = st.description();
      log::warn("cannot bootstrap yet; retrying", {{"reason", last_bootstrap_error_}});
    }
  }
  if (b_.redis) {
    bool up = b_.redis->healthy();
    auto now = std::chrono::steady_clock::now();
    if (up && b_.revocations &&
        (!b_.revocations->loaded() || now - last_sync_ >= options_.revocation_sync)) {
      if (auto st = b_.revocations->sync(); st)
        last_sync_ = now;
      else
        up = false;
    }
    report(health_->redis, up, "redis");
  }
  if (b_.kafka && kafka_)
    report(health_->kafka, kafka_->kafka_ok.load(), "kafka");
}

}  // namespace credo::app
