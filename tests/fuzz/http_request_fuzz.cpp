// libFuzzer harness: raw bytes → Beast request parser with the server's limits → the same
// request-building code the server runs → the helpers handlers call on untrusted requests.
#include <cstddef>
#include <cstdint>

#include <boost/asio/buffer.hpp>
#include <boost/beast/http.hpp>

#include "http/message.hpp"
#include "http/request_builder.hpp"
#include "http/router.hpp"
#include "http/server.hpp"

namespace {

namespace bhttp = boost::beast::http;
using namespace credo::http;

const router& routes() {
  static const router r = [] {
    router t;
    t.add("POST", "/auth/token", 1);
    t.add("GET", "/me", 2);
    t.add("PATCH", "/me", 3);
    t.add("DELETE", "/auth/sessions/{id}", 4);
    t.add("DELETE", "/auth/consent/{client_id}/{scope}", 5);
    return t;
  }();
  return r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const server_options limits;
  bhttp::request_parser<bhttp::string_body> parser;
  parser.header_limit(static_cast<std::uint32_t>(limits.header_limit));
  parser.body_limit(limits.body_limit);
  parser.eager(true);

  boost::beast::error_code ec;
  parser.put(boost::asio::buffer(data, size), ec);
  if (ec || !parser.is_done()) return 0;

  request req;
  if (!detail::build_request(parser.release(), "127.0.0.1", req)) return 0;
  auto m = routes().resolve(req.method, req.path);
  (void)m;
  (void)bearer_token(req);
  (void)basic_credentials(req);
  if (media_type(req) == "application/x-www-form-urlencoded") (void)parse_form(req.body);
  return 0;
}
