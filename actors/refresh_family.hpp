#pragma once
// The refresh-token rotation state machine of one grant (token family). Pure: the session
// actor calls it while handling one message at a time, which is what makes rotation, reuse
// detection and the grace decision atomic per family.
#include <cstdint>
#include <string>
#include <string_view>

#include "persistence/records.hpp"

namespace credo::actors {

enum class refresh_outcome {
  rotate,        // presented the current token: issue a successor
  grace_replay,  // presented the token just rotated, inside the grace period: same successor
  reuse,         // presented an already-used token: revoke the family
  invalid,       // unknown to this family, or the family is revoked or expired
};

/// How many used-token fingerprints a family remembers for reuse detection.
inline constexpr std::size_t max_used_fingerprints = 256;

/// The first 16 hex chars of a token hash: enough to recognise a replayed token.
inline std::string_view fingerprint(std::string_view hash) { return hash.substr(0, 16); }

/// True if `hash` belongs to this family (current, previous or used).
bool family_knows(const persistence::refresh_family_record& family, std::string_view hash);

/// Decides what a refresh with `presented_hash` does. `successor_cached` tells whether the
/// actor still holds the successor pair of the last rotation (needed for a grace replay).
refresh_outcome decide_refresh(const persistence::refresh_family_record& family,
                               std::string_view presented_hash, std::int64_t now,
                               std::int64_t grace_seconds, bool successor_cached);

/// Applies a rotation: current becomes previous (and used), `new_hash` becomes current.
void apply_rotation(persistence::refresh_family_record& family, std::string new_hash,
                    std::int64_t now);

/// Drops access-token entries that expired before `now`.
void prune_access_tokens(persistence::refresh_family_record& family, std::int64_t now);

}  // namespace credo::actors
