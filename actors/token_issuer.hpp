#pragma once
// Mints RFC 9068 access tokens. Called from session actors (login, refresh, code grants) and
// from front handlers (client_credentials, which has no session).
#include <cstdint>
#include <string>

#include "actors/context.hpp"

namespace credo::actors {

struct minted_access_token {
  std::string jwt;
  std::string jti;
  std::int64_t iat = 0;
  std::int64_t exp = 0;
};

/// `sid` empty for client_credentials. `exp_cap` (0: none) bounds exp, e.g. by consent expiry.
minted_access_token mint_access_token(const node_context& ctx, const std::string& sub,
                                      const std::string& client_id, const std::string& scope,
                                      const std::string& sid, std::int64_t now,
                                      std::int64_t exp_cap = 0);

}  // namespace credo::actors
