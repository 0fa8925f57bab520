#include "http/rate_limits.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <cstring>

#include "protocols/errc.hpp"

namespace credo::http {
namespace {

constexpr std::int64_t second = 1000;
constexpr std::int64_t minute = 60 * second;

// Lease lifetime: a lease unspent by then is dropped (its tokens were taken at the owner).
constexpr std::int64_t lease_ms = 1000;
// Bound on the leases a node keeps (one per busy key); past it, expired ones are swept and,
// if that is not enough, all are dropped (which only costs owner round trips).
constexpr std::size_t max_leases = 100000;

std::int64_t div_ceil(std::int64_t a, std::int64_t b) { return (a + b - 1) / b; }

}  // namespace

// Defaults that protect a public deployment and still let a person (or a test suite) behind
// one address work: docs/decisions/0011-rate-limits.md lists them with the reasoning.
const std::array<rule_def, rule_count> rule_defs{{
  {"users.ip", limited_route::users, limit_scope::ip, {100, 10 * minute}},
  {"users.global", limited_route::users, limit_scope::global, {6000, minute}},
  {"login.ip", limited_route::login, limit_scope::ip, {60, minute}},
  {"login.global", limited_route::login, limit_scope::global, {30000, minute}},
  {"authorize.ip", limited_route::authorize, limit_scope::ip, {300, minute}},
  {"authorize.global", limited_route::authorize, limit_scope::global, {60000, minute}},
  {"token.ip", limited_route::token, limit_scope::ip, {600, minute}},
  {"token.client", limited_route::token, limit_scope::client, {6000, minute}},
  {"token.global", limited_route::token, limit_scope::global, {120000, minute}},
  {"introspect.client", limited_route::introspect, limit_scope::client, {600000, minute}},
  {"introspect.global", limited_route::introspect, limit_scope::global, {3000000, minute}},
}};

const char* rule_name(std::size_t rule) {
  return rule < rule_count ? rule_defs[rule].name : "login.account";
}

// -- addresses -----------------------------------------------------------------------------------

std::optional<std::array<std::uint8_t, 16>> parse_ip(std::string_view text) {
  if (text.size() >= 2 && text.front() == '[' && text.back() == ']')
    text = text.substr(1, text.size() - 2);
  if (text.empty() || text.size() > 45)
    return std::nullopt;
  std::string s{text};
  std::array<std::uint8_t, 16> out{};
  in_addr v4{};
  if (inet_pton(AF_INET, s.c_str(), &v4) == 1) {
    out[10] = out[11] = 0xff;
    std::memcpy(out.data() + 12, &v4, 4);
    return out;
  }
  in6_addr v6{};
  if (inet_pton(AF_INET6, s.c_str(), &v6) == 1) {
    std::memcpy(out.data(), &v6, 16);
    return out;
  }
  return std::nullopt;
}

namespace {

bool is_v4(const std::array<std::uint8_t, 16>& a) {
  return std::all_of(a.begin(), a.begin() + 10, [](auto b) { return b == 0; }) && a[10] == 0xff
         && a[11] == 0xff;
}

/// The bucket subject of an address: IPv4 as is, IPv6 by its /64 (one subscriber's prefix:
/// a client could otherwise rotate through 2^64 addresses).
std::string subject_of(const std::array<std::uint8_t, 16>& a) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (is_v4(a)) {
    inet_ntop(AF_INET, a.data() + 12, buf, sizeof buf);
    return buf;
  }
  std::array<std::uint8_t, 16> net{};
  std::copy(a.begin(), a.begin() + 8, net.begin());
  inet_ntop(AF_INET6, net.data(), buf, sizeof buf);
  return std::string{buf} + "/64";
}

}  // namespace

