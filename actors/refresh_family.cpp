#include "actors/refresh_family.hpp"

#include <algorithm>

namespace credo::actors {

bool family_knows(const persistence::refresh_family_record& family, std::string_view hash) {
  if (hash.empty())
    return false;
  if (family.current_hash == hash || family.previous_hash == hash)
    return true;
  auto fp = fingerprint(hash);
  return std::find(family.used_fingerprints.begin(), family.used_fingerprints.end(), fp)
         != family.used_fingerprints.end();
}

refresh_outcome decide_refresh(const persistence::refresh_family_record& family,
                               std::string_view presented_hash, std::int64_t now,
                               std::int64_t grace_seconds, bool successor_cached) {
  if (family.revoked || presented_hash.empty())
    return refresh_outcome::invalid;
  if (family.consent_expires_at > 0 && family.consent_expires_at <= now)
    return refresh_outcome::invalid;
  if (presented_hash == family.current_hash)
    return refresh_outcome::rotate;
  if (presented_hash == family.previous_hash && grace_seconds > 0
      && now - family.rotated_at <= grace_seconds)
    // Without the cached successor (entity restarted) the replay is refused, not punished.
    return successor_cached ? refresh_outcome::grace_replay : refresh_outcome::invalid;
  if (family_knows(family, presented_hash))
    return refresh_outcome::reuse;
  return refresh_outcome::invalid;
}

void apply_rotation(persistence::refresh_family_record& family, std::string new_hash,
                    std::int64_t now) {
  family.used_fingerprints.emplace_back(fingerprint(family.current_hash));
  if (family.used_fingerprints.size() > max_used_fingerprints)
    family.used_fingerprints.erase(family.used_fingerprints.begin());
  family.previous_hash = std::move(family.current_hash);
  family.current_hash = std::move(new_hash);
  family.rotated_at = now;
}

void prune_access_tokens(persistence::refresh_family_record& family, std::int64_t now) {
  std::erase_if(family.access_tokens, [now](auto& t) { return t.exp < now; });
}

}  // namespace credo::actors
