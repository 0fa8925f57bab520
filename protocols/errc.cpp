#include "protocols/errc.hpp"

namespace credo {

std::string_view to_string(errc x) noexcept {
  // A switch without default so -Wswitch flags a new enumerator that lacks a name.
  switch (x) {
    case errc::ok: return "ok";
    case errc::invalid_request: return "invalid_request";
    case errc::invalid_credentials: return "invalid_credentials";
    case errc::invalid_token: return "invalid_token";
    case errc::invalid_grant: return "invalid_grant";
    case errc::invalid_client: return "invalid_client";
    case errc::unauthorized_client: return "unauthorized_client";
    case errc::unsupported_grant_type: return "unsupported_grant_type";
    case errc::invalid_scope: return "invalid_scope";
    case errc::consent_required: return "consent_required";
    case errc::not_found: return "not_found";
    case errc::email_taken: return "email_taken";
    case errc::conflict: return "conflict";
    case errc::forbidden: return "forbidden";
    case errc::temporarily_unavailable: return "temporarily_unavailable";
    case errc::internal_error: return "internal_error";
    case errc::rate_limited: return "rate_limited";
  }
  // Out-of-range value received from a peer: still printable, never UB.
  return "unknown";
}

}  // namespace credo
