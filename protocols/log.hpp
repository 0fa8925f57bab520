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

/// Lines below `lvl` are dropped (default: info).
void set_level(level lvl);
bool enabled(level lvl);
/// "debug", "info", "warn", "error"; nullopt for anything else.
std::optional<level> parse_level(std::string_view name);

/// The node name put on every line.
void set_node(std::string_view node);

}  // namespace credo::log
