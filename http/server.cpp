#include "http/server.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <future>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>
#include <unordered_set>
#include <vector>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "http/request_builder.hpp"

namespace credo::http {
namespace {

namespace beast = boost::beast;
namespace bhttp = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using error_code = boost::system::error_code;

class session;

// State shared by the acceptor, every session and every outstanding responder. Sessions (and so
// responders) hold it by shared_ptr: the io_context inside must outlive every socket, even when a
// responder is kept by another thread after the server object is gone.
struct core : std::enable_shared_from_this<core> {
  core(server_options o, handler h)
      : opts(std::move(o)), on_request(std::move(h)), ioc(std::max(1, opts.io_threads)) {}

  void do_accept();
  void on_accept(error_code ec, tcp::socket socket);
  void note_answered();

  // Runs the io_context on the calling thread until it runs out of work; swallows exceptions a
  // completion handler may throw so that none escapes an I/O thread.
  void run() {
    for (;;) {
      try {
        ioc.run();
        return;
      } catch (...) {
      }
    }
  }

  template <class F>
  void for_each_session(F&& f);

  server_options opts;
  handler on_request;

  std::atomic<std::size_t> connections{0};
  std::atomic<std::size_t> in_flight{0};  // handler called, response not yet written
  std::atomic<bool> stopping{false};      // no new connections, no further keep-alive reads
  std::atomic<bool> closed{false};        // io_context no longer run: late answers are dropped
  std::atomic<int> posting{0};            // responders between the `closed` check and dispatch

  std::mutex drain_mu;
  std::condition_variable drain_cv;

  std::mutex sessions_mu;
  std::unordered_set<session*> sessions;

  // Declared after everything a session destructor touches.
  net::io_context ioc;
  tcp::acceptor acceptor{net::make_strand(ioc)};
  net::steady_timer accept_retry{acceptor.get_executor()};
};

bool is_http_parse_error(const error_code& ec) {
  return ec.category() == bhttp::make_error_code(bhttp::error::bad_method).category();
}

bool header_is_safe(std::string_view name, std::string_view value) {
  if (name.empty()) return false;
  for (char c : name) {
    if (c <= ' ' || c == ':' || c == 0x7F) return false;
  }
  return value.find_first_of("\r\n", 0) == std::string_view::npos &&
         value.find('\0') == std::string_view::npos;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           auto lx = (x >= 'A' && x <= 'Z') ? x - 'A' + 'a' : x;
           auto ly = (y >= 'A' && y <= 'Z') ? y - 'A' + 'a' : y;
           return lx == ly;
         });
}

// Framing headers are the server's; a handler setting them would corrupt the connection.
bool header_is_reserved(std::string_view name) {
  return iequals(name, "content-length") || iequals(name, "transfer-encoding") ||
         iequals(name, "connection") || iequals(name, "x-request-id");
}

class session : public std::enable_shared_from_this<session> {
 public:
  session(std::shared_ptr<core> c, tcp::socket&& socket)
      : core_(std::move(c)), stream_(std::move(socket)) {
    error_code ec;
    auto ep = stream_.socket().remote_endpoint(ec);
    if (!ec) remote_ip_ = ep.address().to_string();
    stream_.socket().set_option(tcp::no_delay(true), ec);
  }

  ~session() {
    finish_in_flight();
    {
      std::lock_guard lock(core_->sessions_mu);
      core_->sessions.erase(this);
    }
    core_->connections.fetch_sub(1);
  }

  void start() {
    {
      std::lock_guard lock(core_->sessions_mu);
      core_->sessions.insert(this);
    }
    // A session registered after stop() took its snapshot sees `stopping` here and closes.
    net::dispatch(stream_.get_executor(),
                  beast::bind_front_handler(&session::do_read, shared_from_this()));
  }

  /// Any thread. Closes the connection on its strand; unless `even_in_flight`, only when it is
  /// not between handler call and written answer.
  static void post_close(std::shared_ptr<session> s, bool even_in_flight) {
    auto ex = s->stream_.get_executor();
    net::post(ex, [s = std::move(s), even_in_flight] {
      if (even_in_flight || !s->in_flight_) s->stream_.close();
    });
  }

