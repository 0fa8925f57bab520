#pragma once
// A small synchronous Redis client over hiredis: a pool of connections, each command with a
// timeout, lazy (re)connection with backoff. hiredis stays inside redis_client.cpp; failures are
// errc::temporarily_unavailable (unreachable, timeout) or errc::internal_error (a Redis error
// reply). Thread-safe.
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "protocols/result.hpp"

namespace credo::persistence {

struct redis_reply {
  enum class kind { nil, string, integer, array, status, error } type = kind::nil;
  std::string str;  // string, status and error replies
  long long integer = 0;
  std::vector<redis_reply> elements;
};

struct redis_options {
  std::string host = "127.0.0.1";
  int port = 6379;
  std::string user;  // Redis 6 ACL user; empty: default
  std::string password;
  int db = 0;
  std::chrono::milliseconds timeout{1000};
  std::size_t pool_size = 4;
};

/// redis://[[user]:password@]host:port[/db]. nullopt when malformed.
std::optional<redis_options> parse_redis_url(const std::string& url);

class redis_client {
 public:
  explicit redis_client(redis_options options);
  ~redis_client();
  redis_client(const redis_client&) = delete;
  redis_client& operator=(const redis_client&) = delete;

  /// One command.
  result<redis_reply> command(const std::vector<std::string>& args);
  /// Several commands sent at once on one connection (pipelining); with MULTI/EXEC among them
  /// they run atomically. Replies in order.
  result<std::vector<redis_reply>> pipeline(const std::vector<std::vector<std::string>>& cmds);
  /// PING.
  bool healthy();

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace credo::persistence
