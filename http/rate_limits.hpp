#pragma once
// Rate-limit rules and this node's side of them (docs/decisions/0011-rate-limits.md).
// - The rules: which buckets a request of a limited route takes a token from (per client
//   address, per OAuth client, one global ceiling per endpoint), configurable with
//   `credod --rate-limit NAME=N/PERIOD`; and the failed-login lockout.
// - The client address: the peer, or behind a trusted proxy the nearest untrusted address of
//   X-Forwarded-For.
// - The limiter: leases of tokens taken from a bucket's owner, spent locally. A rule whose
//   bucket holds few tokens leases one at a time (every request asks the owner: exact); a big
//   one leases a batch sized to what this node spent of the last one (doubling while leases
//   run out early, shrinking when they expire unspent), so the owner is asked a few times a
//   second per busy key. Leased tokens are taken from the owner's bucket when leased, so the
//   cluster never admits more than the limit; a lease left unspent when it expires is lost,
//   which can only deny early, never admit late.
#include <array>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "http/message.hpp"
#include "protocols/rate_limit.hpp"

namespace credo::http {

/// The limited endpoints.
enum class limited_route : std::uint8_t { users, login, authorize, token, introspect };
enum class limit_scope : std::uint8_t { ip, client, global };

/// Every rule, by name ("login.ip"); its index is its position here.
struct rule_def {
  const char* name;
  limited_route route;
  limit_scope scope;
  protocols::bucket_rule fallback;  // the default
};
inline constexpr std::size_t rule_count = 11;
extern const std::array<rule_def, rule_count> rule_defs;
/// Denials of a login by the account's lockout are counted under this rule index.
inline constexpr std::size_t lockout_rule = rule_count;
/// "login.ip", ..., and "login.account" for lockout_rule.
const char* rule_name(std::size_t rule);

/// An IPv4 or IPv6 network, for --trusted-proxies.
struct cidr {
  std::array<std::uint8_t, 16> bytes{};  // IPv4 as ::ffff:a.b.c.d
  int prefix = 0;                         // over the 128 bits
  static std::optional<cidr> parse(std::string_view text);
  bool contains(const std::array<std::uint8_t, 16>& address) const;
};
/// A textual IPv4/IPv6 address as 16 bytes (IPv4 mapped); nullopt if it is not one.
std::optional<std::array<std::uint8_t, 16>> parse_ip(std::string_view text);

struct rate_limit_config {
  /// Per rule; capacity 0 is off.
  std::array<protocols::bucket_rule, rule_count> rules;
  protocols::lockout_policy lockout;
  bool lockout_enabled = true;
  std::vector<cidr> trusted_proxies;
  /// Per rule, "login.ip@60/60000": the start of its buckets' keys (set with the rules).
  std::array<std::string, rule_count> key_prefixes;
  rate_limit_config();
  /// Applies "NAME=N/PERIOD" (PERIOD: 1s, 10m, 1h, ...), "NAME=off", or the same for every
  /// rule with NAME "all". Returns the reason when the text is not one of these.
  std::optional<std::string> apply(std::string_view spec);
};

/// The client's address: the peer's, or, when the peer is a trusted proxy, the right-most
/// address of X-Forwarded-For that is not a trusted proxy (the left-most if all are). An
/// entry that does not parse stops the walk: the hop before it is the client. Buckets of
/// IPv6 clients are per /64 (route_checks).
std::string client_address(const request& req, const std::vector<cidr>& trusted);

/// The bucket a request takes from for one rule.
struct limit_check {
  std::size_t rule = 0;
  std::string key;  // "login.ip@60/60000:203.0.113.7" (rule@N/period:subject; IPv6: the /64)
};
/// The checks of `route` that need only the request (client address and global).
std::vector<limit_check> route_checks(const rate_limit_config& cfg, limited_route route,
                                      std::string_view client_ip);
/// True when `route` has a per-client rule and it is on.
bool has_client_rule(const rate_limit_config& cfg, limited_route route);
/// The check of `route`'s per-client rule, if it has one and it is on.
std::optional<limit_check> client_check(const rate_limit_config& cfg, limited_route route,
                                        std::string_view client_id);

/// What the client is told: RateLimit-* (and Retry-After when denied).
struct limit_verdict {
  bool allowed = true;
  std::size_t rule = 0;
  std::int64_t limit = 0;
  std::int64_t remaining = 0;
  std::int64_t reset_s = 0;
  std::int64_t retry_after_s = 0;
};
/// The headers of the most restrictive verdict; `denied` adds Retry-After.
fields limit_headers(const limit_verdict& v);
/// 429 rate_limited with the headers.
response limited_response(const limit_verdict& v, std::string_view description);
/// Of two verdicts, the one to report: a denial, else the fewer remaining.
const limit_verdict& tighter(const limit_verdict& a, const limit_verdict& b);

class limiter {
 public:
  explicit limiter(rate_limit_config cfg);
  const rate_limit_config& config() const { return cfg_; }

  /// Answers from a lease or a cached denial; nullopt: ask the bucket's owner.
  std::optional<limit_verdict> try_local(const limit_check& c, std::int64_t now_ms);
  /// How many tokens to ask the owner for: 1 for buckets under 200 tokens, else what this
  /// node is likely to spend within a lease's life, at most a hundredth of the bucket.
  std::int64_t lease_size(const limit_check& c);
  /// Records the owner's grant (the first token is the request's, the rest a lease) and
  /// returns the verdict for the request.
  limit_verdict on_grant(const limit_check& c, std::int64_t granted, std::int64_t remaining,
                         std::int64_t reset_ms, std::int64_t retry_ms, std::int64_t now_ms);

  void count_denial(std::size_t rule) { denials_[rule].fetch_add(1, std::memory_order_relaxed); }
  void count_lockout() { lockouts_.fetch_add(1, std::memory_order_relaxed); }
  std::int64_t denials(std::size_t rule) const { return denials_[rule].load(); }
  std::int64_t lockouts() const { return lockouts_.load(); }
  std::int64_t owner_calls() const { return owner_calls_.load(); }

 private:
  struct lease {
    std::int64_t tokens = 0;          // leased, not spent
    std::int64_t expires_ms = 0;
    std::int64_t owner_remaining = 0; // at the owner, when leased
    std::int64_t reset_at_ms = 0;
    std::int64_t denied_until_ms = 0; // the owner said empty until then
    std::int64_t size = 0;            // tokens of the last lease
    std::int64_t next = 1;            // tokens to ask for next time
  };
  rate_limit_config cfg_;
  std::mutex mtx_;
  std::unordered_map<std::string, lease> leases_;
  std::array<std::atomic<std::int64_t>, rule_count + 1> denials_{};
  std::atomic<std::int64_t> lockouts_{0};
  std::atomic<std::int64_t> owner_calls_{0};
};

}  // namespace credo::http
