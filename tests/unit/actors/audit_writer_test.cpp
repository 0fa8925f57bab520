// The audit writer answers every append with the outcome of the group commit it went into.
#include <gtest/gtest.h>

#include <atomic>
#include <mutex>

#include <caf/all.hpp>

#include "actors/audit_writer.hpp"
#include "protocols/messages.hpp"
#include "test_system.hpp"

namespace {

using namespace credo;
using namespace credo::persistence;

/// Counts store calls; can be switched to fail. A stand-in store for this unit only.
class counting_audit_store final : public audit_store {
 public:
  status append(const audit_events& events) override {
    std::lock_guard guard{mtx};
    ++calls;
    if (down)
      return {errc::temporarily_unavailable, "down"};
    stored.insert(stored.end(), events.begin(), events.end());
    return ok();
  }
  result<std::vector<audit_event>> query(const std::string&, std::size_t) override {
    return std::vector<audit_event>{};
  }
  status scrub_subject(const std::string&) override { return ok(); }
  result<bool> contains(const std::string&) override { return false; }

  std::mutex mtx;
  int calls = 0;
  std::atomic<bool> down{false};
  audit_events stored;
};

using test_system::config;

protocols::audit_append append_of(int i) {
  audit_event e;
  e.event_id = "e" + std::to_string(i);
  e.type = "token.refreshed";
  return {{e}};
}

/// Sends n appends at once and collects the answers: (successes, failures).
std::pair<int, int> send_all(caf::actor_system& sys, caf::actor writer, int n) {
  caf::scoped_actor self{sys};
  for (int i = 0; i < n; ++i)
    self->send(writer, append_of(i));
  int ok = 0, failed = 0;
  for (int i = 0; i < n; ++i)
    self->receive([&](bool) { ++ok; }, [&](caf::error&) { ++failed; },
                  caf::after(std::chrono::seconds{10}) >> [&] { ADD_FAILURE() << "no answer"; });
  return {ok, failed};
}

TEST(audit_writer, concurrent_appends_share_transactions_and_all_succeed) {
  caf::actor_system sys{config()};
  auto store = std::make_shared<counting_audit_store>();
  auto writer = actors::spawn_audit_writer(sys, store);
  auto [ok, failed] = send_all(sys, writer, 200);
  EXPECT_EQ(ok, 200);
  EXPECT_EQ(failed, 0);
  EXPECT_EQ(store->stored.size(), 200u);
  EXPECT_LT(store->calls, 200) << "appends that wait together are written together";
  caf::anon_send_exit(writer, caf::exit_reason::user_shutdown);
}

TEST(audit_writer, a_failed_commit_fails_every_append_in_it) {
  caf::actor_system sys{config()};
  auto store = std::make_shared<counting_audit_store>();
  store->down = true;
  auto writer = actors::spawn_audit_writer(sys, store);
  auto [ok, failed] = send_all(sys, writer, 20);
  EXPECT_EQ(ok, 0);
  EXPECT_EQ(failed, 20);
  store->down = false;
  auto [ok2, failed2] = send_all(sys, writer, 5);
  EXPECT_EQ(ok2, 5) << "the writer recovers with its store";
  EXPECT_EQ(failed2, 0);
  caf::anon_send_exit(writer, caf::exit_reason::user_shutdown);
}

}  // namespace
