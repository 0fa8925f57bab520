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

bool lower_alnum_or(char c, std::string_view extra) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || extra.find(c) != std::string_view::npos;
}

/// The host of an http(s) URI after "://" (brackets kept for IPv6), without userinfo or port.
std::string_view uri_host(std::string_view rest) {
  auto end = rest.find_first_of("/?");
  auto authority = rest.substr(0, end);
  if (authority.find('@') != std::string_view::npos)
    return {};  // userinfo in a redirect URI only serves to confuse readers of it
  if (!authority.empty() && authority.front() == '[') {
    auto close = authority.find(']');
    return close == std::string_view::npos ? std::string_view{} : authority.substr(0, close + 1);
  }
  return authority.substr(0, authority.find(':'));
}

bool loopback_host(std::string_view host) {
  if (host == "localhost" || host == "[::1]")
    return true;
  // 127.0.0.0/8 as a dotted quad.
  if (!host.starts_with("127."))
    return false;
  int parts = 0;
  std::size_t i = 0;
  while (i <= host.size()) {
    auto dot = host.find('.', i);
    auto part = host.substr(i, dot == std::string_view::npos ? std::string_view::npos : dot - i);
    if (part.empty() || part.size() > 3
        || !std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; })
        || std::stoi(std::string{part}) > 255)
      return false;
    ++parts;
    if (dot == std::string_view::npos)
      break;
    i = dot + 1;
  }
  return parts == 4;
}

/// A redirect URI a client may register (RFC 6749 3.1.2, RFC 8252 7, RFC 9700 2.1): absolute,
/// no fragment, no spaces or controls; https to any host; http only to a loopback address (a
/// native app's local listener); or a private-use scheme in reverse-domain form
/// (com.example.app:/callback). Anything else (plain http to a remote host, javascript:, data:,
/// file:, a scheme without a dot) is refused.
bool valid_redirect_uri(const std::string& u) {
  if (u.empty() || u.size() > 2048 || u.find('#') != std::string::npos
      || std::any_of(u.begin(), u.end(), [](unsigned char c) { return c <= 0x20 || c >= 0x7F; }))
    return false;
  std::string_view v{u};
  if (v.starts_with("https://"))
    return !uri_host(v.substr(8)).empty();
  if (v.starts_with("http://"))
    return loopback_host(uri_host(v.substr(7)));
  auto colon = v.find(':');
  if (colon == std::string_view::npos || colon + 1 >= v.size())
    return false;
  auto scheme = v.substr(0, colon);
  return scheme.find('.') != std::string_view::npos && scheme.front() >= 'a'
         && scheme.front() <= 'z' && scheme.back() != '.'
         && std::all_of(scheme.begin(), scheme.end(),
                        [](char c) { return lower_alnum_or(c, ".+-"); })
         && scheme.find("..") == std::string_view::npos;
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
  auto method = string_field(*body, "token_endpoint_auth_method", 32);
  if (!id || !secret || !method)
    return j->respond(errc_response(
      errc::invalid_request,
      "client_id, client_secret and token_endpoint_auth_method must be strings"));
  if (!id->has_value() || !valid_client_id(**id) || **id == first_party_client)
    return j->respond(errc_response(
      errc::invalid_request, "client_id is required: 1-128 of [A-Za-z0-9._:-], not 'credo'"));
  // Secrets are stored as unsalted SHA-256 (0003), which is safe only for high-entropy secrets:
  // a given one has at least 32 characters; a confidential client registered without one gets
  // a generated one (256 bits), answered once.
  std::string auth_method = method->value_or("");
  if (!auth_method.empty() && auth_method != "none" && auth_method != "client_secret_basic"
      && auth_method != "client_secret_post")
    return j->respond(errc_response(errc::invalid_request,
                                    "token_endpoint_auth_method must be none, client_secret_basic "
                                    "or client_secret_post"));
  if (secret->has_value() && (*secret)->size() < 32)
    return j->respond(errc_response(
      errc::invalid_request,
      "client_secret must be 32 to 512 characters (omit it and set token_endpoint_auth_method "
      "to client_secret_basic to have one generated)"));
  if (secret->has_value() && auth_method == "none")
    return j->respond(errc_response(errc::invalid_request,
                                    "a client with token_endpoint_auth_method none has no secret"));
  bool first_party = false;
  if (auto fp = body->find("first_party"); fp != body->end() && !fp->is_null()) {
    if (!fp->is_boolean())
      return j->respond(errc_response(errc::invalid_request, "first_party must be true or false"));
    first_party = fp->get<bool>();
  }
  bool generated = false;
  if (!secret->has_value() && !auth_method.empty() && auth_method != "none") {
    *secret = protocols::random_token(32);
    generated = true;
  }
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
      return j->respond(errc_response(
        errc::invalid_request,
        "redirect_uris must be https URIs, http URIs of a loopback address, or private-use "
        "schemes in reverse-domain form (com.example.app:/cb), without a fragment"));
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
  c.first_party = first_party;
  auto st = env.ctx->stores.clients->create(
    c, {env.ctx->audit->make("client.registered",
                             {"", c.client_id, "", j->req.remote_ip, j->req.request_id},
                             {{"grant_types", c.grant_types}, {"public", is_public}})});
  if (!st)
    return j->respond(errc_response(st.error(), st.error() == errc::conflict
                                                  ? "client_id is already registered"
                                                  : "client store unavailable"));
  nlohmann::json out{{"client_id", c.client_id},
                     {"redirect_uris", c.redirect_uris},
                     {"scopes", c.scopes},
                     {"grant_types", c.grant_types},
                     {"token_endpoint_auth_method",
                      is_public ? std::string{"none"}
                      : auth_method.empty() ? std::string{"client_secret_basic"}
                                            : auth_method},
                     {"first_party", c.first_party},
                     {"created_at", rfc3339(c.created_at)}};
  if (!generated)
    return j->respond(json_response(201, out.dump()));
  out["client_secret"] = **secret;  // shown this once; only its hash is stored
  auto r = json_response(201, out.dump());
  r.headers.emplace_back("Cache-Control", "no-store");
  r.headers.emplace_back("Pragma", "no-cache");
  j->respond(std::move(r));
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

response dashboard(dashboard_asset which) {
  response r;
  switch (which) {
    case dashboard_asset::page:
      r.content_type = "text/html; charset=utf-8";
      r.body = std::string{dashboard_html()};
      break;
    case dashboard_asset::style:
      r.content_type = "text/css; charset=utf-8";
      r.body = std::string{dashboard_css()};
      break;
    case dashboard_asset::script:
      r.content_type = "text/javascript; charset=utf-8";
      r.body = std::string{dashboard_js()};
      break;
  }
  r.headers.emplace_back("Content-Security-Policy",
                         "default-src 'none'; script-src 'self'; style-src 'self'; "
                         "connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; "
                         "base-uri 'none'; form-action 'none'");
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
