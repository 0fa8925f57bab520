#pragma once
// The error vocabulary shared by every module. Values cross actor and node boundaries
// (see messages.hpp: CAF_ERROR_CODE_ENUM), so never renumber: append only.
#include <cstdint>
#include <string_view>

namespace credo {

enum class errc : std::uint8_t {
  ok = 0,
  invalid_request,          // malformed or out-of-range input (400)
  invalid_credentials,      // login: unknown user or wrong password (401)
  invalid_token,            // bearer token missing, bad, expired or revoked (401)
  invalid_grant,            // RFC 6749 5.2 (400)
  invalid_client,           // RFC 6749 5.2 client authentication failed (401)
  unauthorized_client,      // RFC 6749 5.2 (400)
  unsupported_grant_type,   // RFC 6749 5.2 (400)
  invalid_scope,            // RFC 6749 5.2 (400)
  consent_required,         // user has not consented to a scope (403 / redirect)
  not_found,                // entity does not exist or is not the caller's (404)
  email_taken,              // registration conflict (409)
  conflict,                 // other uniqueness conflicts (409)
  forbidden,                // authenticated but not allowed (403)
  temporarily_unavailable,  // entity crashed, store down, deadline passed (503)
  internal_error,           // broken invariant (500)
  rate_limited,             // 429
};

std::string_view to_string(errc x) noexcept;

}  // namespace credo
