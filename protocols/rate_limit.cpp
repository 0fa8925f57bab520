#include "protocols/rate_limit.hpp"

#include <algorithm>

namespace credo::protocols {
namespace {

std::int64_t full_units(const bucket_rule& r) { return r.capacity * r.period_ms; }

/// The bucket's units at `now` (refilled, capped at full).
std::int64_t units_at(const token_bucket& b, const bucket_rule& r, std::int64_t now) {
  auto full = full_units(r);
  if (b.units < 0)
    return full;
  auto elapsed = std::max<std::int64_t>(0, now - b.updated_ms);
  // No overflow: elapsed beyond one period refills the bucket anyway.
  if (elapsed >= r.period_ms)
    return full;
  return std::min(full, b.units + elapsed * r.capacity);
}

}  // namespace

std::int64_t bucket_tokens(const token_bucket& b, const bucket_rule& r, std::int64_t now_ms) {
  return units_at(b, r, now_ms) / r.period_ms;
}

std::int64_t take_tokens(token_bucket& b, const bucket_rule& r, std::int64_t now_ms,
                         std::int64_t want) {
  auto units = units_at(b, r, now_ms);
  auto taken = std::clamp<std::int64_t>(units / r.period_ms, 0, std::max<std::int64_t>(0, want));
  b.units = units - taken * r.period_ms;
  // A clock that went back must not refill the bucket twice.
  b.updated_ms = std::max(now_ms, b.updated_ms);
  return taken;
}

std::int64_t bucket_wait_ms(const token_bucket& b, const bucket_rule& r, std::int64_t now_ms,
                            std::int64_t n) {
  auto need = std::min(n, r.capacity) * r.period_ms - units_at(b, r, now_ms);
  if (need <= 0)
    return 0;
  return (need + r.capacity - 1) / r.capacity;
}

bool bucket_full(const token_bucket& b, const bucket_rule& r, std::int64_t now_ms) {
  return units_at(b, r, now_ms) >= full_units(r);
}

std::int64_t lock_duration_ms(const lockout_policy& p, std::int64_t level) {
  auto d = p.base_ms;
  for (std::int64_t i = 0; i < level && d < p.max_ms; ++i)
    d *= 2;
  return std::min(d, p.max_ms);
}

namespace {

void lock_if_due(lockout_state& s, const lockout_policy& p, std::int64_t now) {
  if (static_cast<std::int64_t>(s.failures.size()) < p.threshold)
    return;
  s.locked_until_ms = now + lock_duration_ms(p, s.level);
  ++s.level;
  s.failures.clear();
}

std::int64_t remaining(const lockout_state& s, const lockout_policy& p) {
  return std::max<std::int64_t>(
    0, p.threshold - static_cast<std::int64_t>(s.failures.size() + s.attempts.size()));
}

}  // namespace

void lockout_expire(lockout_state& s, const lockout_policy& p, std::int64_t now_ms) {
  std::erase_if(s.failures, [&](std::int64_t t) { return t + p.window_ms <= now_ms; });
  for (auto i = s.attempts.begin(); i != s.attempts.end();) {
    if (i->expires_ms > now_ms) {
      ++i;
      continue;
    }
    s.failures.push_back(i->expires_ms);
    i = s.attempts.erase(i);
  }
  std::sort(s.failures.begin(), s.failures.end());
  lock_if_due(s, p, now_ms);
  if (s.level > 0 && s.failures.empty() && s.attempts.empty()
      && now_ms >= s.locked_until_ms + p.window_ms)
    s.level = 0;
}

lockout_verdict begin_attempt(lockout_state& s, const lockout_policy& p, std::int64_t now_ms,
                              const std::string& id) {
  lockout_expire(s, p, now_ms);
  if (s.locked_until_ms > now_ms)
    return {false, s.locked_until_ms - now_ms, 0};
  if (remaining(s, p) == 0) {
    // Attempts in progress hold the last slots: refused until the earliest one ends.
    std::int64_t first = now_ms + p.attempt_ttl_ms;
    for (auto& a : s.attempts)
      first = std::min(first, a.expires_ms);
    return {false, std::max<std::int64_t>(1000, first - now_ms), 0};
  }
  s.attempts.push_back({id, now_ms + p.attempt_ttl_ms});
  return {true, 0, remaining(s, p)};
}

lockout_verdict end_attempt(lockout_state& s, const lockout_policy& p, std::int64_t now_ms,
                            const std::string& id, bool success) {
  auto i = std::find_if(s.attempts.begin(), s.attempts.end(),
                        [&](const auto& a) { return a.id == id; });
  bool known = i != s.attempts.end();
  if (known)
    s.attempts.erase(i);
  if (success) {
    s.failures.clear();
    s.level = 0;
  } else if (known) {
    s.failures.push_back(now_ms);
  }
  lockout_expire(s, p, now_ms);
  if (s.locked_until_ms > now_ms)
    return {false, s.locked_until_ms - now_ms, 0};
  return {true, 0, remaining(s, p)};
}

bool lockout_clear(const lockout_state& s, std::int64_t now_ms) {
  return s.failures.empty() && s.attempts.empty() && s.level == 0 && s.locked_until_ms <= now_ms;
}

std::int64_t lockout_relevant_until(const lockout_state& s, const lockout_policy& p) {
  std::int64_t until = s.locked_until_ms + p.window_ms;  // the backoff level decays after this
  for (auto t : s.failures)
    until = std::max(until, t + p.window_ms);
  for (auto& a : s.attempts)
    until = std::max(until, a.expires_ms + p.window_ms);
  return until;
}

}  // namespace credo::protocols
