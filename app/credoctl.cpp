// credoctl: operator CLI. Talks to a node's HTTP API with the admin token.
//   credoctl [--url URL] [--admin-token T] health
//   credoctl cluster                       this node's view: members, status, ring version
//   credoctl actors                        supervisors per actor kind: live, restarts, failures
//   credoctl clients add --id ID [--secret S] [--redirect-uri U]... [--scope S]... [--grant-type G]...
//   credoctl keys rotate
//   credoctl audit [--subject USER] [--limit N]   recent audit events, newest first
// Prints the JSON answer; exits 0 on 2xx, 1 on an error answer, 2 when the node is unreachable.
#include <cctype>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

namespace {

namespace beast = boost::beast;
namespace bhttp = beast::http;
namespace net = boost::asio;

struct reply {
  int status = 0;
  std::string body;
};

reply call(const std::string& url, const std::string& token, bhttp::verb verb,
           const std::string& target, const std::string& body) {
  // url: http://host:port
  auto rest = url.substr(url.find("://") == std::string::npos ? 0 : url.find("://") + 3);
  while (!rest.empty() && rest.back() == '/')
    rest.pop_back();
  auto colon = rest.rfind(':');
  if (colon == std::string::npos)
    throw std::runtime_error("--url must be http://HOST:PORT");
  auto host = rest.substr(0, colon);
  auto port = rest.substr(colon + 1);
  net::io_context ioc;
  net::ip::tcp::resolver resolver{ioc};
  beast::tcp_stream stream{ioc};
  stream.expires_after(std::chrono::seconds{10});
  stream.connect(resolver.resolve(host, port));
  bhttp::request<bhttp::string_body> req{verb, target, 11};
  req.set(bhttp::field::host, rest);
  if (!token.empty())
    req.set(bhttp::field::authorization, "Bearer " + token);
  if (!body.empty()) {
    req.set(bhttp::field::content_type, "application/json");
    req.body() = body;
  }
  req.prepare_payload();
  bhttp::write(stream, req);
  beast::flat_buffer buffer;
  bhttp::response<bhttp::string_body> res;
  bhttp::read(stream, buffer, res);
  beast::error_code ec;
  stream.socket().shutdown(net::ip::tcp::socket::shutdown_both, ec);
  return {static_cast<int>(res.result_int()), res.body()};
}

std::string query_escape(const std::string& text) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

int print(const reply& r) {
  auto j = nlohmann::json::parse(r.body, nullptr, false);
  std::cout << (j.is_discarded() ? r.body : j.dump(2)) << '\n';
  return r.status >= 200 && r.status < 300 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"credoctl: operate a Credo node"};
  std::string url = "http://127.0.0.1:8080";
  std::string token;
  app.add_option("--url", url, "node URL")->envname("CREDO_URL");
  app.add_option("--admin-token", token, "admin token")->envname("CREDO_ADMIN_TOKEN");
  app.require_subcommand(1);

  auto* health = app.add_subcommand("health", "node health and readiness");
  auto* cluster = app.add_subcommand("cluster", "cluster members and ring version, as this node sees them");
  auto* actors = app.add_subcommand("actors", "actor supervisors: live, restarts, failures per kind");
  auto* audit = app.add_subcommand("audit", "recent audit events, newest first");
  std::string subject;
  int limit = 0;
  audit->add_option("--subject", subject, "only events of this user id");
  audit->add_option("--limit", limit, "at most this many events (1-1000)")->check(CLI::Range(1, 1000));
  auto* clients = app.add_subcommand("clients", "OAuth clients");
  clients->require_subcommand(1);
  auto* add = clients->add_subcommand("add", "register a client");
  std::string id, secret;
  std::vector<std::string> redirects, scopes, grants;
  add->add_option("--id", id, "client_id")->required();
  add->add_option("--secret", secret, "client secret (omit for a public client)");
  add->add_option("--redirect-uri", redirects, "redirect URI (repeatable)");
  add->add_option("--scope", scopes, "allowed scope (repeatable)");
  add->add_option("--grant-type", grants, "grant type (repeatable)");
  auto* keys = app.add_subcommand("keys", "signing keys");
  keys->require_subcommand(1);
  auto* rotate = keys->add_subcommand("rotate", "make a new signing key active");

  CLI11_PARSE(app, argc, argv);
  try {
    if (health->parsed())
      return print(call(url, token, bhttp::verb::get, "/health", ""));
    if (cluster->parsed())
      return print(call(url, token, bhttp::verb::get, "/admin/cluster", ""));
    if (actors->parsed())
      return print(call(url, token, bhttp::verb::get, "/admin/actors", ""));
    if (audit->parsed()) {
      std::string target = "/admin/audit";
      char sep = '?';
      if (!subject.empty()) {
        target += sep + std::string{"subject="} + query_escape(subject);
        sep = '&';
      }
      if (limit > 0)
        target += sep + std::string{"limit="} + std::to_string(limit);
      return print(call(url, token, bhttp::verb::get, target, ""));
    }
    if (add->parsed()) {
      nlohmann::json body = {{"client_id", id}, {"redirect_uris", redirects}, {"scopes", scopes}};
      if (!secret.empty())
        body["client_secret"] = secret;
      if (!grants.empty())
        body["grant_types"] = grants;
      return print(call(url, token, bhttp::verb::post, "/admin/clients", body.dump()));
    }
    if (rotate->parsed())
      return print(call(url, token, bhttp::verb::post, "/admin/keys/rotate", ""));
  } catch (const std::exception& e) {
    std::cerr << "credoctl: " << e.what() << '\n';
    return 2;
  }
  return 0;
}
