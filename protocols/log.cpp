#include "protocols/log.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "protocols/clock.hpp"

namespace credo::log {
namespace {
// Never destroyed: the flusher thread waits on them until the process ends, and a condition
// variable destroyed under a waiter (at exit) blocks the exit.
struct sink {
  std::mutex mtx;
  std::condition_variable flush_cv;
  bool unflushed = false;  // request lines in stdout's buffer; under mtx
  std::string node_name;
};
sink& out = *new sink;
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

// Request lines wait in stdout's buffer for at most flush_interval_ms; any other line flushes.
void flusher() {
  std::unique_lock lock{out.mtx};
  for (;;) {
    out.flush_cv.wait(lock, [] { return out.unflushed; });
    lock.unlock();
    std::this_thread::sleep_for(std::chrono::milliseconds{flush_interval_ms});
    lock.lock();
    std::fflush(stdout);
    out.unflushed = false;
  }
}

void append_string(std::string& line, std::string_view text) {
  static constexpr char hex[] = "0123456789abcdef";
  line.push_back('"');
  for (unsigned char c : text) {
    if (c == '"' || c == '\\') {
      line.push_back('\\');
      line.push_back(static_cast<char>(c));
    } else if (c < 0x20 || c >= 0x7f) {  // JSON stays valid whatever the bytes were
      line.append("\\u00");
      line.push_back(hex[c >> 4]);
      line.push_back(hex[c & 15]);
    } else {
      line.push_back(static_cast<char>(c));
    }
  }
  line.push_back('"');
}

void emit(level lvl, std::string_view msg, const nlohmann::json& fields) {
  nlohmann::json line = {{"ts", rfc3339_ms(unix_now_ms())}, {"level", name(lvl)}};
  std::lock_guard guard{out.mtx};
  line["node"] = out.node_name;
  line["msg"] = msg;
  if (fields.is_object())
    for (auto& [k, v] : fields.items())
      line[k] = v;
  auto text = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  text.push_back('\n');
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
  out.unflushed = false;
}
}  // namespace

void request(level lvl, const request_fields& f) {
  if (!enabled(lvl))
    return;
  // The timestamp's seconds change once a second: format them then, and the milliseconds here.
  thread_local std::int64_t second = -1;
  thread_local std::string stamp;
  auto now = unix_now_ms();
  if (now / 1000 != second) {
    second = now / 1000;
    stamp = rfc3339_ms(now);
    stamp.resize(stamp.size() - 5);  // "2026-11-22T15:04:05"
  }
  auto digits = [](std::string& out, std::int64_t v, int width) {
    char buf[24];
    int n = 0;
    do {
      buf[n++] = static_cast<char>('0' + v % 10);
      v /= 10;
    } while (v > 0 || n < width);
    while (n > 0)
      out.push_back(buf[--n]);
  };
  thread_local std::string line;
  line.clear();
  line.append("{\"ts\":\"").append(stamp).push_back('.');
  digits(line, now % 1000, 3);
  line.append("Z\",\"level\":\"");
  line.append(name(lvl)).append("\",\"msg\":\"request\",\"request_id\":");
  append_string(line, f.request_id);
  line.append(",\"method\":");
  append_string(line, f.method);
  line.append(",\"route\":");
  append_string(line, f.route);
  line.append(",\"status\":");
  digits(line, f.status, 1);
  auto us = static_cast<std::int64_t>(f.latency_ms * 1000 + 0.5);  // three decimals
  line.append(",\"latency_ms\":");
  digits(line, us / 1000, 1);
  line.push_back('.');
  digits(line, us % 1000, 3);
  line.append(",\"ip\":");
  append_string(line, f.ip);
  if (!f.client_id.empty()) {
    line.append(",\"client_id\":");
    append_string(line, f.client_id);
  }
  line.append(",\"node\":");
  static std::once_flag started;
  std::call_once(started, [] { std::thread(flusher).detach(); });
  std::lock_guard guard{out.mtx};
  append_string(line, out.node_name);
  line.append("}\n");
  std::fwrite(line.data(), 1, line.size(), stdout);
  if (!out.unflushed) {
    out.unflushed = true;
    out.flush_cv.notify_one();
  }
}

void set_level(level lvl) { min_level.store(lvl, std::memory_order_relaxed); }

bool enabled(level lvl) { return lvl >= min_level.load(std::memory_order_relaxed); }

std::optional<level> parse_level(std::string_view text) {
  for (auto l : {level::debug, level::info, level::warn, level::error})
    if (text == name(l))
      return l;
  return std::nullopt;
}

void set_node(std::string_view node) {
  std::lock_guard guard{out.mtx};
  out.node_name = node;
}

void write(level lvl, std::string_view msg, const nlohmann::json& fields) {
  if (enabled(lvl))
    emit(lvl, msg, fields);
}

void lifecycle(std::string_view msg, const nlohmann::json& fields) {
  emit(level::info, msg, fields);
}


void info(std::string_view msg, const nlohmann::json& fields) { write(level::info, msg, fields); }
void warn(std::string_view msg, const nlohmann::json& fields) { write(level::warn, msg, fields); }
void error(std::string_view msg, const nlohmann::json& fields) { write(level::error, msg, fields); }

}  // namespace credo::log
