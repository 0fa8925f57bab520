// Rate-limit entity: the single owner of one token bucket or one account's lockout
// (docs/decisions/0011-rate-limits.md). Being the only writer is what makes the limit exact:
// every take and every password attempt for the key is serialised here, whichever node the
// request came in through.
// - Token buckets are written behind (`flush` after a short delay, and when the entity stops),
//   so a busy bucket costs one store write per delay, not one per request. An owner killed
//   between two flushes loses at most one delay's worth of takes. A bucket whose store is
//   unreachable works from memory (starting full): with Redis down, introspection and token
//   checks keep working (ARCHITECTURE.md, failure behaviour), still exact on their owner.
// - Lockouts are written through: an attempt is stored before it is allowed and a failure
//   before it is answered, so a new owner after a kill sees every attempt.
#include <atomic>

#include <nlohmann/json.hpp>

#include "actors/entities.hpp"
#include "protocols/clock.hpp"
#include "protocols/log.hpp"

namespace credo::actors {
namespace {

// One log line when bucket writes start failing and one when they work again, not one per
// bucket and flush.
std::atomic<bool> writes_failing{false};

struct rate_limit_state {
  persistence::bucket_record record;
  protocols::bucket_rule rule;          // of the last take (for the store's expiry)
  protocols::lockout_policy policy;     // of the last lockout message
  bool uses_lockout = false;
  bool dirty = false;                   // bucket changed since the last flush
  bool flush_scheduled = false;
  bool load_failed = false;
};

}  // namespace

caf::behavior rate_limit_entity(caf::event_based_actor* self, context_ptr ctx, std::string key,
                                caf::actor registry, std::chrono::milliseconds idle,
                                std::chrono::milliseconds flush_delay) {
  auto st = std::make_shared<rate_limit_state>();
  if (auto loaded = ctx->stores.buckets->load(key)) {
    if (*loaded)
      st->record = std::move(**loaded);
  } else {
    st->load_failed = true;
  }
  // The store may forget the record once it carries nothing: a full bucket, a clear lockout.
  auto store = [ctx, st, key](std::int64_t now) -> status {
    auto& r = st->record;
    bool empty = st->uses_lockout ? protocols::lockout_clear(r.lockout, now)
                                  : protocols::bucket_full(r.bucket, st->rule, now);
    if (empty)
      return ctx->stores.buckets->erase(key);
    auto until = st->uses_lockout
                   ? protocols::lockout_relevant_until(r.lockout, st->policy)
                   : now + protocols::bucket_wait_ms(r.bucket, st->rule, now, st->rule.capacity);
    return ctx->stores.buckets->save(key, r, until + 1000);
  };
  auto flush = [st, store, key] {
    st->flush_scheduled = false;
    if (!st->dirty)
      return;
    st->dirty = false;
    auto s = store(unix_now_ms());
    if (!s && !writes_failing.exchange(true))
      log::warn("rate-limit buckets not written; they work from memory",
                {{"reason", s.description()}});
    else if (s && writes_failing.exchange(false))
      log::info("rate-limit buckets written again", nlohmann::json::object());
  };
  // Lockouts refuse to work without their store: a lockout that forgets attempts is no lockout
  // (and logins need Redis for their sessions anyway).
  auto unavailable = [self, st]() -> std::optional<caf::error> {
    if (!st->load_failed)
      return std::nullopt;
    self->quit();
    return caf::make_error(errc::temporarily_unavailable, "rate-limit store unavailable");
  };
  // A lockout message: `step` changes the state, which is stored before the answer (or undone).
  auto lockout_step = [=](const protocols::lockout_policy& policy,
                          auto step) -> caf::result<protocols::lockout_answer> {
    if (auto e = unavailable())
      return std::move(*e);
    if (!policy.valid())
      return caf::make_error(errc::invalid_request, "invalid lockout policy");
    auto now = unix_now_ms();
    st->uses_lockout = true;
    st->policy = policy;
    auto before = st->record.lockout;
    auto v = step(st->record.lockout, now);
    if (auto s = store(now); !s) {
      st->record.lockout = std::move(before);
      return caf::make_error(errc::temporarily_unavailable, "rate-limit store unavailable");
    }
    return protocols::lockout_answer{v.allowed, v.retry_after_ms, v.remaining,
                                     st->record.lockout.level};
  };
  self->attach_functor([flush] { flush(); });
  return {
    [=](protocols::bucket_take& m) -> caf::result<protocols::bucket_grant> {
      if (!m.rule.valid() || m.want < 1)
        return caf::make_error(errc::invalid_request, "invalid bucket rule");
      auto now = unix_now_ms();
      st->rule = m.rule;
      auto& b = st->record.bucket;
      protocols::bucket_grant g;
      g.granted = protocols::take_tokens(b, m.rule, now, m.want);
      g.remaining = protocols::bucket_tokens(b, m.rule, now);
      g.reset_ms = protocols::bucket_wait_ms(b, m.rule, now, m.rule.capacity);
      g.retry_ms = g.granted > 0 ? 0 : protocols::bucket_wait_ms(b, m.rule, now, 1);
      if (g.granted > 0) {
        st->dirty = true;
        if (!st->flush_scheduled) {
          st->flush_scheduled = true;
          self->delayed_send(self, flush_delay, protocols::flush_atom::value);
        }
      }
      return g;
    },
    [=](protocols::flush_atom) { flush(); },
    [=](protocols::lockout_begin& m) -> caf::result<protocols::lockout_answer> {
      return lockout_step(m.policy, [&](protocols::lockout_state& s, std::int64_t now) {
        return protocols::begin_attempt(s, m.policy, now, m.attempt_id);
      });
    },
    [=](protocols::lockout_end& m) -> caf::result<protocols::lockout_answer> {
      return lockout_step(m.policy, [&](protocols::lockout_state& s, std::int64_t now) {
        return protocols::end_attempt(s, m.policy, now, m.attempt_id, m.success);
      });
    },
    [=](protocols::handoff_atom) { self->quit(); },  // the key moved to another node
    [=](protocols::rate_limit_crash&) {  // fault injection: fail after answering
      self->quit(caf::make_error(errc::internal_error, "injected fault"));
      return true;
    },
    caf::after(idle) >> [=] {
      self->request(registry, caf::infinite, protocols::passivate_atom::value, key)
        .then([=](bool granted) {
          if (granted)
            self->quit();
        });
    },
  };
}

}  // namespace credo::actors
