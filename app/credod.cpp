// credod: one Credo node. Parses the process contract of API.md (flags or CREDO_* variables),
// builds the stores, the actor system, the entity registries and the HTTP server, then waits
// for SIGTERM/SIGINT and drains.
#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <optional>
#include <string_view>
#include <tuple>
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <thread>

#include <CLI/CLI.hpp>
#include <caf/all.hpp>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include "actors/audit_log.hpp"
#include "actors/audit_publisher.hpp"
#include "app/backends.hpp"
#include "app/health_monitor.hpp"
#include "cluster/membership.hpp"
#include "cluster/remote_calls.hpp"
#include "actors/entities.hpp"
#include "http/server.hpp"
#include "persistence/revocation_mirror.hpp"
#include "http/service.hpp"
#include "protocols/clock.hpp"
#include "protocols/crypto.hpp"
#include "protocols/log.hpp"
#include "protocols/messages.hpp"
#include "protocols/scope.hpp"

namespace {

struct options {
  std::string http = "127.0.0.1:8080";
  std::string issuer;
  std::string node_id;
  std::string cluster;
  std::string seeds;
  std::int64_t access_token_ttl = 900;
  std::int64_t clock_skew = 30;
  std::int64_t refresh_grace_seconds = 0;
  std::int64_t session_ttl = 30 * 86400;
  int io_threads = 1;
  int front_actors = 4;
  int hasher_threads = 0;  // 0: number of cores
  std::size_t body_limit = 64 * 1024;
  int shutdown_grace_ms = 10000;
  std::string log_level = "info";
  std::string kafka_readiness = "required";
  std::string key_encryption_key;
  std::string cluster_secret;
  bool cluster_insecure = false;
  std::string cluster_tls_cert;
  std::string cluster_tls_key;
  std::string cluster_tls_ca;
  bool enable_fault_injection = false;
  std::vector<std::string> rate_limits;
  std::string trusted_proxies;
  std::int64_t lockout_threshold = 5;
  std::string lockout_window = "15m";
  std::string lockout_backoff = "1m";
  std::string lockout_max = "1h";
};

/// "90", "90s", "15m", "2h" as milliseconds; nullopt unless 1 s to 7 days.
std::optional<std::int64_t> duration_ms(std::string_view text) {
  std::int64_t unit = 1000;
  if (!text.empty() && (text.back() == 's' || text.back() == 'm' || text.back() == 'h')) {
    unit = text.back() == 's' ? 1000 : text.back() == 'm' ? 60000 : 3600000;
    text.remove_suffix(1);
  }
  std::int64_t n = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (text.empty() || ec != std::errc{} || p != text.data() + text.size() || n < 1
      || n > 7 * 86400)
    return std::nullopt;
  auto ms = n * unit;
  if (ms > std::int64_t{7} * 86400 * 1000)
    return std::nullopt;
  return ms;
}

[[noreturn]] void fail(const std::string& reason) {
  std::cerr << "credod: " << reason << '\n';
  std::exit(2);
}

bool split_host_port(const std::string& s, std::string& host, std::uint16_t& port) {
  auto colon = s.rfind(':');
  if (colon == std::string::npos || colon == 0)
    return false;
  host = s.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  auto p = s.substr(colon + 1);
  if (p.empty() || p.size() > 5 || p.find_first_not_of("0123456789") != std::string::npos)
    return false;
  auto v = std::stoul(p);
  if (v > 65535)
    return false;
  port = static_cast<std::uint16_t>(v);
  return true;
}

std::string host_name() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0')
    return "credo";
  return buf;
}

/// Why an operator's admin token is too weak to guard /admin ("" if it is not): shorter than
/// 32 characters, or a placeholder from an example file left in place.
std::string weak_admin_token(const std::string& token) {
  if (token.size() < 32)
    return "shorter than 32 characters";
  std::string lower;
  for (char c : token)
    if (std::isalnum(static_cast<unsigned char>(c)))
      lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (const char* placeholder : {"changeme", "replaceme", "placeholder", "example", "yourtoken",
                                  "admintoken", "xxxxxxxx"})
    if (lower.find(placeholder) != std::string::npos)
      return "it looks like a placeholder";
  std::size_t distinct = 0;
  for (int c = 0; c < 256; ++c)
    distinct += token.find(static_cast<char>(c)) != std::string::npos;
  if (distinct < 8)
    return "too few distinct characters";
  return {};
}

}  // namespace

