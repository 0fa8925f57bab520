#include "http/request_builder.hpp"

#include <random>

namespace credo::http::detail {
namespace {

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool parse_query(std::string_view q, fields& out) {
  while (!q.empty()) {
    std::size_t amp = q.find('&');
    std::string_view pair = q.substr(0, amp);
    q = amp == std::string_view::npos ? std::string_view{} : q.substr(amp + 1);
    if (pair.empty()) continue;
    std::size_t eq = pair.find('=');
    auto key = url_decode(pair.substr(0, eq), true);
    auto value =
        url_decode(eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1), true);
    if (!key || !value) return false;
    out.emplace_back(std::move(*key), std::move(*value));
  }
  return true;
}

}  // namespace

std::string new_request_id() {
  thread_local std::mt19937_64 rng{[] {
    std::random_device rd;
    return (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
  }()};
  static constexpr char digits[] = "0123456789abcdef";
  std::string id(32, '0');
  for (int half = 0; half < 2; ++half) {
    std::uint64_t v = rng();
    for (int i = 0; i < 16; ++i) {
      id[static_cast<std::size_t>(half * 16 + i)] = digits[v & 0x0F];
      v >>= 4;
    }
  }
  return id;
}

bool build_request(beast_request&& msg, std::string remote_ip, request& out) {
  out.method.assign(msg.method_string());
  out.target.assign(msg.target());
  out.remote_ip = std::move(remote_ip);

  std::size_t count = 0;
  for (auto it = msg.begin(); it != msg.end(); ++it) ++count;
  out.headers.reserve(count);
  for (const auto& f : msg) {
    std::string name(f.name_string());
    for (char& c : name) c = lower(c);
    out.headers.emplace_back(std::move(name), std::string(f.value()));
  }
  out.body = std::move(msg.body());

  std::optional<std::string> sane;
  if (auto id = out.header("x-request-id")) sane = sane_request_id(*id);
  out.request_id = sane ? std::move(*sane) : new_request_id();

  std::string_view target = out.target;
  std::size_t qmark = target.find('?');
  auto path = url_decode(target.substr(0, qmark), false);
  if (!path || path->find('\0') != std::string::npos) return false;
  out.path = std::move(*path);
  if (qmark != std::string_view::npos && !parse_query(target.substr(qmark + 1), out.query)) {
    return false;
  }
  return true;
}

}  // namespace credo::http::detail
