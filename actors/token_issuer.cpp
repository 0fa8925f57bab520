#include "actors/token_issuer.hpp"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "protocols/crypto.hpp"

namespace credo::actors {

minted_access_token mint_access_token(const node_context& ctx, const std::string& sub,
                                      const std::string& client_id, const std::string& scope,
                                      const std::string& sid, std::int64_t now,
                                      std::int64_t exp_cap) {
  minted_access_token t;
  t.jti = protocols::random_token(16);
  t.iat = now;
  t.exp = now + ctx.tokens.access_ttl;
  if (exp_cap > 0)
    t.exp = std::max(now + 1, std::min(t.exp, exp_cap));
  nlohmann::json claims = {{"iss", ctx.tokens.issuer}, {"sub", sub},   {"aud", ctx.tokens.issuer},
                           {"exp", t.exp},             {"iat", now},   {"jti", t.jti},
                           {"client_id", client_id},   {"scope", scope}};
  if (!sid.empty())
    claims["sid"] = sid;
  t.jwt = ctx.keys->sign(claims);
  return t;
}

}  // namespace credo::actors
