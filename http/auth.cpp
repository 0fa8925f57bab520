// /auth/login, /auth/logout and /auth/sessions.
#include "http/front.hpp"
#include "protocols/clock.hpp"
#include "protocols/crypto.hpp"
#include "protocols/password.hpp"

namespace credo::http {

namespace {

struct login_attempt {
  std::optional<persistence::user_record> user;
  std::string password, client, scope, device;
  std::string lockout_key, attempt_id;  // empty: lockout off
};


response lockout_response(const front_env& env, const protocols::lockout_answer& a,
                          std::string_view description) {
  limit_verdict v;
  v.allowed = false;
  v.limit = env.limits.config().lockout.threshold;
  v.remaining = 0;
  v.reset_s = (a.retry_ms + 999) / 1000;
  v.retry_after_s = v.reset_s;
  return limited_response(v, description);
}

void open_session(front_self self, front_env& env, job_ptr j,
                  const std::shared_ptr<login_attempt>& a) {
  auto sid = protocols::random_token(16);
  call<protocols::token_grant>(
    self, env, protocols::session_open{sid, a->user->id, a->client, a->scope, a->device, j->origin()},
    j, [j](protocols::token_grant& g) {
      j->respond(token_response({{"access_token", g.access_token},
                                 {"token_type", "Bearer"},
                                 {"expires_in", g.expires_in},
                                 {"refresh_token", g.refresh_token},
                                 {"session_id", g.session_id},
                                 {"scope", g.scope}}));
    });
}

void login_failed(front_env& env, const job_ptr& j, const login_attempt& a) {
  env.ctx->audit->record("login.failed",
                         {a.user ? a.user->id : "", a.client, "", j->req.remote_ip,
                          j->req.request_id},
                         {{"reason", a.user ? "wrong_password" : "unknown_user"}});
  j->respond(errc_response(errc::invalid_credentials, "email or password is not correct"));
}

/// Checks the password (an unknown email against a dummy hash: the same cost), then ends the
/// lockout attempt, if any, before answering.
void check_password(front_self self, front_env& env, job_ptr j,
                    std::shared_ptr<login_attempt> a) {
  std::string hash = a->user ? a->user->password_hash : protocols::dummy_password_hash();
  self->request(env.entities.hasher, std::chrono::seconds{30},
                protocols::verify_password_atom::value, a->password, hash)
    .then(
      [self, &env, j, a](bool ok) {
        a->password.clear();
        bool success = ok && a->user;
        if (a->attempt_id.empty())
          return success ? open_session(self, env, j, a) : login_failed(env, j, *a);
        call<protocols::lockout_answer>(
          self, env,
          protocols::lockout_end{a->lockout_key, a->attempt_id, success,
                                 env.limits.config().lockout},
          j, [self, &env, j, a, success](protocols::lockout_answer& r) {
            if (success)
              return open_session(self, env, j, a);
            if (!r.allowed) {  // this failure locked the account
              env.limits.count_lockout();
              env.ctx->audit->record(
                "login.locked_out",
                {a->user ? a->user->id : "", a->client, "", j->req.remote_ip, j->req.request_id},
                {{"locked_seconds", (r.retry_ms + 999) / 1000}, {"lockouts", r.lockouts},
                 {"known_user", a->user.has_value()}});
            }
            login_failed(env, j, *a);
          });
      },
      [j](caf::error& e) { j->respond(actor_error_response(e)); });
}

}  // namespace

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
    // A password login is a password grant: only for the operator's own (first-party) clients,
    // and a confidential one proves who it is (RFC 9700 2.4). Others use /auth/authorize.
    auto secret = string_field(*body, "client_secret", 512);
    if (!secret)
      return j->respond(errc_response(errc::invalid_request, "client_secret must be a string"));
    fields credentials{{"client_id", client}};
    if (secret->has_value())
      credentials.emplace_back("client_secret", **secret);
    auto authenticated = authenticate_client(env, j->req, credentials);
    if (!authenticated)
      return j->respond(client_error_response(authenticated, j->req));
    if (!authenticated->client.first_party)
      return j->respond(errc_response(
        errc::unauthorized_client,
        "this client may not log users in with a password: use the authorization code flow"));
    std::vector<std::string> granted;
    for (auto s : {"openid", "profile"})
      if (contains(authenticated->client.scopes, s))
        granted.emplace_back(s);
    scope = join_scope(granted);
  }
  auto email_key = to_lower_ascii(**email);
  auto found = env.ctx->stores.users->find_by_email(email_key);
  if (!found)
    return j->respond(errc_response(errc::temporarily_unavailable, "user store unavailable"));
  auto attempt = std::make_shared<login_attempt>();
  attempt->user = std::move(*found);
  attempt->password = std::move(**password);
  attempt->client = std::move(client);
  attempt->scope = std::move(scope);
  attempt->device = device->value_or("");
  auto& limits = env.limits.config();
  if (!limits.lockout_enabled)
    return check_password(self, env, j, attempt);
  // The lockout belongs to the email, known or not: the answers do not tell which exists.
  attempt->lockout_key = "lockout:" + protocols::sha256_hex(email_key).substr(0, 32);
  attempt->attempt_id = protocols::random_token(12);
  call<protocols::lockout_answer>(
    self, env, protocols::lockout_begin{attempt->lockout_key, attempt->attempt_id, limits.lockout},
    j, [self, &env, j, attempt](protocols::lockout_answer& a) {
      if (!a.allowed) {
        env.limits.count_denial(lockout_rule);
        return j->respond(lockout_response(env, a, "too many failed logins; retry later"));
      }
      check_password(self, env, j, attempt);
    });
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