int main(int argc, char** argv) {
  options opt;
  CLI::App app{"credod: a Credo node"};
  app.set_version_flag("--version", "credod 0.1.0");
  auto env = [](CLI::Option* o, const char* var) { return o->envname(var); };
  env(app.add_option("--http", opt.http, "HTTP listen address HOST:PORT"), "CREDO_HTTP");
  env(app.add_option("--issuer", opt.issuer, "token issuer URL (default http://HTTP address)"),
      "CREDO_ISSUER");
  env(app.add_option("--node-id", opt.node_id, "node name (default host name)"), "CREDO_NODE_ID");
  env(app.add_option("--cluster", opt.cluster, "CAF cluster listen address HOST:PORT"),
      "CREDO_CLUSTER");
  env(app.add_option("--seeds", opt.seeds, "cluster seed addresses HOST:PORT,..."), "CREDO_SEEDS");
  env(app.add_option("--cluster-secret", opt.cluster_secret,
                     "shared secret every node proves when it joins (32+ characters)"),
      "CREDO_CLUSTER_SECRET");
  env(app.add_option("--cluster-tls-cert", opt.cluster_tls_cert, "PEM certificate of this node"),
      "CREDO_CLUSTER_TLS_CERT");
  env(app.add_option("--cluster-tls-key", opt.cluster_tls_key, "PEM private key of this node"),
      "CREDO_CLUSTER_TLS_KEY");
  env(app.add_option("--cluster-tls-ca", opt.cluster_tls_ca, "PEM CA that signs every node"),
      "CREDO_CLUSTER_TLS_CA");
  env(app.add_flag("--enable-fault-injection", opt.enable_fault_injection,
                   "tests only: POST /admin/faults/crash crashes a chosen entity"),
      "CREDO_ENABLE_FAULT_INJECTION");
  env(app.add_flag("--cluster-insecure", opt.cluster_insecure,
                   "development only: plain cluster links, without TLS"),
      "CREDO_CLUSTER_INSECURE");
  env(app.add_option("--access-token-ttl", opt.access_token_ttl, "access token life, seconds")
        ->check(CLI::Range(std::int64_t{1}, std::int64_t{86400})),
      "CREDO_ACCESS_TOKEN_TTL");
  env(app.add_option("--clock-skew", opt.clock_skew,
                     "seconds of clock difference between nodes tolerated in exp, nbf and iat")
        ->check(CLI::Range(std::int64_t{0}, std::int64_t{300})),
      "CREDO_CLOCK_SKEW");
  env(app.add_option("--refresh-grace-seconds", opt.refresh_grace_seconds,
                     "replay window that returns the same successor pair")
        ->check(CLI::Range(std::int64_t{0}, std::int64_t{300})),
      "CREDO_REFRESH_GRACE_SECONDS");
  env(app.add_option("--session-ttl", opt.session_ttl, "absolute session life, seconds")
        ->check(CLI::Range(std::int64_t{60}, std::int64_t{365} * 86400)),
      "CREDO_SESSION_TTL");
  env(app.add_option("--io-threads", opt.io_threads, "HTTP I/O threads")
        ->check(CLI::Range(1, 64)),
      "CREDO_IO_THREADS");
  env(app.add_option("--front-actors", opt.front_actors, "HTTP front actors")
        ->check(CLI::Range(1, 256)),
      "CREDO_FRONT_ACTORS");
  env(app.add_option("--hasher-threads", opt.hasher_threads, "password hashing threads (0: cores)")
        ->check(CLI::Range(0, 256)),
      "CREDO_HASHER_THREADS");
  env(app.add_option("--body-limit", opt.body_limit, "maximum request body, bytes")
        ->check(CLI::Range(std::size_t{1024}, std::size_t{16} << 20)),
      "CREDO_BODY_LIMIT");
  env(app.add_option("--key-encryption-key", opt.key_encryption_key,
                     "32 bytes (hex or base64) that encrypt the signing keys in PostgreSQL"),
      "CREDO_KEY_ENCRYPTION_KEY");
  env(app.add_option("--shutdown-grace-ms", opt.shutdown_grace_ms,
                     "time to finish in-flight requests on SIGTERM")
        ->check(CLI::Range(0, 600000)),
      "CREDO_SHUTDOWN_GRACE_MS");
  env(app.add_option("--kafka-readiness", opt.kafka_readiness,
                     "required: /health/ready fails while Kafka is unreachable (PRD-020); "
                     "degraded: reported there, but the node stays ready")
        ->check(CLI::IsMember({"required", "degraded"})),
      "CREDO_KAFKA_READINESS");
  env(app.add_option("--log-level", opt.log_level,
                     "debug, info (one line per request), warn or error")
        ->check(CLI::IsMember({"debug", "info", "warn", "error"})),
      "CREDO_LOG_LEVEL");
  env(app.add_option("--rate-limit", opt.rate_limits,
                     "rate-limit rule NAME=N/PERIOD or NAME=off (NAME all: every rule); repeatable")
        ->delimiter(','),
      "CREDO_RATE_LIMIT");
  env(app.add_option("--trusted-proxies", opt.trusted_proxies,
                     "CIDRs of proxies whose X-Forwarded-For names the client"),
      "CREDO_TRUSTED_PROXIES");
  env(app.add_option("--lockout-threshold", opt.lockout_threshold,
                     "failed logins that lock an account (0: no lockout)")
        ->check(CLI::Range(std::int64_t{0}, std::int64_t{1000})),
      "CREDO_LOCKOUT_THRESHOLD");
  env(app.add_option("--lockout-window", opt.lockout_window,
                     "window in which failed logins count (90, 90s, 15m, 2h)"),
      "CREDO_LOCKOUT_WINDOW");
  env(app.add_option("--lockout-backoff", opt.lockout_backoff,
                     "first lockout's length; each further one doubles it"),
      "CREDO_LOCKOUT_BACKOFF");
  env(app.add_option("--lockout-max", opt.lockout_max, "longest lockout"),
      "CREDO_LOCKOUT_MAX");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0)
      return app.exit(e);
    fail(std::string{e.what()});
  }

  credo::http::rate_limit_config limits;
  for (auto& spec : opt.rate_limits)
    if (auto why = limits.apply(spec))
      fail("--rate-limit '" + spec + "': " + *why);
  for (std::size_t b = 0, e = 0; b < opt.trusted_proxies.size(); b = e + 1) {
    e = std::min(opt.trusted_proxies.find(',', b), opt.trusted_proxies.size());
    auto text = opt.trusted_proxies.substr(b, e - b);
    auto net = credo::http::cidr::parse(text);
    if (!net)
      fail("--trusted-proxies must be CIDRs (10.0.0.0/8,::1), got '" + text + "'");
    limits.trusted_proxies.push_back(*net);
  }
  limits.lockout_enabled = opt.lockout_threshold > 0;
  limits.lockout.threshold = std::max<std::int64_t>(1, opt.lockout_threshold);
  for (auto [flag, text, field] :
       {std::tuple{"--lockout-window", &opt.lockout_window, &limits.lockout.window_ms},
        std::tuple{"--lockout-backoff", &opt.lockout_backoff, &limits.lockout.base_ms},
        std::tuple{"--lockout-max", &opt.lockout_max, &limits.lockout.max_ms}}) {
    auto ms = duration_ms(*text);
    if (!ms)
      fail(std::string{flag} + " must be a duration from 1s to 7 days (90, 90s, 15m, 2h), got '"
           + *text + "'");
    *field = *ms;
  }
  if (limits.lockout.max_ms < limits.lockout.base_ms)
    fail("--lockout-max must not be shorter than --lockout-backoff");

  std::string host;
  std::uint16_t port = 0;
  if (!split_host_port(opt.http, host, port))
    fail("--http must be HOST:PORT, got '" + opt.http + "'");
  credo::app::backend_config bc;
  for (auto [var, field] : {std::pair{"DATABASE_URL", &bc.database_url},
                            std::pair{"REDIS_URL", &bc.redis_url},
                            std::pair{"KAFKA_BROKERS", &bc.kafka_brokers}})
    if (auto v = std::getenv(var); v && *v)
      *field = v;
  bc.key_encryption_key = opt.key_encryption_key;
  auto opened = credo::app::open_backends(bc);
  if (!opened)
    fail(opened.description());
  auto backends = std::move(*opened);
  std::string cluster_host;
  std::uint16_t cluster_port = 0;
  std::vector<std::string> seeds;
  credo::cluster::link_options links;
  if (!opt.seeds.empty() && opt.cluster.empty())
    fail("--seeds needs --cluster HOST:PORT");
  if (!opt.cluster.empty()) {
    if (!split_host_port(opt.cluster, cluster_host, cluster_port))
      fail("--cluster must be HOST:PORT, got '" + opt.cluster + "'");
    if (!backends.database || !backends.redis)
      fail("--cluster needs the shared stores: set DATABASE_URL (PostgreSQL) and REDIS_URL "
           "(Redis); the in-memory stores are single node");
    if (opt.cluster_secret.size() < 32 || opt.cluster_secret.size() > 1024)
      fail("--cluster needs CREDO_CLUSTER_SECRET (or --cluster-secret): 32 to 1024 characters");
    for (std::size_t b = 0, e = 0; b <= opt.seeds.size() && !opt.seeds.empty(); b = e + 1) {
      e = opt.seeds.find(',', b);
      if (e == std::string::npos)
        e = opt.seeds.size();
      auto seed = opt.seeds.substr(b, e - b);
      std::string h;
      std::uint16_t p = 0;
      if (!split_host_port(seed, h, p) || p == 0)
        fail("--seeds must be HOST:PORT,..., got '" + seed + "'");
      seeds.push_back(seed);
    }
    links.certificate = opt.cluster_tls_cert;
    links.key = opt.cluster_tls_key;
    links.cafile = opt.cluster_tls_ca;
    links.tls = !opt.cluster_insecure;
    if (links.tls && (links.certificate.empty() || links.key.empty() || links.cafile.empty()))
      fail("--cluster needs --cluster-tls-cert, --cluster-tls-key and --cluster-tls-ca (or "
           "--cluster-insecure for plain links in development)");
    if (opt.cluster_insecure
        && !(links.certificate.empty() && links.key.empty() && links.cafile.empty()))
      fail("--cluster-insecure and --cluster-tls-* contradict each other: choose one");
    for (auto* f : {&links.certificate, &links.key, &links.cafile})
      if (links.tls && access(f->c_str(), R_OK) != 0)
        fail("cannot read cluster TLS file '" + *f + "'");
    if (links.tls)
      if (auto st = credo::cluster::check_tls_files(links); !st)
        fail(st.description());
  } else if (opt.cluster_insecure || !opt.cluster_tls_cert.empty()) {
    fail("--cluster-insecure and --cluster-tls-* need --cluster HOST:PORT");
  }
  if (opt.node_id.empty())
    opt.node_id = host_name();
  credo::log::set_node(opt.node_id);
  credo::log::set_level(*credo::log::parse_level(opt.log_level));

  // Signals are taken by sigwait() on the main thread; block them before any thread starts.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  std::string admin_token;
  bool generated_admin = false;
  if (auto v = std::getenv("CREDO_ADMIN_TOKEN"); v && *v) {
    admin_token = v;
    if (auto why = weak_admin_token(admin_token); !why.empty())
      fail("CREDO_ADMIN_TOKEN is refused: " + why
           + " (use at least 32 random characters, e.g. `openssl rand -hex 32`)");
  } else {
    admin_token = credo::protocols::random_token(32);
    generated_admin = true;
  }

  auto ctx = std::make_shared<credo::actors::node_context>();
  ctx->node_id = opt.node_id;
  ctx->tokens.access_ttl = opt.access_token_ttl;
  ctx->tokens.clock_skew = opt.clock_skew;
  ctx->tokens.refresh_grace = opt.refresh_grace_seconds;
  ctx->tokens.session_ttl = opt.session_ttl;
  ctx->stores = backends.stores;
  ctx->stores.revocations = credo::actors::count_revocations(ctx->stores.revocations, ctx->metrics);
  ctx->group_commit_audit = backends.database != nullptr;
  ctx->cluster = !opt.cluster.empty();
  ctx->health->kafka_required = opt.kafka_readiness == "required";
  if (backends.kafka)
    ctx->publisher = std::make_shared<credo::actors::publisher_stats>();
  ctx->keys = std::make_shared<credo::protocols::key_ring>();
  ctx->audit = std::make_shared<credo::actors::audit_log>(opt.node_id, ctx->stores.audit);


  // The HTTP server binds first so that port 0 resolves before the issuer is fixed; requests
  // that arrive before the service exists get 503.
  std::shared_ptr<credo::http::service> svc;
  std::atomic<credo::http::service*> svc_ptr{nullptr};
  credo::http::server_options so;
  so.host = host;
  so.port = port;
  so.body_limit = opt.body_limit;
  so.io_threads = opt.io_threads;
  credo::http::server server{so, [&svc_ptr](credo::http::request&& req,
                                            credo::http::responder respond) {
                               if (auto* s = svc_ptr.load(std::memory_order_acquire))
                                 return s->handle(std::move(req), std::move(respond));
                               respond(credo::http::error_response(503, "temporarily_unavailable",
                                                                   "starting"));
                             }};
  try {
    server.start();
  } catch (const std::exception& e) {
    fail(std::string{"cannot listen on "} + opt.http + ": " + e.what());
  }
  auto url_host = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  auto url = "http://" + url_host + ":" + std::to_string(server.port());
  ctx->tokens.issuer = opt.issuer.empty() ? url : opt.issuer;
  while (!ctx->tokens.issuer.empty() && ctx->tokens.issuer.back() == '/')
    ctx->tokens.issuer.pop_back();

  // Work that needs the database: retried by the health monitor until it succeeds, so that a
  // database down at start leaves the node running, not ready, and reconnecting.
  auto bootstrap = [&backends, ctx]() -> credo::status {
    if (auto st = credo::app::prepare_database(backends); !st)
      return st;
    if (auto st = credo::http::load_signing_keys(*ctx); !st)
      return st;
    // The first-party public client of /auth/login (already there after the first start).
    credo::persistence::client_record first_party;
    first_party.client_id = credo::protocols::first_party_client;
    first_party.scopes = {"openid", "profile"};
    first_party.grant_types = {"refresh_token"};
    first_party.created_at = credo::unix_now();
    auto st = ctx->stores.clients->create(first_party, {});
    if (!st && st.error() != credo::errc::conflict)
      return st;
    return credo::ok();
  };
  if (!backends.database) {
    if (auto st = bootstrap(); !st)
      fail("cannot create a signing key: " + st.description());
    ctx->health->bootstrapped = true;
  }

  int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  caf::actor_system_config cfg;
  cfg.add_message_types<caf::id_block::credo_types>();
  cfg.set("scheduler.max-threads", cores);
  cfg.set("logger.verbosity", caf::atom("quiet"));
  // Idle scheduler workers go to sleep on their condition variable (woken by new work) after a
  // few polls instead of polling every 50 us for 25 ms: the polling stole a third of the CPU
  // from the Argon2 hasher threads under a login load.
  cfg.set("work-stealing.aggressive-poll-attempts", std::size_t{10});
  cfg.set("work-stealing.moderate-poll-attempts", std::size_t{10});
  if (!opt.cluster.empty())
    credo::cluster::configure_links(cfg, links);
  {
    caf::actor_system sys{cfg};
    credo::actors::registry_options ro;
    credo::http::service_options svo;
    std::shared_ptr<credo::cluster::remote_calls> in_flight;
    if (!opt.cluster.empty()) {
      svo.cluster.ownership = std::make_shared<credo::cluster::ownership>(opt.node_id);
      in_flight = std::make_shared<credo::cluster::remote_calls>();
    }
    auto entities = credo::actors::spawn_entities(
      sys, ctx, ro, opt.hasher_threads > 0 ? opt.hasher_threads : cores, svo.cluster.ownership,
      in_flight);
    std::string cluster_address;
    if (!opt.cluster.empty()) {
      auto status = std::make_shared<credo::cluster::cluster_status>();
      credo::cluster::membership_config mc;
      mc.node = opt.node_id;
      mc.incarnation = credo::protocols::random_token(12);
      mc.host = cluster_host;
      mc.port = cluster_port;
      mc.seeds = seeds;
      mc.secret = opt.cluster_secret;
      mc.tls = links.tls;
      mc.accept_crash = opt.enable_fault_injection;
      mc.registries = {entities.sessions, entities.consents, entities.rate_limits};
      mc.own = std::const_pointer_cast<credo::cluster::ownership>(svo.cluster.ownership);
      mc.status = status;
      mc.ready = [ctx, mirror = backends.revocations] {
        return ctx->health->bootstrapped.load() && (!mirror || mirror->loaded());
      };
      mc.on_settled = [ctx] { ctx->health->cluster = credo::actors::check_state::ok; };
      mc.on_peer_down = [in_flight](const std::string& node) { in_flight->fail_node(node); };
      if (auto mirror = backends.revocations)
        mc.on_revocations = [mirror, metrics = ctx->metrics](
                              const credo::persistence::revocation_snapshot& s) {
          mirror->apply(s);
          if (s.sent_at_ms > 0)
            metrics->revocation_propagated(
              static_cast<double>(credo::unix_now_ms() - s.sent_at_ms) / 1000.0);
        };
      mc.on_keys_changed = [ctx] {
        // Off the membership actor: a key load waits on PostgreSQL.
        std::thread([ctx] {
          if (ctx->health->bootstrapped.load())
            if (auto st = credo::http::load_signing_keys(*ctx); !st)
              credo::log::warn("cannot reload signing keys after a peer rotated them",
                               {{"reason", st.description()}});
        }).detach();
      };
      auto started = credo::cluster::start_membership(sys, std::move(mc));
      if (!started)
        fail("cannot listen on cluster address " + opt.cluster + ": " + started.description());
      cluster_address = started->address;
      svo.cluster.status = status;
      svo.cluster.in_flight = in_flight;
      svo.cluster.gate = started->gate;
      svo.cluster.membership = started->actor;
      if (auto mirror = backends.revocations)
        mirror->on_write([m = started->actor](credo::persistence::revocation_snapshot s) {
          s.sent_at_ms = credo::unix_now_ms();
          credo::cluster::broadcast_revocations(m, std::move(s));
        });
      ctx->health->cluster = credo::actors::check_state::failed;  // until it joined
    }
    svo.admin_token = admin_token;
    svo.front_actors = opt.front_actors;
    svo.fault_injection = opt.enable_fault_injection;
    svo.rate_limits = limits;
    svc = std::make_shared<credo::http::service>(sys, ctx, entities, svo);
    svc_ptr.store(svc.get(), std::memory_order_release);
    caf::actor publisher;
    if (backends.kafka) {
      credo::actors::audit_publisher_options po;
      po.ready = [ctx] { return ctx->health->bootstrapped.load(); };  // the outbox table exists
      publisher = credo::actors::spawn_audit_publisher(sys, backends.stores.outbox, backends.kafka,
                                                       ctx->publisher, po);
    }
    credo::app::health_monitor monitor{backends, ctx->health, ctx->publisher, bootstrap};

    if (opt.enable_fault_injection)
      credo::log::warn("fault injection is enabled: entities can be crashed through the admin API",
                       nlohmann::json::object());
    // A token never goes to the log (log pipelines keep and ship it): a generated one is shown
    // once on the terminal, and not at all when stderr is not one.
    if (generated_admin) {
      bool shown = isatty(STDERR_FILENO) == 1;
      if (shown)
        std::fprintf(stderr, "credod: generated admin token (shown once): %s\n", admin_token.c_str());
      credo::log::lifecycle(shown ? "generated an admin token, shown once on the terminal"
                                  : "generated an admin token that is not shown (stderr is not a "
                                    "terminal): set CREDO_ADMIN_TOKEN to use the admin API",
                            nlohmann::json::object());
    }
    nlohmann::json listening{{"url", url},
                             {"issuer", ctx->tokens.issuer},
                             {"stores", backends.describe()},
                             {"pid", static_cast<long>(getpid())}};
    if (!cluster_address.empty())
      listening["cluster"] = cluster_address;
    credo::log::lifecycle("listening", listening);

    int sig = 0;
    sigwait(&signals, &sig);
    credo::log::lifecycle("shutting down", {{"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"}});
    // Leave the cluster first: the survivors own this node's keys from now on, this node's
    // entities hand off (finishing what they were sent), and the requests still arriving or in
    // flight here during the drain are routed to the survivors.
    const auto grace = std::chrono::milliseconds{opt.shutdown_grace_ms};
    if (svo.cluster.membership
        && !credo::cluster::leave_cluster(sys, svo.cluster.membership,
                                          std::min(grace, std::chrono::milliseconds{3000})))
      credo::log::warn("cluster leave not acknowledged in time; stopping anyway",
                       nlohmann::json::object());
    server.stop(grace);
    svc_ptr.store(nullptr);
    svc->shutdown();
    if (svo.cluster.membership)
      caf::anon_send_exit(svo.cluster.membership, caf::exit_reason::user_shutdown);
    svc.reset();
    credo::actors::stop_entities(entities);
    if (publisher)
      caf::anon_send_exit(publisher, caf::exit_reason::user_shutdown);
  }
  credo::log::lifecycle("stopped", nlohmann::json::object());
  return 0;
}