 private:
  void do_read() {
    if (core_->stopping.load()) {
      stream_.close();
      return;
    }
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(
        std::min<std::size_t>(core_->opts.header_limit, UINT32_MAX)));
    parser_->body_limit(core_->opts.body_limit);
    if (first_request_ || buffer_.size() != 0) {
      first_request_ = false;
      read_request();
      return;
    }
    // Between keep-alive requests: wait up to idle_timeout for the first byte, then give the
    // request read_timeout to arrive whole.
    stream_.expires_after(core_->opts.idle_timeout);
    stream_.async_read_some(buffer_.prepare(read_chunk),
                            beast::bind_front_handler(&session::on_idle_read, shared_from_this()));
  }

  void on_idle_read(error_code ec, std::size_t n) {
    if (ec) {
      stream_.close();
      return;
    }
    buffer_.commit(n);
    read_request();
  }

  void read_request() {
    stream_.expires_after(core_->opts.read_timeout);
    bhttp::async_read(stream_, buffer_, *parser_,
                      beast::bind_front_handler(&session::on_read, shared_from_this()));
  }

  void on_read(error_code ec, std::size_t) {
    if (ec) {
      if (ec == bhttp::error::body_limit) {
        send_protocol_error(413, "payload_too_large", "request body exceeds the size limit");
      } else if (ec == bhttp::error::header_limit) {
        send_protocol_error(431, "request_header_fields_too_large",
                            "request header exceeds the size limit");
      } else if (is_http_parse_error(ec) && ec != bhttp::error::end_of_stream &&
                 ec != bhttp::error::partial_message) {
        send_protocol_error(400, "invalid_request", "malformed HTTP request");
      } else {
        stream_.close();  // peer closed, reset, timed out or stop() cancelled the read
      }
      return;
    }

    auto& msg = parser_->get();
    version_ = msg.version();
    keep_alive_ = msg.keep_alive();
    is_head_ = msg.method() == bhttp::verb::head;
    linger_ = false;

    request req;
    const bool ok = detail::build_request(parser_->release(), remote_ip_, req);
    request_id_ = req.request_id;
    if (!ok) {
      write(error_response(400, "invalid_request", "malformed request target"));
      return;
    }

    const std::uint64_t gen = ++generation_;
    pending_.store(gen);
    in_flight_ = true;
    core_->in_flight.fetch_add(1);
    try {
      core_->on_request(std::move(req), [self = shared_from_this(), gen](response r) {
        self->answer(gen, std::move(r));
      });
    } catch (...) {
      answer(gen, error_response(500, "server_error", "the request could not be handled"));
    }
  }

 public:
  // Any thread. Only the first call for the current request takes effect.
  void answer(std::uint64_t gen, response&& r) {
    std::uint64_t expected = gen;
    if (!pending_.compare_exchange_strong(expected, 0)) return;
    core_->posting.fetch_add(1);
    if (!core_->closed.load()) {
      net::dispatch(stream_.get_executor(),
                    [self = shared_from_this(), r = std::move(r)]() mutable {
                      self->write(std::move(r));
                    });
    }
    core_->posting.fetch_sub(1);
  }

 private:
  // Parse failures: the framing is lost, so answer and close (reading what the client still
  // sends for a moment, so that our close does not reset the connection under the answer).
  void send_protocol_error(int status, std::string_view code, std::string_view description) {
    // Fields the parser completed before the error are in the message; echo a sane id.
    std::optional<std::string> id;
    if (parser_) {
      auto it = parser_->get().find("X-Request-ID");
      if (it != parser_->get().end()) id = sane_request_id(it->value());
    }
    request_id_ = id ? std::move(*id) : detail::new_request_id();
    version_ = 11;
    keep_alive_ = false;
    is_head_ = false;
    linger_ = true;
    write(error_response(status, code, description));
  }

  void write(response&& r) {
    int status = r.status;
    if (status < 200 || status > 599) status = 500;
    const bool bodiless = status == 204 || status == 304;

    res_ = {};
    res_.result(static_cast<unsigned>(status));
    res_.version(version_);
    if (!r.content_type.empty() && !bodiless) {
      res_.set(bhttp::field::content_type, r.content_type);
    }
    for (const auto& [name, value] : r.headers) {
      if (header_is_safe(name, value) && !header_is_reserved(name)) res_.insert(name, value);
    }
    res_.set("X-Request-ID", request_id_);
    if (!bodiless) {
      res_.content_length(r.body.size());
      if (!is_head_) res_.body() = std::move(r.body);
    }
    if (core_->stopping.load()) keep_alive_ = false;
    res_.keep_alive(keep_alive_);

    stream_.expires_after(core_->opts.read_timeout);
    bhttp::async_write(stream_, res_,
                       beast::bind_front_handler(&session::on_write, shared_from_this()));
  }

  void on_write(error_code ec, std::size_t) {
    finish_in_flight();
    if (ec) {
      stream_.close();
      return;
    }
    if (!keep_alive_) {
      stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
      if (linger_) {
        linger_deadline_set_ = false;
        do_linger();
      } else {
        stream_.close();
      }
      return;
    }
    do_read();
  }

  void do_linger() {
    if (!linger_deadline_set_) {
      stream_.expires_after(std::chrono::seconds(2));
      linger_deadline_set_ = true;
    }
    buffer_.consume(buffer_.size());
    stream_.async_read_some(buffer_.prepare(read_chunk),
                            beast::bind_front_handler(&session::on_linger, shared_from_this()));
  }

  void on_linger(error_code ec, std::size_t n) {
    lingered_ += n;
    if (ec || lingered_ > max_linger_bytes || core_->stopping.load()) {
      stream_.close();
      return;
    }
    buffer_.commit(n);
    do_linger();
  }

  void finish_in_flight() {
    if (!in_flight_) return;
    in_flight_ = false;
    if (core_->in_flight.fetch_sub(1) == 1 && core_->stopping.load()) core_->note_answered();
  }

  static constexpr std::size_t read_chunk = 4096;
  static constexpr std::size_t max_linger_bytes = 1 << 20;

  std::shared_ptr<core> core_;  // first member: destroyed last, after the socket
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  bhttp::response<bhttp::string_body> res_;
  std::string remote_ip_;
  std::string request_id_;
  std::atomic<std::uint64_t> pending_{0};  // generation awaiting an answer, 0 if none
  std::uint64_t generation_ = 0;
  std::size_t lingered_ = 0;
  unsigned version_ = 11;
  bool keep_alive_ = false;
  bool is_head_ = false;
  bool first_request_ = true;
  bool in_flight_ = false;
  bool linger_ = false;
  bool linger_deadline_set_ = false;
};

