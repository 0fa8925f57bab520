// Supervision by the entity registry, with a toy entity that fails on demand.
#include <caf/all.hpp>
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "actors/registry.hpp"
#include "protocols/messages.hpp"

namespace {

using namespace credo;

// A toy entity keyed like the real ones: replies with its activation count, or fails.
struct toy_get {
  std::string key;
};
struct toy_crash {
  std::string key;
};
struct toy_idle {  // makes the entity ask to passivate, as its idle timeout would
  std::string key;
};
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, toy_get& x) {
  return f(caf::meta::type_name("toy_get"), x.key);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, toy_crash& x) {
  return f(caf::meta::type_name("toy_crash"), x.key);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, toy_idle& x) {
  return f(caf::meta::type_name("toy_idle"), x.key);
}

struct key_fn {
  std::string operator()(const toy_get& m) const { return m.key; }
  std::string operator()(const toy_crash& m) const { return m.key; }
  std::string operator()(const toy_idle& m) const { return m.key; }
};

std::atomic<int> activations{0};

// Copies alive of the entity for key "p" (tracked == 1), and the most ever alive at once.
std::atomic<int> live_p{0};
std::atomic<int> max_live_p{0};

caf::behavior toy(caf::event_based_actor* self, int tracked) {
  int generation = ++activations;
  if (tracked) {
    auto now_live = ++live_p;
    for (auto m = max_live_p.load(); now_live > m && !max_live_p.compare_exchange_weak(m, now_live);) {
    }
  }
  return {
    [self, tracked](toy_idle& m) {
      auto key = m.key;
      self->request(caf::actor_cast<caf::actor>(self->current_sender()), caf::infinite,
                    protocols::passivate_atom::value, key)
        .then([self, tracked](bool granted) {
          if (!granted)
            return;
          if (tracked)
            --live_p;  // before quitting, hence before the registry's down message
          self->quit();
        });
      return 0;
    },
    [generation](toy_get&) { return generation; },
    [self](toy_crash&) -> int {
      self->quit(caf::make_error(errc::internal_error, "injected"));
      return 0;
    },
  };
}

struct registry_test : ::testing::Test {
  registry_test() : sys(cfg) {
    stats = std::make_shared<actors::supervisor_stats>("toy");
    actors::registry_options opt;
    opt.max_restarts = 2;
    opt.restart_window = std::chrono::seconds{60};
    opt.quarantine = std::chrono::seconds{60};
    actors::entity_factory factory = [](caf::event_based_actor* reg, const std::string& key) {
      return reg->spawn<caf::monitored>(toy, key == "p" ? 1 : 0);
    };
    auto s = stats;
    registry = sys.spawn(
      [](actors::registry_actor* self, actors::entity_factory f,
         std::shared_ptr<actors::supervisor_stats> st, actors::registry_options o) {
        return actors::make_registry<toy_get, toy_crash, toy_idle>(self, std::move(f),
                                                                   std::move(st), o, key_fn{});
      },
      factory, s, opt);
  }
  ~registry_test() override { caf::anon_send_exit(registry, caf::exit_reason::user_shutdown); }

  // Asks for the entity's generation; -1 on an error reply.
  int get(const std::string& key) {
    caf::scoped_actor self{sys};
    int out = -2;
    self->request(registry, std::chrono::seconds{5}, toy_get{key})
      .receive([&](int g) { out = g; }, [&](caf::error&) { out = -1; });
    return out;
  }
  // Crashes the entity and waits until the registry has processed its down message: the
  // reply to the crash and the registry's down message race, and the counter is the event.
  void crash(const std::string& key) {
    auto before = stats->failures.load();
    caf::scoped_actor self{sys};
    self->request(registry, std::chrono::seconds{5}, toy_crash{key})
      .receive([](int) {}, [](caf::error&) {});
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{5};
    while (stats->failures.load() == before && std::chrono::steady_clock::now() < deadline)
      std::this_thread::yield();
    ASSERT_GT(stats->failures.load(), before) << "registry never saw the failure";
  }

  caf::actor_system_config cfg;
  caf::actor_system sys;
  std::shared_ptr<actors::supervisor_stats> stats;
  caf::actor registry;
};

TEST_F(registry_test, activates_once_per_key) {
  auto a = get("a");
  EXPECT_EQ(get("a"), a);
  EXPECT_NE(get("b"), a);
  EXPECT_EQ(stats->live.load(), 2);
}

TEST_F(registry_test, passivation_never_runs_two_copies_and_loses_no_message) {
  caf::scoped_actor self{sys};
  for (int round = 0; round < 50; ++round) {
    // The idle request and a burst of gets race the passivation handshake.
    self->send(registry, toy_idle{"p"});
    std::vector<caf::response_handle<caf::blocking_actor, caf::message, true>> gets;
    for (int i = 0; i < 20; ++i)
      gets.push_back(self->request(registry, std::chrono::seconds{5}, toy_get{"p"}));
    for (auto& g : gets)
      g.receive([](int generation) { EXPECT_GT(generation, 0); },
                [&](caf::error& e) { ADD_FAILURE() << "lost request: " << sys.render(e); });
  }
  EXPECT_EQ(max_live_p.load(), 1) << "two copies of one entity were alive at once";
  EXPECT_EQ(stats->failures.load(), 0);
}

TEST_F(registry_test, failed_entity_is_restarted_and_counted) {
  auto first = get("k");
  crash("k");
  auto second = get("k");
  EXPECT_GT(second, first);
  EXPECT_EQ(stats->failures.load(), 1);
  EXPECT_EQ(stats->restarts.load(), 1);
  EXPECT_NE(stats->last_failure().find("injected"), std::string::npos);
}

TEST_F(registry_test, repeated_failures_quarantine_the_key) {
  for (int i = 0; i < 3; ++i) {
    ASSERT_GT(get("q"), 0);
    crash("q");
  }
  EXPECT_EQ(get("q"), -1);
  EXPECT_EQ(stats->quarantined.load(), 1);
  EXPECT_GT(get("other"), 0);  // other keys are unaffected
}

}  // namespace

