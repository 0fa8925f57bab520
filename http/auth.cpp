// /auth/login, /auth/logout and /auth/sessions.
#include "http/front.hpp"
#include "protocols/clock.hpp"
#include "protocols/crypto.hpp"
#include "protocols/password.hpp"

namespace credo::http {

void auth_login(front_self self, front_env& env, job_ptr j) {
  auto body = json_body(j->req);
  if (!body)
    return j->respond(input_error(body));
  auto email = string_field(*body, "email", 254);
  auto password = string_field(*body, "password", 1024);
  auto client_id = string_field(*body, "client_id", 128);
  auto device = string_field(*body, "device", 200);
  if (!email || !password || !client_id || !device || !email->has_value()
      || !password->has_value())
    return j->respond(errc_response(errc::invalid_request,
                                    "email and password are required strings within limits"));
  std::string client = client_id->value_or(first_party_client);
  std::string scope = "openid profile";
  if (client != first_party_client) {
    auto c = env.ctx->stores.clients->find(client);
    if (!c)
      return j->respond(errc_response(errc::temporarily_unavailable, "client store unavailable"));
    if (!c->has_value())
      return j->respond(errc_response(errc::invalid_request, "unknown client_id"));
    std::vector<std::string> granted;
    for (auto s : {"openid", "profile"})
      if (contains((*c)->scopes, s))
        granted.emplace_back(s);
    scope = join_scope(granted);
  }
  auto found = env.ctx->stores.users->find_by_email(to_lower_ascii(**email));
  if (!found)
    return j->respond(errc_response(errc::temporarily_unavailable, "user store unavailable"));
  auto user = *found;
  // An unknown email is checked against a dummy hash: same cost as a wrong password.
  std::string hash = user ? user->password_hash : protocols::dummy_password_hash();
  self->request(env.entities.hasher, std::chrono::seconds{30},
                protocols::verify_password_atom::value, **password, hash)
    .then(
      [self, &env, j, user, client, scope, device = device->value_or("")](bool ok) {
        if (!ok || !user) {
          env.ctx->audit->record("login.failed",
                                 {user ? user->id : "", client, "", j->req.remote_ip,
                                  j->req.request_id},
                                 {{"reason", user ? "wrong_password" : "unknown_user"}});
          return j->respond(
            errc_response(errc::invalid_credentials, "email or password is not correct"));
        }
        auto sid = protocols::random_token(16);
        call<protocols::token_grant>(
          self, env, protocols::session_open{sid, user->id, client, scope, device, j->origin()}, j,
          [j](protocols::token_grant& g) {
            j->respond(token_response({{"access_token", g.access_token},
                                       {"token_type", "Bearer"},
                                       {"expires_in", g.expires_in},
                                       {"refresh_token", g.refresh_token},
                                       {"session_id", g.session_id},
                                       {"scope", g.scope}}));
          });
      },
      [j](caf::error& e) { j->respond(actor_error_response(e)); });
}

void auth_logout(front_self self, front_env& env, job_ptr j) {
  auto b = authenticate_user(env, j->req);
  if (!b)
    return j->respond(errc_response(b.error(), b.description()));
  call<bool>(self, env, protocols::session_end{b->sid, "logout", j->origin()},
             j, [j](bool) { j->respond(no_content()); });
}

void sessions_list(front_self, front_env& env, job_ptr j) {
  auto b = authenticate_user(env, j->req);
  if (!b)
    return j->respond(errc_response(b.error(), b.description()));
  auto list = env.ctx->stores.sessions->list_for_user(b->sub);
  if (!list)
    return j->respond(errc_response(errc::temporarily_unavailable, "session store unavailable"));
  auto now = unix_now();
  nlohmann::json arr = nlohmann::json::array();
  for (auto& s : *list) {
    if (s.expires_at <= now)
      continue;
    arr.push_back({{"id", s.id},
                   {"device", s.device},
                   {"ip", s.ip},
                   {"created_at", rfc3339(s.created_at)},
                   {"last_seen_at", rfc3339(s.last_seen_at)},
                   {"current", s.id == b->sid}});
  }
  j->respond(json_response(200, nlohmann::json{{"sessions", std::move(arr)}}.dump()));
}

void sessions_delete(front_self self, front_env& env, job_ptr j) {
  auto b = authenticate_user(env, j->req);
  if (!b)
    return j->respond(errc_response(b.error(), b.description()));
  auto id = std::string{j->req.path_param("id").value_or("")};
  auto rec = env.ctx->stores.sessions->load(id);
  if (!rec)
    return j->respond(errc_response(errc::temporarily_unavailable, "session store unavailable"));
  if (!rec->has_value() || (*rec)->user_id != b->sub)
    return j->respond(errc_response(errc::not_found, "no such session"));
  call<bool>(self, env, protocols::session_end{id, "deleted", j->origin()},
             j, [j](bool) { j->respond(no_content()); });
}

}  // namespace credo::http