void core::do_accept() {
  acceptor.async_accept(net::make_strand(ioc),
                        [self = this](error_code ec, tcp::socket socket) {
                          self->on_accept(ec, std::move(socket));
                        });
}

void core::on_accept(error_code ec, tcp::socket socket) {
  if (ec == net::error::operation_aborted || !acceptor.is_open() || stopping.load()) return;
  if (ec) {
    // Out of descriptors or memory: back off instead of spinning; other errors concern only
    // the connection that failed.
    accept_retry.expires_after(std::chrono::milliseconds(50));
    accept_retry.async_wait([self = this](error_code wait_ec) {
      if (!wait_ec && !self->stopping.load()) self->do_accept();
    });
    return;
  }
  if (connections.fetch_add(1) >= opts.max_connections) {
    connections.fetch_sub(1);
    socket.close(ec);
  } else {
    try {
      std::make_shared<session>(shared_from_this(), std::move(socket))->start();
    } catch (...) {
      // The session's destructor has already given back its connection slot if it was built.
    }
  }
  do_accept();
}

void core::note_answered() {
  std::lock_guard lock(drain_mu);
  drain_cv.notify_all();
}

template <class F>
void core::for_each_session(F&& f) {
  std::lock_guard lock(sessions_mu);
  for (session* s : sessions) {
    // A session whose destructor is waiting for this lock has no owner left: skip it.
    if (auto sp = s->weak_from_this().lock()) f(std::move(sp));
  }
}

}  // namespace

