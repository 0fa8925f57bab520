#pragma once
// Rate-limit arithmetic, free of actors and clocks (times are passed in, in milliseconds):
// the token bucket of a rate-limit rule and the failed-login lockout of an account. The bucket
// actors (actors/rate_limit_entity.cpp) own one state each; docs/decisions/0011-rate-limits.md.
#include <cstdint>
#include <string>
#include <vector>

namespace credo::protocols {

/// `capacity` tokens, refilled evenly over `period_ms` (so a full bucket is a burst of
/// `capacity`, and the sustained rate is capacity / period).
struct bucket_rule {
  std::int64_t capacity = 0;
  std::int64_t period_ms = 0;
  /// The bounds keep every product of the arithmetic below 2^63.
  bool valid() const {
    return capacity > 0 && capacity <= 1'000'000'000 && period_ms > 0
           && period_ms <= 24 * 3600 * 1000;
  }
};

/// Exact integer arithmetic: one token is `period_ms` units and the bucket refills `capacity`
/// units per millisecond, so no rounding ever hands out a fraction of a token.
struct token_bucket {
  std::int64_t units = -1;  // -1: never used (full)
  std::int64_t updated_ms = 0;
};

/// Tokens in the bucket at `now`, whole ones.
std::int64_t bucket_tokens(const token_bucket& b, const bucket_rule& r, std::int64_t now_ms);
/// Takes up to `want` whole tokens; returns how many were taken (0 if the bucket is empty).
std::int64_t take_tokens(token_bucket& b, const bucket_rule& r, std::int64_t now_ms,
                         std::int64_t want);
/// Milliseconds until the bucket holds `n` whole tokens (0 if it does now).
std::int64_t bucket_wait_ms(const token_bucket& b, const bucket_rule& r, std::int64_t now_ms,
                            std::int64_t n);
/// True when the bucket is full at `now` (its state carries nothing and may be forgotten).
bool bucket_full(const token_bucket& b, const bucket_rule& r, std::int64_t now_ms);

/// Failed-login lockout: `threshold` failures within `window_ms` lock the account for
/// `base_ms` * 2^(lockouts so far), at most `max_ms`.
struct lockout_policy {
  std::int64_t threshold = 5;
  std::int64_t window_ms = 15 * 60 * 1000;
  std::int64_t base_ms = 60 * 1000;
  std::int64_t max_ms = 60 * 60 * 1000;
  std::int64_t attempt_ttl_ms = 30 * 1000;  // an attempt never reported counts as a failure
  bool valid() const {
    constexpr std::int64_t week = 7LL * 24 * 3600 * 1000;
    return threshold > 0 && threshold <= 1000 && window_ms > 0 && window_ms <= week
           && base_ms > 0 && max_ms >= base_ms && max_ms <= week && attempt_ttl_ms > 0
           && attempt_ttl_ms <= week;
  }
};

/// An attempt counts against the threshold from its start: a password is checked only while
/// failures + attempts in progress stay below the threshold, so parallel guesses (through any
/// number of nodes, all of them sent to the one owner of the account's state) cannot check
/// more passwords than the threshold allows.
struct lockout_state {
  struct attempt {
    std::string id;
    std::int64_t expires_ms = 0;
  };
  std::vector<std::int64_t> failures;  // times of failures within the window, oldest first
  std::vector<attempt> attempts;       // in progress
  std::int64_t level = 0;              // lockouts so far: the next one lasts base * 2^level
  std::int64_t locked_until_ms = 0;
};

std::int64_t lock_duration_ms(const lockout_policy& p, std::int64_t level);

/// Forgets failures older than the window, counts expired attempts as failures (which may
/// lock), and resets the backoff after a full window without failures or locks.
void lockout_expire(lockout_state& s, const lockout_policy& p, std::int64_t now_ms);

struct lockout_verdict {
  bool allowed = false;
  std::int64_t retry_after_ms = 0;  // when refused (or just locked): until the lock ends
  std::int64_t remaining = 0;       // attempts left before the lock
};

/// Starts attempt `id`: allowed unless locked or failures + attempts reach the threshold.
lockout_verdict begin_attempt(lockout_state& s, const lockout_policy& p, std::int64_t now_ms,
                              const std::string& id);
/// Ends attempt `id`: a success clears the failures and the backoff; a failure may lock (the
/// verdict is then not allowed, with the lock's length). A failure of an unknown attempt
/// (expired, so counted already, or never begun) changes nothing.
lockout_verdict end_attempt(lockout_state& s, const lockout_policy& p, std::int64_t now_ms,
                            const std::string& id, bool success);
/// True when the state carries nothing (may be forgotten).
bool lockout_clear(const lockout_state& s, std::int64_t now_ms);
/// Until when the state matters: it may be stored with this expiry.
std::int64_t lockout_relevant_until(const lockout_state& s, const lockout_policy& p);

}  // namespace credo::protocols
