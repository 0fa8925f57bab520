// Consent entity: the single writer of one user's consent records. A revocation writes a
// cut-off to the revocation store before replying, so tokens carrying the scope are inactive
// on the next check.
#include <algorithm>

#include "actors/audit_log.hpp"
#include "actors/entities.hpp"
#include "protocols/clock.hpp"

namespace credo::actors {
namespace {

using persistence::consent_record;

bool active(const consent_record& r, std::int64_t now) {
  return r.revoked_at == 0 && (r.expires_at == 0 || r.expires_at > now);
}

struct consent_state {
  std::vector<consent_record> records;
  std::int64_t revision = 0;  // stored revision, as this entity last saw it
  bool load_failed = false;
};

}  // namespace

caf::behavior consent_entity(caf::event_based_actor* self, context_ptr ctx, std::string user_id,
                             caf::actor registry, std::chrono::milliseconds idle) {
  auto st = std::make_shared<consent_state>();
  if (auto loaded = ctx->stores.consents->load(user_id)) {
    st->records = std::move(loaded->records);
    st->revision = loaded->revision;
  } else {
    st->load_failed = true;
  }
  // Writes are fenced by the revision (see the session entity): a refused write means another
  // node changed this user's consents since this entity loaded them, so it stops after
  // answering 503 and the next message loads the current records.
  auto write = [self, ctx, st, user_id](const persistence::audit_events& events) {
    auto saved = ctx->stores.consents->save(user_id, {st->records, st->revision + 1}, events);
    if (saved)
      ++st->revision;
    else if (saved.error() == errc::conflict)
      self->quit();
    return static_cast<bool>(saved);
  };
  // Expiry is noticed lazily, on the next message for the user: one consent.expired event per
  // record, written before anything else is answered.
  auto report_expired = [ctx, st, user_id, write] {
    auto now = unix_now();
    persistence::audit_events events;
    auto before = st->records;
    for (auto& r : st->records)
      if (r.revoked_at == 0 && r.expires_at > 0 && r.expires_at <= now && !r.expiry_reported) {
        r.expiry_reported = true;
        events.push_back(ctx->audit->make("consent.expired", {user_id, r.client_id, "", "", ""},
                                          {{"scope", r.scope}}));
      }
    // A failed write is retried on the next message: the flags go back with the records.
    if (!events.empty() && !write(events))
      st->records = std::move(before);
  };
  auto unavailable = [self, st, report_expired]() -> std::optional<caf::error> {
    if (!st->load_failed) {
      report_expired();
      return std::nullopt;
    }
    self->quit();
    return caf::make_error(errc::temporarily_unavailable, "consent store unavailable");
  };
  auto persist = [st, write](std::vector<consent_record> before,
                            const persistence::audit_events& events) {
    if (write(events))
      return true;
    st->records = std::move(before);
    return false;
  };
  return {
    [=](protocols::consent_grant& m) -> caf::result<protocols::consent_list> {
      if (auto e = unavailable())
        return std::move(*e);
      auto now = unix_now();
      auto before = st->records;
      // Expired and revoked records are history; keep the newest 200 of them per user.
      protocols::consent_list out;
      for (auto& scope : m.scopes) {
        auto i = std::find_if(st->records.begin(), st->records.end(), [&](auto& r) {
          return r.client_id == m.client_id && r.scope == scope && active(r, now);
        });
        if (i == st->records.end()) {
          st->records.push_back({m.client_id, scope, now, 0, 0, false});
          i = st->records.end() - 1;
        }
        i->granted_at = now;
        i->expires_at = m.expires_in > 0 ? now + m.expires_in : 0;
        out.records.push_back(*i);
      }
      if (st->records.size() > 400)
        std::erase_if(st->records, [now](auto& r) { return !active(r, now); });
      auto granted = ctx->audit->make("consent.granted",
                                      {m.user_id, m.client_id, "", m.from.ip, m.from.request_id},
                                      {{"scopes", m.scopes}, {"expires_in", m.expires_in}});
      if (!persist(std::move(before), {granted}))
        return caf::make_error(errc::temporarily_unavailable, "consent store unavailable");
      return out;
    },
    [=](protocols::consent_query&) -> caf::result<protocols::consent_list> {
      if (auto e = unavailable())
        return std::move(*e);
      return protocols::consent_list{st->records};
    },
    [=](protocols::consent_revoke& m) -> caf::result<bool> {
      if (auto e = unavailable())
        return std::move(*e);
      auto now = unix_now();
      auto i = std::find_if(st->records.begin(), st->records.end(), [&](auto& r) {
        return r.client_id == m.client_id && r.scope == m.scope && active(r, now);
      });
      if (i == st->records.end())
        return caf::make_error(errc::not_found, "no active consent for that client and scope");
      if (!ctx->stores.revocations->add_cutoff(m.user_id, m.client_id, m.scope, now))
        return caf::make_error(errc::temporarily_unavailable, "revocation store unavailable");
      auto before = st->records;
      i->revoked_at = now;
      auto revoked = ctx->audit->make("consent.revoked",
                                      {m.user_id, m.client_id, "", m.from.ip, m.from.request_id},
                                      {{"scope", m.scope}});
      if (!persist(std::move(before), {revoked}))
        return caf::make_error(errc::temporarily_unavailable, "consent store unavailable");
      return true;
    },
    [=](protocols::consent_check& m) -> caf::result<protocols::consent_check_result> {
      if (auto e = unavailable())
        return std::move(*e);
      auto now = unix_now();
      protocols::consent_check_result out;
      for (auto& scope : m.scopes) {
        auto i = std::find_if(st->records.begin(), st->records.end(), [&](auto& r) {
          return r.client_id == m.client_id && r.scope == scope && active(r, now);
        });
        if (i == st->records.end()) {
          out.missing.push_back(scope);
        } else if (i->expires_at > 0 && (out.expires_at == 0 || i->expires_at < out.expires_at)) {
          out.expires_at = i->expires_at;
        }
      }
      out.granted = out.missing.empty();
      return out;
    },
    [=](protocols::consent_erase& m) -> caf::result<bool> {
      if (auto e = unavailable())
        return std::move(*e);
      auto before = st->records;
      st->records.clear();
      if (!persist(std::move(before), {}))
        return caf::make_error(errc::temporarily_unavailable, "consent store unavailable");
      (void) m;
      return true;
    },
    [=](protocols::handoff_atom) { self->quit(); },
    [=](protocols::consent_crash&) {  // fault injection: fail after answering
      self->quit(caf::make_error(errc::internal_error, "injected fault"));
      return true;
    },  // the key moved to another node
    caf::after(idle) >> [=] {
      self->request(registry, caf::infinite, protocols::passivate_atom::value, user_id)
        .then([=](bool granted) {
          if (granted)
            self->quit();
        });
    },
  };
}

}  // namespace credo::actors
