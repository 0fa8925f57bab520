#include "http/server.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <condition_variable>
#include <future>
#include <limits>
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
#include <boost/asio/write.hpp>
#include <boost/beast/core/bind_handler.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/status.hpp>
#include <boost/beast/http/string_body.hpp>

#include "http/request_builder.hpp"

// Shape: Beast's example/http/server/async (listener, session with do_read/on_read and
// do_write/on_write, one strand per connection). Two deliberate departures, both for throughput:
// - the session feeds a Beast request_parser from its own read loop instead of calling
//   http::async_read, so a complete request is handled without an extra trip through the
//   io_context and the deadline can switch from idle_timeout to read_timeout at the first byte;
// - timeouts are deadlines checked by one sweeper timer (every 250 ms) rather than a timer armed
//   per operation by beast::tcp_stream; a timeout therefore fires up to one tick late.
// Responses are short heads formatted here and sent with the body in one gathered write.

namespace credo::http {
namespace {

namespace beast = boost::beast;
namespace bhttp = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using error_code = boost::system::error_code;
using clock = std::chrono::steady_clock;

constexpr auto sweep_interval = std::chrono::milliseconds(250);
constexpr auto linger_time = std::chrono::seconds(2);
constexpr std::int64_t no_deadline = std::numeric_limits<std::int64_t>::max();

std::int64_t ticks(clock::time_point t) { return t.time_since_epoch().count(); }

class session;

// State shared by the acceptor, every session and every outstanding responder. Sessions (and so
// responders) hold it by shared_ptr: the io_context inside must outlive every socket, even when a
// responder is kept by another thread after the server object is gone.
struct core : std::enable_shared_from_this<core> {
  core(server_options o, handler h)
      : opts(std::move(o)), on_request(std::move(h)), ioc(std::max(1, opts.io_threads)) {}

  void do_accept();
  void on_accept(error_code ec, tcp::socket socket);
  void do_sweep();
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
  std::atomic<std::size_t> sorting{0};    // stop(): connections not yet sorted into idle or busy
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
  net::steady_timer sweeper{acceptor.get_executor()};
  bool sweeping = true;  // on the acceptor's strand
};

bool token_char(char c) {
  return c > ' ' && c < 0x7F && c != ':' && c != '(' && c != ')' && c != '"' && c != ',' &&
         c != ';' && c != '/' && c != '<' && c != '>' && c != '@' && c != '[' && c != ']' &&
         c != '?' && c != '=' && c != '{' && c != '}' && c != '\\';
}

bool header_is_safe(std::string_view name, std::string_view value) {
  if (name.empty() || !std::all_of(name.begin(), name.end(), token_char)) return false;
  return value.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos;
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
         iequals(name, "connection") || iequals(name, "x-request-id") ||
         iequals(name, "content-type");
}

void append_number(std::string& out, std::size_t n) {
  char digits[24];
  auto res = std::to_chars(digits, digits + sizeof digits, n);
  out.append(digits, res.ptr);
}

void append_header(std::string& out, std::string_view name, std::string_view value) {
  out.append(name);
  out.append(": ");
  out.append(value);
  out.append("\r\n");
}

class session : public std::enable_shared_from_this<session> {
 public:
  session(std::shared_ptr<core> c, tcp::socket&& socket)
      : core_(std::move(c)), socket_(std::move(socket)) {
    error_code ec;
    auto ep = socket_.remote_endpoint(ec);
    if (!ec) remote_ip_ = ep.address().to_string();
    socket_.set_option(tcp::no_delay(true), ec);
    head_.reserve(256);
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
    // A session registered after stop() took its snapshot sees `stopping` in do_read and closes.
    net::dispatch(socket_.get_executor(),
                  beast::bind_front_handler(&session::do_read, shared_from_this()));
  }

