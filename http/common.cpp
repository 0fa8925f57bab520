// Shared pieces of the route handlers: error mapping, body parsing, authentication, scopes.
#include <algorithm>
#include <cmath>

#include "http/front.hpp"
#include "protocols/clock.hpp"
#include "protocols/crypto.hpp"
#include "protocols/log.hpp"

namespace credo::http {

void observe_request(const front_env& env, std::string_view route, const request& req,
                     int status, std::chrono::steady_clock::time_point started) noexcept try {
  auto seconds =
    std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  // An unmatched request names any method it likes: only the standard ones become labels.
  std::string_view method = req.method;
  if (route == unmatched_route) {
    static constexpr std::string_view known[] = {"GET",    "HEAD",   "POST",   "PUT",
                                                 "PATCH",  "DELETE", "OPTIONS"};
    if (std::find(std::begin(known), std::end(known), method) == std::end(known))
      method = "other";
  }
  env.ctx->metrics->http_request(route, method, status, req.client_id, seconds);
  // Probes and scrapes come every few seconds from every orchestrator: debug, not info.
  auto level = route.starts_with("/health") || route == "/metrics" ? log::level::debug
                                                                   : log::level::info;
  log::request(level, {req.request_id, method, route, req.remote_ip, req.client_id, status,
                       std::round(seconds * 1e6) / 1e3});
} catch (...) {
  // Out of memory or no thread for the log flusher: the answer goes out all the same.
}

void job::respond(response r) {
  if (answered.exchange(true))
    return;
  if (env)
    observe_request(*env, route_pattern, req, r.status, started);
  if (limit_report && std::none_of(r.headers.begin(), r.headers.end(),
                                  [](auto& h) { return h.first == "RateLimit-Limit"; }))
    for (auto& h : limit_headers(*limit_report))
      r.headers.push_back(std::move(h));
  respond_fn(std::move(r));
}

response errc_response(errc code, std::string_view description) {
  int status = 400;
  std::string_view name = to_string(code);
  switch (code) {
    case errc::invalid_request:
    case errc::invalid_grant:
    case errc::unauthorized_client:
    case errc::unsupported_grant_type:
    case errc::invalid_scope:
      status = 400;
      break;
    case errc::invalid_credentials:
    case errc::invalid_client:
      status = 401;
      break;
    case errc::invalid_token: {
      auto r = error_response(401, name, description);
      r.headers.emplace_back("WWW-Authenticate", "Bearer error=\"invalid_token\"");
      return r;
    }
    case errc::consent_required:
    case errc::forbidden:
      status = 403;
      break;
    case errc::not_found:
      status = 404;
      break;
    case errc::email_taken:
    case errc::conflict:
      status = 409;
      break;
    case errc::rate_limited:
      status = 429;
      break;
    case errc::temporarily_unavailable:
      status = 503;
      break;
    case errc::ok:
    case errc::internal_error:
      status = 500;
      name = "server_error";
      break;
  }
  return error_response(status, name, description);
}

response actor_error_response(const caf::error& e) {
  if (e.category() == caf::detail::error_factory<errc>::category) {
    std::string desc;
    if (!e.context().empty() && e.context().match_element<std::string>(0))
      desc = e.context().get_as<std::string>(0);
    return errc_response(static_cast<errc>(e.code()), desc);
  }
  return errc_response(errc::temporarily_unavailable, "the entity did not answer; retry");
}

response token_response(const nlohmann::json& body) {
  response r = json_response(200, body.dump());
  r.headers.emplace_back("Cache-Control", "no-store");
  r.headers.emplace_back("Pragma", "no-cache");
  return r;
}

response no_content() {
  response r;
  r.status = 204;
  r.content_type.clear();
  return r;
}

result<nlohmann::json> json_body(const request& req) {
  if (media_type(req) != "application/json")
    return {errc::invalid_request, "415"};
  auto j = parse_json_object(req.body, 16);
  if (!j)
    return {errc::invalid_request, "body must be a JSON object (at most 16 levels deep)"};
  return std::move(*j);
}

result<fields> form_body(const request& req) {
  if (media_type(req) != "application/x-www-form-urlencoded")
    return {errc::invalid_request, "415"};
  auto f = parse_form(req.body);
  if (!f)
    return {errc::invalid_request, "malformed form body (bad escape or repeated parameter)"};
  return std::move(*f);
}

result<std::optional<std::string>> string_field(const nlohmann::json& body, const char* name,
                                                std::size_t max_len) {
  auto i = body.find(name);
  if (i == body.end() || i->is_null())
    return std::optional<std::string>{};
  if (!i->is_string())
    return {errc::invalid_request, std::string{name} + " must be a string"};
  auto s = i->get<std::string>();
  if (s.size() > max_len)
    return {errc::invalid_request, std::string{name} + " is too long"};
  return std::optional<std::string>{std::move(s)};
}

bool contains(const std::vector<std::string>& v, std::string_view x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

std::shared_ptr<const protocols::verified_token>
check_access_token(front_env& env, std::string_view token, std::int64_t now) {
  if (token.empty() || token.size() > 4096)
    return nullptr;
  auto verified = env.token_cache.find(token, now);
  if (!verified) {
    auto skew = env.ctx->tokens.clock_skew;
    auto r = env.ctx->keys->verify(token, {env.ctx->tokens.issuer, now, skew});
    if (!r)
      return nullptr;
    auto v = std::make_shared<protocols::verified_token>();
    v->claims = *r.claims;
    v->introspection = introspection_body(v->claims);
    env.token_cache.insert(token, v, v->claims["exp"].get<std::int64_t>() + skew);
    verified = std::move(v);
  }
  const auto& c = verified->claims;
  auto& rev = *env.ctx->stores.revocations;
  // A store that cannot answer makes the token inactive (fail closed).
  if (auto revoked = rev.is_token_revoked(c["jti"].get_ref<const std::string&>());
      !revoked || *revoked)
    return nullptr;
  auto iat = c["iat"].get<std::int64_t>();
  const auto& sub = c["sub"].get_ref<const std::string&>();
  if (!c.contains("sid"))
    return verified;  // client_credentials: no user, no consent
  if (auto erased = rev.cutoff(sub, "", ""); !erased || *erased >= iat)
    return nullptr;  // user erased
  auto client = c.value("client_id", std::string{});
  if (client != first_party_client)
    for (auto& s : split_scope(c.value("scope", std::string{})))
      if (auto cut = rev.cutoff(sub, client, s); !cut || *cut >= iat)
        return nullptr;
  return verified;
}

result<bearer> authenticate_user(front_env& env, const request& req) {
  auto token = bearer_token(req);
  if (!token)
    return {errc::invalid_token, "a Bearer access token is required"};
  auto verified = check_access_token(env, *token, unix_now());
  if (!verified)
    return {errc::invalid_token, "the access token is invalid, expired or revoked"};
  std::shared_ptr<const nlohmann::json> claims{verified, &verified->claims};
  if (!claims->contains("sid"))
    return {errc::invalid_token, "the access token is invalid, expired or revoked"};
  // Only the user acting through Credo itself manages the account, sessions and consents: a
  // third-party client's token must not authorize codes for other clients or read the export.
  if (claims->value("client_id", std::string{}) != first_party_client)
    return {errc::forbidden, "this endpoint needs a first-party (credo) access token"};
  bearer b;
  b.claims = claims;
  b.sub = (*claims)["sub"].get<std::string>();
  b.client_id = claims->value("client_id", std::string{});
  b.sid = (*claims)["sid"].get<std::string>();
  b.scope = claims->value("scope", std::string{});
  b.jti = (*claims)["jti"].get<std::string>();
  return b;
}

bool is_admin(const front_env& env, const request& req) {
  auto token = bearer_token(req);
  return token && !env.options.admin_token.empty()
         && protocols::constant_time_equal(protocols::sha256(*token),
                                           protocols::sha256(env.options.admin_token));
}

std::string hash_client_secret(std::string_view secret) { return protocols::sha256_hex(secret); }

result<authenticated_client> authenticate_client(front_env& env, const request& req,
                                                 const fields& form) {
  auto basic = basic_credentials(req);
  bool has_auth_header = req.header("authorization").has_value();
  auto form_id = find(form, "client_id");
  auto form_secret = find(form, "client_secret");
  std::string id, secret;
  bool used_basic = false;
  if (basic) {
    if (form_secret)
      return {errc::invalid_request, "use one client authentication method, not two"};
    if (form_id && *form_id != basic->first)
      return {errc::invalid_request, "client_id does not match the authenticated client"};
    id = basic->first;
    secret = basic->second;
    used_basic = true;
  } else if (has_auth_header) {
    return {errc::invalid_client, "basic"};
  } else if (form_id) {
    id = std::string{*form_id};
    if (form_secret)
      secret = std::string{*form_secret};
  } else {
    return {errc::invalid_client, "client authentication is required"};
  }
  if (id.empty() || id.size() > 128)
    return {errc::invalid_client, used_basic ? "basic" : "client authentication failed"};
  auto found = env.ctx->stores.clients->find(id);
  if (!found)
    return {errc::temporarily_unavailable, "client store unavailable"};
  const std::string expected = found->has_value() ? (*found)->secret_hash : std::string{};
  bool is_public = found->has_value() && (*found)->is_public();
  bool ok = false;
  if (found->has_value()) {
    if (is_public)
      ok = secret.empty() && !used_basic;
    else
      ok = !secret.empty()
           && protocols::constant_time_equal(hash_client_secret(secret), expected);
  } else {
    // Same work for an unknown client as for a known one.
    protocols::constant_time_equal(hash_client_secret(secret), std::string(64, '0'));
  }
  if (!ok)
    return {errc::invalid_client, used_basic ? "basic" : "client authentication failed"};
  req.client_id = id;
  return authenticated_client{**found, used_basic};
}

response client_error_response(const result<authenticated_client>& r, const request& req) {
  if (r.error() == errc::invalid_client) {
    auto resp = error_response(401, "invalid_client", "client authentication failed");
    if (r.description() == "basic" || req.header("authorization"))
      resp.headers.emplace_back("WWW-Authenticate", "Basic realm=\"credo\"");
    return resp;
  }
  return errc_response(r.error(), r.description());
}

}  // namespace credo::http

namespace credo::http {
namespace {

struct limit_progress {
  std::size_t next = 0;
  std::function<void()> then;
};

void enforce_next(caf::event_based_actor* self, front_env& env, job_ptr j,
                  std::shared_ptr<limit_progress> p) {
  if (p->next == j->limit_checks.size()) {
    j->limit_checks.clear();
    return p->then();
  }
  auto& c = j->limit_checks[p->next];
  auto rule = env.limits.config().rules[c.rule];
  call<protocols::bucket_grant>(
    self, env, protocols::bucket_take{c.key, rule, env.limits.lease_size(c)}, j,
    [self, &env, j, p](protocols::bucket_grant& g) {
      auto& c = j->limit_checks[p->next];
      auto v = env.limits.on_grant(c, g.granted, g.remaining, g.reset_ms, g.retry_ms,
                                   unix_now_ms());
      if (!v.allowed) {
        env.limits.count_denial(c.rule);
        return j->respond(limited_response(v, "too many requests; retry later"));
      }
      j->limit_report = j->limit_report ? tighter(*j->limit_report, v) : v;
      ++p->next;
      enforce_next(self, env, j, p);
    });
}

}  // namespace

void enforce_limits(caf::event_based_actor* self, front_env& env, job_ptr j,
                    std::function<void()> then) {
  auto p = std::make_shared<limit_progress>();
  p->then = std::move(then);
  enforce_next(self, env, std::move(j), std::move(p));
}

}  // namespace credo::http