std::optional<cidr> cidr::parse(std::string_view text) {
  auto slash = text.find('/');
  auto ip = parse_ip(text.substr(0, slash));
  if (!ip)
    return std::nullopt;
  cidr c;
  c.bytes = *ip;
  bool v4 = is_v4(*ip) && text.substr(0, slash).find(':') == std::string_view::npos;
  int max = v4 ? 32 : 128;
  int len = max;
  if (slash != std::string_view::npos) {
    auto digits = text.substr(slash + 1);
    auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), len);
    if (ec != std::errc{} || p != digits.data() + digits.size() || digits.empty() || len < 0
        || len > max)
      return std::nullopt;
  }
  c.prefix = v4 ? len + 96 : len;
  return c;
}

bool cidr::contains(const std::array<std::uint8_t, 16>& a) const {
  int bits = prefix;
  for (std::size_t i = 0; i < 16 && bits > 0; ++i, bits -= 8) {
    std::uint8_t mask = bits >= 8 ? 0xff : static_cast<std::uint8_t>(0xff << (8 - bits));
    if ((a[i] & mask) != (bytes[i] & mask))
      return false;
  }
  return true;
}

std::string client_address(const request& req, const std::vector<cidr>& trusted) {
  auto trusted_ip = [&](const std::array<std::uint8_t, 16>& a) {
    return std::any_of(trusted.begin(), trusted.end(), [&](auto& c) { return c.contains(a); });
  };
  auto peer = parse_ip(req.remote_ip);
  if (!peer || trusted.empty() || !trusted_ip(*peer))
    return req.remote_ip;
  // Every X-Forwarded-For header, in order, as one list; walked from the right (the entry the
  // trusted peer appended) towards the client.
  std::vector<std::string_view> hops;
  for (auto& [name, value] : req.headers) {
    if (name != "x-forwarded-for")
      continue;
    std::string_view v = value;
    while (!v.empty()) {
      auto comma = v.find(',');
      auto item = v.substr(0, comma);
      while (!item.empty() && (item.front() == ' ' || item.front() == '\t'))
        item.remove_prefix(1);
      while (!item.empty() && (item.back() == ' ' || item.back() == '\t'))
        item.remove_suffix(1);
      hops.push_back(item);
      if (comma == std::string_view::npos)
        break;
      v.remove_prefix(comma + 1);
    }
  }
  std::string_view client = req.remote_ip;
  for (auto i = hops.rbegin(); i != hops.rend(); ++i) {
    auto hop = parse_ip(*i);
    if (!hop)
      break;
    client = *i;
    if (!trusted_ip(*hop))
      break;
  }
  return std::string{client};
}

// -- configuration -------------------------------------------------------------------------------

namespace {

/// "login.ip@60/60000": a bucket is per rule and its parameters, so a changed rule starts with
/// a full bucket instead of reading another rule's state.
std::string bucket_prefix(std::size_t i, const protocols::bucket_rule& r) {
  return std::string{rule_defs[i].name} + "@" + std::to_string(r.capacity) + "/"
         + std::to_string(r.period_ms);
}

}  // namespace

rate_limit_config::rate_limit_config() {
  for (std::size_t i = 0; i < rule_count; ++i) {
    rules[i] = rule_defs[i].fallback;
    key_prefixes[i] = bucket_prefix(i, rules[i]);
  }
}

