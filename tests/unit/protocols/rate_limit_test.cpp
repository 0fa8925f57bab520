// Token bucket arithmetic and the failed-login lockout (protocols/rate_limit.hpp).
#include <gtest/gtest.h>

#include <string>

#include "protocols/rate_limit.hpp"

namespace {

using namespace credo::protocols;

constexpr std::int64_t t0 = 1'700'000'000'000;

TEST(token_bucket, a_fresh_bucket_is_full_and_gives_its_burst_then_nothing) {
  bucket_rule r{10, 60'000};
  token_bucket b;
  EXPECT_TRUE(bucket_full(b, r, t0));
  EXPECT_EQ(bucket_tokens(b, r, t0), 10);
  EXPECT_EQ(take_tokens(b, r, t0, 4), 4);
  EXPECT_EQ(take_tokens(b, r, t0, 100), 6);  // only what is left
  EXPECT_EQ(take_tokens(b, r, t0, 1), 0);
  EXPECT_EQ(bucket_tokens(b, r, t0), 0);
  EXPECT_FALSE(bucket_full(b, r, t0));
}

TEST(token_bucket, refills_one_token_per_period_over_capacity_without_fractions) {
  bucket_rule r{10, 60'000};  // one token every 6 s
  token_bucket b;
  EXPECT_EQ(take_tokens(b, r, t0, 10), 10);
  EXPECT_EQ(bucket_wait_ms(b, r, t0, 1), 6'000);
  EXPECT_EQ(take_tokens(b, r, t0 + 5'999, 1), 0);  // 0.99 of a token is not a token
  EXPECT_EQ(take_tokens(b, r, t0 + 6'000, 1), 1);
  // The failed take at 5.999 s did not lose the partial refill.
  EXPECT_EQ(bucket_wait_ms(b, r, t0 + 6'000, 1), 6'000);
  EXPECT_EQ(bucket_tokens(b, r, t0 + 6'000 + 30'000), 5);
  EXPECT_TRUE(bucket_full(b, r, t0 + 6'000 + 60'000));
  EXPECT_EQ(bucket_tokens(b, r, t0 + 10 * 60'000), 10);  // never above capacity
}

TEST(token_bucket, wait_for_a_full_bucket_and_for_more_than_capacity) {
  bucket_rule r{100, 600'000};  // 6 s per token
  token_bucket b;
  take_tokens(b, r, t0, 3);
  EXPECT_EQ(bucket_wait_ms(b, r, t0, 100), 18'000);
  EXPECT_EQ(bucket_wait_ms(b, r, t0, 1000), 18'000);  // capped at capacity
  EXPECT_EQ(bucket_wait_ms(b, r, t0, 97), 0);
}

TEST(token_bucket, a_clock_that_goes_back_does_not_refill) {
  bucket_rule r{2, 1'000};
  token_bucket b;
  EXPECT_EQ(take_tokens(b, r, t0, 2), 2);
  EXPECT_EQ(take_tokens(b, r, t0 - 5'000, 1), 0);
  EXPECT_EQ(take_tokens(b, r, t0 + 499, 1), 0);
  EXPECT_EQ(take_tokens(b, r, t0 + 500, 1), 1);
}

TEST(token_bucket, large_rules_do_not_overflow) {
  bucket_rule r{1'000'000'000, 24LL * 3600 * 1000};
  token_bucket b;
  EXPECT_EQ(take_tokens(b, r, t0, 1'000'000'000), 1'000'000'000);
  EXPECT_EQ(bucket_tokens(b, r, t0 + 24LL * 3600 * 1000 * 50), 1'000'000'000);
  EXPECT_GT(bucket_tokens(b, r, t0 + 3600 * 1000), 0);
}

lockout_policy policy() {
  lockout_policy p;
  p.threshold = 3;
  p.window_ms = 60'000;
  p.base_ms = 10'000;
  p.max_ms = 35'000;
  p.attempt_ttl_ms = 5'000;
  return p;
}

/// One failed attempt at `now`; returns the verdict of its end.
lockout_verdict fail_once(lockout_state& s, const lockout_policy& p, std::int64_t now,
                          const std::string& id) {
  EXPECT_TRUE(begin_attempt(s, p, now, id).allowed);
  return end_attempt(s, p, now, id, false);
}

TEST(lockout, threshold_failures_lock_and_a_correct_password_is_refused_while_locked) {
  auto p = policy();
  lockout_state s;
  EXPECT_TRUE(fail_once(s, p, t0, "a").allowed);
  EXPECT_TRUE(fail_once(s, p, t0 + 1, "b").allowed);
  auto third = fail_once(s, p, t0 + 2, "c");
  EXPECT_FALSE(third.allowed);
  EXPECT_EQ(third.retry_after_ms, 10'000);
  auto during = begin_attempt(s, p, t0 + 5'000, "d");
  EXPECT_FALSE(during.allowed);
  EXPECT_EQ(during.retry_after_ms, 5'002);
  EXPECT_TRUE(begin_attempt(s, p, t0 + 10'002, "e").allowed);
}

TEST(lockout, backoff_doubles_per_lockout_up_to_the_maximum) {
  auto p = policy();
  EXPECT_EQ(lock_duration_ms(p, 0), 10'000);
  EXPECT_EQ(lock_duration_ms(p, 1), 20'000);
  EXPECT_EQ(lock_duration_ms(p, 2), 35'000);
  EXPECT_EQ(lock_duration_ms(p, 62), 35'000);
  lockout_state s;
  auto now = t0;
  std::vector<std::int64_t> locks;
  for (int lock = 0; lock < 3; ++lock) {
    lockout_verdict v;
    for (int i = 0; i < 3; ++i)
      v = fail_once(s, p, now, "x" + std::to_string(lock * 10 + i));
    ASSERT_FALSE(v.allowed);
    locks.push_back(v.retry_after_ms);
    now += v.retry_after_ms;
  }
  EXPECT_EQ(locks, (std::vector<std::int64_t>{10'000, 20'000, 35'000}));
}

TEST(lockout, a_success_clears_failures_and_backoff) {
  auto p = policy();
  lockout_state s;
  for (int i = 0; i < 3; ++i)
    fail_once(s, p, t0, "f" + std::to_string(i));
  auto after = t0 + 10'000;
  ASSERT_TRUE(begin_attempt(s, p, after, "ok").allowed);
  EXPECT_TRUE(end_attempt(s, p, after, "ok", true).allowed);
  EXPECT_EQ(s.level, 0);
  EXPECT_TRUE(lockout_clear(s, after));
  // The next lockout starts again from the base length.
  lockout_verdict v;
  for (int i = 0; i < 3; ++i)
    v = fail_once(s, p, after, "g" + std::to_string(i));
  EXPECT_EQ(v.retry_after_ms, 10'000);
}

TEST(lockout, parallel_attempts_cannot_check_more_passwords_than_the_threshold) {
  auto p = policy();
  lockout_state s;
  int allowed = 0;
  for (int i = 0; i < 40; ++i)
    allowed += begin_attempt(s, p, t0, "p" + std::to_string(i)).allowed ? 1 : 0;
  EXPECT_EQ(allowed, 3);
  auto refused = begin_attempt(s, p, t0, "late");
  EXPECT_FALSE(refused.allowed);
  EXPECT_GE(refused.retry_after_ms, 1'000);
  // The three end as failures: locked.
  EXPECT_TRUE(end_attempt(s, p, t0 + 1, "p0", false).allowed);
  EXPECT_TRUE(end_attempt(s, p, t0 + 1, "p1", false).allowed);
  EXPECT_FALSE(end_attempt(s, p, t0 + 1, "p2", false).allowed);
}

TEST(lockout, an_attempt_never_ended_counts_as_a_failure_when_it_expires) {
  auto p = policy();
  lockout_state s;
  ASSERT_TRUE(begin_attempt(s, p, t0, "lost").allowed);
  lockout_expire(s, p, t0 + p.attempt_ttl_ms);
  EXPECT_TRUE(s.attempts.empty());
  EXPECT_EQ(s.failures.size(), 1u);
  // Its late end changes nothing (it was counted).
  end_attempt(s, p, t0 + p.attempt_ttl_ms + 1, "lost", false);
  EXPECT_EQ(s.failures.size(), 1u);
}

TEST(lockout, failures_older_than_the_window_are_forgotten) {
  auto p = policy();
  lockout_state s;
  fail_once(s, p, t0, "a");
  fail_once(s, p, t0 + 1, "b");
  auto later = t0 + p.window_ms + 1;
  EXPECT_TRUE(fail_once(s, p, later, "c").allowed);  // two expired: this is the first
  EXPECT_EQ(s.failures.size(), 1u);
}

TEST(lockout, the_backoff_decays_after_a_window_without_failures) {
  auto p = policy();
  lockout_state s;
  for (int i = 0; i < 3; ++i)
    fail_once(s, p, t0, "a" + std::to_string(i));
  ASSERT_EQ(s.level, 1);
  lockout_expire(s, p, s.locked_until_ms + p.window_ms - 1);
  EXPECT_EQ(s.level, 1);
  lockout_expire(s, p, s.locked_until_ms + p.window_ms);
  EXPECT_EQ(s.level, 0);
  EXPECT_TRUE(lockout_clear(s, s.locked_until_ms + p.window_ms));
  EXPECT_GE(lockout_relevant_until(s, p), s.locked_until_ms);
}

}  // namespace
