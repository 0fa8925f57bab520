#include "persistence/pg_client.hpp"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

#include <pqxx/pqxx>

namespace credo::persistence {
namespace {

using clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using connection_ptr = std::unique_ptr<pqxx::connection>;

// Serialises CREATE SCHEMA IF NOT EXISTS, which races with itself on a fresh database.
constexpr long long schema_lock_key = 0x437265646f0001;  // "Credo" 0001

constexpr milliseconds first_backoff{50};
constexpr milliseconds max_backoff{2000};

status bad_url(const char* what) {
  return {errc::invalid_request, std::string{"database URL: "} + what};
}

int hex_value(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

// nullopt on a truncated or non-hex escape, or an escaped NUL (libpq takes C strings).
std::optional<std::string> percent_decode(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out.push_back(in[i]);
      continue;
    }
    if (i + 2 >= in.size())
      return std::nullopt;
    int hi = hex_value(in[i + 1]);
    int lo = hex_value(in[i + 2]);
    if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
      return std::nullopt;
    out.push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return out;
}

// A libpq conninfo value: always quoted, so spaces and quotes in a password are safe.
std::string conninfo_value(std::string_view v) {
  std::string out{"'"};
  for (char c : v) {
    if (c == '\'' || c == '\\')
      out.push_back('\\');
    out.push_back(c);
  }
  out.push_back('\'');
  return out;
}

void append_param(std::string& conninfo, std::string_view key, std::string_view value) {
  if (!conninfo.empty())
    conninfo.push_back(' ');
  conninfo.append(key).push_back('=');
  conninfo.append(conninfo_value(value));
}

bool valid_host(std::string_view h) {
  return !h.empty() && std::all_of(h.begin(), h.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_';
  });
}

// "host[:port]" or "[v6][:port]" into conninfo; false when malformed.
bool parse_host_port(std::string_view hp, std::string& conninfo) {
  std::string_view host = hp;
  std::string_view port;
  const bool bracketed = !hp.empty() && hp.front() == '[';
  if (bracketed) {
    auto close = hp.find(']');
    if (close == std::string_view::npos)
      return false;
    host = hp.substr(1, close - 1);
    auto rest = hp.substr(close + 1);
    if (!rest.empty() && rest.front() != ':')
      return false;
    if (!rest.empty())
      port = rest.substr(1);
    if (host.empty() || host.find_first_not_of("0123456789abcdefABCDEF:.") != host.npos)
      return false;
  } else if (auto colon = hp.find(':'); colon != std::string_view::npos) {
    host = hp.substr(0, colon);
    port = hp.substr(colon + 1);
    if (port.empty())
      return false;
  }
  if (!port.empty()) {
    if (port.size() > 5 || port.find_first_not_of("0123456789") != port.npos)
      return false;
    int p = std::stoi(std::string{port});
    if (p < 1 || p > 65535)
      return false;
  }
  auto decoded = percent_decode(host);  // %2F...: a Unix-socket directory
  if (!decoded || decoded->empty() ||
      !(bracketed || valid_host(*decoded) || decoded->front() == '/'))
    return false;
  append_param(conninfo, "host", *decoded);
  if (!port.empty())
    append_param(conninfo, "port", port);
  return true;
}

bool valid_keyword(std::string_view k) {
  return !k.empty() && std::all_of(k.begin(), k.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || c == '_';
  });
}

status parse_query(std::string_view query, std::string& conninfo) {
  while (!query.empty()) {
    auto amp = query.find('&');
    auto pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    auto eq = pair.find('=');
    if (eq == std::string_view::npos || !valid_keyword(pair.substr(0, eq)))
      return bad_url("malformed query parameter");
    auto value = percent_decode(pair.substr(eq + 1));
    if (!value)
      return bad_url("bad percent-encoding in a query parameter");
    append_param(conninfo, pair.substr(0, eq), *value);
  }
  return ok();
}

bool valid_schema(std::string_view s) {
  if (s.empty() || s.size() > 63 || (s.front() >= '0' && s.front() <= '9'))
    return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  });
}

