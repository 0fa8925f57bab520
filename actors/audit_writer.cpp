#include "actors/audit_writer.hpp"

#include <caf/all.hpp>

#include "protocols/messages.hpp"

namespace credo::actors {
namespace {

// Self-message only; needs no type id.
using flush_atom = caf::atom_constant<caf::atom("audflush")>;

struct writer_state {
  std::shared_ptr<persistence::audit_store> store;
  persistence::audit_events batch;
  std::vector<caf::response_promise> waiting;
  bool flush_queued = false;
  static inline const char* name = "audit_writer";
};

caf::behavior audit_writer(caf::stateful_actor<writer_state>* self,
                           std::shared_ptr<persistence::audit_store> store) {
  self->state.store = std::move(store);
  return {
    [self](protocols::audit_append& m) -> caf::result<bool> {
      auto& st = self->state;
      std::move(m.events.begin(), m.events.end(), std::back_inserter(st.batch));
      st.waiting.push_back(self->make_response_promise());
      // The flush is queued behind every append already in the mailbox, so it takes them all.
      if (!st.flush_queued) {
        st.flush_queued = true;
        self->send(self, flush_atom::value);
      }
      return st.waiting.back();
    },
    [self](flush_atom) {
      auto& st = self->state;
      st.flush_queued = false;
      auto waiting = std::move(st.waiting);
      auto batch = std::move(st.batch);
      st.waiting.clear();
      st.batch.clear();
      auto written = st.store->append(batch);
      for (auto& rp : waiting)
        if (written)
          rp.deliver(true);
        else
          rp.deliver(caf::make_error(errc::temporarily_unavailable, "audit store unavailable"));
    },
  };
}

}  // namespace

caf::actor spawn_audit_writer(caf::actor_system& sys,
                              std::shared_ptr<persistence::audit_store> store) {
  return sys.spawn<caf::detached>(audit_writer, std::move(store));
}

}  // namespace credo::actors
