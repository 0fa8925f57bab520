// A stranger on the cluster port (tests/integration/test_cluster_strangers.py): a CAF process
// that connects to a node's cluster listener (plain, or mutual TLS with a certificate of the
// cluster's CA) without the cluster secret, forges a handle for every actor id from 1 to
// --max-id on that node, and sends each one every message a member may send: every entity
// request (also marked forwarded), as a request and one-way, the membership messages
// (views, leave, revocations, key rotation), envelopes with a made-up link key, join messages
// with bad proofs, a link request, down messages, and last an exit message with reason `kill`.
// It counts what comes back and prints one JSON line:
//   {"actors": N, "sent": S, "replies": R, "bounced": B, "refused": U, "join_replies": J,
//    "answers": [...]}
// `replies` are answers, errors from actors included; `bounced` are CAF's own answers for ids no
// actor holds; `refused` are unexpected_message errors of CAF's helper actor (the one a node
// spawns for each process it meets); `join_replies` answer the stranger's join challenge, which
// any process may send (the answer proves the node's secret on the stranger's nonce, and the
// stranger cannot go on without the secret). Exit code 0 when the run
// completed, 2 when it could not connect, 3 when it did not finish.
//
//   cluster_stranger HOST PORT --user USER_ID --node NODE_NAME [--max-id N] [--wait-ms N]
//                    [--tls-cert F --tls-key F --tls-ca F]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <tuple>
#include <vector>

#include <caf/all.hpp>
#include <caf/forwarding_actor_proxy.hpp>
#include <caf/io/all.hpp>
#include <caf/io/basp_broker.hpp>
#include <caf/openssl/all.hpp>

#include "protocols/messages.hpp"

namespace {

using namespace credo::protocols;

struct options {
  std::string host;
  std::uint16_t port = 0;
  std::string user = "stranger-victim";
  std::string node = "node";
  int max_id = 3000;
  int wait_ms = 1500;
  std::string cert, key, ca;
};

struct tally {
  int sent = 0;
  int replies = 0;
  int bounced = 0;
  int refused = 0;       // unexpected_message: CAF's helper actors drop what they do not know
  int join_replies = 0;  // cluster_challenge_reply: the first join step answers anyone
  std::vector<std::string> answers;  // the first few replies, rendered
};

struct finished {};
struct kill_phase {};

}  // namespace

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(finished)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(kill_phase)

