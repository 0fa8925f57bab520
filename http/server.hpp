#pragma once
// Boost.Beast HTTP/1.1 server. Keeps Beast and Asio out of every other header.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "http/message.hpp"

namespace credo::http {

struct server_options {
  std::string host = "127.0.0.1";
  std::uint16_t port = 8080;  // 0 picks a free port; see server::port()
  std::size_t header_limit = 16 * 1024;
  std::size_t body_limit = 64 * 1024;
  std::chrono::seconds read_timeout{15};   // to read one whole request once it has begun
  std::chrono::seconds idle_timeout{60};   // keep-alive connection with no request
  std::size_t max_connections = 10000;
  int io_threads = 1;
};

/// Accepts connections, parses requests with limits, answers protocol errors itself (400, 413,
/// 431, 408) and hands every well-formed request to the handler. Adds X-Request-ID to every
/// response. Responses on one connection go out in request order.
class server {
 public:
  server(server_options options, handler h);
  ~server();
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  /// Binds and starts the I/O threads. Throws std::runtime_error with a one-line reason if the
  /// address cannot be bound (port in use, bad host).
  void start();
  /// The bound port (useful with port 0). Valid after start().
  std::uint16_t port() const;
  /// Stops accepting, lets in-flight requests finish for up to `grace`, then closes everything
  /// and joins the I/O threads. Idempotent.
  void stop(std::chrono::milliseconds grace = std::chrono::milliseconds{5000});

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace credo::http