  /// Any thread. Closes the connection on its strand: always when `force`, else only when it is
  /// not between handler call and written answer, and no request has arrived on it (that one is
  /// still answered, with Connection: close: the client sent it before it could know).
  static void post_close(std::shared_ptr<session> s, bool force) {
    auto ex = s->socket_.get_executor();
    net::post(ex, [s = std::move(s), force] {
      if (force) {
        s->close();
      } else {
        if (!s->in_flight_) {
          if (s->request_arrived())
            s->begin_in_flight();
          else
            s->close();
        }
        if (s->core_->sorting.fetch_sub(1) == 1) s->core_->note_answered();
      }
    });
  }

  /// Sweeper, under sessions_mu: a past deadline closes the connection on its strand, where the
  /// deadline is checked again in case the session moved on meanwhile.
  void sweep(std::int64_t now) {
    if (deadline_.load(std::memory_order_relaxed) > now) return;
    auto self = weak_from_this().lock();
    if (!self) return;
    auto ex = socket_.get_executor();
    net::post(ex, [s = std::move(self)] {
      if (s->deadline_.load(std::memory_order_relaxed) <= ticks(clock::now())) s->close();
    });
  }

  // Any thread. Only the first call for the current request takes effect.
  void answer(std::uint64_t gen, response&& r) {
    std::uint64_t expected = gen;
    if (!pending_.compare_exchange_strong(expected, 0)) return;
    core_->posting.fetch_add(1);
    if (!core_->closed.load()) {
      net::dispatch(socket_.get_executor(),
                    [self = shared_from_this(), r = std::move(r)]() mutable {
                      self->write(std::move(r));
                    });
    }
    core_->posting.fetch_sub(1);
  }

 private:
  void set_deadline(std::chrono::steady_clock::duration d) {
    deadline_.store(ticks(clock::now() + d), std::memory_order_relaxed);
  }

  void close() {
    deadline_.store(no_deadline, std::memory_order_relaxed);
    error_code ec;
    socket_.close(ec);
    finish_in_flight();
  }

  /// Bytes of a request are buffered or waiting in the socket.
  /// Bytes of the next request are buffered, half parsed, or waiting in the socket (not the
  /// finished parser of the last one, nor what a lingering close reads away).
  bool request_arrived() {
    if (!socket_.is_open() || linger_) return false;
    error_code ec;
    return buffer_.size() > 0 || (parser_ && parser_->got_some() && !parser_->is_done())
           || (socket_.available(ec) > 0 && !ec);
  }

  void do_read() {
    if (core_->stopping.load()) {
      // A connection accepted just before the stop may carry a request already: serve it.
      if (!request_arrived()) {
        close();
        return;
      }
      begin_in_flight();
    }
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(
        std::min<std::size_t>(core_->opts.header_limit, UINT32_MAX)));
    parser_->body_limit(core_->opts.body_limit);
    parser_->eager(true);
    // A new connection gets read_timeout for its first request; between keep-alive requests
    // the client has idle_timeout to start the next one and then read_timeout to finish it.
    awaiting_first_byte_ = !first_request_ && buffer_.size() == 0;
    set_deadline(awaiting_first_byte_ ? core_->opts.idle_timeout : core_->opts.read_timeout);
    first_request_ = false;
    parse();
  }

  void read_some() {
    socket_.async_read_some(buffer_.prepare(read_chunk),
                            beast::bind_front_handler(&session::on_read_some, shared_from_this()));
  }

  void on_read_some(error_code ec, std::size_t n) {
    if (ec) {
      close();  // peer closed or reset, sweeper timeout, or stop()
      return;
    }
    buffer_.commit(n);
    if (awaiting_first_byte_) {
      awaiting_first_byte_ = false;
      set_deadline(core_->opts.read_timeout);
    }
    parse();
  }

  void parse() {
    for (;;) {
      if (parser_->is_done()) {
        on_request();
        return;
      }
      if (buffer_.size() == 0) {
        read_some();
        return;
      }
      error_code ec;
      const std::size_t used = parser_->put(buffer_.data(), ec);
      buffer_.consume(used);
      if (ec == bhttp::error::need_more || (!ec && used == 0 && !parser_->is_done())) {
        read_some();
        return;
      }
      if (ec) {
        on_parse_error(ec);
        return;
      }
    }
  }

