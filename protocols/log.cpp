#include "protocols/log.hpp"

#include <atomic>
#include <cstdio>
#include <mutex>
#include <string>

#include <nlohmann/json.hpp>

#include "protocols/clock.hpp"

namespace credo::log {
namespace {
std::mutex mtx;
std::string node_name;
std::atomic<level> min_level{level::info};

const char* name(level l) {
  switch (l) {
    case level::debug: return "debug";
    case level::info: return "info";
    case level::warn: return "warn";
    case level::error: return "error";
  }
  return "info";
}
}  // namespace

void set_level(level lvl) { min_level.store(lvl, std::memory_order_relaxed); }

bool enabled(level lvl) { return lvl >= min_level.load(std::memory_order_relaxed); }

std::optional<level> parse_level(std::string_view text) {
  for (auto l : {level::debug, level::info, level::warn, level::error})
    if (text == name(l))
      return l;
  return std::nullopt;
}

void set_node(std::string_view node) {
  std::lock_guard guard{mtx};
  node_name = node;
}

void write(level lvl, std::string_view msg, const nlohmann::json& fields) {
  if (!enabled(lvl))
    return;
  nlohmann::json line = {{"ts", rfc3339_ms(unix_now_ms())}, {"level", name(lvl)}};
  std::lock_guard guard{mtx};
  line["node"] = node_name;
  line["msg"] = msg;
  if (fields.is_object())
    for (auto& [k, v] : fields.items())
      line[k] = v;
  auto text = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  text.push_back('\n');
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
}

void info(std::string_view msg, const nlohmann::json& fields) { write(level::info, msg, fields); }
void warn(std::string_view msg, const nlohmann::json& fields) { write(level::warn, msg, fields); }
void error(std::string_view msg, const nlohmann::json& fields) { write(level::error, msg, fields); }

}  // namespace credo::log
