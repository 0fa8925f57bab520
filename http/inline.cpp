// Routes answered on the I/O thread without an actor hop: discovery, JWKS, health, metrics and
// access-token introspection (signature + revocation set + verified-token cache).
#include "actors/audit_publisher.hpp"
#include "http/front.hpp"
#include "protocols/clock.hpp"

namespace credo::http {

std::string discovery_document(const std::string& iss) {
  nlohmann::json d = {
    {"issuer", iss},
    {"authorization_endpoint", iss + "/auth/authorize"},
    {"token_endpoint", iss + "/auth/token"},
    {"introspection_endpoint", iss + "/auth/introspect"},
    {"revocation_endpoint", iss + "/auth/revoke"},
    {"jwks_uri", iss + "/.well-known/jwks.json"},
    {"grant_types_supported", {"authorization_code", "refresh_token", "client_credentials"}},
    {"response_types_supported", {"code"}},
    {"code_challenge_methods_supported", {"S256"}},
    {"token_endpoint_auth_methods_supported", {"client_secret_basic", "client_secret_post", "none"}},
    {"introspection_endpoint_auth_methods_supported", {"client_secret_basic", "client_secret_post"}},
    {"revocation_endpoint_auth_methods_supported",
     {"client_secret_basic", "client_secret_post", "none"}},
    {"scopes_supported", {"openid", "profile"}},
    {"authorization_response_iss_parameter_supported", true},
  };
  return d.dump();
}

response discovery(const front_env& env) {
  auto r = json_response(200, env.discovery_body);
  r.headers.emplace_back("Cache-Control", "public, max-age=300");
  return r;
}

response jwks(const front_env& env) {
  auto r = json_response(200, env.ctx->keys->jwks().dump());
  r.content_type = "application/jwk-set+json";
  r.headers.emplace_back("Cache-Control", "public, max-age=60");
  return r;
}

response health_live() {
  return json_response(200, nlohmann::json{{"status", "ok"}, {"timestamp", rfc3339(unix_now())}}.dump());
}

namespace {
nlohmann::json checks(const actors::readiness& h) {
  auto name = [](const std::atomic<actors::check_state>& c) {
    switch (c.load()) {
      case actors::check_state::ok: return "ok";
      case actors::check_state::failed: return "failed";
      default: return "disabled";
    }
  };
  // A database that is up but not yet migrated (or whose keys do not load) is not ok.
  auto database = h.bootstrapped.load() ? name(h.database) : "failed";
  return {{"database", database}, {"redis", name(h.redis)}, {"kafka", name(h.kafka)},
          {"cluster", name(h.cluster)}};
}
}  // namespace

response health_ready(const front_env& env) {
  bool ready = env.ctx->health->ready();
  return json_response(ready ? 200 : 503,
                       nlohmann::json{{"status", ready ? "ready" : "not_ready"},
                                      {"checks", checks(*env.ctx->health)},
                                      {"timestamp", rfc3339(unix_now())}}
                         .dump());
}

response health(const front_env& env) {
  bool ready = env.ctx->health->ready();
  return json_response(ready ? 200 : 503, nlohmann::json{{"status", ready ? "healthy" : "unhealthy"},
                                           {"version", env.options.version},
                                           {"uptime_seconds", unix_now() - env.started_at},
                                           {"node", env.ctx->node_id},
                                           {"checks", checks(*env.ctx->health)},
                                           {"timestamp", rfc3339(unix_now())}}
                              .dump());
}

response metrics(const front_env& env) {
  std::string out;
  auto family = [&out](const char* name, const char* type, const char* help) {
    out += "# HELP ";
    out += name;
    out += ' ';
    out += help;
    out += "\n# TYPE ";
    out += name;
    out += ' ';
    out += type;
    out += '\n';
  };
  auto sample = [&out](const std::string& name, const std::string& labels, std::int64_t v) {
    out += name + "{" + labels + "} " + std::to_string(v) + "\n";
  };
  using counter = std::atomic<std::int64_t> actors::supervisor_stats::*;
  struct metric {
    const char* name;
    const char* type;
    const char* help;
    counter value;
  };
  for (auto& m : {metric{"credo_actor_live", "gauge", "Live entity actors per kind.",
                         &actors::supervisor_stats::live},
                  metric{"credo_actor_restarts_total", "counter", "Entity restarts per kind.",
                         &actors::supervisor_stats::restarts},
                  metric{"credo_actor_failures_total", "counter", "Entity failures per kind.",
                         &actors::supervisor_stats::failures}}) {
    family(m.name, m.type, m.help);
    for (auto* s : {env.entities.session_stats.get(), env.entities.consent_stats.get(),
                    env.entities.rate_limit_stats.get()})
      sample(m.name, "kind=\"" + s->kind + "\"", (s->*m.value).load());
  }
  family("credo_backend_up", "gauge",
         "1 while a configured backend answers its health check, 0 when it does not.");
  for (auto [name, state] : {std::pair{"postgres", &env.ctx->health->database},
                             std::pair{"redis", &env.ctx->health->redis},
                             std::pair{"kafka", &env.ctx->health->kafka}})
    if (state->load() != actors::check_state::disabled)
      sample("credo_backend_up", std::string{"backend=\""} + name + "\"",
             state->load() == actors::check_state::ok ? 1 : 0);
  // A family of one unlabelled sample.
  auto single = [&](const char* name, const char* type, const char* help, std::int64_t v) {
    family(name, type, help);
    out += std::string{name} + " " + std::to_string(v) + "\n";
  };
  if (auto& p = env.ctx->publisher) {
    single("credo_outbox_backlog", "gauge", "Audit outbox rows waiting to be published.",
           p->backlog.load());
    single("credo_audit_published_total", "counter", "Audit events published to Kafka.",
           p->published.load());
    single("credo_audit_publish_failures_total", "counter",
           "Publish rounds that failed and backed off.", p->failures.load());
    single("credo_audit_publish_latency_ms", "gauge",
           "Worst change-to-acknowledged latency in the last published batch.",
           p->last_latency_ms.load());
  }
  if (auto& c = env.options.cluster.status) {
    auto view = c->snapshot();
    single("credo_cluster_members", "gauge", "Live cluster members in this node's view, itself included.",
           static_cast<std::int64_t>(view.members.size()));
    single("credo_cluster_ring_version", "gauge", "Ring version of this node's view.",
           view.ring_version);
    single("credo_cluster_requests_in_flight", "gauge",
           "Entity requests sent to other nodes and not answered yet.",
           static_cast<std::int64_t>(env.options.cluster.in_flight->size()));
  }
  family("credo_rate_limit_denials_total", "counter",
         "Requests refused with 429 per rule (login.account: a locked or busy account).");
  for (std::size_t i = 0; i <= rule_count; ++i)
    sample("credo_rate_limit_denials_total", std::string{"rule=\""} + rule_name(i) + "\"",
           env.limits.denials(i));
  single("credo_rate_limit_lockouts_total", "counter",
         "Accounts locked by failed logins on this node.", env.limits.lockouts());
  single("credo_rate_limit_owner_calls_total", "counter",
         "Token requests this node sent to bucket owners (the rest were served from leases).",
         env.limits.owner_calls());
  single("credo_uptime_seconds", "gauge", "Seconds since the node started.",
         unix_now() - env.started_at);
  response r;
  r.content_type = "text/plain; version=0.0.4; charset=utf-8";
  r.body = std::move(out);
  return r;
}

std::optional<response> introspect_inline(front_env& env, const request& req,
                                          std::string& refresh_token,
                                          const persistence::client_record* authenticated,
                                          const fields* parsed) {
  auto own = parsed ? result<fields>{fields{}} : form_body(req);
  if (!own)
    return input_error(own);
  const fields* form = parsed ? parsed : &*own;
  std::optional<persistence::client_record> checked;
  if (!authenticated) {
    auto client = authenticate_client(env, req, *form);
    if (!client)
      return client_error_response(client, req);
    checked = std::move(client->client);
    authenticated = &*checked;
  }
  if (authenticated->is_public())
    return error_response(401, "invalid_client", "introspection needs a confidential client");
  auto token = find(*form, "token");
  if (!token)
    return errc_response(errc::invalid_request, "token is required");
  if (std::count(token->begin(), token->end(), '.') != 2) {
    refresh_token = std::string{*token};
    return std::nullopt;
  }
  auto verified = check_access_token(env, *token, unix_now());
  if (!verified)
    return token_response({{"active", false}});
  response r;
  r.body = verified->introspection;
  r.headers.emplace_back("Cache-Control", "no-store");
  r.headers.emplace_back("Pragma", "no-cache");
  return r;
}

std::string introspection_body(const nlohmann::json& c) {
  nlohmann::json out = {{"active", true},
                        {"sub", c["sub"]},
                        {"client_id", c.value("client_id", "")},
                        {"scope", c.value("scope", "")},
                        {"exp", c["exp"]},
                        {"iat", c["iat"]},
                        {"jti", c["jti"]},
                        {"iss", c["iss"]},
                        {"token_type", "access_token"}};
  if (c.contains("aud"))
    out["aud"] = c["aud"];
  if (c.contains("sid"))
    out["sid"] = c["sid"];
  return out.dump();
}

}  // namespace credo::http
