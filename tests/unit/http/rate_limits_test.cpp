// Rate-limit rules, client addresses behind proxies, and the lease cache (http/rate_limits.hpp).
#include <gtest/gtest.h>

#include "http/rate_limits.hpp"

namespace {

using namespace credo::http;

std::size_t rule_index(std::string_view name) {
  for (std::size_t i = 0; i < rule_count; ++i)
    if (name == rule_defs[i].name)
      return i;
  ADD_FAILURE() << "no rule " << name;
  return 0;
}

TEST(rate_limit_config, rules_are_set_switched_off_and_refused_with_a_reason) {
  rate_limit_config c;
  auto login = rule_index("login.ip");
  EXPECT_TRUE(c.rules[login].valid());
  EXPECT_FALSE(c.apply("login.ip=5/10s"));
  EXPECT_EQ(c.rules[login].capacity, 5);
  EXPECT_EQ(c.rules[login].period_ms, 10'000);
  EXPECT_FALSE(c.apply("login.ip=7/h"));
  EXPECT_EQ(c.rules[login].period_ms, 3'600'000);
  EXPECT_FALSE(c.apply("login.ip=off"));
  EXPECT_FALSE(c.rules[login].valid());
  EXPECT_FALSE(c.apply("all=9/1m"));
  for (auto& r : c.rules)
    EXPECT_EQ(r.capacity, 9);
  for (auto bad : {"login.ip", "nope=1/1m", "login.ip=0/1m", "login.ip=-1/1m", "login.ip=1/1x",
                   "login.ip=1/0m", "login.ip=1/25h", "login.ip=x/1m", "login.ip=1", "=1/1m",
                   "login.ip=1/", "login.ip=99999999999/1s"})
    EXPECT_TRUE(c.apply(bad)) << bad;
  EXPECT_NE(c.apply("nope=1/1m")->find("login.ip"), std::string::npos);  // names the rules
}

TEST(cidr, parses_ipv4_and_ipv6_networks_and_matches_addresses) {
  auto v4 = cidr::parse("10.1.0.0/16");
  ASSERT_TRUE(v4);
  EXPECT_TRUE(v4->contains(*parse_ip("10.1.200.3")));
  EXPECT_FALSE(v4->contains(*parse_ip("10.2.0.1")));
  EXPECT_FALSE(v4->contains(*parse_ip("::1")));
  auto host = cidr::parse("127.0.0.1");
  ASSERT_TRUE(host);
  EXPECT_TRUE(host->contains(*parse_ip("127.0.0.1")));
  EXPECT_FALSE(host->contains(*parse_ip("127.0.0.2")));
  auto v6 = cidr::parse("2001:db8::/32");
  ASSERT_TRUE(v6);
  EXPECT_TRUE(v6->contains(*parse_ip("2001:db8:1::5")));
  EXPECT_FALSE(v6->contains(*parse_ip("2001:db9::5")));
  auto all = cidr::parse("0.0.0.0/0");
  ASSERT_TRUE(all);
  EXPECT_TRUE(all->contains(*parse_ip("8.8.8.8")));
  for (auto bad : {"", "10.0.0.0/33", "10.0.0.0/", "10.0.0/8", "::/129", "x", "10.0.0.0/8/8",
                   "10.0.0.0/-1"})
    EXPECT_FALSE(cidr::parse(bad)) << bad;
}

request from(std::string peer, std::vector<std::string> xff) {
  request r;
  r.remote_ip = std::move(peer);
  for (auto& v : xff)
    r.headers.emplace_back("x-forwarded-for", v);
  return r;
}

TEST(client_address, x_forwarded_for_counts_only_from_a_trusted_proxy) {
  std::vector<cidr> trusted{*cidr::parse("10.0.0.0/8")};
  EXPECT_EQ(client_address(from("198.51.100.1", {"203.0.113.7"}), trusted), "198.51.100.1");
  EXPECT_EQ(client_address(from("10.0.0.5", {"203.0.113.7"}), {}), "10.0.0.5");
  EXPECT_EQ(client_address(from("10.0.0.5", {"203.0.113.7"}), trusted), "203.0.113.7");
  // The right-most untrusted entry: what a client puts on the left is not believed.
  EXPECT_EQ(client_address(from("10.0.0.5", {"1.2.3.4, 203.0.113.7, 10.0.0.9"}), trusted),
            "203.0.113.7");
  // Several headers are one list, in order.
  EXPECT_EQ(client_address(from("10.0.0.5", {"1.2.3.4", "203.0.113.9"}), trusted),
            "203.0.113.9");
  // Only proxies: the left-most.
  EXPECT_EQ(client_address(from("10.0.0.5", {"10.0.0.7, 10.0.0.8"}), trusted), "10.0.0.7");
  // An entry that is not an address ends the walk at the last hop that vouched for it.
  EXPECT_EQ(client_address(from("10.0.0.5", {"203.0.113.7, garbage"}), trusted), "10.0.0.5");
  EXPECT_EQ(client_address(from("10.0.0.5", {"203.0.113.7, 10.0.0.8, "}), trusted), "10.0.0.5");
  EXPECT_EQ(client_address(from("10.0.0.5", {}), trusted), "10.0.0.5");
  EXPECT_EQ(client_address(from("10.0.0.5", {" [2001:db8::1] "}), trusted), "[2001:db8::1]");
}

TEST(route_checks, address_rules_key_ipv6_clients_by_their_64_and_skip_rules_that_are_off) {
  rate_limit_config c;
  auto checks = route_checks(c, limited_route::login, "2001:db8:1:2:3:4:5:6");
  ASSERT_EQ(checks.size(), 2u);
  EXPECT_EQ(checks[0].key, "login.ip@60/60000:2001:db8:1:2::/64");
  EXPECT_EQ(checks[1].key, "login.global@30000/60000");
  EXPECT_EQ(route_checks(c, limited_route::login, "2001:db8:1:2:ffff::1")[0].key,
            checks[0].key);
  EXPECT_EQ(route_checks(c, limited_route::users, "192.0.2.1")[0].key,
            "users.ip@100/600000:192.0.2.1");
  c.apply("users.ip=5/1m");  // another rule, another bucket
  EXPECT_EQ(route_checks(c, limited_route::users, "192.0.2.1")[0].key,
            "users.ip@5/60000:192.0.2.1");
  c.apply("login.ip=off");
  EXPECT_EQ(route_checks(c, limited_route::login, "192.0.2.1").size(), 1u);
  EXPECT_TRUE(route_checks(c, limited_route::introspect, "192.0.2.1").size() == 1);
  ASSERT_TRUE(client_check(c, limited_route::token, "app"));
  EXPECT_EQ(client_check(c, limited_route::token, "app")->key, "token.client@6000/60000:app");
  EXPECT_FALSE(client_check(c, limited_route::login, "app"));
}

TEST(limiter, small_buckets_ask_their_owner_for_every_request) {
  rate_limit_config c;
  c.apply("login.ip=60/1m");
  limiter l{c};
  limit_check chk{rule_index("login.ip"), "login.ip:192.0.2.1"};
  EXPECT_EQ(l.lease_size(chk), 1);
  EXPECT_FALSE(l.try_local(chk, 1000));
  auto v = l.on_grant(chk, 1, 59, 1000, 0, 1000);
  EXPECT_TRUE(v.allowed);
  EXPECT_EQ(v.limit, 60);
  EXPECT_EQ(v.remaining, 59);
  EXPECT_EQ(v.reset_s, 1);
  EXPECT_FALSE(l.try_local(chk, 1001));  // no lease kept
}

TEST(limiter, a_lease_is_spent_locally_and_expires) {
  rate_limit_config c;
  c.apply("introspect.client=60000/1m");
  limiter l{c};
  limit_check chk{rule_index("introspect.client"), "introspect.client:app"};
  EXPECT_EQ(l.lease_size(chk), 1);  // nothing known of the key yet
  auto v = l.on_grant(chk, 64, 1000, 5000, 0, 1000);
  EXPECT_EQ(v.remaining, 1063);
  for (int i = 0; i < 63; ++i) {
    auto local = l.try_local(chk, 1000);
    ASSERT_TRUE(local) << i;
    EXPECT_TRUE(local->allowed);
    EXPECT_EQ(local->remaining, 1000 + 62 - i);
  }
  EXPECT_FALSE(l.try_local(chk, 1000));  // spent
  l.on_grant(chk, 10, 0, 5000, 0, 2000);
  EXPECT_FALSE(l.try_local(chk, 3001));  // expired, unspent tokens dropped
}

TEST(limiter, leases_grow_while_they_run_out_and_shrink_when_they_expire_unspent) {
  rate_limit_config c;
  c.apply("introspect.client=60000/1m");  // at most 600 per lease
  limiter l{c};
  limit_check chk{rule_index("introspect.client"), "introspect.client:app"};
  std::int64_t now = 1000;
  std::vector<std::int64_t> sizes;
  for (int round = 0; round < 12; ++round) {
    auto want = l.lease_size(chk);
    sizes.push_back(want);
    l.on_grant(chk, want, 50000, 1000, 0, now);
    while (l.try_local(chk, now))
      ;  // a busy key spends the lease well within its second
  }
  EXPECT_EQ(sizes.front(), 1);
  EXPECT_EQ(sizes.back(), 600);
  for (std::size_t i = 1; i < sizes.size(); ++i)
    EXPECT_GE(sizes[i], sizes[i - 1]);
  // Traffic falls to 3 requests per lease life: the next lease asks for about that.
  l.on_grant(chk, 600, 50000, 1000, 0, now);
  for (int i = 0; i < 3; ++i)
    ASSERT_TRUE(l.try_local(chk, now + 10));
  EXPECT_FALSE(l.try_local(chk, now + 1001));
  EXPECT_EQ(l.lease_size(chk), 4);
}

TEST(limiter, small_buckets_never_lease) {
  rate_limit_config c;
  c.apply("token.ip=150/1m");
  limiter l{c};
  limit_check chk{rule_index("token.ip"), "token.ip:192.0.2.1"};
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(l.lease_size(chk), 1);
    l.on_grant(chk, 1, 100, 1000, 0, 1000);
    EXPECT_FALSE(l.try_local(chk, 1000));
  }
}

TEST(limiter, a_denial_is_cached_until_the_owner_has_a_token_again) {
  rate_limit_config c;
  c.apply("users.ip=5/1m");
  limiter l{c};
  limit_check chk{rule_index("users.ip"), "users.ip:192.0.2.1"};
  auto v = l.on_grant(chk, 0, 0, 60'000, 12'000, 1000);
  EXPECT_FALSE(v.allowed);
  EXPECT_EQ(v.retry_after_s, 12);
  auto local = l.try_local(chk, 7000);
  ASSERT_TRUE(local);
  EXPECT_FALSE(local->allowed);
  EXPECT_EQ(local->retry_after_s, 6);
  EXPECT_FALSE(l.try_local(chk, 13'000));  // ask the owner again
  auto h = limit_headers(*local);
  ASSERT_EQ(h.size(), 4u);
  EXPECT_EQ(h[3].first, "Retry-After");
  EXPECT_EQ(h[3].second, "6");
  auto r = limited_response(*local, "slow down");
  EXPECT_EQ(r.status, 429);
  EXPECT_NE(r.body.find("rate_limited"), std::string::npos);
}

TEST(limiter, the_tighter_verdict_is_reported) {
  limit_verdict a{true, 0, 10, 5, 3, 0}, b{true, 1, 100, 2, 9, 0}, d{false, 2, 10, 0, 4, 4};
  EXPECT_EQ(tighter(a, b).remaining, 2);
  EXPECT_FALSE(tighter(a, d).allowed);
  EXPECT_FALSE(tighter(d, b).allowed);
}

}  // namespace
