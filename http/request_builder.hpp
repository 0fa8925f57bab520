#pragma once
// Internal to http/: turns a message parsed by Beast into a credo::http::request. Public only so
// that the fuzz harness and unit tests exercise exactly what the server runs. Needs Boost headers
// and BOOST_BEAST_USE_STD_STRING_VIEW (a PUBLIC definition of credo_http_server).
#include <string>

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include "http/message.hpp"

namespace credo::http::detail {

using beast_request = boost::beast::http::request<boost::beast::http::string_body>;

/// Moves method, target, fields and body of `msg` into `out` (header names lower-cased, path
/// percent-decoded without the query, query decoded with '+' as space) and sets
/// out.request_id. Returns false when the path has a bad escape or a NUL, or the query has a bad
/// escape; out.request_id is set even then, so the caller can answer 400 with it.
bool build_request(beast_request&& msg, std::string remote_ip, request& out);

/// 16 random bytes as 32 lower-case hex digits. Not a secret: only needs to be unique.
std::string new_request_id();

}  // namespace credo::http::detail
