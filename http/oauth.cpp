// OAuth 2 endpoints: /auth/authorize (code + PKCE S256), /auth/token (authorization_code,
// refresh_token, client_credentials), /auth/revoke (RFC 7009), refresh-token introspection.
#include <unordered_set>

#include "actors/token_issuer.hpp"
#include "http/front.hpp"
#include "protocols/clock.hpp"
#include "protocols/crypto.hpp"

namespace credo::http {
namespace {

/// Asks the consent entity whether the user consented; counts refusals and failed checks.
template <class OnOk>
void check_consent(front_self self, front_env& env, job_ptr j, actors::consent_stage stage,
                   protocols::consent_check msg, OnOk on_ok) {
  auto* metrics = env.ctx->metrics.get();
  call<protocols::consent_check_result>(
    self, env, std::move(msg), j,
    [metrics, stage, on_ok = std::move(on_ok)](protocols::consent_check_result& c) mutable {
      if (!c.granted)
        metrics->consent_gating_failure(stage, false);
      on_ok(c);
    },
    [metrics, stage] { metrics->consent_gating_failure(stage, true); });
}

response redirect(const std::string& uri, const fields& params) {
  std::string location = uri;
  char sep = uri.find('?') == std::string::npos ? '?' : '&';
  for (auto& [k, v] : params) {
    if (v.empty() && k == "state")
      continue;
    location.push_back(sep);
    location += url_encode(k);
    location.push_back('=');
    location += url_encode(v);
    sep = '&';
  }
  response r;
  r.status = 302;
  r.content_type.clear();
  r.headers.emplace_back("Location", std::move(location));
  r.headers.emplace_back("Cache-Control", "no-store");
  return r;
}

nlohmann::json grant_json(const protocols::token_grant& g, bool with_refresh) {
  nlohmann::json out = {{"access_token", g.access_token},
                        {"token_type", "Bearer"},
                        {"expires_in", g.expires_in},
                        {"scope", g.scope}};
  if (with_refresh && !g.refresh_token.empty())
    out["refresh_token"] = g.refresh_token;
  return out;
}

bool looks_like_jwt(std::string_view t) {
  return std::count(t.begin(), t.end(), '.') == 2;
}

void grant_authorization_code(front_self self, front_env& env, job_ptr j, const fields& form,
                              const persistence::client_record& client) {
  auto code = find(form, "code");
  auto redirect_uri = find(form, "redirect_uri");
  auto verifier = find(form, "code_verifier");
  if (!code || !redirect_uri || !verifier)
    return j->respond(errc_response(errc::invalid_request,
                                    "code, redirect_uri and code_verifier are required"));
  if (code->size() > 256)
    return j->respond(errc_response(errc::invalid_grant, "authorization code is invalid"));
  if (!contains(client.grant_types, "authorization_code"))
    return j->respond(errc_response(errc::unauthorized_client,
                                    "client may not use the authorization_code grant"));
  auto hash = protocols::sha256_hex(*code);
  auto consumed = env.ctx->stores.codes->consume(hash);
  if (!consumed)
    return j->respond(errc_response(errc::temporarily_unavailable, "code store unavailable"));
  if (!consumed->has_value())
    return j->respond(errc_response(errc::invalid_grant, "authorization code is invalid"));
  auto rec = **consumed;
  if (rec.used) {
    // RFC 6749 4.1.2: a code used twice revokes what it issued.
    protocols::session_revoke_family revoke{rec.session_id, "", rec.code_hash, "", j->origin()};
    auto dest = route_to(env, revoke);
    self->request(dest.registry, env.options.deadline, std::move(revoke));
    return j->respond(errc_response(errc::invalid_grant, "authorization code was already used"));
  }
  if (rec.expires_at <= unix_now() || rec.client_id != client.client_id
      || rec.redirect_uri != *redirect_uri)
    return j->respond(errc_response(errc::invalid_grant, "authorization code is invalid"));
  if (!protocols::pkce_s256_matches(*verifier, rec.code_challenge))
    return j->respond(errc_response(errc::invalid_grant, "code_verifier does not match"));
  auto with_refresh = contains(client.grant_types, "refresh_token");
  check_consent(
    self, env, j, actors::consent_stage::code_exchange,
    protocols::consent_check{rec.user_id, rec.client_id, split_scope(rec.scope)},
    [self, &env, j, rec, with_refresh](protocols::consent_check_result& c) {
      if (!c.granted)
        return j->respond(errc_response(errc::invalid_grant, "consent is no longer granted"));
      call<protocols::token_grant>(
        self, env, protocols::session_add_family{rec.session_id, rec.code_hash, rec.client_id, rec.scope,
                                      c.expires_at, j->origin()},
        j, [j, with_refresh](protocols::token_grant& g) {
          j->respond(token_response(grant_json(g, with_refresh)));
        });
    });
}

void grant_refresh_token(front_self self, front_env& env, job_ptr j, const fields& form,
                         const persistence::client_record& client) {
  auto token = find(form, "refresh_token");
  if (!token || token->empty())
    return j->respond(errc_response(errc::invalid_request, "refresh_token is required"));
  if (token->size() > 256)
    return j->respond(errc_response(errc::invalid_grant, "refresh token is invalid"));
  if (!contains(client.grant_types, "refresh_token"))
    return j->respond(
      errc_response(errc::unauthorized_client, "client may not use the refresh_token grant"));
  auto hash = protocols::sha256_hex(*token);
  auto sid = env.ctx->stores.sessions->find_by_refresh_hash(hash);
  if (!sid)
    return j->respond(errc_response(errc::temporarily_unavailable, "session store unavailable"));
  if (!sid->has_value())
    return j->respond(errc_response(errc::invalid_grant, "refresh token is invalid"));
  auto refresh = [self, &env, j](protocols::session_refresh msg) {
    call<protocols::token_grant>(self, env, std::move(msg), j,
                                 [j](protocols::token_grant& g) {
                                   j->respond(token_response(grant_json(g, true)));
                                 });
  };
  protocols::session_refresh msg{**sid, hash, client.client_id, false, 0, j->origin()};
  if (client.client_id == first_party_client)
    return refresh(std::move(msg));
  // Third-party grant: consent is checked now, not only when the grant was made, so a consent
  // that was revoked or re-granted with a shorter expiry is honoured. A token that is not
  // current goes straight to the session, which detects reuse.
  call<protocols::refresh_info>(
    self, env, protocols::session_inspect_refresh{**sid, hash}, j,
    [self, &env, j, msg, refresh](protocols::refresh_info& info) mutable {
      if (!info.active || info.client_id != msg.client_id)
        return refresh(std::move(msg));
      check_consent(
        self, env, j, actors::consent_stage::refresh,
        protocols::consent_check{info.sub, info.client_id, split_scope(info.scope)},
        [j, msg, refresh](protocols::consent_check_result& c) mutable {
          if (!c.granted)
            return j->respond(errc_response(errc::invalid_grant, "consent is no longer granted"));
          msg.consent_checked = true;
          msg.consent_expires_at = c.expires_at;
          refresh(std::move(msg));
        });
    });
}

void grant_client_credentials(front_self self, front_env& env, job_ptr j, const fields& form,
                              const persistence::client_record& client) {
  if (client.is_public() || !contains(client.grant_types, "client_credentials"))
    return j->respond(errc_response(errc::unauthorized_client,
                                    "client may not use the client_credentials grant"));
  std::vector<std::string> scopes = client.scopes;
  if (auto requested = find(form, "scope")) {
    scopes = split_scope(*requested);
    for (auto& s : scopes)
      if (!contains(client.scopes, s))
        return j->respond(errc_response(errc::invalid_scope, "scope is not allowed for client"));
  }
  auto now = unix_now();
  auto scope = join_scope(scopes);
  auto at = actors::mint_access_token(*env.ctx, client.client_id, client.client_id, scope, "", now);
  // The token is handed out only once its event is stored (a group commit of the audit writer).
  auto event = env.ctx->audit->make("token.issued",
                                    {client.client_id, client.client_id, "", j->req.remote_ip,
                                     j->req.request_id},
                                    {{"grant_type", "client_credentials"}, {"scope", scope},
                                     {"jti", at.jti}});
  auto respond = [j, at, scope, expires_in = at.exp - now](bool = true) {
    j->respond(token_response({{"access_token", at.jwt},
                               {"token_type", "Bearer"},
                               {"expires_in", expires_in},
                               {"scope", scope}}));
  };
  if (env.ctx->group_commit_audit) {
    self->request(env.entities.audit_writer, env.options.deadline,
                  protocols::audit_append{{std::move(event)}})
      .then(respond, [j](caf::error& e) { j->respond(actor_error_response(e)); });
    return;
  }
  if (!env.ctx->stores.audit->append({std::move(event)}))
    return j->respond(errc_response(errc::temporarily_unavailable, "audit store unavailable"));
  respond();
}

}  // namespace

void oauth_authorize(front_self self, front_env& env, job_ptr j) {
  auto b = authenticate_user(env, j->req);
  if (!b)
    return j->respond(errc_response(b.error(), b.description()));
  const auto& req = j->req;
  // RFC 6749 3.1: a parameter sent twice makes the request invalid (which one would count is
  // exactly what an attacker who can append to the URL would like to choose).
  std::string repeated;
  std::unordered_set<std::string_view> seen;
  for (auto& [name, value] : req.query)
    if (!seen.insert(name).second) {
      repeated = name.substr(0, 64);
      break;
    }
  if (repeated == "client_id" || repeated == "redirect_uri")
    return j->respond(errc_response(errc::invalid_request, repeated + " is repeated"));
  auto client_id = req.query_param("client_id");
  auto redirect_uri = req.query_param("redirect_uri");
  if (!client_id || !redirect_uri || client_id->size() > 128 || redirect_uri->size() > 2048)
    return j->respond(errc_response(errc::invalid_request, "client_id and redirect_uri are required"));
  auto found = env.ctx->stores.clients->find(std::string{*client_id});
  if (!found)
    return j->respond(errc_response(errc::temporarily_unavailable, "client store unavailable"));
  if (!found->has_value() || !contains((*found)->redirect_uris, *redirect_uri))
    return j->respond(
      errc_response(errc::invalid_request, "unknown client_id or unregistered redirect_uri"));
  auto client = **found;
  std::string uri{*redirect_uri};
  std::string state{req.query_param("state").value_or("")};
  if (state.size() > 1024)
    state.clear();
  auto fail = [&](std::string_view error, std::string_view description) {
    j->respond(redirect(uri, {{"error", std::string{error}},
                              {"error_description", std::string{description}},
                              {"state", state},
                              {"iss", env.ctx->tokens.issuer}}));
  };
  if (!repeated.empty())
    return fail("invalid_request", "parameter " + repeated + " is repeated");
  if (req.query_param("response_type").value_or("") != "code")
    return fail("unsupported_response_type", "only response_type=code is supported");
  if (!contains(client.grant_types, "authorization_code"))
    return fail("unauthorized_client", "client may not use the authorization_code grant");
  auto challenge = req.query_param("code_challenge");
  if (!challenge || req.query_param("code_challenge_method").value_or("") != "S256"
      || !protocols::pkce_valid_challenge(*challenge))
    return fail("invalid_request", "PKCE with code_challenge_method=S256 is required");
  auto scopes = split_scope(req.query_param("scope").value_or(""));
  if (scopes.empty() || scopes.size() > 32)
    return fail("invalid_scope", "scope is required");
  for (auto& s : scopes)
    if (!valid_scope_token(s) || !contains(client.scopes, s))
      return fail("invalid_scope", "scope is not allowed for this client");
  auto code_rec = std::make_shared<persistence::authorization_code_record>();
  code_rec->client_id = client.client_id;
  code_rec->redirect_uri = uri;
  code_rec->scope = join_scope(scopes);
  code_rec->code_challenge = std::string{*challenge};
  code_rec->user_id = b->sub;
  code_rec->session_id = b->sid;
  check_consent(
    self, env, j, actors::consent_stage::authorize,
    protocols::consent_check{b->sub, client.client_id, scopes},
    [&env, j, code_rec, uri, state](protocols::consent_check_result& c) {
      auto iss = env.ctx->tokens.issuer;
      if (!c.granted)
        return j->respond(redirect(uri, {{"error", "consent_required"},
                                         {"error_description",
                                          "the user has not consented to: " + join_scope(c.missing)},
                                         {"state", state},
                                         {"iss", iss}}));
      auto code = protocols::random_token(32);
      code_rec->code_hash = protocols::sha256_hex(code);
      code_rec->expires_at = unix_now() + env.ctx->tokens.code_ttl;
      code_rec->consent_expires_at = c.expires_at;
      if (!env.ctx->stores.codes->put(*code_rec))
        return j->respond(errc_response(errc::temporarily_unavailable, "code store unavailable"));
      j->respond(redirect(uri, {{"code", code}, {"state", state}, {"iss", iss}}));
    });
}

void oauth_token(front_self self, front_env& env, job_ptr j) {
  auto form = form_body(j->req);
  if (!form)
    return j->respond(input_error(form));
  auto grant_type_view = find(*form, "grant_type");
  if (!grant_type_view)
    return j->respond(errc_response(errc::invalid_request, "grant_type is required"));
  // A copy: `form` may grow below, which would leave a view dangling.
  const std::string grant_type{*grant_type_view};
  if (grant_type != "authorization_code" && grant_type != "refresh_token"
      && grant_type != "client_credentials")
    return j->respond(errc_response(errc::unsupported_grant_type, "unsupported grant_type"));
  // API.md: first-party tokens refresh "with no client authentication" at all.
  bool anonymous = !find(*form, "client_id") && !find(*form, "client_secret")
                   && !j->req.header("authorization");
  if (anonymous && grant_type == "refresh_token")
    form->emplace_back("client_id", first_party_client);
  auto client = authenticate_client(env, j->req, *form);
  if (!client)
    return j->respond(client_error_response(client, j->req));
  if (grant_type == "authorization_code")
    grant_authorization_code(self, env, j, *form, client->client);
  else if (grant_type == "refresh_token")
    grant_refresh_token(self, env, j, *form, client->client);
  else
    grant_client_credentials(self, env, j, *form, client->client);
}

void oauth_revoke(front_self self, front_env& env, job_ptr j) {
  auto form = form_body(j->req);
  if (!form)
    return j->respond(input_error(form));
  auto client = authenticate_client(env, j->req, *form);
  if (!client)
    return j->respond(client_error_response(client, j->req));
  auto token = find(*form, "token");
  if (!token)
    return j->respond(errc_response(errc::invalid_request, "token is required"));
  auto ok = [] { return json_response(200, "{}"); };
  if (token->empty() || token->size() > 4096)
    return j->respond(ok());
  const auto& client_id = client->client.client_id;
  if (looks_like_jwt(*token)) {
    auto now = unix_now();
    auto v = env.ctx->keys->verify(*token, {env.ctx->tokens.issuer, now,
                                            env.ctx->tokens.clock_skew});
    if (v && v.claims->value("client_id", std::string{}) == client_id) {
      auto jti = (*v.claims)["jti"].get<std::string>();
      auto exp = (*v.claims)["exp"].get<std::int64_t>();
      if (!env.ctx->stores.revocations->revoke_token(jti, exp))
        return j->respond(
          errc_response(errc::temporarily_unavailable, "revocation store unavailable"));
      env.ctx->audit->record("token.revoked",
                             {(*v.claims)["sub"].get<std::string>(), client_id,
                              v.claims->value("sid", std::string{}), j->req.remote_ip,
                              j->req.request_id},
                             {{"what", "access_token"}, {"jti", jti}});
    }
    return j->respond(ok());
  }
  auto hash = protocols::sha256_hex(*token);
  auto sid = env.ctx->stores.sessions->find_by_refresh_hash(hash);
  if (!sid)
    return j->respond(errc_response(errc::temporarily_unavailable, "session store unavailable"));
  if (!sid->has_value())
    return j->respond(ok());
  call<bool>(self, env, protocols::session_revoke_family{**sid, hash, "", client_id, j->origin()}, j,
             [j, ok](bool) { j->respond(ok()); });
}

void oauth_introspect_refresh(front_self self, front_env& env, job_ptr j, std::string token) {
  auto inactive = [] { return token_response({{"active", false}}); };
  if (token.empty() || token.size() > 256)
    return j->respond(inactive());
  auto hash = protocols::sha256_hex(token);
  auto sid = env.ctx->stores.sessions->find_by_refresh_hash(hash);
  if (!sid)
    return j->respond(errc_response(errc::temporarily_unavailable, "session store unavailable"));
  if (!sid->has_value())
    return j->respond(inactive());
  call<protocols::refresh_info>(
    self, env, protocols::session_inspect_refresh{**sid, hash}, j,
    [j, inactive, &env, hash](protocols::refresh_info& info) {
      if (!info.active)
        return j->respond(inactive());
      j->respond(token_response({{"active", true},
                                 {"sub", info.sub},
                                 {"client_id", info.client_id},
                                 {"scope", info.scope},
                                 {"exp", info.exp},
                                 {"iat", info.iat},
                                 {"sid", info.session_id},
                                 {"iss", env.ctx->tokens.issuer},
                                 {"jti", hash.substr(0, 32)},
                                 {"token_type", "refresh_token"}}));
    });
}

}  // namespace credo::http
