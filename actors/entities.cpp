#include "actors/entities.hpp"

#include "actors/audit_writer.hpp"
#include "protocols/password.hpp"

namespace credo::actors {
namespace {

struct key_fn {
  template <class T>
  const std::string& operator()(const T& m) const {
    return protocols::route_of<T>::key(m);
  }
};

// Spawned functions always take an argument: CAF 0.17.6's init_fun_factory dereferences a null
// tuple pointer for argument-less functions (UBSan reports it).
// Once the node stops, queued hashes are not worked off (their connections are gone, and the
// process would wait for them): they fail at once.
caf::behavior hasher(caf::event_based_actor*, int /*worker*/,
                     std::shared_ptr<const std::atomic<bool>> stopping) {
  return {
    [stopping](protocols::hash_password_atom, const std::string& password) -> caf::result<std::string> {
      if (stopping->load())
        return caf::make_error(errc::temporarily_unavailable, "node is stopping");
      return protocols::hash_password(password);
    },
    [stopping](protocols::verify_password_atom, const std::string& password,
               const std::string& hash) -> caf::result<bool> {
      if (stopping->load())
        return caf::make_error(errc::temporarily_unavailable, "node is stopping");
      return protocols::verify_password(password, hash);
    },
  };
}

}  // namespace

entity_handles spawn_entities(caf::actor_system& sys, context_ptr ctx, registry_options options,
                              int hasher_threads, std::shared_ptr<const cluster::ownership> own,
                              std::shared_ptr<cluster::remote_calls> in_flight) {
  entity_handles h;
  h.session_stats = std::make_shared<supervisor_stats>("session");
  h.consent_stats = std::make_shared<supervisor_stats>("consent");
  h.rate_limit_stats = std::make_shared<supervisor_stats>("rate_limit");
  auto idle = options.idle_timeout;
  h.audit_writer = spawn_audit_writer(sys, ctx->stores.audit);
  entity_factory sessions = [ctx, idle, writer = h.audit_writer](caf::event_based_actor* reg,
                                                                 const std::string& key) {
    return reg->spawn<caf::monitored>(session_entity, ctx, key,
                                      caf::actor_cast<caf::actor>(reg), idle, writer);
  };
  entity_factory consents = [ctx, idle](caf::event_based_actor* reg, const std::string& key) {
    return reg->spawn<caf::monitored>(consent_entity, ctx, key,
                                      caf::actor_cast<caf::actor>(reg), idle);
  };
  h.sessions = sys.spawn(
    [](registry_actor* self, entity_factory f, std::shared_ptr<supervisor_stats> stats,
       registry_options o, registry_placement where) {
      return make_registry<protocols::session_open, protocols::session_add_family,
                           protocols::session_refresh, protocols::session_end,
                           protocols::session_revoke_family, protocols::session_inspect_refresh,
                           protocols::session_crash>(
        self, std::move(f), std::move(stats), o, key_fn{}, std::move(where));
    },
    sessions, h.session_stats, options, registry_placement{own, protocols::entity_kind::session, in_flight});
  h.consents = sys.spawn(
    [](registry_actor* self, entity_factory f, std::shared_ptr<supervisor_stats> stats,
       registry_options o, registry_placement where) {
      return make_registry<protocols::consent_grant, protocols::consent_query,
                           protocols::consent_revoke, protocols::consent_check,
                           protocols::consent_erase, protocols::consent_crash>(
        self, std::move(f), std::move(stats), o,
                                                     key_fn{}, std::move(where));
    },
    consents, h.consent_stats, options, registry_placement{own, protocols::entity_kind::consent, in_flight});
  // Buckets are many and small: they passivate sooner than sessions, and write behind.
  entity_factory buckets = [ctx, idle = std::min(idle, std::chrono::milliseconds{std::chrono::seconds{60}})](
                             caf::event_based_actor* reg, const std::string& key) {
    return reg->spawn<caf::monitored>(rate_limit_entity, ctx, key,
                                      caf::actor_cast<caf::actor>(reg), idle,
                                      std::chrono::milliseconds{100});
  };
  h.rate_limits = sys.spawn(
    [](registry_actor* self, entity_factory f, std::shared_ptr<supervisor_stats> stats,
       registry_options o, registry_placement where) {
      return make_registry<protocols::bucket_take, protocols::lockout_begin,
                           protocols::lockout_end, protocols::rate_limit_crash>(
        self, std::move(f), std::move(stats), o, key_fn{}, std::move(where));
    },
    buckets, h.rate_limit_stats, options,
    registry_placement{own, protocols::entity_kind::rate_limit, in_flight});
  auto worker = std::make_shared<int>(0);
  std::shared_ptr<const std::atomic<bool>> stopping = h.stopping;
  auto factory = [&sys, worker, stopping] {
    return sys.spawn<caf::detached>(hasher, ++*worker, stopping);
  };
  h.hasher = caf::actor_pool::make(sys.dummy_execution_unit(),
                                   static_cast<std::size_t>(std::max(1, hasher_threads)), factory,
                                   caf::actor_pool::round_robin());
  return h;
}

void stop_entities(const entity_handles& h) {
  h.stopping->store(true);
  for (auto& a : {h.sessions, h.consents, h.rate_limits, h.hasher, h.audit_writer})
    if (a)
      caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
}

}  // namespace credo::actors
