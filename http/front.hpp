#pragma once
// Internal to http/: what the route handlers share. Not a public header of the library.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <caf/all.hpp>
#include <nlohmann/json.hpp>

#include "actors/audit_log.hpp"
#include "actors/context.hpp"
#include "actors/entities.hpp"
#include "http/message.hpp"
#include "http/router.hpp"
#include "http/service.hpp"
#include "protocols/crypto.hpp"
#include "protocols/messages.hpp"
#include "protocols/result.hpp"
#include "protocols/scope.hpp"
#include "protocols/token_cache.hpp"

namespace credo::http {

/// One request in flight and the way to answer it. Answering twice is a no-op.
struct front_env;
struct job {
  request req;
  int route = -1;
  std::string_view route_pattern;  // "/auth/sessions/{id}", in env->routes: the metrics label
  std::chrono::steady_clock::time_point started;  // when the server handed the request over
  /// Kept alive by the job: an answer may come after the service shut down (a reply queued
  /// behind the front's exit, a peer's death failing the call from the membership actor).
  std::shared_ptr<const front_env> env;
  std::string opaque_token;  // introspection of a refresh token, found on the I/O thread
  responder respond_fn;
  std::atomic<bool> answered{false};  // a node's death may answer it from another thread
  std::vector<limit_check> limit_checks;  // rate limits the front must still ask owners about
  std::optional<limit_verdict> limit_report;  // sent as RateLimit-* unless the response has its own
  void respond(response r);
  protocols::origin origin() const { return {req.request_id, req.remote_ip}; }
};
using job_ptr = std::shared_ptr<job>;

/// Everything a handler may use. Shared by the I/O threads (const use only) and front actors.
struct front_env {
  actors::context_ptr ctx;
  actors::entity_handles entities;
  service_options options;
  protocols::verified_token_cache token_cache;
  limiter limits;
  std::int64_t started_at = 0;
  std::string discovery_body;  // depends only on the issuer: serialised once at start
  router routes;  // jobs' route_pattern points into it
  front_env(actors::context_ptr c, actors::entity_handles e, service_options o)
    : ctx(std::move(c)), entities(std::move(e)), options(std::move(o)),
      token_cache(options.token_cache_capacity), limits(options.rate_limits) {}
};

/// The route label of requests no route matched (404, 405).
inline constexpr std::string_view unmatched_route = "unmatched";
/// Records one answered request: its duration in credo_http_request_duration_seconds and its
/// line in the log (request id, route, status, latency; never a credential).
void observe_request(const front_env& env, std::string_view route, const request& req,
                     int status, std::chrono::steady_clock::time_point started) noexcept;

using protocols::first_party_client;
using protocols::join_scope;
using protocols::split_scope;
using protocols::valid_scope_token;

// -- responses -----------------------------------------------------------------------------------

/// The status and JSON error of API.md / RFC 6749 for `code`.
response errc_response(errc code, std::string_view description);
/// Maps an actor reply error: credo errors keep their code, anything else (timeout, entity
/// down) becomes 503 temporarily_unavailable.
response actor_error_response(const caf::error& e);
/// 200 JSON with Cache-Control: no-store and Pragma: no-cache (anything that holds a token).
response token_response(const nlohmann::json& body);
response no_content();

// -- input ---------------------------------------------------------------------------------------

/// A JSON object body: 415 unless application/json, 400 unless a JSON object (depth <= 16).
result<nlohmann::json> json_body(const request& req);
/// A form body: 415 unless application/x-www-form-urlencoded, 400 if malformed.
result<fields> form_body(const request& req);
/// String member of `body` (absent -> nullopt; present but not a string -> error).
result<std::optional<std::string>> string_field(const nlohmann::json& body, const char* name,
                                                std::size_t max_len);

/// The response for a failed json_body/form_body/string_field (415 or 400).
template <class T>
response input_error(const result<T>& r) {
  if (r.description() == "415")
    return error_response(415, "unsupported_media_type", "unsupported content type");
  return errc_response(r.error(), r.description());
}

// -- authentication ------------------------------------------------------------------------------

/// Claims of a live access token (signature, expiry, issuer, revocation and consent cut-offs).
std::shared_ptr<const protocols::verified_token>
check_access_token(front_env& env, std::string_view token, std::int64_t now);
/// The RFC 7662 body for an active access token with these claims.
std::string introspection_body(const nlohmann::json& claims);

struct bearer {
  std::shared_ptr<const nlohmann::json> claims;
  std::string sub, client_id, sid, scope, jti;
};
/// The caller's user identity from Authorization: Bearer. 401 invalid_token otherwise.
result<bearer> authenticate_user(front_env& env, const request& req);

/// True if the request carries the admin token.
bool is_admin(const front_env& env, const request& req);

struct authenticated_client {
  persistence::client_record client;
  bool used_basic = false;
};
/// RFC 6749 2.3: client_secret_basic, client_secret_post, or none (public clients: client_id
/// only). 401 invalid_client (with WWW-Authenticate after Basic) or 400 invalid_request.
result<authenticated_client> authenticate_client(front_env& env, const request& req,
                                                 const fields& form);
response client_error_response(const result<authenticated_client>& r, const request& req);

/// Hex SHA-256 of a client secret: the stored form (docs/decisions/0003-client-secrets.md).
std::string hash_client_secret(std::string_view secret);

// -- scopes --------------------------------------------------------------------------------------

bool contains(const std::vector<std::string>& v, std::string_view x);

// -- actor calls ---------------------------------------------------------------------------------

/// The registry that owns the entity `msg` is for: this node's, or the owner's over CAF.
struct entity_route {
  caf::actor registry;
  std::string node;  // empty: this node
};
template <class Msg>
entity_route route_to(const front_env& env, const Msg& msg) {
  constexpr auto kind = protocols::route_of<Msg>::kind;
  if (!env.options.cluster.ownership)
    return {env.entities.registry(kind), {}};
  auto ring = env.options.cluster.ownership->current();
  auto owner = env.options.cluster.ownership->route_of(kind, protocols::route_of<Msg>::key(msg), ring);
  if (owner.local || !owner.registry)
    return {env.entities.registry(kind), {}};
  return {owner.registry, std::string{owner.node}};
}

/// Work for a front actor from another thread (the membership actor): runs on the front.
struct front_task {
  std::function<void(caf::event_based_actor*)> run;
};

}  // namespace credo::http

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(credo::http::front_task)  // local only, never crosses nodes

