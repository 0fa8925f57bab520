// /auth/consent: grant, list, revoke. Only first-party tokens (the user acting through Credo
// itself) may change consent: a third-party client must not grant itself scopes.
#include "http/front.hpp"
#include "protocols/clock.hpp"

namespace credo::http {
namespace {

nlohmann::json consent_json(const persistence::consent_record& c) {
  auto t = [](std::int64_t v) { return v ? nlohmann::json(rfc3339(v)) : nlohmann::json(nullptr); };
  return {{"client_id", c.client_id},
          {"scope", c.scope},
          {"granted_at", rfc3339(c.granted_at)},
          {"expires_at", t(c.expires_at)},
          {"revoked_at", t(c.revoked_at)}};
}

response consents_response(const std::vector<persistence::consent_record>& records) {
  nlohmann::json arr = nlohmann::json::array();
  for (auto& r : records)
    arr.push_back(consent_json(r));
  return json_response(200, nlohmann::json{{"consents", std::move(arr)}}.dump());
}

}  // namespace

void consent_grant(front_self self, front_env& env, job_ptr j) {
  auto b = authenticate_user(env, j->req);
  if (!b)
    return j->respond(errc_response(b.error(), b.description()));
  auto body = json_body(j->req);
  if (!body)
    return j->respond(input_error(body));
  auto client_id = string_field(*body, "client_id", 128);
  if (!client_id || !client_id->has_value())
    return j->respond(errc_response(errc::invalid_request, "client_id is required"));
  auto scopes_it = body->find("scopes");
  if (scopes_it == body->end() || !scopes_it->is_array() || scopes_it->empty()
      || scopes_it->size() > 32)
    return j->respond(errc_response(errc::invalid_request, "scopes must be a non-empty array"));
  std::vector<std::string> scopes;
  for (auto& s : *scopes_it) {
    if (!s.is_string() || !valid_scope_token(s.get_ref<const std::string&>()))
      return j->respond(errc_response(errc::invalid_request, "scopes must be scope strings"));
    if (!contains(scopes, s.get<std::string>()))
      scopes.push_back(s.get<std::string>());
  }
  std::int64_t expires_in = 0;
  if (auto e = body->find("expires_in"); e != body->end() && !e->is_null()) {
    if (!e->is_number_integer() || e->get<std::int64_t>() <= 0
        || e->get<std::int64_t>() > 10LL * 365 * 86400)
      return j->respond(
        errc_response(errc::invalid_request, "expires_in must be a positive number of seconds"));
    expires_in = e->get<std::int64_t>();
  }
  auto client = env.ctx->stores.clients->find(**client_id);
  if (!client)
    return j->respond(errc_response(errc::temporarily_unavailable, "client store unavailable"));
  if (!client->has_value() || **client_id == first_party_client)
    return j->respond(errc_response(errc::invalid_request, "unknown client_id"));
  for (auto& s : scopes)
    if (!contains((*client)->scopes, s))
      return j->respond(errc_response(errc::invalid_scope, "scope is not registered for client"));
  call<protocols::consent_list>(
    self, env, protocols::consent_grant{b->sub, **client_id, scopes, expires_in, j->origin()}, j,
    [j](protocols::consent_list& l) { j->respond(consents_response(l.records)); });
}

void consent_list(front_self self, front_env& env, job_ptr j) {
  auto b = authenticate_user(env, j->req);
  if (!b)
    return j->respond(errc_response(b.error(), b.description()));
  call<protocols::consent_list>(self, env, protocols::consent_query{b->sub}, j,
                                [j](protocols::consent_list& l) {
                                  j->respond(consents_response(l.records));
                                });
}

void consent_delete(front_self self, front_env& env, job_ptr j) {
  auto b = authenticate_user(env, j->req);
  if (!b)
    return j->respond(errc_response(b.error(), b.description()));
  auto client_id = std::string{j->req.path_param("client_id").value_or("")};
  auto scope = std::string{j->req.path_param("scope").value_or("")};
  if (client_id.size() > 128 || !valid_scope_token(scope))
    return j->respond(errc_response(errc::not_found, "no such consent"));
  call<bool>(self, env, protocols::consent_revoke{b->sub, client_id, scope, j->origin()}, j,
             [j](bool) { j->respond(no_content()); });
}

}  // namespace credo::http