// The caller's conninfo plus the settings every pooled connection must have. Server settings go
// in the startup packet (`options`) rather than a SET after connecting so that they hold on any
// connection libpqxx might quietly re-open.
std::string full_conninfo(const pg_options& o) {
  std::string server_opts = "-c statement_timeout=" + std::to_string(o.statement_timeout_ms);
  if (!o.schema.empty())
    server_opts += " -c search_path=" + o.schema;
  std::string out = o.conninfo;
  append_param(out, "connect_timeout", std::to_string(std::max(o.connect_timeout_s, 1)));
  append_param(out, "options", server_opts);
  return out;
}

}  // namespace

result<pg_options> parse_database_url(std::string_view url) {
  std::string_view rest;
  for (std::string_view scheme : {"postgres://", "postgresql://"})
    if (url.substr(0, scheme.size()) == scheme)
      rest = url.substr(scheme.size());
  if (rest.empty())
    return {errc::invalid_request,
            "database URL: expected postgres://user:password@host:port/dbname"};
  std::string_view query;
  if (auto q = rest.find('?'); q != std::string_view::npos) {
    query = rest.substr(q + 1);
    rest = rest.substr(0, q);
  }
  auto slash = rest.find('/');
  auto authority = rest.substr(0, slash);
  auto path = slash == std::string_view::npos ? std::string_view{} : rest.substr(slash + 1);
  pg_options o;
  // The last '@': a password with an unescaped '@' still parses.
  if (auto at = authority.rfind('@'); at != std::string_view::npos) {
    auto userinfo = authority.substr(0, at);
    authority = authority.substr(at + 1);
    auto colon = userinfo.find(':');
    auto user = percent_decode(userinfo.substr(0, colon));
    if (!user)
      return {errc::invalid_request, "database URL: bad percent-encoding in the user name"};
    if (!user->empty())
      append_param(o.conninfo, "user", *user);
    if (colon != std::string_view::npos) {
      auto password = percent_decode(userinfo.substr(colon + 1));
      if (!password)
        return {errc::invalid_request, "database URL: bad percent-encoding in the password"};
      append_param(o.conninfo, "password", *password);
    }
  }
  if (!parse_host_port(authority, o.conninfo))
    return {errc::invalid_request, "database URL: malformed host or port"};
  if (!path.empty()) {
    auto db = percent_decode(path);
    if (!db || db->find('/') != std::string::npos)
      return {errc::invalid_request, "database URL: malformed database name"};
    append_param(o.conninfo, "dbname", *db);
  }
  if (auto st = parse_query(query, o.conninfo); !st)
    return {st.error(), st.description()};
  return o;
}

struct pg_client::impl {
  pg_options options;
  std::string conninfo;  // with timeouts and search_path
  std::mutex mtx;
  std::condition_variable freed;
  std::vector<connection_ptr> idle;
  std::size_t open = 0;  // idle plus leased
  clock::time_point retry_after{};
  milliseconds backoff = first_backoff;

  result<connection_ptr> connect() {
    try {
      auto c = std::make_unique<pqxx::connection>(conninfo);
      if (!options.schema.empty()) {
        pqxx::work w{*c};
        w.exec("SELECT pg_advisory_xact_lock(" + std::to_string(schema_lock_key) + ")");
        w.exec("CREATE SCHEMA IF NOT EXISTS " + w.quote_name(options.schema));
        w.commit();
      }
      return c;
    } catch (const pqxx::broken_connection&) {
      // libpq's message names host and port (and never the password), but a conninfo syntax
      // error could echo parts of the conninfo: say nothing of it.
      return {errc::temporarily_unavailable, "postgres unreachable or refused the connection"};
    } catch (const pqxx::sql_error& e) {
      // Reachable but refusing the schema (e.g. no CREATE privilege): not transient.
      return {errc::internal_error, "postgres session setup failed (" + e.sqlstate() + ")"};
    } catch (const std::exception&) {
      return {errc::temporarily_unavailable, "postgres connection failed"};
    }
  }

  // An idle connection, or a new one while the pool has room. Waits at most acquire_timeout_ms
  // for a leased one to come back; after a failed connect, callers fail fast until the backoff
  // (50 ms doubling to 2 s) has passed, so a down server is not hammered.
  result<connection_ptr> acquire() {
    std::unique_lock guard{mtx};
    auto deadline = clock::now() + milliseconds{options.acquire_timeout_ms};
    auto pool_size = std::max<std::size_t>(options.pool_size, 1);
    if (!freed.wait_until(guard, deadline, [&] { return !idle.empty() || open < pool_size; }))
      return {errc::temporarily_unavailable, "postgres pool exhausted"};
    if (!idle.empty()) {
      auto c = std::move(idle.back());
      idle.pop_back();
      return c;
    }
    if (clock::now() < retry_after)
      return {errc::temporarily_unavailable, "postgres unreachable (backing off)"};
    ++open;
    guard.unlock();
    auto c = connect();
    guard.lock();
    if (!c) {
      --open;
      retry_after = clock::now() + backoff;
      backoff = std::min(backoff * 2, max_backoff);
      freed.notify_one();
      return c;
    }
    backoff = first_backoff;
    retry_after = {};
    return c;
  }

