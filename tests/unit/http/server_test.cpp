// Real-socket tests: the server listens on port 0 and a small Beast client talks to it.
#include "http/server.hpp"

#include <atomic>
#include <chrono>
#include <future>
#include <mutex>
#include <thread>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace credo::http {
namespace {

namespace beast = boost::beast;
namespace bhttp = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using error_code = boost::system::error_code;
using namespace std::chrono_literals;
using beast_response = bhttp::response<bhttp::string_body>;

// Blocking-style client whose reads give up after a timeout instead of hanging the test.
class client {
 public:
  explicit client(std::uint16_t port) : stream_(ioc_) {
    stream_.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port));
  }

  void send(std::string_view raw) {
    error_code ec;
    net::write(stream_.socket(), net::buffer(raw.data(), raw.size()), ec);
  }

  error_code read(beast_response& res, std::chrono::seconds timeout = 5s) {
    error_code result = net::error::would_block;
    stream_.expires_after(timeout);
    bhttp::async_read(stream_, buffer_, res, [&](error_code ec, std::size_t) { result = ec; });
    ioc_.restart();
    ioc_.run();
    return result;
  }

  error_code read(bhttp::response_parser<bhttp::string_body>& parser) {
    error_code result = net::error::would_block;
    stream_.expires_after(5s);
    bhttp::async_read(stream_, buffer_, parser, [&](error_code ec, std::size_t) { result = ec; });
    ioc_.restart();
    ioc_.run();
    return result;
  }

  beast_response round_trip(std::string_view raw) {
    send(raw);
    beast_response res;
    auto ec = read(res);
    EXPECT_FALSE(ec) << ec.message();
    return res;
  }

  // True when the server closes the connection (EOF or reset) within the timeout.
  bool closed_by_peer(std::chrono::seconds timeout = 5s) {
    error_code result = net::error::would_block;
    char byte;
    stream_.expires_after(timeout);
    stream_.async_read_some(net::buffer(&byte, 1),
                            [&](error_code ec, std::size_t) { result = ec; });
    ioc_.restart();
    ioc_.run();
    return result == net::error::eof || result == net::error::connection_reset;
  }

 private:
  net::io_context ioc_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
};

server_options test_options() {
  server_options o;
  o.port = 0;
  o.io_threads = 2;
  return o;
}

handler ok_handler(std::string body = R"({"ok":true})") {
  return [body](request&&, responder respond) { respond(json_response(200, body)); };
}

std::string json_error(const beast_response& res) {
  return nlohmann::json::parse(res.body()).at("error").get<std::string>();
}

bool is_hex_id(std::string_view s) {
  return s.size() == 32 && s.find_first_not_of("0123456789abcdef") == std::string_view::npos;
}

TEST(server, binds_port_zero_and_reports_busy_port) {
  server a(test_options(), ok_handler());
  a.start();
  ASSERT_NE(a.port(), 0);
  auto busy = test_options();
  busy.port = a.port();
  server b(busy, ok_handler());
  EXPECT_THROW(b.start(), std::runtime_error);
  auto bad_host = test_options();
  bad_host.host = "no-such-host.invalid";
  server c(bad_host, ok_handler());
  EXPECT_THROW(c.start(), std::runtime_error);
}

