#pragma once
// PostgreSQL access over libpqxx 6.4: a bounded pool of connections and transactions that retry
// transient failures. libpqxx exceptions stop in this adapter and the stores built on it; callers
// see errc values: temporarily_unavailable (server unreachable, connection lost, statement
// timeout, pool exhausted), the caller's choice for a unique violation, internal_error for
// anything else. Descriptions carry at most an SQLSTATE, never SQL text, parameters, server
// messages or the password. Thread-safe.
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>

#include <pqxx/transaction>

#include "protocols/result.hpp"

namespace credo::persistence {

struct pg_options {
  /// libpq key=value string (parse_database_url builds one). The client appends
  /// connect_timeout and `options` (statement_timeout, search_path) to it, overriding those.
  std::string conninfo;
  std::size_t pool_size = 4;
  int statement_timeout_ms = 5000;
  int connect_timeout_s = 3;
  /// How long a caller waits for a pooled connection before temporarily_unavailable.
  int acquire_timeout_ms = 2000;
  /// Non-empty: created if missing and made the only schema on every connection's search_path
  /// (tests use a random one for isolation). Lower-case letters, digits and '_', not starting
  /// with a digit, at most 63 characters.
  std::string schema;
};

/// postgres://[user[:password]@]host[:port][/dbname][?keyword=value&...] (also postgresql://).
/// User, password, host and dbname are percent-decoded; an IPv6 host goes in brackets. Query
/// keywords (e.g. sslmode) are passed to libpq. errc::invalid_request when malformed; the
/// description never quotes the URL.
result<pg_options> parse_database_url(std::string_view url);

class pg_client {
 public:
  /// Connects lazily: constructing never blocks or fails on an unreachable server. Throws
  /// std::invalid_argument for an invalid schema name (a configuration error, caught at start).
  explicit pg_client(pg_options options);
  ~pg_client();
  pg_client(const pg_client&) = delete;
  pg_client& operator=(const pg_client&) = delete;

  /// Runs `fn(pqxx::work&) -> result<T>` in a transaction on a pooled connection and commits
  /// when it returns a value; an error value rolls back and is returned as is. `fn` may run up
  /// to three times (lost connection before commit, serialization failure, deadlock), so it must
  /// touch nothing but the transaction. A unique violation escaping `fn` becomes
  /// `on_unique_violation`.
  template <class F>
  auto transact(F&& fn, errc on_unique_violation = errc::conflict)
    -> std::invoke_result_t<F&, pqxx::work&> {
    using out_type = std::invoke_result_t<F&, pqxx::work&>;
    std::optional<out_type> out;
    auto st = run(
      [&](pqxx::work& w) {
        out.emplace(fn(w));
        return static_cast<bool>(*out);
      },
      on_unique_violation, max_attempts);
    if (!st)
      return out_type{st.error(), st.description()};
    return std::move(*out);
  }

  /// SELECT 1 with a one-second statement timeout and no retry: for readiness checks.
  status ping();

 private:
  static constexpr int max_attempts = 3;
  /// Commits when `body` returns true, rolls back when it returns false.
  status run(const std::function<bool(pqxx::work&)>& body, errc on_unique_violation,
             int attempts);
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace credo::persistence
