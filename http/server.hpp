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
/// 431, each followed by closing the connection; a connection that times out is closed without
/// an answer) and hands every well-formed request to the handler. Adds X-Request-ID,
/// Content-Length and Connection to every response. One request at a time per connection, so
/// responses go out in request order.
///
/// Threading: the handler runs on an I/O thread and must not block; it may answer inline or later
/// from any thread. The server owns the framing headers (Content-Length, Transfer-Encoding,
/// Connection, X-Request-ID, Content-Type comes from response::content_type); handler headers
/// with those names, or with CR/LF/NUL in them, are dropped. Bodies of 204/304 and HEAD answers
/// are not sent.
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
  /// Stops accepting, closes idle connections, lets in-flight requests (handler called, answer
  /// not yet written) finish for up to `grace`, then closes everything and joins the I/O
  /// threads. Answers given after that are dropped. Idempotent; called by the destructor. Must
  /// not be called from an I/O thread (that is, from inside the handler).
  void stop(std::chrono::milliseconds grace = std::chrono::milliseconds{5000});

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace credo::http