  void on_parse_error(const error_code& ec) {
    if (ec == bhttp::error::body_limit) {
      send_protocol_error(413, "payload_too_large", "request body exceeds the size limit");
    } else if (ec == bhttp::error::header_limit) {
      send_protocol_error(431, "request_header_fields_too_large",
                          "request header exceeds the size limit");
    } else {
      send_protocol_error(400, "invalid_request", "malformed HTTP request");
    }
  }

  void on_request() {
    // stop() closed the connection while this read's completion was queued: nobody can get
    // the answer, so nothing is done for it.
    if (!socket_.is_open()) return;
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
    begin_in_flight();
    deadline_.store(no_deadline, std::memory_order_relaxed);  // the handler's time is its own
    try {
      core_->on_request(std::move(req), [self = shared_from_this(), gen](response r) {
        self->answer(gen, std::move(r));
      });
    } catch (...) {
      answer(gen, error_response(500, "server_error", "the request could not be handled"));
    }
  }

  // Parse failures: the framing is lost, so answer and close (reading what the client still
  // sends for a moment, so that our close does not reset the connection under the answer).
  void send_protocol_error(int status, std::string_view code, std::string_view description) {
    // Fields the parser completed before the error are in the message; echo a sane id.
    std::optional<std::string> id;
    auto& msg = parser_->get();
    if (auto it = msg.find("X-Request-ID"); it != msg.end()) id = sane_request_id(it->value());
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
    if (core_->stopping.load()) keep_alive_ = false;

    head_.clear();
    head_.append(version_ == 10 ? "HTTP/1.0 " : "HTTP/1.1 ");
    append_number(head_, static_cast<std::size_t>(status));
    head_.push_back(' ');
    head_.append(bhttp::obsolete_reason(static_cast<bhttp::status>(status)));
    head_.append("\r\n");
    if (!bodiless && !r.content_type.empty() && header_is_safe("content-type", r.content_type)) {
      append_header(head_, "Content-Type", r.content_type);
    }
    for (const auto& [name, value] : r.headers) {
      if (header_is_safe(name, value) && !header_is_reserved(name)) {
        append_header(head_, name, value);
      }
    }
    append_header(head_, "X-Request-ID", request_id_);
    if (!bodiless) {
      head_.append("Content-Length: ");
      append_number(head_, r.body.size());
      head_.append("\r\n");
    }
    if (version_ == 10 && keep_alive_) head_.append("Connection: keep-alive\r\n");
    if (version_ != 10 && !keep_alive_) head_.append("Connection: close\r\n");
    head_.append("\r\n");

    body_.clear();
    if (!bodiless && !is_head_) body_ = std::move(r.body);

    set_deadline(core_->opts.read_timeout);
    const std::array<net::const_buffer, 2> buffers{net::buffer(head_), net::buffer(body_)};
    net::async_write(socket_, buffers,
                     beast::bind_front_handler(&session::on_write, shared_from_this()));
  }

  void on_write(error_code ec, std::size_t) {
    finish_in_flight();
    if (ec) {
      close();
      return;
    }
    if (!keep_alive_) {
      socket_.shutdown(tcp::socket::shutdown_send, ec);
      if (linger_) {
        set_deadline(linger_time);
        do_linger();
      } else {
        close();
      }
      return;
    }
    do_read();
  }

  void do_linger() {
    buffer_.consume(buffer_.size());
    socket_.async_read_some(buffer_.prepare(read_chunk),
                            beast::bind_front_handler(&session::on_linger, shared_from_this()));
  }

  void on_linger(error_code ec, std::size_t n) {
    lingered_ += n;
    if (ec || lingered_ > max_linger_bytes || core_->stopping.load()) {
      close();
      return;
    }
    buffer_.commit(n);
    do_linger();
  }

