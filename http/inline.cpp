// Routes answered on the I/O thread without an actor hop: discovery, JWKS, health, metrics and
// access-token introspection (signature + revocation set + verified-token cache).
#include <sstream>

#include <prometheus/metric_family.h>
#include <prometheus/text_serializer.h>

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

namespace {

using prometheus::MetricFamily;
using prometheus::MetricType;

MetricFamily family(const char* name, MetricType type, const char* help) {
  return {name, help, type, {}};
}

/// One sample of a gauge or counter family; labels as name, value pairs.
void add(MetricFamily& f, double value,
         std::initializer_list<std::pair<const char*, std::string>> labels = {}) {
  prometheus::ClientMetric m;
  for (auto& [k, v] : labels)
    m.label.push_back({k, v});
  if (f.type == MetricType::Counter)
    m.counter.value = value;
  else
    m.gauge.value = value;
  f.metric.push_back(std::move(m));
}

/// The gauges and counters kept as atomics by supervisors, the publisher, the limiter and the
/// cluster, read now. Every family is present on every node, at zero where its feature is off.
std::vector<MetricFamily> scrape_state(const front_env& env) {
  std::vector<MetricFamily> out;
  using counter = std::atomic<std::int64_t> actors::supervisor_stats::*;
  struct actor_family {
    const char* name;
    MetricType type;
    const char* help;
    counter value;
  };
  actors::supervisor_stats publisher_row{"audit_publisher"};
  describe_publisher(env.ctx->publisher.get(), publisher_row);
  for (auto& a : {actor_family{"credo_actor_live", MetricType::Gauge, "Live actors per kind.",
                               &actors::supervisor_stats::live},
                  actor_family{"credo_actor_restarts_total", MetricType::Counter,
                               "Actor restarts per kind.", &actors::supervisor_stats::restarts},
                  actor_family{"credo_actor_failures_total", MetricType::Counter,
                               "Actor failures per kind.", &actors::supervisor_stats::failures},
                  actor_family{"credo_actor_mailbox_high_water", MetricType::Gauge,
                               "Most requests ever queued or in progress at once per kind.",
                               &actors::supervisor_stats::max_mailbox}}) {
    auto f = family(a.name, a.type, a.help);
    for (auto* s : {env.entities.session_stats.get(), env.entities.consent_stats.get(),
                    env.entities.rate_limit_stats.get(), &publisher_row})
      add(f, static_cast<double>((s->*a.value).load()), {{"kind", s->kind}});
    out.push_back(std::move(f));
  }

  auto up = family("credo_backend_up", MetricType::Gauge,
                   "1 while a configured backend answers its health check, else 0.");
  auto configured = family("credo_backend_configured", MetricType::Gauge,
                           "1 when the backend is configured (0: the embedded default).");
  for (auto [name, state] : {std::pair{"postgres", &env.ctx->health->database},
                             std::pair{"redis", &env.ctx->health->redis},
                             std::pair{"kafka", &env.ctx->health->kafka}}) {
    auto st = state->load();
    add(up, st == actors::check_state::ok ? 1 : 0, {{"backend", name}});
    add(configured, st == actors::check_state::disabled ? 0 : 1, {{"backend", name}});
  }
  out.push_back(std::move(up));
  out.push_back(std::move(configured));

  auto single = [&out](const char* name, MetricType type, const char* help, double v) {
    auto f = family(name, type, help);
    add(f, v);
    out.push_back(std::move(f));
  };
  auto* publisher = env.ctx->publisher.get();
  auto latency_ms = publisher ? publisher->last_latency_ms.load() : -1;
  single("credo_audit_outbox_depth", MetricType::Gauge,
         "Audit outbox rows waiting to be published to Kafka.",
         publisher ? static_cast<double>(publisher->backlog.load()) : 0);
  single("credo_audit_outbox_published_total", MetricType::Counter,
         "Audit events published to Kafka.",
         publisher ? static_cast<double>(publisher->published.load()) : 0);
  single("credo_audit_outbox_publish_failures_total", MetricType::Counter,
         "Publish rounds that failed (store or Kafka) and backed off.",
         publisher ? static_cast<double>(publisher->failures.load()) : 0);
  single("credo_audit_outbox_publish_latency_seconds", MetricType::Gauge,
         "Worst change-to-acknowledged latency in the last published batch.",
         latency_ms > 0 ? static_cast<double>(latency_ms) / 1000.0 : 0);

  std::int64_t members = 1, ring = 0, in_flight = 0;
  std::uint64_t strangers = 0;
  if (auto& g = env.options.cluster.gate)
    strangers = g->dropped->load();
  if (auto& c = env.options.cluster.status) {
    auto view = c->snapshot();
    members = static_cast<std::int64_t>(view.members.size());
    ring = view.ring_version;
    in_flight = static_cast<std::int64_t>(env.options.cluster.in_flight->size());
  }
  single("credo_cluster_members", MetricType::Gauge,
         "Live cluster members in this node's view, itself included (1: single node).",
         static_cast<double>(members));
  single("credo_cluster_ring_version", MetricType::Gauge,
         "Ring version of this node's view (0: single node).", static_cast<double>(ring));
  single("credo_cluster_requests_in_flight", MetricType::Gauge,
         "Entity requests sent to other nodes and not answered yet.",
         static_cast<double>(in_flight));
  single("credo_cluster_stranger_messages_total", MetricType::Counter,
         "Messages to the cluster port that did not come from a member with its link key "
         "(dropped unread).",
         static_cast<double>(strangers));

  auto denials = family("credo_rate_limit_denials_total", MetricType::Counter,
                        "Requests refused with 429 per rule (login.account: a locked or busy "
                        "account).");
  for (std::size_t i = 0; i <= rule_count; ++i)
    add(denials, static_cast<double>(env.limits.denials(i)), {{"rule", rule_name(i)}});
  out.push_back(std::move(denials));
  single("credo_rate_limit_lockouts_total", MetricType::Counter,
         "Accounts locked by failed logins on this node.",
         static_cast<double>(env.limits.lockouts()));
  single("credo_rate_limit_owner_calls_total", MetricType::Counter,
         "Token requests this node sent to bucket owners (the rest were served from leases).",
         static_cast<double>(env.limits.owner_calls()));

  auto build = family("credo_build_info", MetricType::Gauge, "Version and node name; always 1.");
  add(build, 1, {{"version", env.options.version}, {"node", env.ctx->node_id}});
  out.push_back(std::move(build));
  single("credo_uptime_seconds", MetricType::Gauge, "Seconds since the node started.",
         static_cast<double>(unix_now() - env.started_at));
  return out;
}

}  // namespace

response metrics(const front_env& env) {
  auto families = env.ctx->metrics->collect();
  for (auto& f : scrape_state(env))
    families.push_back(std::move(f));
  std::ostringstream text;
  prometheus::TextSerializer{}.Serialize(text, families);
  response r;
  r.content_type = "text/plain; version=0.0.4; charset=utf-8";
  r.body = std::move(text).str();
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