struct server::impl {
  std::shared_ptr<core> c;
  std::vector<std::thread> threads;
  std::optional<net::executor_work_guard<net::io_context::executor_type>> guard;
  std::mutex mu;  // serialises start() and stop()
  enum class state { idle, running, stopped } st = state::idle;
  std::uint16_t port = 0;
};

server::server(server_options options, handler h) : impl_(std::make_unique<impl>()) {
  impl_->c = std::make_shared<core>(std::move(options), std::move(h));
}

server::~server() { stop(); }

void server::start() {
  std::lock_guard lock(impl_->mu);
  if (impl_->st != impl::state::idle) throw std::runtime_error("http server: already started");
  core& c = *impl_->c;
  const std::string where = c.opts.host + ":" + std::to_string(c.opts.port);
  auto fail = [&](const std::string& what, const error_code& ec) {
    error_code ignored;
    c.acceptor.close(ignored);
    throw std::runtime_error("http server: cannot listen on " + where + ": " + what +
                             (ec ? ": " + ec.message() : std::string{}));
  };

  error_code ec;
  tcp::endpoint endpoint;
  auto address = net::ip::make_address(c.opts.host, ec);
  if (!ec) {
    endpoint = tcp::endpoint(address, c.opts.port);
  } else {
    tcp::resolver resolver(c.ioc);
    auto results = resolver.resolve(c.opts.host, std::to_string(c.opts.port), ec);
    if (ec || results.empty()) fail("cannot resolve host", ec);
    endpoint = *results.begin();
  }
  if (c.acceptor.open(endpoint.protocol(), ec)) fail("open", ec);
  if (c.acceptor.set_option(net::socket_base::reuse_address(true), ec)) fail("setsockopt", ec);
  if (c.acceptor.bind(endpoint, ec)) fail("bind", ec);
  if (c.acceptor.listen(net::socket_base::max_listen_connections, ec)) fail("listen", ec);
  impl_->port = c.acceptor.local_endpoint(ec).port();

  impl_->guard.emplace(c.ioc.get_executor());
  c.do_accept();
  const int n = std::max(1, c.opts.io_threads);
  impl_->threads.reserve(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) {
    impl_->threads.emplace_back([cp = impl_->c] { cp->run(); });
  }
  impl_->st = impl::state::running;
}

std::uint16_t server::port() const { return impl_->port; }

void server::stop(std::chrono::milliseconds grace) {
  std::lock_guard lock(impl_->mu);
  if (impl_->st != impl::state::running) {
    if (impl_->st == impl::state::idle) impl_->st = impl::state::stopped;
    return;
  }
  impl_->st = impl::state::stopped;
  core& c = *impl_->c;
  const auto deadline = std::chrono::steady_clock::now() + grace;

  c.stopping.store(true);
  auto closed_acceptor = std::make_shared<std::promise<void>>();
  net::post(c.acceptor.get_executor(), [cp = impl_->c, closed_acceptor] {
    error_code ec;
    cp->acceptor.close(ec);
    cp->accept_retry.cancel();
    closed_acceptor->set_value();
  });
  closed_acceptor->get_future().wait_until(deadline);

  // Idle keep-alive connections go now; those awaiting an answer get until the deadline.
  c.for_each_session([](std::shared_ptr<session> s) { session::post_close(std::move(s), false); });
  {
    std::unique_lock wait_lock(c.drain_mu);
    c.drain_cv.wait_until(wait_lock, deadline, [&] { return c.in_flight.load() == 0; });
  }
  c.for_each_session([](std::shared_ptr<session> s) { session::post_close(std::move(s), true); });

  impl_->guard.reset();
  for (auto& t : impl_->threads) t.join();
  impl_->threads.clear();

  // Answers that raced with the shutdown were posted to a context nobody runs any more; run
  // them here so that none stays queued holding its session.
  c.closed.store(true);
  while (c.posting.load() != 0) std::this_thread::yield();
  c.ioc.restart();
  c.run();
}

}  // namespace credo::http
