// /users and /me: registration, profile, password change, erasure (GDPR art. 17), export
// (art. 15/20).
#include <algorithm>
#include <cctype>

#include "http/front.hpp"
#include "protocols/clock.hpp"
#include "protocols/crypto.hpp"

namespace credo::http {
namespace {

bool valid_email(const std::string& e) {
  if (e.size() < 3 || e.size() > 254)
    return false;
  auto at = e.find('@');
  if (at == std::string::npos || at == 0 || e.find('@', at + 1) != std::string::npos)
    return false;
  auto domain = std::string_view{e}.substr(at + 1);
  auto dot = domain.rfind('.');
  if (dot == std::string_view::npos || dot == 0 || dot + 1 >= domain.size())
    return false;
  return std::none_of(e.begin(), e.end(), [](unsigned char c) {
    return c <= 0x20 || c == 0x7F || c == '<' || c == '>' || c == '"' || c == ',';
  });
}

bool valid_password(const std::string& p) { return p.size() >= 8 && p.size() <= 1024; }

nlohmann::json user_json(const persistence::user_record& u) {
  return {{"id", u.id},
          {"email", u.email},
          {"name", u.name},
          {"created_at", rfc3339(u.created_at)},
          {"updated_at", rfc3339(u.updated_at)}};
}

actors::audit_fields fields_of(const job& j, const std::string& subject,
                               const std::string& sid = {}) {
  return {subject, "", sid, j.req.remote_ip, j.req.request_id};
}

/// Loads the bearer's user or answers 401.
std::optional<persistence::user_record> load_user(front_env& env, job& j, const bearer& b) {
  auto u = env.ctx->stores.users->find_by_id(b.sub);
  if (!u) {
    j.respond(errc_response(errc::temporarily_unavailable, "user store unavailable"));
    return std::nullopt;
  }
  if (!u->has_value()) {
    j.respond(errc_response(errc::invalid_token, "the user no longer exists"));
    return std::nullopt;
  }
  return std::move(**u);
}

/// Ends every session of `user_id` except `keep_sid`, then calls `done`.
void end_sessions(front_self self, front_env& env, job_ptr j, const std::string& user_id,
                  const std::string& keep_sid, const std::string& reason,
                  std::function<void()> done) {
  auto list = env.ctx->stores.sessions->list_for_user(user_id);
  if (!list) {
    j->respond(errc_response(errc::temporarily_unavailable, "session store unavailable"));
    return;
  }
  auto remaining = std::make_shared<std::size_t>(0);
  std::vector<std::string> ids;
  for (auto& s : *list)
    if (s.id != keep_sid)
      ids.push_back(s.id);
  if (ids.empty()) {
    done();
    return;
  }
  *remaining = ids.size();
  for (auto& id : ids)
    call<bool>(self, env, protocols::session_end{id, reason, j->origin()}, j,
               [remaining, done](bool) {
                 if (--*remaining == 0)
                   done();
               });
}

}  // namespace

void users_create(front_self self, front_env& env, job_ptr j) {
  auto body = json_body(j->req);
  if (!body)
    return j->respond(input_error(body));
  auto email = string_field(*body, "email", 254);
  auto password = string_field(*body, "password", 1024);
  auto name = string_field(*body, "name", 200);
  if (!email || !password || !name)
    return j->respond(errc_response(errc::invalid_request,
                                    "email, password and name must be strings within limits"));
  if (!email->has_value() || !valid_email(**email))
    return j->respond(errc_response(errc::invalid_request, "a valid email is required"));
  if (!password->has_value() || !valid_password(**password))
    return j->respond(
      errc_response(errc::invalid_request, "password must be 8 to 1024 characters"));
  auto user = std::make_shared<persistence::user_record>();
  user->id = protocols::uuid_v4();
  user->email = to_lower_ascii(**email);
  user->name = name->value_or("");
  // Cheap pre-check so that a taken email does not cost a hash; create() decides for real.
  if (auto existing = env.ctx->stores.users->find_by_email(user->email);
      existing && existing->has_value())
    return j->respond(errc_response(errc::email_taken, "that email is already registered"));
  self->request(env.entities.hasher, std::chrono::seconds{30},
                protocols::hash_password_atom::value, **password)
    .then(
      [&env, j, user](std::string& hash) {
        user->password_hash = std::move(hash);
        user->created_at = user->updated_at = unix_now();
        auto st = env.ctx->stores.users->create(
          *user, {env.ctx->audit->make("user.registered", fields_of(*j, user->id))});
        if (!st)
          return j->respond(errc_response(st.error(), st.error() == errc::email_taken
                                                        ? "that email is already registered"
                                                        : "user store unavailable"));
        j->respond(json_response(201, user_json(*user).dump()));
      },
      [j](caf::error& e) { j->respond(actor_error_response(e)); });
}

void me_get(front_self, front_env& env, job_ptr j) {
  auto b = authenticate_user(env, j->req);
  if (!b)
    return j->respond(errc_response(b.error(), b.description()));
  if (auto u = load_user(env, *j, *b))
    j->respond(json_response(200, user_json(*u).dump()));
}

void me_patch(front_self self, front_env& env, job_ptr j) {
  auto b = authenticate_user(env, j->req);
  if (!b)
    return j->respond(errc_response(b.error(), b.description()));
  auto body = json_body(j->req);
  if (!body)
    return j->respond(input_error(body));
  auto name = string_field(*body, "name", 200);
  auto password = string_field(*body, "password", 1024);
  auto current = string_field(*body, "current_password", 1024);
  if (!name || !password || !current)
    return j->respond(errc_response(errc::invalid_request, "fields must be strings within limits"));
  if (password->has_value() && !valid_password(**password))
    return j->respond(
      errc_response(errc::invalid_request, "password must be 8 to 1024 characters"));
  if (!current->has_value())
    return j->respond(errc_response(errc::invalid_request, "current_password is required"));
  auto u = load_user(env, *j, *b);
  if (!u)
    return;
  auto user = std::make_shared<persistence::user_record>(std::move(*u));
  auto new_name = *name;
  auto new_password = *password;
  auto sid = b->sid;
  self->request(env.entities.hasher, std::chrono::seconds{30},
                protocols::verify_password_atom::value, **current, user->password_hash)
    .then(
      [self, &env, j, user, new_name, new_password, sid](bool ok) {
        if (!ok)
          return j->respond(
            errc_response(errc::invalid_credentials, "current_password is not correct"));
        auto finish = [self, &env, j, user, new_password, sid] {
          user->updated_at = unix_now();
          auto st = env.ctx->stores.users->update(
            *user, {env.ctx->audit->make("user.updated", fields_of(*j, user->id, sid),
                                         {{"password_changed", new_password.has_value()}})});
          if (!st)
            return j->respond(errc_response(st.error(), "user store unavailable"));
          if (!new_password)
            return j->respond(json_response(200, user_json(*user).dump()));
          end_sessions(self, env, j, user->id, sid, "password_changed",
                       [j, user] { j->respond(json_response(200, user_json(*user).dump())); });
        };
        if (new_name)
          user->name = *new_name;
        if (!new_password)
          return finish();
        self->request(env.entities.hasher, std::chrono::seconds{30},
                      protocols::hash_password_atom::value, *new_password)
          .then(
            [user, finish](std::string& hash) {
              user->password_hash = std::move(hash);
              finish();
            },
            [j](caf::error& e) { j->respond(actor_error_response(e)); });
      },
      [j](caf::error& e) { j->respond(actor_error_response(e)); });
}

void me_delete(front_self self, front_env& env, job_ptr j) {
  auto b = authenticate_user(env, j->req);
  if (!b)
    return j->respond(errc_response(b.error(), b.description()));
  auto body = json_body(j->req);
  if (!body)
    return j->respond(input_error(body));
  auto password = string_field(*body, "password", 1024);
  if (!password || !password->has_value())
    return j->respond(errc_response(errc::invalid_request, "password is required"));
  auto u = load_user(env, *j, *b);
  if (!u)
    return;
  auto user_id = u->id;
  self->request(env.entities.hasher, std::chrono::seconds{30},
                protocols::verify_password_atom::value, **password, u->password_hash)
    .then(
      [self, &env, j, user_id](bool ok) {
        if (!ok)
          return j->respond(errc_response(errc::invalid_credentials, "password is not correct"));
        // Cut off every token first: from here on nothing issued to this user is active.
        auto st = env.ctx->stores.revocations->add_cutoff(user_id, "", "", unix_now());
        if (!st)
          return j->respond(errc_response(st.error(), "revocation store unavailable"));
        end_sessions(self, env, j, user_id, "", "user_erased", [self, &env, j, user_id] {
          call<bool>(self, env, protocols::consent_erase{user_id, j->origin()}, j,
                     [&env, j, user_id](bool) {
                       env.ctx->stores.audit->scrub_subject(user_id);
                       auto st = env.ctx->stores.users->erase(
                         user_id, {env.ctx->audit->make("user.erased",
                                                        {user_id, "", "", "", j->req.request_id})});
                       if (!st && st.error() != errc::not_found)
                         return j->respond(errc_response(st.error(), "user store unavailable"));
                       j->respond(no_content());
                     });
        });
      },
      [j](caf::error& e) { j->respond(actor_error_response(e)); });
}

void me_export(front_self self, front_env& env, job_ptr j) {
  auto b = authenticate_user(env, j->req);
  if (!b)
    return j->respond(errc_response(b.error(), b.description()));
  auto u = load_user(env, *j, *b);
  if (!u)
    return;
  auto user = *u;
  call<protocols::consent_list>(
    self, env, protocols::consent_query{user.id}, j,
    [&env, j, user](protocols::consent_list& consents) {
      auto sessions = env.ctx->stores.sessions->list_for_user(user.id);
      auto events = env.ctx->stores.audit->query(user.id, 10000);
      if (!sessions || !events)
        return j->respond(errc_response(errc::temporarily_unavailable, "store unavailable"));
      nlohmann::json out;
      out["user"] = user_json(user);
      out["sessions"] = nlohmann::json::array();
      for (auto& s : *sessions)
        out["sessions"].push_back({{"id", s.id},
                                   {"device", s.device},
                                   {"ip", s.ip},
                                   {"created_at", rfc3339(s.created_at)},
                                   {"last_seen_at", rfc3339(s.last_seen_at)}});
      out["consents"] = nlohmann::json::array();
      for (auto& c : consents.records)
        out["consents"].push_back(
          {{"client_id", c.client_id},
           {"scope", c.scope},
           {"granted_at", rfc3339(c.granted_at)},
           {"expires_at", c.expires_at ? nlohmann::json(rfc3339(c.expires_at)) : nullptr},
           {"revoked_at", c.revoked_at ? nlohmann::json(rfc3339(c.revoked_at)) : nullptr}});
      out["audit_events"] = nlohmann::json::array();
      for (auto& e : *events)
        out["audit_events"].push_back(actors::audit_log::to_json(e));
      auto r = json_response(200, out.dump());
      r.headers.emplace_back("Cache-Control", "no-store");
      j->respond(std::move(r));
    });
}

}  // namespace credo::http