namespace {

/// Every entity request a member could send, addressed to the user and keys of the test.
auto entity_requests(const options& o) {
  origin from{"stranger", "203.0.113.9"};
  std::string sid = "stranger-session";
  std::string bucket = "login.ip@60/60000:203.0.113.9";
  session_refresh refresh;
  refresh.session_id = sid;
  refresh.refresh_hash = std::string(64, 'a');
  refresh.client_id = "credo";
  refresh.from = from;
  return std::make_tuple(
    session_open{sid, o.user, "credo", "openid profile", "stranger", from},
    session_add_family{sid, "fam", "credo", "openid", 0, from}, refresh,
    session_end{sid, "logout", from},
    session_revoke_family{sid, std::string(64, 'a'), "fam", "", from},
    session_inspect_refresh{sid, std::string(64, 'a')}, session_crash{sid},
    consent_grant{o.user, "credo", {"openid", "profile"}, 0, from}, consent_query{o.user},
    consent_revoke{o.user, "credo", "", from}, consent_check{o.user, "credo", {"openid"}},
    consent_erase{o.user, from}, consent_crash{o.user},
    bucket_take{bucket, bucket_rule{60, 60000}, 1},
    lockout_begin{"lockout:stranger", "attempt", lockout_policy{}},
    lockout_end{"lockout:stranger", "attempt", false, lockout_policy{}},
    rate_limit_crash{bucket});
}

/// A link body in clear where a sealed one belongs.
std::string clear_body(const caf::message& payload) {
  link_body body{7, false, false, payload};
  std::vector<char> buf;
  caf::binary_serializer sink{nullptr, buf};
  if (sink(body))
    return "unserializable";
  return std::string(buf.begin(), buf.end());
}

/// The membership messages and forgeries of the cluster protocol.
std::vector<caf::message> cluster_messages(const options& o, const caf::actor& me) {
  credo::persistence::revocation_snapshot revocations;
  revocations.tokens.emplace_back("stranger-jti", 4102444800);
  revocations.cutoffs.push_back({o.user, "", "", 4102444800000});
  member_card card{"stranger", "stranger-1", "127.0.0.1:1", me};
  auto open = caf::make_message(session_open{"stranger-envelope", o.user, "credo", "openid",
                                             "stranger", {}});
  return {
    caf::make_message(cluster_view{{"127.0.0.1:1"}, 1000000}),
    caf::make_message(leave_atom::value),
    caf::make_message(left_atom::value),
    caf::make_message(keys_changed_atom::value),
    caf::make_message(revocations),
    // Envelopes in the name of the node itself, of a made-up node, sealed with nothing, with a
    // body in clear, and a replay-looking sequence number.
    caf::make_message(cluster_envelope{o.node, "incarnation", 1, std::string(64, 'x')}),
    caf::make_message(cluster_envelope{"stranger", "stranger-1", 7, clear_body(open)}),
    caf::make_message(cluster_envelope{o.node, "", 0, clear_body(open)}),
    caf::make_message(cluster_challenge{"stranger-nonce", me}),
    caf::make_message(cluster_hello{card, "guessed-nonce", "bad-proof"}),
    caf::make_message(cluster_welcome{card, {"127.0.0.1:1"}, 1000000, "guessed", "bad-key"}),
    caf::make_message(cluster_challenge_reply{"guessed", "nonce", "bad-proof", ""}),
  };
}

/// An answer to one of the stranger's requests. A request to an id that no actor holds is
/// bounced by CAF itself (request_receiver_down), one that nothing answers times out; any
/// other outcome, an error from an actor included, means an actor acted on it.
void answered(tally* t, std::string what) {
  ++t->replies;
  if (t->answers.size() < 5)
    t->answers.push_back(std::move(what));
}

void on_error(tally* t, caf::error& e) {
  if (e == caf::sec::request_timeout)
    return;
  // Refusals by CAF itself: no actor holds the id; or CAF's own helper actor (which the node
  // spawns for every process it meets) drops what it does not know.
  if (e == caf::sec::request_receiver_down) {
    ++t->bounced;
    return;
  }
  if (e == caf::sec::unexpected_message) {
    ++t->refused;
    return;
  }
  answered(t, caf::to_string(e));
}

template <class Reply, class... Ts>
void ask(caf::event_based_actor* self, const caf::actor& target, std::chrono::milliseconds timeout,
         tally* t, Ts... xs) {
  self->request(target, timeout, std::move(xs)...)
    .then([t](Reply& r) { answered(t, caf::deep_to_string(r)); },
          [t](caf::error& e) { on_error(t, e); });
  ++t->sent;
}

caf::behavior attacker(caf::event_based_actor* self, options o, std::vector<caf::actor> targets,
                       tally* t, caf::actor done) {
  auto me = caf::actor_cast<caf::actor>(self);
  // With an argument: CAF 0.17.6 dereferences a null tuple for argument-less spawns (UBSan).
  auto linker = self->spawn([](caf::event_based_actor*, int) -> caf::behavior {
    return {[](int) {}};
  }, 0);
  auto requests = entity_requests(o);
  auto cluster = cluster_messages(o, me);
  auto timeout = std::chrono::milliseconds{o.wait_ms};
  // An actor's answer to a one-way message comes back as a one-way message: an error goes to
  // the error handler (which would end this actor), anything else to the default handler.
  self->set_error_handler([t](caf::error& e) { on_error(t, e); });
  self->set_default_handler([t](caf::scheduled_actor*, caf::message_view& x)
                              -> caf::result<caf::message> {
    auto m = x.move_content_to_message();
    if (m.match_elements<cluster_challenge_reply>())
      ++t->join_replies;
    else
      answered(t, caf::to_string(m));
    return caf::message{};
  });
  for (auto& target : targets) {
    std::apply(
      [&](auto&... m) {
        auto one = [&](auto& msg) {
          using reply = typename route_of<std::decay_t<decltype(msg)>>::reply;
          ask<reply>(self, target, timeout, t, msg);
          ask<reply>(self, target, timeout, t, forwarded_atom::value, msg);
          self->send(target, msg);
          ++t->sent;
        };
        (one(m), ...);
      },
      requests);
    for (auto& m : cluster) {
      // The old membership actor answered joins and leaves; an answer of another type shows as
      // unexpected_response, an error that counts as an answer too.
      ask<bool>(self, target, timeout, t, m);
      self->send(target, m);
      ++t->sent;
    }
    // A link from this process: when it disconnects, a linked actor would get an exit message.
    // (From a sacrificial actor: the node's own CAF helpers die of the exit messages below and
    // would take the linked actor with them.)
    self->send(target, caf::link_atom::value, caf::actor_cast<caf::strong_actor_ptr>(linker));
    self->send(target, caf::down_msg{target.address(), caf::exit_reason::remote_link_unreachable});
    t->sent += 2;
  }
  // The exit messages last, once every request had its time: a request to an actor that the
  // kill ends would be bounced as if no actor held the id.
  self->delayed_send(self, timeout + std::chrono::milliseconds{200}, kill_phase{});
  return {
    [self, t, targets](kill_phase) {
      for (auto& target : targets) {
        self->send(target, caf::exit_msg{target.address(), caf::exit_reason::kill});
        ++t->sent;
      }
      self->delayed_send(self, std::chrono::milliseconds{1000}, finished{});
    },
    [self, done](finished) {
      self->send(done, finished{});
      self->quit();
    },
  };
}

int usage() {
  std::cerr << "usage: cluster_stranger HOST PORT --user ID --node NAME [--max-id N] "
               "[--wait-ms N] [--tls-cert F --tls-key F --tls-ca F]\n";
  return 64;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3)
    return usage();
  options o;
  o.host = argv[1];
  o.port = static_cast<std::uint16_t>(std::atoi(argv[2]));
  for (int i = 3; i + 1 < argc; i += 2) {
    std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--user")
      o.user = value;
    else if (flag == "--node")
      o.node = value;
    else if (flag == "--max-id")
      o.max_id = std::atoi(value.c_str());
    else if (flag == "--wait-ms")
      o.wait_ms = std::atoi(value.c_str());
    else if (flag == "--tls-cert")
      o.cert = value;
    else if (flag == "--tls-key")
      o.key = value;
    else if (flag == "--tls-ca")
      o.ca = value;
    else
      return usage();
  }
  if (o.port == 0 || o.max_id < 1 || o.max_id > 100000 || o.wait_ms < 0)
    return usage();
  bool tls = !o.cert.empty();
  caf::actor_system_config cfg;
  cfg.add_message_types<caf::id_block::credo_types>();
  cfg.load<caf::io::middleman>();
  cfg.set("logger.verbosity", caf::atom("quiet"));
  if (tls) {
    cfg.load<caf::openssl::manager>();
    cfg.openssl_certificate = o.cert;
    cfg.openssl_key = o.key;
    cfg.openssl_cafile = o.ca;
  }
  caf::actor_system sys{cfg};
  auto published = tls ? caf::openssl::remote_actor(sys, o.host, o.port)
                       : sys.middleman().remote_actor(o.host, o.port);
  if (!published) {
    std::cerr << "cluster_stranger: cannot connect: " << sys.render(published.error()) << "\n";
    return 2;
  }
  // Handles for every actor id of the node, as the node's own proxies would be made.
  auto broker = sys.middleman().named_broker<caf::io::basp_broker>(caf::atom("BASP"));
  auto node = published->node();
  std::vector<caf::actor> targets;
  for (int id = 1; id <= o.max_id; ++id) {
    caf::actor_config pc;
    targets.push_back(caf::make_actor<caf::forwarding_actor_proxy, caf::actor>(
      static_cast<caf::actor_id>(id), node, &sys, pc, broker));
  }
  tally t;
  {
    caf::scoped_actor waiter{sys};
    sys.spawn(attacker, o, targets, &t, caf::actor{waiter});
    auto limit = std::chrono::milliseconds{o.wait_ms} + std::chrono::seconds{240};
    waiter->receive([](finished) {}, caf::after(limit) >> [] {
      std::cerr << "cluster_stranger: the attacker did not finish\n";
      std::_Exit(3);
    });
  }
  std::string answers = "[";
  for (auto& a : t.answers) {
    if (answers.size() > 1)
      answers += ",";
    answers += "\"";
    for (char c : a)
      answers += (c == '"' || c == '\\') ? '?' : (c < 0x20 ? ' ' : c);
    answers += "\"";
  }
  answers += "]";
  std::printf("{\"actors\": %d, \"sent\": %d, \"replies\": %d, \"bounced\": %d, "
              "\"refused\": %d, \"join_replies\": %d, \"answers\": %s}\n",
              o.max_id, t.sent, t.replies, t.bounced, t.refused, t.join_replies, answers.c_str());
  std::fflush(stdout);
  targets.clear();
  std::_Exit(0);  // the forged proxies are not the BASP broker's own: skip CAF's shutdown
}