namespace credo::http {

/// Entity requests that may be sent again to the key's new owner when the node they went to
/// dies before answering: reads, and refreshes (marked owner_died, see session_refresh).
template <class Msg>
constexpr bool fails_over = std::is_same_v<Msg, protocols::session_refresh>
                            || std::is_same_v<Msg, protocols::session_inspect_refresh>
                            || std::is_same_v<Msg, protocols::consent_query>
                            || std::is_same_v<Msg, protocols::consent_check>;

/// Sends `msg` to the registry owning its entity, with the service deadline; `on_ok(Reply&)`
/// on success, an error response otherwise. When the owner is another node and it dies before
/// answering, a request that fails over is sent again (once per call: `resent`) to the new
/// owner; any other fails at once with 503. `on_error`, if set, runs before any error response.
template <class Reply, class Msg, class OnOk>
void call(caf::event_based_actor* self, const front_env& env, Msg msg, job_ptr j, OnOk on_ok,
          std::function<void()> on_error = {}, bool resent = false) {
  static_assert(std::is_same_v<Reply, typename protocols::route_of<Msg>::reply>);
  auto* stats = &env.entities.stats(protocols::route_of<Msg>::kind);
  auto fail = [j, on_error](response r) {
    if (on_error)
      on_error();
    j->respond(std::move(r));
  };
  if (auto& own = env.options.cluster.ownership; own && !own->serving())
    return fail(errc_response(errc::temporarily_unavailable, "node is joining the cluster"));
  if constexpr (std::is_same_v<Msg, protocols::session_refresh>)
    if (msg.attempt_id.empty())
      msg.attempt_id = protocols::random_token(12);
  stats->observe_mailbox(++stats->in_flight);
  auto dest = route_to(env, msg);
  auto& remote = env.options.cluster.in_flight;
  auto ok = std::make_shared<OnOk>(std::move(on_ok));
  // Whoever comes first, the owner's answer (1) or its node's death (2), handles the call.
  auto claim = std::make_shared<std::atomic<int>>(0);
  auto take = [claim](int who) {
    int pending = 0;
    return claim->compare_exchange_strong(pending, who);
  };
  std::uint64_t id = 0;
  if (!dest.node.empty() && remote) {
    id = remote->add(dest.node, [take, j, msg, ok, fail, on_error, resent,
                                 front = caf::actor_cast<caf::actor>(self)]() mutable {
      if (!take(2))
        return;
      if constexpr (fails_over<Msg>) {
        // Per call, not per request: a third-party refresh makes three calls, and an earlier
        // one failing over must not cost the refresh its own (the rotation may have happened).
        if (!resent) {
          if constexpr (std::is_same_v<Msg, protocols::session_refresh>)
            msg.owner_died = true;
          // The same OnOk type again: a new lambda here would instantiate call() without end.
          caf::anon_send(front, front_task{[j, msg, ok, on_error](caf::event_based_actor* self) {
            call<Reply, Msg, OnOk>(self, *j->env, msg, j, OnOk{*ok}, on_error, true);
          }});
          return;
        }
      }
      fail(errc_response(errc::temporarily_unavailable,
                         "the node that owns this entity left the cluster; retry"));
    });
  }
  // A ring that changed since route_to: the node may be gone and its calls failed already.
  if (id && !env.options.cluster.ownership->is_member(dest.node, dest.registry)) {
    --stats->in_flight;
    return remote->fail(dest.node, id);
  }
  auto finished = [stats, remote, node = dest.node, id] {
    --stats->in_flight;
    if (id)
      remote->done(node, id);
  };
  self->request(dest.registry, env.options.deadline, std::move(msg))
    .then(
      [j, finished, ok, take](Reply& r) mutable {
        finished();
        if (take(1) && !j->answered.load())
          (*ok)(r);
      },
      [j, finished, take, fail](caf::error& e) {
        finished();
        if (take(1) && !j->answered.load())
          fail(actor_error_response(e));
      });
}

// -- rate limits ---------------------------------------------------------------------------------

/// Asks the owners of `j->limit_checks`' buckets (in order), then runs `then` with the
/// job's limit report updated, or answers 429 at the first denial.
void enforce_limits(caf::event_based_actor* self, front_env& env, job_ptr j,
                    std::function<void()> then);

// -- route handlers (front actors) ---------------------------------------------------------------

using front_self = caf::event_based_actor*;

void users_create(front_self self, front_env& env, job_ptr j);
void me_get(front_self self, front_env& env, job_ptr j);
void me_patch(front_self self, front_env& env, job_ptr j);
void me_delete(front_self self, front_env& env, job_ptr j);
void me_export(front_self self, front_env& env, job_ptr j);

void auth_login(front_self self, front_env& env, job_ptr j);
void auth_logout(front_self self, front_env& env, job_ptr j);
void sessions_list(front_self self, front_env& env, job_ptr j);
void sessions_delete(front_self self, front_env& env, job_ptr j);

void oauth_authorize(front_self self, front_env& env, job_ptr j);
void oauth_token(front_self self, front_env& env, job_ptr j);
void oauth_revoke(front_self self, front_env& env, job_ptr j);
/// Refresh-token introspection (JWTs are answered inline by introspect_inline).
void oauth_introspect_refresh(front_self self, front_env& env, job_ptr j, std::string token);

void consent_grant(front_self self, front_env& env, job_ptr j);
void consent_list(front_self self, front_env& env, job_ptr j);
void consent_delete(front_self self, front_env& env, job_ptr j);

void admin_clients_create(front_self self, front_env& env, job_ptr j);
void admin_keys_rotate(front_self self, front_env& env, job_ptr j);
void admin_audit(front_self self, front_env& env, job_ptr j);
/// Fault injection: crashes the entity {"kind": "session"|"consent", "key"} on its owner node.
void admin_fault_crash(front_self self, front_env& env, job_ptr j);

// -- inline handlers (I/O thread) ----------------------------------------------------------------

response discovery(const front_env& env);
std::string discovery_document(const std::string& issuer);
response jwks(const front_env& env);
response health_live();
response health_ready(const front_env& env);
response health(const front_env& env);
response metrics(const front_env& env);
response admin_cluster(const front_env& env);
response admin_actors(const front_env& env);
/// The audit publisher as one more supervisor row of /admin/actors and /metrics (`row` starts
/// at zero: kind audit_publisher).
void describe_publisher(const actors::publisher_stats* p, actors::supervisor_stats& row);
/// The operator dashboard (http/dashboard.html): a static page, no data and no auth; its script
/// reads /admin/cluster and /admin/actors with the admin token the operator gives it.
/// Its style sheet and script are files of their own, so its Content-Security-Policy allows no
/// inline script or style.
enum class dashboard_asset { page, style, script };
response dashboard(dashboard_asset which);
std::string_view dashboard_html();  // generated by http/embed.cmake
std::string_view dashboard_css();
std::string_view dashboard_js();
/// Answers JWT introspection inline; returns nullopt when the token must go to its session
/// entity (an opaque refresh token): then `refresh_token` is set.
/// `authenticated` and `parsed`: the client and the form, when the caller has them already.
std::optional<response> introspect_inline(front_env& env, const request& req,
                                          std::string& refresh_token,
                                          const persistence::client_record* authenticated = nullptr,
                                          const fields* parsed = nullptr);

/// Key rotation (load_signing_keys, for start-up, is in service.hpp).
/// Generates and stores a new active key, retires the old one; `by` (if any) is audited as
/// signing_key.rotated in the key's transaction.
status rotate_signing_key(const actors::node_context& ctx, const actors::audit_fields* by,
                          std::string* new_kid);

}  // namespace credo::http
