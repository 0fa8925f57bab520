#include "http/service.hpp"

#include <atomic>

#include "http/front.hpp"
#include "http/router.hpp"
#include "protocols/clock.hpp"

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(credo::http::job_ptr)

namespace credo::http {
namespace {

enum route : int {
  r_discovery,
  r_jwks,
  r_health_live,
  r_health_ready,
  r_health,
  r_metrics,
  r_users,
  r_me_get,
  r_me_patch,
  r_me_delete,
  r_me_export,
  r_login,
  r_authorize,
  r_token,
  r_introspect,
  r_revoke,
  r_logout,
  r_sessions_list,
  r_sessions_delete,
  r_consent_grant,
  r_consent_list,
  r_consent_delete,
  r_admin_clients,
  r_admin_keys,
  r_admin_cluster,
  r_admin_actors,
  r_admin_audit,
  r_admin_crash,
  r_dashboard,
  r_dashboard_css,
  r_dashboard_js,
};

router make_router() {
  router r;
  r.add("GET", "/.well-known/openid-configuration", r_discovery);
  r.add("GET", "/.well-known/oauth-authorization-server", r_discovery);
  r.add("GET", "/.well-known/jwks.json", r_jwks);
  r.add("GET", "/health/live", r_health_live);
  r.add("GET", "/health/ready", r_health_ready);
  r.add("GET", "/health", r_health);
  r.add("GET", "/metrics", r_metrics);
  r.add("POST", "/users", r_users);
  r.add("GET", "/me", r_me_get);
  r.add("PATCH", "/me", r_me_patch);
  r.add("DELETE", "/me", r_me_delete);
  r.add("GET", "/me/data-export", r_me_export);
  r.add("POST", "/auth/login", r_login);
  r.add("GET", "/auth/authorize", r_authorize);
  r.add("POST", "/auth/token", r_token);
  r.add("POST", "/auth/introspect", r_introspect);
  r.add("POST", "/auth/revoke", r_revoke);
  r.add("POST", "/auth/logout", r_logout);
  r.add("GET", "/auth/sessions", r_sessions_list);
  r.add("DELETE", "/auth/sessions/{id}", r_sessions_delete);
  r.add("POST", "/auth/consent", r_consent_grant);
  r.add("GET", "/auth/consent", r_consent_list);
  r.add("DELETE", "/auth/consent/{client_id}/{scope}", r_consent_delete);
  r.add("POST", "/admin/clients", r_admin_clients);
  r.add("POST", "/admin/keys/rotate", r_admin_keys);
  r.add("GET", "/admin/cluster", r_admin_cluster);
  r.add("GET", "/admin/actors", r_admin_actors);
  r.add("GET", "/admin/audit", r_admin_audit);
  r.add("POST", "/admin/faults/crash", r_admin_crash);
  r.add("GET", "/dashboard", r_dashboard);
  r.add("GET", "/dashboard.css", r_dashboard_css);
  r.add("GET", "/dashboard.js", r_dashboard_js);
  return r;
}

bool is_admin_route(int id) {
  return id == r_admin_clients || id == r_admin_keys || id == r_admin_cluster
         || id == r_admin_actors || id == r_admin_audit || id == r_admin_crash;
}

/// Runs the handler of one routed request; entity replies continue it later.
void run_route(caf::event_based_actor* self, front_env& e, const job_ptr& j) {
  try {
    switch (j->route) {
      case r_users: return users_create(self, e, j);
      case r_me_get: return me_get(self, e, j);
      case r_me_patch: return me_patch(self, e, j);
      case r_me_delete: return me_delete(self, e, j);
      case r_me_export: return me_export(self, e, j);
      case r_login: return auth_login(self, e, j);
      case r_authorize: return oauth_authorize(self, e, j);
      case r_token: return oauth_token(self, e, j);
      case r_introspect:
        if (j->opaque_token.empty()) {  // came here only for its rate limits
          if (auto r = introspect_inline(e, j->req, j->opaque_token))
            return j->respond(std::move(*r));
        }
        return oauth_introspect_refresh(self, e, j, j->opaque_token);
      case r_revoke: return oauth_revoke(self, e, j);
      case r_logout: return auth_logout(self, e, j);
      case r_sessions_list: return sessions_list(self, e, j);
      case r_sessions_delete: return sessions_delete(self, e, j);
      case r_consent_grant: return consent_grant(self, e, j);
      case r_consent_list: return consent_list(self, e, j);
      case r_consent_delete: return consent_delete(self, e, j);
      case r_admin_clients: return admin_clients_create(self, e, j);
      case r_admin_keys: return admin_keys_rotate(self, e, j);
      case r_admin_audit: return admin_audit(self, e, j);
      case r_admin_crash: return admin_fault_crash(self, e, j);
      default: j->respond(errc_response(errc::internal_error, "unrouted request"));
    }
  } catch (const std::exception&) {
    // A handler bug must not take the front actor down with other requests in flight.
    j->respond(errc_response(errc::internal_error, "internal error"));
  }
}

/// A front actor: runs routed requests, after the rate-limit checks the I/O thread could not
/// answer from its leases.
caf::behavior front_actor(caf::event_based_actor* self, std::shared_ptr<front_env> env) {
  return {
    [self](front_task& t) {
      try {
        t.run(self);
      } catch (const std::exception&) {
        // As for jobs: a handler bug must not take the front actor down.
      }
    },
    [self, env](job_ptr& j) {
      if (j->limit_checks.empty())
        return run_route(self, *env, j);
      enforce_limits(self, *env, j, [self, env, j] { run_route(self, *env, j); });
    },
  };
}

std::optional<limited_route> limited_route_of(int id) {
  switch (id) {
    case r_users: return limited_route::users;
    case r_login: return limited_route::login;
    case r_authorize: return limited_route::authorize;
    case r_token: return limited_route::token;
    case r_introspect: return limited_route::introspect;
    default: return std::nullopt;
  }
}

/// The rate-limit checks of a request: those a lease or a cached denial answers here (a
/// denial ends the request with 429), and those that must ask their bucket's owner.
struct limit_stage {
  std::vector<limit_check> pending;
  std::optional<limit_verdict> report;
  std::optional<response> denied;
  std::optional<persistence::client_record> client;  // authenticated for a per-client rule
  std::optional<fields> form;                        // parsed for it
};
limit_stage check_limits(front_env& env, limited_route route, const request& req) {
  auto& cfg = env.limits.config();
  limit_stage out;
  auto checks = route_checks(cfg, route, req.remote_ip);
  // Per OAuth client only once the client has authenticated: a stranger naming a client must
  // not spend its budget (the per-address and global rules still count the stranger).
  if (has_client_rule(cfg, route))
    if (auto form = form_body(req)) {
      if (auto client = authenticate_client(env, req, *form)) {
        checks.push_back(*client_check(cfg, route, client->client.client_id));
        out.client = std::move(client->client);
        out.form = std::move(*form);
      }
    }
  auto now = unix_now_ms();
  for (auto& c : checks) {
    auto v = env.limits.try_local(c, now);
    if (!v) {
      out.pending.push_back(std::move(c));
      continue;
    }
    if (!v->allowed) {
      env.limits.count_denial(c.rule);
      out.denied = limited_response(*v, "too many requests; retry later");
      return out;
    }
    out.report = out.report ? tighter(*out.report, *v) : *v;
  }
  return out;
}

}  // namespace

struct service::impl {
  std::shared_ptr<front_env> env;
  std::vector<caf::actor> fronts;
  std::atomic<std::size_t> next{0};

