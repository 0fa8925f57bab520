// /admin/*: client registration, key rotation, audit queries, cluster and actor views; and the
// signing-key lifecycle (load at start, rotate, prune keys no live token can need).
#include <algorithm>
#include <charconv>
#include <mutex>

#include "actors/audit_publisher.hpp"
#include "http/front.hpp"
#include "protocols/clock.hpp"

namespace credo::http {
namespace {

bool valid_client_id(const std::string& id) {
  return !id.empty() && id.size() <= 128 && std::all_of(id.begin(), id.end(), [](unsigned char c) {
    return std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == ':';
  });
}

bool valid_redirect_uri(const std::string& u) {
  // Absolute URI without a fragment (RFC 6749 3.1.2); http(s) or a private-use scheme.
  if (u.empty() || u.size() > 2048 || u.find('#') != std::string::npos)
    return false;
  auto colon = u.find("://");
  if (colon == std::string::npos || colon == 0)
    return false;
  return std::none_of(u.begin(), u.end(), [](unsigned char c) { return c <= 0x20 || c == 0x7F; });
}

result<std::vector<std::string>> string_array(const nlohmann::json& body, const char* name,
                                              std::size_t max_items, bool required) {
  auto i = body.find(name);
  if (i == body.end() || i->is_null()) {
    if (required)
      return {errc::invalid_request, std::string{name} + " is required"};
    return std::vector<std::string>{};
  }
  if (!i->is_array() || i->size() > max_items)
    return {errc::invalid_request, std::string{name} + " must be an array of strings"};
  std::vector<std::string> out;
  for (auto& v : *i) {
    if (!v.is_string())
      return {errc::invalid_request, std::string{name} + " must be an array of strings"};
    if (!contains(out, v.get<std::string>()))
      out.push_back(v.get<std::string>());
  }
  return out;
}

}  // namespace

void admin_clients_create(front_self, front_env& env, job_ptr j) {
  auto body = json_body(j->req);
  if (!body)
    return j->respond(input_error(body));
  auto id = string_field(*body, "client_id", 128);
  auto secret = string_field(*body, "client_secret", 512);
  if (!id || !secret)
    return j->respond(errc_response(errc::invalid_request, "client_id and client_secret must be strings"));
  if (!id->has_value() || !valid_client_id(**id) || **id == first_party_client)
    return j->respond(errc_response(
      errc::invalid_request, "client_id is required: 1-128 of [A-Za-z0-9._:-], not 'credo'"));
  if (secret->has_value() && ((*secret)->size() < 8))
    return j->respond(errc_response(errc::invalid_request, "client_secret must be 8 to 512 characters"));
  auto uris = string_array(*body, "redirect_uris", 32, false);
  auto scopes = string_array(*body, "scopes", 64, false);
  auto grants = string_array(*body, "grant_types", 3, false);
  if (!uris)
    return j->respond(errc_response(uris.error(), uris.description()));
  if (!scopes)
    return j->respond(errc_response(scopes.error(), scopes.description()));
  if (!grants)
    return j->respond(errc_response(grants.error(), grants.description()));
  for (auto& u : *uris)
    if (!valid_redirect_uri(u))
      return j->respond(errc_response(errc::invalid_request, "redirect_uris must be absolute URIs without fragment"));
  for (auto& s : *scopes)
    if (!valid_scope_token(s))
      return j->respond(errc_response(errc::invalid_request, "scopes must be scope tokens"));
  if (grants->empty())
    *grants = {"authorization_code", "refresh_token"};
  for (auto& g : *grants)
    if (g != "authorization_code" && g != "refresh_token" && g != "client_credentials")
      return j->respond(errc_response(errc::invalid_request, "unsupported grant type: " + g));
  bool is_public = !secret->has_value();
  if (is_public && contains(*grants, "client_credentials"))
    return j->respond(errc_response(errc::invalid_request, "a public client cannot use client_credentials"));
  if (contains(*grants, "authorization_code") && uris->empty())
    return j->respond(errc_response(errc::invalid_request, "authorization_code needs redirect_uris"));
  persistence::client_record c;
  c.client_id = **id;
  c.secret_hash = is_public ? "" : hash_client_secret(**secret);
  c.redirect_uris = *uris;
  c.scopes = *scopes;
  c.grant_types = *grants;
  c.created_at = unix_now();
  auto st = env.ctx->stores.clients->create(
    c, {env.ctx->audit->make("client.registered",
                             {"", c.client_id, "", j->req.remote_ip, j->req.request_id},
                             {{"grant_types", c.grant_types}, {"public", is_public}})});
  if (!st)
    return j->respond(errc_response(st.error(), st.error() == errc::conflict
                                                  ? "client_id is already registered"
                                                  : "client store unavailable"));
  j->respond(json_response(201, nlohmann::json{{"client_id", c.client_id},
                                               {"redirect_uris", c.redirect_uris},
                                               {"scopes", c.scopes},
                                               {"grant_types", c.grant_types},
                                               {"token_endpoint_auth_method",
                                                is_public ? "none" : "client_secret_basic"},
                                               {"created_at", rfc3339(c.created_at)}}
                                      .dump()));
}

void admin_keys_rotate(front_self, front_env& env, job_ptr j) {
  std::string kid;
  actors::audit_fields by{"", "", "", j->req.remote_ip, j->req.request_id};
  auto st = rotate_signing_key(*env.ctx, &by, &kid);
  if (!st)
    return j->respond(errc_response(st.error(), "key store unavailable"));
  cluster::broadcast_keys_changed(env.options.cluster.membership);  // peers reload the keys
  j->respond(json_response(200, nlohmann::json{{"kid", kid}}.dump()));
}

void admin_audit(front_self, front_env& env, job_ptr j) {
  std::string subject{j->req.query_param("subject").value_or("")};
  std::size_t limit = 100;
  if (auto l = j->req.query_param("limit")) {
    std::size_t v = 0;
    auto [p, ec] = std::from_chars(l->data(), l->data() + l->size(), v);
    if (ec != std::errc{} || p != l->data() + l->size() || v < 1 || v > 1000)
      return j->respond(errc_response(errc::invalid_request, "limit must be 1 to 1000"));
    limit = v;
  }
  if (subject.size() > 128)
    return j->respond(errc_response(errc::invalid_request, "subject is too long"));
  auto events = env.ctx->stores.audit->query(subject, limit);
  if (!events)
    return j->respond(errc_response(errc::temporarily_unavailable, "audit store unavailable"));
  nlohmann::json arr = nlohmann::json::array();
  for (auto& e : *events)
    arr.push_back(actors::audit_log::to_json(e));
  j->respond(json_response(200, nlohmann::json{{"events", std::move(arr)}}.dump()));
}

void admin_fault_crash(front_self self, front_env& env, job_ptr j) {
  if (!env.options.fault_injection)
    return j->respond(error_response(404, "not_found", "no such endpoint"));
  auto body = json_body(j->req);
  if (!body)
    return j->respond(input_error(body));
  auto kind = string_field(*body, "kind", 16);
  auto key = string_field(*body, "key", 256);
  if (!kind || !key || !kind->has_value() || !key->has_value() || (*key)->empty())
    return j->respond(errc_response(errc::invalid_request, "kind and key are required strings"));
  auto crashed = [j](bool) { j->respond(json_response(200, R"({"crashed":true})")); };
  if (**kind == "session")
    return call<bool>(self, env, protocols::session_crash{**key}, j, crashed);
  if (**kind == "consent")
    return call<bool>(self, env, protocols::consent_crash{**key}, j, crashed);
  if (**kind == "rate_limit")
    return call<bool>(self, env, protocols::rate_limit_crash{**key}, j, crashed);
  j->respond(errc_response(errc::invalid_request, "kind must be session, consent or rate_limit"));
}

response admin_cluster(const front_env& env) {
  if (!env.options.cluster.status) {  // single node
    auto now = rfc3339(unix_now());
    return json_response(200, nlohmann::json{{"node", env.ctx->node_id},
                                             {"members", {{{"node", env.ctx->node_id},
                                                           {"address", nullptr},
                                                           {"status", "up"},
                                                           {"last_seen", now}}}},
                                             {"ring_version", 1}}
                                .dump());
  }
  auto view = env.options.cluster.status->snapshot();
  auto members = nlohmann::json::array();
  for (auto& m : view.members)
    members.push_back({{"node", m.node},
                       {"address", m.address},
                       {"status", m.status},
                       {"last_seen", rfc3339_ms(m.last_seen_ms)}});
  return json_response(200, nlohmann::json{{"node", view.node},
                                           {"members", std::move(members)},
                                           {"ring_version", view.ring_version}}
                              .dump());
}

response dashboard() {
  response r;
  r.content_type = "text/html; charset=utf-8";
  r.body = std::string{dashboard_html()};
  r.headers.emplace_back("Content-Security-Policy",
                         "default-src 'none'; script-src 'self' 'unsafe-inline'; "
                         "style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; "
                         "frame-ancestors 'none'");
  r.headers.emplace_back("Cache-Control", "no-store");
  r.headers.emplace_back("X-Content-Type-Options", "nosniff");
  r.headers.emplace_back("Referrer-Policy", "no-referrer");
  return r;
}

void describe_publisher(const actors::publisher_stats* p, actors::supervisor_stats& row) {
  if (!p)
    return;  // no Kafka: no publisher, every counter 0
  // One actor, linked to the node rather than supervised: it restarts its round on failure
  // instead of dying, so its failures are failed rounds and it never restarts.
  row.live = 1;
  row.failures = p->failures.load();
  row.set_last_failure(p->last_error());
}

response admin_actors(const front_env& env) {
  auto kind = [](const actors::supervisor_stats& s) {
    auto last = s.last_failure();
    return nlohmann::json{{"kind", s.kind},
                          {"live", s.live.load()},
                          {"restarts", s.restarts.load()},
                          {"failures", s.failures.load()},
                          {"max_mailbox", s.max_mailbox.load()},
                          {"last_failure", last.empty() ? nlohmann::json(nullptr) : nlohmann::json(last)}};
  };
  actors::supervisor_stats publisher{"audit_publisher"};
  describe_publisher(env.ctx->publisher.get(), publisher);
  nlohmann::json sup = nlohmann::json::array({kind(*env.entities.session_stats),
                                              kind(*env.entities.rate_limit_stats),
                                              kind(*env.entities.consent_stats), kind(publisher)});
  return json_response(200, nlohmann::json{{"node", env.ctx->node_id}, {"supervisors", sup}}.dump());
}

status load_signing_keys(const actors::node_context& ctx) {
  auto keys = ctx.stores.keys->load_all();
  if (!keys)
    return {keys.error(), keys.description()};
  if (keys->empty()) {
    std::string kid;
    return rotate_signing_key(ctx, nullptr, &kid);
  }
  if (!ctx.keys->load(*keys))
    return {errc::internal_error, "a stored signing key does not parse"};
  return ok();
}

status rotate_signing_key(const actors::node_context& ctx, const actors::audit_fields* by,
                          std::string* new_kid) {
  // One rotation at a time per node, so two concurrent calls cannot both retire the same key
  // and leave the ring without one of the new ones.
  static std::mutex rotation;
  std::lock_guard guard{rotation};
  auto now = unix_now();
  auto keys = ctx.stores.keys->load_all();
  if (!keys)
    return keys.error();
  auto fresh = protocols::generate_signing_key(now);
  persistence::audit_events events;
  if (by)
    events.push_back(ctx.audit->make("signing_key.rotated", *by, {{"kid", fresh.kid}}));
  if (auto st = ctx.stores.keys->save(fresh, events); !st)
    return st;
  std::vector<protocols::signing_key_record> ring{fresh};
  // Keep a retired key while a token it signed may still be live (access TTL + 60 s skew).
  for (auto& k : *keys) {
    if (k.retired_at == 0) {
      k.retired_at = now;
      ctx.stores.keys->save(k, {});
    }
    if (k.retired_at + ctx.tokens.access_ttl + 60 >= now)
      ring.push_back(k);
    else
      ctx.stores.keys->erase(k.kid);
  }
  if (!ctx.keys->load(ring))
    return errc::internal_error;
  *new_kid = fresh.kid;
  return ok();
}

}  // namespace credo::http
