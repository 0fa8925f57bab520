// Rendezvous hashing: every node computes the same owner, keys spread evenly, and a member that
// leaves moves only its own keys. Requests in flight to a node fail when it goes.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/send.hpp>

#include "cluster/ownership.hpp"
#include "cluster/remote_calls.hpp"

namespace {

using namespace credo::cluster;

ring make_ring(std::vector<std::string> names) {
  ring r;
  r.version = 1;
  for (auto& n : names) {
    ring_member m;
    m.node = n;
    m.seed = stable_hash(n);
    r.members.push_back(std::move(m));
  }
  return r;
}

std::vector<std::string> keys(int n) {
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i)
    out.push_back("session-" + std::to_string(i * 7919));
  return out;
}

TEST(ownership, the_owner_does_not_depend_on_the_order_of_members) {
  auto a = make_ring({"n1", "n2", "n3"});
  auto b = make_ring({"n3", "n1", "n2"});
  for (auto& k : keys(2000))
    EXPECT_EQ(owner_in(a, k)->node, owner_in(b, k)->node) << k;
}

TEST(ownership, keys_spread_evenly_over_members) {
  auto r = make_ring({"node-a", "node-b", "node-c"});
  std::map<std::string, int> count;
  const int n = 30000;
  for (auto& k : keys(n))
    ++count[owner_in(r, k)->node];
  ASSERT_EQ(count.size(), 3u);
  for (auto& [node, c] : count) {
    EXPECT_GT(c, n / 3 * 9 / 10) << node;
    EXPECT_LT(c, n / 3 * 11 / 10) << node;
  }
}

TEST(ownership, a_member_that_leaves_moves_only_its_keys_and_they_spread) {
  auto before = make_ring({"n1", "n2", "n3"});
  auto after = make_ring({"n1", "n3"});
  std::map<std::string, int> moved_to;
  for (auto& k : keys(20000)) {
    auto was = owner_in(before, k)->node;
    auto now = owner_in(after, k)->node;
    if (was != "n2")
      EXPECT_EQ(was, now) << k;
    else
      ++moved_to[now];
  }
  ASSERT_EQ(moved_to.size(), 2u);  // n2's keys went to both survivors
  EXPECT_GT(moved_to["n1"], 2000);
  EXPECT_GT(moved_to["n3"], 2000);
}

TEST(ownership, without_a_ring_this_node_owns_everything) {
  ownership own{"solo"};
  EXPECT_TRUE(own.owns("anything"));
  auto route = own.route_of(credo::protocols::entity_kind::session, "k", own.current());
  EXPECT_TRUE(route.local);
  own.replace(std::make_shared<ring>(make_ring({"solo", "other"})));
  int local = 0;
  for (auto& k : keys(1000))
    local += own.owns(k) ? 1 : 0;
  EXPECT_GT(local, 300);
  EXPECT_LT(local, 700);
}

TEST(remote_calls, a_node_going_fails_only_its_calls_and_only_once) {
  remote_calls calls;
  int failed_a = 0, failed_b = 0;
  auto a1 = calls.add("a", [&] { ++failed_a; });
  calls.add("a", [&] { ++failed_a; });
  calls.add("b", [&] { ++failed_b; });
  calls.done("a", a1);
  EXPECT_EQ(calls.size(), 2u);
  calls.fail_node("a");
  calls.fail_node("a");
  EXPECT_EQ(failed_a, 1);  // a1 was answered before
  EXPECT_EQ(failed_b, 0);
  EXPECT_EQ(calls.size(), 1u);
}

TEST(remote_calls, a_call_can_be_failed_alone_once) {
  remote_calls calls;
  int failed = 0;
  auto a1 = calls.add("a", [&] { ++failed; });
  calls.add("a", [&] { failed += 10; });
  calls.fail("a", a1);
  calls.fail("a", a1);
  calls.fail("b", a1);
  EXPECT_EQ(failed, 1);
  EXPECT_EQ(calls.size(), 1u);
}

caf::behavior idle(caf::event_based_actor*, int) {
  return {[](int) {}};
}

// front.hpp's call() sends to a registry only while its node is in the ring; once the
// membership actor published a ring without it (or with a new incarnation of it), the call
// fails at once instead of waiting for a node that is gone.
TEST(ownership, a_registry_is_a_member_only_while_its_incarnation_is_in_the_ring) {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  auto old_reg = sys.spawn(idle, 0);
  auto new_reg = sys.spawn(idle, 0);
  ownership own{"a"};
  EXPECT_FALSE(own.is_member("b", old_reg));
  auto r = make_ring({"a", "b"});
  r.members[1].registries[0] = old_reg;
  own.replace(std::make_shared<ring>(r));
  EXPECT_TRUE(own.is_member("b", old_reg));
  EXPECT_FALSE(own.is_member("a", old_reg));
  EXPECT_FALSE(own.is_member("b", new_reg));
  r.members[1].registries[0] = new_reg;  // "b" restarted
  own.replace(std::make_shared<ring>(r));
  EXPECT_FALSE(own.is_member("b", old_reg));
  own.replace(std::make_shared<ring>(make_ring({"a"})));  // "b" left
  EXPECT_FALSE(own.is_member("b", new_reg));
  caf::anon_send_exit(old_reg, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(new_reg, caf::exit_reason::user_shutdown);
}

}  // namespace
