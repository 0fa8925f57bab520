#pragma once
// JSON forms of the records, for stores that keep documents (Redis values, PostgreSQL jsonb).
#include <nlohmann/json.hpp>

#include "persistence/records.hpp"

namespace credo::protocols {
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(token_bucket, units, updated_ms)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(lockout_state::attempt, id, expires_ms)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(lockout_state, failures, attempts, level,
                                                locked_until_ms)
}  // namespace credo::protocols

namespace credo::persistence {

NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(issued_access_token, jti, exp)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(refresh_family_record, family_id, client_id, scope,
                                                current_hash, previous_hash, used_fingerprints,
                                                rotated_at, created_at, consent_expires_at,
                                                revoked, access_tokens, rotation_event_id,
                                                rotation_attempt)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(session_record, id, user_id, device, ip,
                                                created_at, last_seen_at, expires_at, families,
                                                revoked_family_ids, revision)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(authorization_code_record, code_hash, client_id,
                                                redirect_uri, scope, code_challenge, user_id,
                                                session_id, expires_at, consent_expires_at, used)

NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(bucket_record, bucket, lockout)

}  // namespace credo::persistence