  // A lost connection usually means a restarted or unreachable server, so the idle ones are
  // dropped with it rather than each costing a failed attempt.
  void release(connection_ptr c, bool healthy) {
    std::vector<connection_ptr> dropped;
    {
      std::lock_guard guard{mtx};
      if (healthy && c->is_open()) {
        idle.push_back(std::move(c));
      } else {
        dropped.swap(idle);
        open -= 1 + dropped.size();
        dropped.push_back(std::move(c));
      }
    }
    freed.notify_all();
    // `dropped` closes its sockets here, outside the lock.
  }
};

namespace {

struct attempt_outcome {
  status st;
  bool retry = false;
  bool healthy = true;  // the connection may go back to the pool
};

attempt_outcome transient(const char* what, bool healthy) {
  return {{errc::temporarily_unavailable, what}, true, healthy};
}

attempt_outcome attempt(pqxx::connection& c, const std::function<bool(pqxx::work&)>& body,
                        errc on_unique_violation) {
  try {
    pqxx::work w{c};
    if (body(w))
      w.commit();
    return {ok()};  // not committed: the destructor rolls back
  } catch (const pqxx::in_doubt_error&) {
    // The commit may have happened: a retry could apply the change twice.
    return {{errc::temporarily_unavailable, "postgres connection lost during commit"}, false,
            false};
  } catch (const pqxx::broken_connection&) {
    return transient("postgres connection lost", false);
  } catch (const pqxx::serialization_failure&) {
    return transient("postgres serialization failure (40001)", true);
  } catch (const pqxx::deadlock_detected&) {
    return transient("postgres deadlock (40P01)", true);
  } catch (const pqxx::unique_violation&) {
    return {{on_unique_violation, "unique violation"}};
  } catch (const pqxx::sql_error& e) {
    const auto& state = e.sqlstate();
    if (state == "57014")
      return {{errc::temporarily_unavailable, "postgres statement timeout (57014)"}};
    // Connection exceptions (08xxx) and the server shutting down or starting (57P01..03).
    if (state.rfind("08", 0) == 0 || state.rfind("57P0", 0) == 0)
      return transient("postgres connection lost", false);
    return {{errc::internal_error, "postgres error (" + state + ")"}, false, c.is_open()};
  } catch (const std::exception&) {
    return {{errc::internal_error, "postgres transaction failed"}, false, c.is_open()};
  }
}

}  // namespace

pg_client::pg_client(pg_options options) : impl_(std::make_unique<impl>()) {
  if (!options.schema.empty() && !valid_schema(options.schema))
    throw std::invalid_argument("pg_options.schema is not a plain lower-case identifier");
  impl_->conninfo = full_conninfo(options);
  impl_->options = std::move(options);
}

pg_client::~pg_client() = default;

status pg_client::run(const std::function<bool(pqxx::work&)>& body, errc on_unique_violation,
                      int attempts) {
  status last = {errc::temporarily_unavailable, "postgres unavailable"};
  for (int i = 0; i < attempts; ++i) {
    if (i > 0)  // a short pause lets a conflicting transaction finish
      std::this_thread::sleep_for(milliseconds{10 * i});
    auto c = impl_->acquire();
    if (!c)
      return {c.error(), c.description()};
    auto outcome = attempt(**c, body, on_unique_violation);
    impl_->release(std::move(*c), outcome.healthy);
    if (!outcome.retry)
      return outcome.st;
    last = std::move(outcome.st);
  }
  return last;
}

status pg_client::ping() {
  return run(
    [](pqxx::work& w) {
      w.exec("SET LOCAL statement_timeout = 1000");
      w.exec("SELECT 1");
      return false;  // nothing to commit
    },
    errc::internal_error, 1);
}

}  // namespace credo::persistence