TEST(server, request_reaches_handler_with_parsed_fields) {
  std::promise<request> seen;
  server srv(test_options(), [&](request&& req, responder respond) {
    seen.set_value(req);
    response r = json_response(201, R"({"created":true})");
    r.headers.emplace_back("Location", "/users/1");
    r.headers.emplace_back("Cache-Control", "no-store");
    r.headers.emplace_back("Bad", "x\r\nInjected: yes");  // dropped: would split the response
    respond(std::move(r));
  });
  srv.start();
  client c(srv.port());
  auto res = c.round_trip(
      "POST /us%20ers/x?a=1&b=c+d%21 HTTP/1.1\r\nHost: t\r\nX-Custom: Yes\r\n"
      "Content-Type: application/json\r\nContent-Length: 7\r\n\r\n{\"a\":1}");

  auto req = seen.get_future().get();
  EXPECT_EQ(req.method, "POST");
  EXPECT_EQ(req.target, "/us%20ers/x?a=1&b=c+d%21");
  EXPECT_EQ(req.path, "/us ers/x");
  EXPECT_EQ(req.query_param("a"), "1");
  EXPECT_EQ(req.query_param("b"), "c d!");
  EXPECT_EQ(req.header("x-custom"), "Yes");
  EXPECT_EQ(req.header("host"), "t");
  EXPECT_EQ(req.body, "{\"a\":1}");
  EXPECT_EQ(req.remote_ip, "127.0.0.1");
  EXPECT_TRUE(is_hex_id(req.request_id));

  EXPECT_EQ(res.result_int(), 201);
  EXPECT_EQ(res[bhttp::field::content_type], "application/json; charset=utf-8");
  EXPECT_EQ(res[bhttp::field::location], "/users/1");
  EXPECT_EQ(res[bhttp::field::cache_control], "no-store");
  EXPECT_EQ(res.count("Bad"), 0u);
  EXPECT_EQ(res.count("Injected"), 0u);
  EXPECT_EQ(res["X-Request-ID"], req.request_id);
  EXPECT_EQ(res[bhttp::field::content_length], "16");
  EXPECT_EQ(res.body(), R"({"created":true})");
  EXPECT_TRUE(res.keep_alive());
  EXPECT_EQ(res.count(bhttp::field::server), 0u);
}

TEST(server, request_id_echoed_when_sane_generated_when_not) {
  server srv(test_options(), ok_handler());
  srv.start();
  client c(srv.port());
  auto echoed = c.round_trip("GET / HTTP/1.1\r\nHost: t\r\nX-Request-ID: abc-123.x:y_z\r\n\r\n");
  EXPECT_EQ(echoed["X-Request-ID"], "abc-123.x:y_z");
  auto replaced = c.round_trip("GET / HTTP/1.1\r\nHost: t\r\nX-Request-ID: <script>\r\n\r\n");
  EXPECT_TRUE(is_hex_id(replaced["X-Request-ID"]));
  auto long_id = std::string(129, 'a');
  auto too_long =
      c.round_trip("GET / HTTP/1.1\r\nHost: t\r\nX-Request-ID: " + long_id + "\r\n\r\n");
  EXPECT_TRUE(is_hex_id(too_long["X-Request-ID"]));
  auto missing = c.round_trip("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
  EXPECT_TRUE(is_hex_id(missing["X-Request-ID"]));
  EXPECT_NE(missing["X-Request-ID"], too_long["X-Request-ID"]);
}

TEST(server, body_over_limit_is_413) {
  auto o = test_options();
  o.body_limit = 64;
  std::atomic<int> calls{0};
  server srv(o, [&](request&&, responder respond) {
    ++calls;
    respond(json_response(200, "{}"));
  });
  srv.start();
  client c(srv.port());
  std::string body(100 * 1024, 'x');
  auto res = c.round_trip("POST / HTTP/1.1\r\nHost: t\r\nX-Request-ID: big-1\r\nContent-Length: " +
                          std::to_string(body.size()) + "\r\n\r\n" + body);
  EXPECT_EQ(res.result_int(), 413);
  EXPECT_EQ(json_error(res), "payload_too_large");
  EXPECT_EQ(res["X-Request-ID"], "big-1");
  EXPECT_FALSE(res.keep_alive());
  EXPECT_TRUE(c.closed_by_peer());
  EXPECT_EQ(calls.load(), 0);

  client chunked(srv.port());
  auto res2 = chunked.round_trip(
      "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
      "50\r\n" + std::string(80, 'y') + "\r\n0\r\n\r\n");
  EXPECT_EQ(res2.result_int(), 413);
}

TEST(server, oversized_header_is_431) {
  auto o = test_options();
  o.header_limit = 1024;
  server srv(o, ok_handler());
  srv.start();
  client c(srv.port());
  auto res = c.round_trip("GET / HTTP/1.1\r\nHost: t\r\nX-Filler: " + std::string(4096, 'h') +
                          "\r\n\r\n");
  EXPECT_EQ(res.result_int(), 431);
  EXPECT_EQ(json_error(res), "request_header_fields_too_large");
  EXPECT_TRUE(is_hex_id(res["X-Request-ID"]));
  EXPECT_TRUE(c.closed_by_peer());
}

TEST(server, garbage_is_400) {
  server srv(test_options(), ok_handler());
  srv.start();
  client c(srv.port());
  auto res = c.round_trip(std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 15));
  EXPECT_EQ(res.result_int(), 400);
  EXPECT_EQ(json_error(res), "invalid_request");
  EXPECT_TRUE(c.closed_by_peer());

  client c2(srv.port());
  auto res2 = c2.round_trip("GET / HTTP/1.1\r\nContent-Length: nope\r\n\r\n");
  EXPECT_EQ(res2.result_int(), 400);
}