  /// Counts the connection in the drain stop() waits for: from its request's handler call (or,
  /// while stopping, from the first bytes of a request) to the written answer.
  void begin_in_flight() {
    if (in_flight_) return;
    in_flight_ = true;
    core_->in_flight.fetch_add(1);
  }

  void finish_in_flight() {
    if (!in_flight_) return;
    in_flight_ = false;
    if (core_->in_flight.fetch_sub(1) == 1 && core_->stopping.load()) core_->note_answered();
  }

  static constexpr std::size_t read_chunk = 4096;
  static constexpr std::size_t max_linger_bytes = 1 << 20;

  std::shared_ptr<core> core_;  // first member: destroyed last, after the socket
  tcp::socket socket_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  std::string head_;
  std::string body_;
  std::string remote_ip_;
  std::string request_id_;
  std::atomic<std::int64_t> deadline_{no_deadline};  // read by the sweeper
  std::atomic<std::uint64_t> pending_{0};  // generation awaiting an answer, 0 if none
  std::uint64_t generation_ = 0;
  std::size_t lingered_ = 0;
  unsigned version_ = 11;
  bool keep_alive_ = false;
  bool is_head_ = false;
  bool first_request_ = true;
  bool awaiting_first_byte_ = false;
  bool in_flight_ = false;
  bool linger_ = false;
};

void core::do_accept() {
  // One I/O thread is an implicit strand: skip the strand's locking and indirection then.
  auto ex = opts.io_threads > 1 ? net::any_io_executor(net::make_strand(ioc))
                                : net::any_io_executor(ioc.get_executor());
  acceptor.async_accept(ex, [self = this](error_code ec, tcp::socket socket) {
    self->on_accept(ec, std::move(socket));
  });
}

void core::on_accept(error_code ec, tcp::socket socket) {
  if (ec == net::error::operation_aborted || !acceptor.is_open() || stopping.load()) return;
  if (ec) {
    // Out of descriptors or memory: back off instead of spinning.
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
      // Out of memory: the socket closes with the half-built session.
    }
  }
  do_accept();
}

void core::do_sweep() {
  sweeper.expires_after(sweep_interval);
  sweeper.async_wait([self = this](error_code ec) {
    if (ec || !self->sweeping) return;
    const std::int64_t now = ticks(clock::now());
    {
      std::lock_guard lock(self->sessions_mu);
      for (session* s : self->sessions) s->sweep(now);
    }
    self->do_sweep();
  });
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

// Posts `f` to the acceptor's strand and waits for it, at most until `deadline`.
template <class F>
void on_acceptor_strand(const std::shared_ptr<core>& c, clock::time_point deadline, F f) {
  auto done = std::make_shared<std::promise<void>>();
  net::post(c->acceptor.get_executor(), [c, done, f = std::move(f)] {
    f(*c);
    done->set_value();
  });
  done->get_future().wait_until(deadline);
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
  c.do_sweep();
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
  const auto deadline = clock::now() + grace;

  c.stopping.store(true);
  on_acceptor_strand(impl_->c, deadline, [](core& k) {
    error_code ec;
    k.acceptor.close(ec);
    k.accept_retry.cancel();
  });

  // Idle keep-alive connections go now; those awaiting an answer get until the deadline.
  c.for_each_session([&c](std::shared_ptr<session> s) {
    c.sorting.fetch_add(1);
    session::post_close(std::move(s), false);
  });
  {
    std::unique_lock wait_lock(c.drain_mu);
    c.drain_cv.wait_until(wait_lock, deadline,
                          [&] { return c.sorting.load() == 0 && c.in_flight.load() == 0; });
  }
  c.for_each_session([](std::shared_ptr<session> s) { session::post_close(std::move(s), true); });
  net::post(c.acceptor.get_executor(), [cp = impl_->c] {
    cp->sweeping = false;
    cp->sweeper.cancel();
  });

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
