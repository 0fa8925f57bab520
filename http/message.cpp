#include "http/message.hpp"

#include <nlohmann/json.hpp>

namespace credo::http {
namespace {

constexpr std::string_view json_type = "application/json; charset=utf-8";

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// "<scheme> <credentials>" with the scheme matched case-insensitively; nullopt otherwise.
std::optional<std::string_view> auth_param(const request& req, std::string_view scheme) {
  auto value = req.header("authorization");
  if (!value) return std::nullopt;
  std::string_view v = trim(*value);
  if (v.size() <= scheme.size() || !iequals(v.substr(0, scheme.size()), scheme)) {
    return std::nullopt;
  }
  if (v[scheme.size()] != ' ') return std::nullopt;
  v = trim(v.substr(scheme.size()));
  if (v.empty()) return std::nullopt;
  return v;
}

int base64_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

// Standard alphabet (RFC 4648 section 4); padding optional but, if present, correct.
std::optional<std::string> base64_decode(std::string_view in) {
  std::size_t pad = 0;
  while (!in.empty() && in.back() == '=' && pad < 2) {
    in.remove_suffix(1);
    ++pad;
  }
  if (in.size() % 4 == 1) return std::nullopt;
  if (pad != 0 && (in.size() + pad) % 4 != 0) return std::nullopt;
  std::string out;
  out.reserve(in.size() * 3 / 4);
  std::uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    int v = base64_value(c);
    if (v < 0) return std::nullopt;
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  return out;
}

}  // namespace

std::optional<std::string_view> request::header(std::string_view lower_name) const {
  return find(headers, lower_name);
}

std::optional<std::string_view> request::query_param(std::string_view name) const {
  return find(query, name);
}

std::optional<std::string_view> request::path_param(std::string_view name) const {
  return find(path_params, name);
}

response error_response(int status, std::string_view code, std::string_view description) {
  nlohmann::json j = {{"error", code}, {"error_description", description}};
  response r;
  r.status = status;
  r.content_type = json_type;
  // Replace invalid UTF-8 rather than throw: descriptions may quote client input.
  r.body = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return r;
}

response json_response(int status, std::string body) {
  response r;
  r.status = status;
  r.content_type = json_type;
  r.body = std::move(body);
  return r;
}

std::string media_type(const request& req) {
  auto value = req.header("content-type");
  if (!value) return {};
  std::string_view v = *value;
  if (auto semi = v.find(';'); semi != std::string_view::npos) v = v.substr(0, semi);
  v = trim(v);
  std::string out(v);
  for (char& c : out) c = lower(c);
  return out;
}

std::optional<std::string> url_decode(std::string_view text, bool plus_is_space) {
  // Most values (tokens, ids) need no decoding: copy them in one go.
  // (A plain loop: find_first_of calls memchr once per character.)
  std::size_t first = 0;
  while (first < text.size() && text[first] != '%' && !(plus_is_space && text[first] == '+'))
    ++first;
  if (first == text.size())
    return std::string{text};
  std::string out;
  out.reserve(text.size());
  out.append(text.substr(0, first));
  for (std::size_t i = first; i < text.size(); ++i) {
    char c = text[i];
    if (c == '%') {
      if (i + 2 >= text.size()) return std::nullopt;
      int hi = hex_value(text[i + 1]);
      int lo = hex_value(text[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out.push_back(static_cast<char>((hi << 4) | lo));
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out.push_back(' ');
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string url_encode(std::string_view text) {
  static constexpr char digits[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size() * 3);
  for (char c : text) {
    auto u = static_cast<unsigned char>(c);
    bool unreserved = (u >= 'A' && u <= 'Z') || (u >= 'a' && u <= 'z') ||
                      (u >= '0' && u <= '9') || u == '-' || u == '.' || u == '_' || u == '~';
    if (unreserved) {
      out.push_back(c);
    } else {
      out.push_back('%');
      out.push_back(digits[u >> 4]);
      out.push_back(digits[u & 0x0F]);
    }
  }
  return out;
}

std::optional<fields> parse_form(std::string_view body) {
  fields out;
  while (!body.empty()) {
    std::size_t amp = body.find('&');
    std::string_view pair = body.substr(0, amp);
    body = amp == std::string_view::npos ? std::string_view{} : body.substr(amp + 1);
    if (pair.empty()) continue;  // "a=1&&b=2"
    std::size_t eq = pair.find('=');
    std::string_view raw_key = pair.substr(0, eq);
    std::string_view raw_value =
        eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1);
    auto key = url_decode(raw_key, true);
    auto value = url_decode(raw_value, true);
    if (!key || !value || key->empty()) return std::nullopt;
    if (find(out, *key)) return std::nullopt;
    out.emplace_back(std::move(*key), std::move(*value));
  }
  return out;
}

std::optional<std::string_view> find(const fields& f, std::string_view key) {
  for (const auto& [k, v] : f) {
    if (k == key) return std::string_view{v};
  }
  return std::nullopt;
}

std::optional<std::string> sane_request_id(std::string_view value) {
  if (value.empty() || value.size() > 128) return std::nullopt;
  for (char c : value) {
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == ':' || c == '-';
    if (!ok) return std::nullopt;
  }
  return std::string(value);
}

std::optional<std::string> bearer_token(const request& req) {
  auto token = auth_param(req, "Bearer");
  if (!token) return std::nullopt;
  // RFC 6750 b64token: 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
  std::string_view t = *token;
  std::size_t i = 0;
  for (; i < t.size(); ++i) {
    char c = t[i];
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/';
    if (!ok) break;
  }
  if (i == 0) return std::nullopt;
  for (std::size_t j = i; j < t.size(); ++j) {
    if (t[j] != '=') return std::nullopt;
  }
  return std::string(t);
}

std::optional<std::pair<std::string, std::string>> basic_credentials(const request& req) {
  auto encoded = auth_param(req, "Basic");
  if (!encoded) return std::nullopt;
  auto decoded = base64_decode(*encoded);
  if (!decoded) return std::nullopt;
  std::string_view d = *decoded;
  std::size_t colon = d.find(':');
  if (colon == std::string_view::npos) return std::nullopt;
  auto id = url_decode(d.substr(0, colon), true);
  auto secret = url_decode(d.substr(colon + 1), true);
  if (!id || !secret || id->empty()) return std::nullopt;
  return std::pair{std::move(*id), std::move(*secret)};
}

}  // namespace credo::http

namespace credo::http {
namespace {

bool depth_ok(std::string_view body, int max_depth) {
  int depth = 0;
  bool in_string = false;
  bool escaped = false;
  for (char c : body) {
    if (in_string) {
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"')
        in_string = false;
      continue;
    }
    if (c == '"')
      in_string = true;
    else if (c == '{' || c == '[') {
      if (++depth > max_depth)
        return false;
    } else if (c == '}' || c == ']')
      --depth;
  }
  return true;
}

}  // namespace

std::optional<nlohmann::json> parse_json_object(std::string_view body, int max_depth) {
  if (!depth_ok(body, max_depth))
    return std::nullopt;
  auto j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return std::nullopt;
  return j;
}

}  // namespace credo::http

namespace credo::http {

std::string to_lower_ascii(std::string_view text) {
  std::string out{text};
  for (char& c : out)
    c = lower(c);
  return out;
}

}  // namespace credo::http