  explicit impl(std::shared_ptr<front_env> e) : env(std::move(e)) {}

  void dispatch(job_ptr j) {
    auto& front = fronts[next.fetch_add(1, std::memory_order_relaxed) % fronts.size()];
    caf::anon_send(front, std::move(j));
  }
};

service::service(caf::actor_system& sys, actors::context_ptr ctx, actors::entity_handles entities,
                 service_options options)
  : impl_(std::make_shared<impl>(
    std::make_shared<front_env>(std::move(ctx), std::move(entities), std::move(options)))) {
  impl_->env->started_at = unix_now();
  impl_->env->routes = make_router();
  impl_->env->discovery_body = discovery_document(impl_->env->ctx->tokens.issuer);
  for (int i = 0; i < std::max(1, impl_->env->options.front_actors); ++i)
    impl_->fronts.push_back(sys.spawn(front_actor, impl_->env));
}

service::~service() { shutdown(); }

void service::shutdown() {
  for (auto& f : impl_->fronts)
    caf::anon_send_exit(f, caf::exit_reason::user_shutdown);
  impl_->fronts.clear();
}

void service::handle(request&& req, responder respond) {
  auto& env = *impl_->env;
  auto started = std::chrono::steady_clock::now();
  auto m = env.routes.resolve(req.method, req.path);
  std::string_view pattern = m.result == router::match::kind::found ? m.pattern : unmatched_route;
  // Answers on this thread; a dispatched request is observed by its job.
  auto answer = [&](response r) {
    observe_request(env, pattern, req, r.status, started);
    respond(std::move(r));
  };
  if (m.result == router::match::kind::not_found)
    return answer(error_response(404, "not_found", "no such endpoint"));
  if (m.result == router::match::kind::method_not_allowed) {
    auto r = error_response(405, "method_not_allowed", "method not allowed on this endpoint");
    r.headers.emplace_back("Allow", m.allow);
    return answer(std::move(r));
  }
  if (is_admin_route(m.route_id) && !is_admin(env, req))
    return answer(errc_response(errc::invalid_token, "admin token required"));
  req.path_params = std::move(m.params);
  auto& trusted = env.options.rate_limits.trusted_proxies;
  if (!trusted.empty())  // sessions and audit events record the client's address too
    req.remote_ip = client_address(req, trusted);
  switch (m.route_id) {
    case r_health_live: return answer(health_live());
    case r_health_ready: return answer(health_ready(env));
    case r_health: return answer(health(env));
    case r_metrics: return answer(metrics(env));
    case r_dashboard: return answer(dashboard(dashboard_asset::page));
    case r_dashboard_css: return answer(dashboard(dashboard_asset::style));
    case r_dashboard_js: return answer(dashboard(dashboard_asset::script));
    default: break;
  }
  // Without its schema and signing keys (the database was unreachable at start) a node can
  // answer nothing else right.
  if (!env.ctx->health->bootstrapped.load(std::memory_order_acquire))
    return answer(errc_response(errc::temporarily_unavailable, "node is starting: database not reachable yet"));
  switch (m.route_id) {
    case r_discovery: return answer(discovery(env));
    case r_jwks: return answer(jwks(env));
    case r_admin_cluster: return answer(admin_cluster(env));
    case r_admin_actors: return answer(admin_actors(env));
    default: break;
  }
  limit_stage limits;
  if (auto route = limited_route_of(m.route_id)) {
    limits = check_limits(env, *route, req);
    if (limits.denied)
      return answer(std::move(*limits.denied));
  }
  std::string refresh;
  if (m.route_id == r_introspect && limits.pending.empty()) {
    if (auto r = introspect_inline(env, req, refresh, limits.client ? &*limits.client : nullptr,
                                   limits.form ? &*limits.form : nullptr)) {
      if (limits.report)
        for (auto& h : limit_headers(*limits.report))
          r->headers.push_back(std::move(h));
      return answer(std::move(*r));
    }
  }
  if (impl_->fronts.empty())
    return answer(errc_response(errc::temporarily_unavailable, "shutting down"));
  auto j = std::make_shared<job>();
  j->route = m.route_id;
  j->route_pattern = pattern;
  j->started = started;
  j->env = impl_->env;
  j->opaque_token = std::move(refresh);
  j->limit_checks = std::move(limits.pending);
  j->limit_report = std::move(limits.report);
  j->req = std::move(req);
  j->respond_fn = std::move(respond);
  impl_->dispatch(std::move(j));
}

}  // namespace credo::http