std::optional<std::string> rate_limit_config::apply(std::string_view spec) {
  auto eq = spec.find('=');
  if (eq == std::string_view::npos)
    return "expected NAME=N/PERIOD or NAME=off";
  auto name = spec.substr(0, eq);
  auto value = spec.substr(eq + 1);
  protocols::bucket_rule rule{0, 0};
  if (value != "off") {
    auto slash = value.find('/');
    if (slash == std::string_view::npos)
      return "expected N/PERIOD (for example 60/1m) or off";
    auto n = value.substr(0, slash);
    auto period = value.substr(slash + 1);
    std::int64_t count = 0, amount = 1;
    auto [p, ec] = std::from_chars(n.data(), n.data() + n.size(), count);
    if (ec != std::errc{} || p != n.data() + n.size() || count < 1 || count > 1'000'000'000)
      return "N must be a whole number from 1 to 10^9";
    if (period.empty())
      return "PERIOD is missing";
    std::int64_t unit = 0;
    switch (period.back()) {
      case 's': unit = second; break;
      case 'm': unit = minute; break;
      case 'h': unit = 60 * minute; break;
      default: return "PERIOD must end in s, m or h";
    }
    period.remove_suffix(1);
    if (!period.empty()) {
      auto [q, ec2] = std::from_chars(period.data(), period.data() + period.size(), amount);
      if (ec2 != std::errc{} || q != period.data() + period.size() || amount < 1
          || amount > 24 * 3600)
        return "PERIOD must be 1s to 24h";
    }
    rule = {count, amount * unit};
    if (rule.period_ms > 24 * 60 * minute)
      return "PERIOD must be 1s to 24h";
  }
  if (name == "all") {
    rules.fill(rule);
    for (std::size_t i = 0; i < rule_count; ++i)
      key_prefixes[i] = bucket_prefix(i, rule);
    return std::nullopt;
  }
  for (std::size_t i = 0; i < rule_count; ++i)
    if (name == rule_defs[i].name) {
      rules[i] = rule;
      key_prefixes[i] = bucket_prefix(i, rule);
      return std::nullopt;
    }
  std::string known;
  for (auto& d : rule_defs)
    known += std::string{known.empty() ? "" : ", "} + d.name;
  return "unknown rule (rules: " + known + ", all)";
}

std::vector<limit_check> route_checks(const rate_limit_config& cfg, limited_route route,
                                      std::string_view client_ip) {
  std::vector<limit_check> out;
  for (std::size_t i = 0; i < rule_count; ++i) {
    auto& d = rule_defs[i];
    if (d.route != route || !cfg.rules[i].valid() || d.scope == limit_scope::client)
      continue;
    auto key = cfg.key_prefixes[i];
    if (d.scope == limit_scope::ip) {
      auto ip = parse_ip(client_ip);
      key += ":" + (ip ? subject_of(*ip) : std::string{client_ip});
    }
    out.push_back({i, std::move(key)});
  }
  return out;
}

bool has_client_rule(const rate_limit_config& cfg, limited_route route) {
  for (std::size_t i = 0; i < rule_count; ++i)
    if (rule_defs[i].route == route && rule_defs[i].scope == limit_scope::client)
      return cfg.rules[i].valid();
  return false;
}

std::optional<limit_check> client_check(const rate_limit_config& cfg, limited_route route,
                                        std::string_view client_id) {
  for (std::size_t i = 0; i < rule_count; ++i) {
    auto& d = rule_defs[i];
    if (d.route == route && d.scope == limit_scope::client && cfg.rules[i].valid())
      return limit_check{i, cfg.key_prefixes[i] + ":" + std::string{client_id}};
  }
  return std::nullopt;
}

// -- answers -------------------------------------------------------------------------------------

fields limit_headers(const limit_verdict& v) {
  fields h{{"RateLimit-Limit", std::to_string(v.limit)},
           {"RateLimit-Remaining", std::to_string(v.remaining)},
           {"RateLimit-Reset", std::to_string(v.reset_s)}};
  if (!v.allowed)
    h.emplace_back("Retry-After", std::to_string(std::max<std::int64_t>(1, v.retry_after_s)));
  return h;
}

response limited_response(const limit_verdict& v, std::string_view description) {
  auto r = error_response(429, "rate_limited", description);
  for (auto& h : limit_headers(v))
    r.headers.push_back(std::move(h));
  return r;
}

const limit_verdict& tighter(const limit_verdict& a, const limit_verdict& b) {
  if (a.allowed != b.allowed)
    return a.allowed ? b : a;
  if (!a.allowed)
    return a.retry_after_s >= b.retry_after_s ? a : b;
  return a.remaining <= b.remaining ? a : b;
}

// -- limiter -------------------------------------------------------------------------------------

limiter::limiter(rate_limit_config cfg) : cfg_(std::move(cfg)) {}

std::int64_t limiter::lease_size(const limit_check& c) {
  auto cap = cfg_.rules[c.rule].capacity / 100;
  if (cap <= 1)
    return 1;
  std::lock_guard guard{mtx_};
  auto i = leases_.find(c.key);
  return i == leases_.end() ? 1 : std::clamp<std::int64_t>(i->second.next, 1, cap);
}

std::optional<limit_verdict> limiter::try_local(const limit_check& c, std::int64_t now_ms) {
  auto& rule = cfg_.rules[c.rule];
  std::lock_guard guard{mtx_};
  auto i = leases_.find(c.key);
  if (i == leases_.end())
    return std::nullopt;
  auto& l = i->second;
  limit_verdict v{true, c.rule, rule.capacity, 0, 0, 0};
  if (l.denied_until_ms > now_ms) {
    v.allowed = false;
    v.retry_after_s = div_ceil(l.denied_until_ms - now_ms, second);
    v.reset_s = div_ceil(std::max(l.reset_at_ms - now_ms, std::int64_t{0}), second);
    return v;
  }
  if (l.expires_ms <= now_ms) {
    // Expired: the next lease is what this one spent (plus this request), so a key whose
    // traffic fell does not keep taking tokens it will not use. (Once per lease: concurrent
    // misses find size 0.)
    if (l.size > 0)
      l.next = l.size - l.tokens + 1;
    l.tokens = 0;
    l.size = 0;
    return std::nullopt;
  }
  if (l.tokens <= 0) {
    // Spent before it expired: ask for twice as much (max: concurrent misses agree).
    l.next = std::max(l.next, 2 * (l.size + 1));
    return std::nullopt;
  }
  --l.tokens;
  v.remaining = l.owner_remaining + l.tokens;
  v.reset_s = div_ceil(std::max(l.reset_at_ms - now_ms, std::int64_t{0}), second);
  return v;
}

limit_verdict limiter::on_grant(const limit_check& c, std::int64_t granted,
                                std::int64_t remaining, std::int64_t reset_ms,
                                std::int64_t retry_ms, std::int64_t now_ms) {
  owner_calls_.fetch_add(1, std::memory_order_relaxed);
  auto& rule = cfg_.rules[c.rule];
  limit_verdict v{granted > 0, c.rule, rule.capacity, 0, div_ceil(reset_ms, second),
                  div_ceil(retry_ms, second)};
  v.remaining = remaining + std::max<std::int64_t>(0, granted - 1);
  // Small buckets keep no lease, only a denial; big ones keep their sizing even between leases.
  bool keep = granted != 1 || rule.capacity / 100 > 1;
  std::lock_guard guard{mtx_};
  if (!keep) {
    leases_.erase(c.key);
    return v;
  }
  if (leases_.size() >= max_leases) {
    std::erase_if(leases_, [now_ms](auto& kv) {
      return kv.second.expires_ms <= now_ms && kv.second.denied_until_ms <= now_ms;
    });
    if (leases_.size() >= max_leases)
      leases_.clear();
  }
  auto& l = leases_[c.key];
  l.owner_remaining = remaining;
  l.reset_at_ms = now_ms + reset_ms;
  if (granted == 0) {
    l.tokens = 0;
    l.denied_until_ms = now_ms + std::max<std::int64_t>(retry_ms, 1);
  } else {
    // Tokens from an earlier lease still here add up: they were taken at the owner too.
    l.tokens = (l.expires_ms > now_ms ? l.tokens : 0) + granted - 1;
    l.size = l.tokens;
    l.expires_ms = now_ms + lease_ms;
    l.denied_until_ms = 0;
  }
  return v;
}

}  // namespace credo::http
