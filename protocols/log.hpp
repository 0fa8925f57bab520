#pragma once
// One JSON object per line on stdout. Callers pass structured fields; never a token, password,
// secret or code (tests/integration/test_logs.py checks the output of a whole run).
#include <optional>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

namespace credo::log {

enum class level { debug, info, warn, error };

/// Writes {"ts", "level", "node", "msg", ...fields} as one line. Thread-safe.
void write(level lvl, std::string_view msg, const nlohmann::json& fields);
void info(std::string_view msg, const nlohmann::json& fields);
void warn(std::string_view msg, const nlohmann::json& fields);
void error(std::string_view msg, const nlohmann::json& fields);

/// An info line written whatever the level: the process's lifecycle (listening, the generated
/// admin token, shutting down, stopped), which scripts and operators wait for.
void lifecycle(std::string_view msg, const nlohmann::json& fields);

/// Lines below `lvl` are dropped (default: info); lifecycle lines never are.
void set_level(level lvl);
bool enabled(level lvl);
/// "debug", "info", "warn", "error"; nullopt for anything else.
std::optional<level> parse_level(std::string_view name);

/// One answered HTTP request. Written for every request, so it is formatted directly (no JSON
/// object) and not flushed on its own: request lines reach stdout within flush_interval, or
/// with the next line of any other kind, whichever comes first.
struct request_fields {
  std::string_view request_id, method, route, ip, client_id;  // client_id empty: left out
  int status = 0;
  double latency_ms = 0;
};
void request(level lvl, const request_fields& f);
inline constexpr auto flush_interval_ms = 100;

/// The node name put on every line.
void set_node(std::string_view node);

}  // namespace credo::log
