#include "cluster/gate.hpp"

#include <caf/all.hpp>
#include <nlohmann/json.hpp>

#include "protocols/clock.hpp"
#include "protocols/log.hpp"
#include "protocols/messages.hpp"

namespace credo::cluster {
namespace {

class gate_actor final : public caf::monitorable_actor {
 public:
  gate_actor(std::shared_ptr<gate_state> st)
    : caf::monitorable_actor(config()), st_(std::move(st)) {}

  void enqueue(caf::mailbox_element_ptr what, caf::execution_unit* host) override {
    if (what && what->mid.is_async() && pass(*what, host))
      return;
    drop();
  }

  const char* name() const override { return "cluster_gate"; }

 private:
  static caf::actor_config& config() {
    static caf::actor_config cfg;
    return cfg;
  }

  void add_link(caf::abstract_actor*) override {}
  void remove_link(caf::abstract_actor*) override {}
  bool add_backlink(caf::abstract_actor*) override { return false; }
  bool remove_backlink(caf::abstract_actor*) override { return false; }
  void attach(caf::attachable_ptr) override {}  // BASP monitor requests of any process

  bool pass(caf::mailbox_element& what, caf::execution_unit* host) {
    using namespace protocols;
    auto& msg = what.content();
    if (msg.match_elements<cluster_envelope>()) {
      auto& e = msg.get_as<cluster_envelope>(0);
      auto table = st_->peers.load(std::memory_order_acquire);
      auto i = table->find(gate_key(e.from, e.incarnation));
      if (i == table->end())
        return false;
      auto link = caf::actor_cast<caf::strong_actor_ptr>(i->second);
      if (!link)
        return false;
      link->enqueue(nullptr, caf::make_message_id(), what.move_content_to_message(), host);
      return true;
    }
    // Only a challenge makes the membership actor spend work and state on anyone; the other
    // join messages must match a nonce of its own, so they pass unmetered (strangers' challenges
    // cannot crowd out members' joins).
    if (msg.match_elements<cluster_challenge>() && !take_join_token())
      return false;
    if (msg.match_elements<cluster_challenge>() || msg.match_elements<cluster_challenge_reply>()
        || msg.match_elements<cluster_hello>() || msg.match_elements<cluster_welcome>()) {
      auto membership = caf::actor_cast<caf::strong_actor_ptr>(st_->membership);
      if (!membership)
        return false;
      membership->enqueue(nullptr, caf::make_message_id(), what.move_content_to_message(), host);
      return true;
    }
    return false;
  }

  bool take_join_token() {
    auto now = unix_now_ms();
    auto last = st_->join_refill_ms.load();
    if (now - last >= 1000 && st_->join_refill_ms.compare_exchange_strong(last, now))
      st_->join_tokens.store(200);
    return st_->join_tokens.fetch_sub(1) > 0;
  }

  void drop() {
    auto n = ++*st_->dropped;
    // One line per 10 s at most: a flood must not flood the log.
    auto now = unix_now_ms();
    auto last = st_->last_warned_ms.load();
    if (now - last >= 10000 && st_->last_warned_ms.compare_exchange_strong(last, now))
      log::warn("cluster messages from strangers dropped", {{"total", n}});
  }

  std::shared_ptr<gate_state> st_;
};

}  // namespace

caf::actor make_gate(caf::actor_system& sys, std::shared_ptr<gate_state> st) {
  return caf::make_actor<gate_actor, caf::actor>(sys.next_actor_id(), sys.node(), &sys,
                                                 std::move(st));
}

}  // namespace credo::cluster