TEST(server, bad_path_or_query_escape_is_400) {
  std::atomic<int> calls{0};
  server srv(test_options(), [&](request&&, responder respond) {
    ++calls;
    respond(json_response(200, "{}"));
  });
  srv.start();
  client c(srv.port());
  for (const char* target : {"/a%zz", "/a%00", "/ok?x=%4"}) {
    auto res = c.round_trip(std::string("GET ") + target + " HTTP/1.1\r\nHost: t\r\n\r\n");
    EXPECT_EQ(res.result_int(), 400) << target;
    EXPECT_EQ(json_error(res), "invalid_request");
  }
  // The framing was intact, so the connection stays usable.
  EXPECT_EQ(c.round_trip("GET /ok HTTP/1.1\r\nHost: t\r\n\r\n").result_int(), 200);
  EXPECT_EQ(calls.load(), 1);
}

TEST(server, keep_alive_serves_two_requests_on_one_connection) {
  std::atomic<int> calls{0};
  server srv(test_options(), [&](request&& req, responder respond) {
    ++calls;
    respond(json_response(200, "{\"path\":\"" + req.path + "\"}"));
  });
  srv.start();
  client c(srv.port());
  auto first = c.round_trip("GET /one HTTP/1.1\r\nHost: t\r\n\r\n");
  auto second = c.round_trip("GET /two HTTP/1.1\r\nHost: t\r\n\r\n");
  EXPECT_EQ(first.body(), R"({"path":"/one"})");
  EXPECT_EQ(second.body(), R"({"path":"/two"})");
  EXPECT_EQ(calls.load(), 2);
  // HTTP/1.0 without keep-alive and an explicit close both end the connection.
  auto closing = c.round_trip("GET /three HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
  EXPECT_FALSE(closing.keep_alive());
  EXPECT_TRUE(c.closed_by_peer());
  client old(srv.port());
  auto res10 = old.round_trip("GET / HTTP/1.0\r\n\r\n");
  EXPECT_EQ(res10.version(), 10u);
  EXPECT_TRUE(old.closed_by_peer());
}

TEST(server, pipelined_requests_are_answered_in_order) {
  server srv(test_options(), [&](request&& req, responder respond) {
    respond(json_response(200, req.path));
  });
  srv.start();
  client c(srv.port());
  c.send("GET /a HTTP/1.1\r\nHost: t\r\n\r\nGET /b HTTP/1.1\r\nHost: t\r\n\r\n");
  beast_response a, b;
  ASSERT_FALSE(c.read(a));
  ASSERT_FALSE(c.read(b));
  EXPECT_EQ(a.body(), "/a");
  EXPECT_EQ(b.body(), "/b");
}

TEST(server, responder_called_later_from_another_thread) {
  std::promise<responder> pending;
  server srv(test_options(), [&](request&&, responder respond) {
    pending.set_value(std::move(respond));
  });
  srv.start();
  client c(srv.port());
  c.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
  std::thread answerer([f = pending.get_future()]() mutable {
    responder respond = f.get();
    respond(json_response(202, R"({"later":true})"));
    respond(json_response(500, "{}"));  // a second call is ignored
  });
  beast_response res;
  ASSERT_FALSE(c.read(res));
  answerer.join();
  EXPECT_EQ(res.result_int(), 202);
  EXPECT_EQ(res.body(), R"({"later":true})");
}

TEST(server, stale_responder_cannot_answer_the_next_request) {
  std::mutex mu;
  std::vector<responder> kept;
  server srv(test_options(), [&](request&& req, responder respond) {
    std::lock_guard lock(mu);
    respond(json_response(200, req.path));
    kept.push_back(std::move(respond));
    if (kept.size() == 2) kept[0](json_response(500, "stale"));  // previous request's responder
    if (kept.size() == 2) kept[1](json_response(500, "again"));
  });
  srv.start();
  client c(srv.port());
  EXPECT_EQ(c.round_trip("GET /1 HTTP/1.1\r\nHost: t\r\n\r\n").body(), "/1");
  EXPECT_EQ(c.round_trip("GET /2 HTTP/1.1\r\nHost: t\r\n\r\n").body(), "/2");
  EXPECT_EQ(c.round_trip("GET /3 HTTP/1.1\r\nHost: t\r\n\r\n").body(), "/3");
}

TEST(server, handler_exception_becomes_500) {
  server srv(test_options(), [](request&&, responder) { throw std::runtime_error("boom"); });
  srv.start();
  client c(srv.port());
  auto res = c.round_trip("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
  EXPECT_EQ(res.result_int(), 500);
  EXPECT_EQ(json_error(res), "server_error");
  EXPECT_EQ(res.body().find("boom"), std::string::npos);
}

TEST(server, head_and_no_content_responses_have_no_body) {
  server srv(test_options(), [](request&& req, responder respond) {
    if (req.path == "/empty") {
      response r;
      r.status = 204;
      respond(std::move(r));
    } else {
      respond(json_response(200, "0123456789"));
    }
  });
  srv.start();
  client c(srv.port());
  auto empty = c.round_trip("DELETE /empty HTTP/1.1\r\nHost: t\r\n\r\n");
  EXPECT_EQ(empty.result_int(), 204);
  EXPECT_EQ(empty.count(bhttp::field::content_length), 0u);
  EXPECT_EQ(empty.count(bhttp::field::content_type), 0u);
  // Beast's client parser knows a HEAD response has no body only if told so.
  c.send("HEAD / HTTP/1.1\r\nHost: t\r\n\r\n");
  bhttp::response_parser<bhttp::string_body> head;
  head.skip(true);
  ASSERT_FALSE(c.read(head));
  EXPECT_EQ(head.get()[bhttp::field::content_length], "10");
  EXPECT_TRUE(head.get().body().empty());
  auto after = c.round_trip("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
  // The HEAD answer carried no body, so the next answer parses cleanly right after it.
  EXPECT_EQ(after.result_int(), 200);
  EXPECT_EQ(after[bhttp::field::content_length], "10");
}

TEST(server, slow_request_times_out) {
  auto o = test_options();
  o.read_timeout = 1s;
  server srv(o, ok_handler());
  srv.start();
  client c(srv.port());
  c.send("GET / HTTP/1.1\r\nHost: t\r\n");  // never finished
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(c.closed_by_peer(5s));
  auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_GE(took, 900ms);
  EXPECT_LT(took, 3s);
}

TEST(server, idle_keep_alive_connection_times_out) {
  auto o = test_options();
  o.read_timeout = 30s;
  o.idle_timeout = 1s;
  server srv(o, ok_handler());
  srv.start();
  client c(srv.port());
  EXPECT_EQ(c.round_trip("GET / HTTP/1.1\r\nHost: t\r\n\r\n").result_int(), 200);
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(c.closed_by_peer(5s));
  auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_GE(took, 900ms);
  EXPECT_LT(took, 3s);
}

TEST(server, max_connections_refuses_the_extra_one) {
  auto o = test_options();
  o.max_connections = 1;
  server srv(o, ok_handler());
  srv.start();
  client first(srv.port());
  EXPECT_EQ(first.round_trip("GET / HTTP/1.1\r\nHost: t\r\n\r\n").result_int(), 200);
  client second(srv.port());
  second.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
  EXPECT_TRUE(second.closed_by_peer());
  EXPECT_EQ(first.round_trip("GET / HTTP/1.1\r\nHost: t\r\n\r\n").result_int(), 200);
}

TEST(server, stop_waits_for_in_flight_request) {
  std::promise<responder> received;
  server srv(test_options(), [&](request&& req, responder respond) {
    if (req.path == "/slow") {
      received.set_value(std::move(respond));
    } else {
      respond(json_response(200, "{}"));
    }
  });
  srv.start();
  client c(srv.port());
  client idle(srv.port());  // an idle keep-alive connection must not hold stop() up
  EXPECT_EQ(idle.round_trip("GET / HTTP/1.1\r\nHost: t\r\n\r\n").result_int(), 200);
  c.send("POST /slow HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n");
  responder respond = received.get_future().get();

  std::promise<void> stop_started;
  std::atomic<bool> answered{false};
  std::thread answerer([&, started = stop_started.get_future()]() mutable {
    started.wait();
    std::this_thread::sleep_for(100ms);  // a delay, not synchronisation
    answered = true;
    respond(json_response(200, R"({"done":true})"));
  });
  auto t0 = std::chrono::steady_clock::now();
  std::thread stopper([&] {
    stop_started.set_value();
    srv.stop(10s);
  });
  beast_response res;
  ASSERT_FALSE(c.read(res));
  stopper.join();
  answerer.join();
  auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_TRUE(answered.load());
  EXPECT_EQ(res.result_int(), 200);
  EXPECT_EQ(res.body(), R"({"done":true})");
  EXPECT_FALSE(res.keep_alive());  // draining: no further requests on this connection
  EXPECT_LT(took, 5s);
  EXPECT_TRUE(idle.closed_by_peer());
  srv.stop();  // idempotent
}

TEST(server, stop_gives_up_after_grace_and_late_answer_is_harmless) {
  std::promise<responder> received;
  auto srv = std::make_unique<server>(test_options(), [&](request&&, responder respond) {
    received.set_value(std::move(respond));
  });
  srv->start();
  client c(srv->port());
  c.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
  responder respond = received.get_future().get();
  auto t0 = std::chrono::steady_clock::now();
  srv->stop(200ms);
  auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_GE(took, 190ms);
  EXPECT_LT(took, 3s);
  EXPECT_TRUE(c.closed_by_peer());
  srv.reset();                        // the server is gone; the responder still works
  respond(json_response(200, "{}"));  // dropped, no crash
}

TEST(server, stop_without_start_and_destructor_stop) {
  server never(test_options(), ok_handler());
  never.stop();
  {
    server srv(test_options(), ok_handler());
    srv.start();
    client c(srv.port());
    EXPECT_EQ(c.round_trip("GET / HTTP/1.1\r\nHost: t\r\n\r\n").result_int(), 200);
  }  // destructor stops
}

class server_threads : public ::testing::TestWithParam<int> {};

// io_threads == 1 runs sessions without a strand; answers from other threads must still be safe.
TEST_P(server_threads, many_concurrent_clients) {
  auto o = test_options();
  o.io_threads = GetParam();
  server srv(o, [](request&& req, responder respond) {
    // Half answered inline, half from a detached thread.
    if (req.path == "/async") {
      std::thread([r = std::move(respond)] { r(json_response(200, "async")); }).detach();
    } else {
      respond(json_response(200, "sync"));
    }
  });
  srv.start();
  std::vector<std::thread> clients;
  std::atomic<int> ok{0};
  for (int i = 0; i < 8; ++i) {
    clients.emplace_back([&, i] {
      client c(srv.port());
      for (int j = 0; j < 50; ++j) {
        bool async = (i + j) % 2 == 0;
        auto res = c.round_trip(std::string("GET ") + (async ? "/async" : "/sync") +
                                " HTTP/1.1\r\nHost: t\r\n\r\n");
        if (res.body() == (async ? "async" : "sync")) ++ok;
      }
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(ok.load(), 400);
}

INSTANTIATE_TEST_SUITE_P(io_threads, server_threads, ::testing::Values(1, 2, 4));

}  // namespace
}  // namespace credo::http
