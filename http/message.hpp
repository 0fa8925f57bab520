#pragma once
// Transport-independent request and response. Handlers are functions from `request` to
// `response`; nothing here includes Beast.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace credo::http {

using fields = std::vector<std::pair<std::string, std::string>>;

struct request {
  std::string method;      // upper case, as sent ("GET", "POST", ...)
  std::string target;      // raw request target
  std::string path;        // target without query, percent-decoded
  fields query;            // decoded query parameters in order
  fields headers;          // names lower-cased
  std::string body;
  std::string remote_ip;   // peer address
  std::string request_id;  // client's X-Request-ID if sane, else generated
  fields path_params;      // filled by the router ({id} segments)
  /// The OAuth client this request authenticated as, once it has (metrics and the request log;
  /// set by authenticate_client, which sees the request as const).
  mutable std::string client_id;

  /// First header with that (lower-case) name.
  std::optional<std::string_view> header(std::string_view lower_name) const;
  std::optional<std::string_view> query_param(std::string_view name) const;
  std::optional<std::string_view> path_param(std::string_view name) const;
};

struct response {
  int status = 200;
  std::string content_type = "application/json; charset=utf-8";  // empty: no Content-Type
  fields headers;  // extra headers (Location, Allow, Cache-Control, ...)
  std::string body;
};

/// Call once per request, from any thread; further calls are ignored. It keeps the connection
/// alive until called or destroyed, and stays safe to call after the server has stopped.
using responder = std::function<void(response)>;
/// Entry point the server calls for every parsed request. It may answer inline or later.
using handler = std::function<void(request&&, responder)>;

/// {"error": code, "error_description": description} with the given status.
response error_response(int status, std::string_view code, std::string_view description);
/// JSON body with status.
response json_response(int status, std::string body);

/// ASCII lower case (header names, emails).
std::string to_lower_ascii(std::string_view text);

/// Media type of the request without parameters, lower-cased ("application/json").
std::string media_type(const request& req);

/// A JSON object body. nullopt if the text is not JSON, not an object, or nests arrays/objects
/// deeper than `max_depth` (checked before parsing, so hostile nesting costs no stack).
std::optional<nlohmann::json> parse_json_object(std::string_view body, int max_depth);

/// application/x-www-form-urlencoded. nullopt on malformed percent-encoding or a repeated key
/// (RFC 6749 section 3.2: parameters must not be included more than once).
std::optional<fields> parse_form(std::string_view body);
/// Percent-decoding; '+' becomes ' ' when `plus_is_space`. nullopt on a bad escape.
std::optional<std::string> url_decode(std::string_view text, bool plus_is_space);
std::string url_encode(std::string_view text);
/// Value of the first pair with that key.
std::optional<std::string_view> find(const fields& f, std::string_view key);

/// The client's X-Request-ID when it is 1..128 chars of [A-Za-z0-9._:-], else nullopt.
std::optional<std::string> sane_request_id(std::string_view value);

/// "Bearer <token>" → token (scheme case-insensitive).
std::optional<std::string> bearer_token(const request& req);
/// "Basic <b64(id:secret)>" → (id, secret), each percent-decoded (RFC 6749 2.3.1).
std::optional<std::pair<std::string, std::string>> basic_credentials(const request& req);

}  // namespace credo::http
