#include "protocols/token_cache.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <limits>
#include <cstring>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "protocols/crypto.hpp"

namespace credo::protocols {

namespace {

constexpr std::size_t max_shards = 16;

struct entry {
  std::shared_ptr<const verified_token> claims;
  std::int64_t exp = 0;
};

// Keys are SHA-256 digests, already uniformly distributed: take the first bytes as the hash.
struct digest_hash {
  std::size_t operator()(const std::string& d) const noexcept {
    std::size_t h = 0;
    std::memcpy(&h, d.data(), std::min(sizeof h, d.size()));
    return h;
  }
};

struct shard {
  mutable std::mutex mtx;
  std::unordered_map<std::string, entry, digest_hash> map;
};

}  // namespace

struct verified_token_cache::impl {
  explicit impl(std::size_t capacity)
      : shard_count(std::clamp<std::size_t>(capacity, 1, max_shards)),
        shard_capacity(capacity / shard_count) {}

  // Fewer shards for a tiny capacity so that shard_count * shard_capacity never exceeds it.
  const std::size_t shard_count;
  const std::size_t shard_capacity;
  std::array<shard, max_shards> shards;
  // Largest `now` seen by find(); insert() has no clock, so this is its notion of "expired".
  std::atomic<std::int64_t> now_hint{std::numeric_limits<std::int64_t>::min()};

  void observe(std::int64_t now) {
    // Read first: the common case (same second) costs no write to the shared cache line.
    std::int64_t seen = now_hint.load(std::memory_order_relaxed);
    while (now > seen && !now_hint.compare_exchange_weak(seen, now, std::memory_order_relaxed)) {
    }
  }

  shard& shard_for(const std::string& digest) {
    // Bytes 8.. are independent of the bytes digest_hash uses for the bucket.
    return shards[static_cast<unsigned char>(digest[8]) % shard_count];
  }

  // Called with s.mtx held and s.map full. Drops every entry known to be expired, and at least
  // an eighth of the shard so the O(n) scan is amortised over many inserts. Entries that expire
  // soonest go first: they are the least useful, and already-expired ones are among them.
  void evict(shard& s) const {
    const std::int64_t now = now_hint.load(std::memory_order_relaxed);
    std::erase_if(s.map, [&](const auto& kv) { return kv.second.exp <= now; });
    const std::size_t target = shard_capacity - std::max<std::size_t>(1, shard_capacity / 8);
    if (s.map.size() <= target) return;
    const std::size_t drop = s.map.size() - target;
    std::vector<std::int64_t> exps;
    exps.reserve(s.map.size());
    for (const auto& kv : s.map) exps.push_back(kv.second.exp);
    std::nth_element(exps.begin(), exps.begin() + static_cast<std::ptrdiff_t>(drop - 1),
                     exps.end());
    const std::int64_t threshold = exps[drop - 1];
    // Ties at the threshold may drop slightly more than `drop`; that only frees more room.
    std::erase_if(s.map, [&](const auto& kv) { return kv.second.exp <= threshold; });
  }
};

verified_token_cache::verified_token_cache(std::size_t capacity)
    : impl_(std::make_unique<impl>(capacity)) {}

verified_token_cache::~verified_token_cache() = default;

std::shared_ptr<const verified_token> verified_token_cache::find(std::string_view token,
                                                                 std::int64_t now) const {
  // Keyed by digest so the cache never holds bearer tokens themselves.
  const std::string key = sha256(token);
  shard& s = impl_->shard_for(key);
  impl_->observe(now);
  std::lock_guard lock(s.mtx);
  const auto it = s.map.find(key);
  if (it == s.map.end()) return nullptr;
  if (it->second.exp <= now) {
    s.map.erase(it);
    return nullptr;
  }
  return it->second.claims;
}

void verified_token_cache::insert(std::string_view token,
                                  std::shared_ptr<const verified_token> claims, std::int64_t exp) {
  if (impl_->shard_capacity == 0 || !claims) return;
  std::string key = sha256(token);
  shard& s = impl_->shard_for(key);
  std::lock_guard lock(s.mtx);
  if (exp <= impl_->now_hint.load(std::memory_order_relaxed)) return;
  if (auto it = s.map.find(key); it != s.map.end()) {
    it->second = entry{std::move(claims), exp};
    return;
  }
  if (s.map.size() >= impl_->shard_capacity) impl_->evict(s);
  s.map.emplace(std::move(key), entry{std::move(claims), exp});
}

void verified_token_cache::clear() {
  for (std::size_t i = 0; i < impl_->shard_count; ++i) {
    shard& s = impl_->shards[i];
    std::lock_guard lock(s.mtx);
    s.map.clear();
  }
}

std::size_t verified_token_cache::size() const {
  std::size_t n = 0;
  for (std::size_t i = 0; i < impl_->shard_count; ++i) {
    const shard& s = impl_->shards[i];
    std::lock_guard lock(s.mtx);
    n += s.map.size();
  }
  return n;
}

}  // namespace credo::protocols
