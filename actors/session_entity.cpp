// Session entity: the single writer of one session. Every handler runs to completion before the
// next message, so rotation, reuse detection and the grace decision cannot race. State is
// written to the session store before any reply, so an acknowledged change survives a restart.
// Writes are fenced by the record's revision: if another node changed the session since this
// entity loaded it (this node was cut off, or ownership moved), the store refuses the write and
// the entity answers 503 and stops; the next message activates a copy with the current state.
#include <algorithm>
#include <functional>
#include <optional>
#include <unordered_map>

#include "actors/audit_log.hpp"
#include "actors/entities.hpp"
#include "actors/refresh_family.hpp"
#include "actors/token_issuer.hpp"
#include "protocols/clock.hpp"
#include "protocols/crypto.hpp"
#include "protocols/messages.hpp"
#include "protocols/scope.hpp"

namespace credo::actors {
namespace {

using persistence::refresh_family_record;
using persistence::session_record;
using protocols::token_grant;

struct session_state {
  std::optional<session_record> rec;
  std::int64_t stored_revision = 0;  // of the record in the store, as this entity last saw it
  bool load_failed = false;
  bool stale = false;  // a write was refused as stale: answer 503 and stop
  // Successor of the last rotation per family, for grace replays. Memory only: after a restart
  // a replay inside the grace period is refused (invalid_grant) without revoking the family.
  std::unordered_map<std::string, token_grant> successors;
};

caf::error fail(errc code, const char* what) { return caf::make_error(code, what); }

class session_logic {
 public:
  session_logic(caf::event_based_actor* self, context_ptr ctx, session_state& st,
                caf::actor writer)
    : self_(self), ctx_(std::move(ctx)), st_(st), writer_(std::move(writer)) {}

  bool alive(std::int64_t now) const { return st_.rec && st_.rec->expires_at > now; }

  /// Stores the record as the next revision (see the fencing note at the top).
  status write() {
    st_.rec->revision = st_.stored_revision + 1;
    auto st = ctx_->stores.sessions->save(*st_.rec);
    if (st)
      st_.stored_revision = st_.rec->revision;
    else
      on_refused(st);
    return st;
  }

  status remove() {
    st_.rec->revision = st_.stored_revision;
    auto st = ctx_->stores.sessions->erase(*st_.rec);
    if (st)
      st_.stored_revision = 0;
    else
      on_refused(st);
    return st;
  }

  /// Before answering "unknown token": is the stored session still the revision this entity
  /// holds? If not (it was rotated on another node while this one was cut off), the entity is
  /// stale: it answers 503 and stops, and the retry sees the current state.
  bool fresh() {
    if (!st_.rec)
      return true;
    auto cur = ctx_->stores.sessions->load(st_.rec->id);
    if (!cur || (*cur && (*cur)->revision == st_.stored_revision))
      return true;  // unreachable store: answer from what we hold (writes stay fenced)
    st_.stale = true;
    self_->quit();
    return false;
  }

  void on_refused(const status& st) {
    if (st.error() != errc::conflict)
      return;
    st_.stale = true;
    self_->quit();
  }

  refresh_family_record* family_by_hash(const std::string& hash) {
    for (auto& f : st_.rec->families)
      if (family_knows(f, hash))
        return &f;
    return nullptr;
  }
  refresh_family_record* family_by_id(const std::string& id) {
    for (auto& f : st_.rec->families)
      if (f.family_id == id)
        return &f;
    return nullptr;
  }

  /// Issues an access token and a fresh refresh token into `f` (already in the record).
  token_grant issue(refresh_family_record& f, std::int64_t now) {
    token_grant g;
    g.refresh_token = protocols::random_token(32);
    auto at = mint_access_token(*ctx_, st_.rec->user_id, f.client_id, f.scope, st_.rec->id, now,
                                f.consent_expires_at);
    g.access_token = std::move(at.jwt);
    g.jti = at.jti;
    g.expires_in = at.exp - now;
    g.scope = f.scope;
    g.session_id = st_.rec->id;
    prune_access_tokens(f, now);
    f.access_tokens.push_back({at.jti, at.exp});
    return g;
  }

  void revoke_tokens(refresh_family_record& f) {
    for (auto& t : f.access_tokens)
      ctx_->stores.revocations->revoke_token(t.jti, t.exp);
    f.access_tokens.clear();
    f.revoked = true;
  }

  /// The user was erased (a user-wide cut-off exists), or consent for one of the grant's
  /// scopes was revoked after the grant was made (third-party clients only). An error when the
  /// revocation store cannot answer.
  result<bool> grant_cut(const refresh_family_record& f) {
    auto& rev = *ctx_->stores.revocations;
    auto erased = user_erased(st_.rec->user_id);
    if (!erased || *erased || f.client_id == protocols::first_party_client)
      return erased;
    for (auto& s : protocols::split_scope(f.scope)) {
      auto c = rev.cutoff(st_.rec->user_id, f.client_id, s);
      if (!c)
        return {c.error(), c.description()};
      if (*c >= f.created_at)
        return true;
    }
    return false;
  }

  result<bool> user_erased(const std::string& user_id) {
    auto c = ctx_->stores.revocations->cutoff(user_id, "", "");
    if (!c)
      return {c.error(), c.description()};
    return *c > 0;
  }

  /// Drops revoked grants and grants whose consent expired, and caps the grants per session by
  /// revoking the oldest third-party ones, so a record stays small however often a client
  /// re-authorizes.
  void prune_families(std::int64_t now) {
    auto& fams = st_.rec->families;
    std::erase_if(fams, [&](auto& f) {
      bool dead = f.family_id != st_.rec->id
                  && (f.revoked || (f.consent_expires_at > 0 && f.consent_expires_at <= now));
      if (dead)
        st_.successors.erase(f.family_id);
      return dead;
    });
    while (fams.size() > max_families) {
      auto oldest = std::find_if(fams.begin(), fams.end(),
                                 [&](auto& f) { return f.family_id != st_.rec->id; });
      if (oldest == fams.end())
        break;
      revoke_tokens(*oldest);
      st_.successors.erase(oldest->family_id);
      fams.erase(oldest);
    }
    if (st_.rec->revoked_family_ids.size() > max_families)
      st_.rec->revoked_family_ids.erase(st_.rec->revoked_family_ids.begin());
  }

  static constexpr std::size_t max_families = 64;

  audit_fields fields(const protocols::origin& from, const std::string& client_id) const {
    return {st_.rec ? st_.rec->user_id : "", client_id, st_.rec ? st_.rec->id : "", from.ip,
            from.request_id};
  }

  /// A grant is answered only once its events are in the audit store (and so in the outbox):
  /// the audit writer stores them (a group commit with other sessions' events) while this
  /// entity waits (await: no other message of this session runs in between). When they cannot
  /// be written, the change is undone and the client gets 503, so that nothing it was given
  /// lacks its event. `before` is the record to restore (none: a new session); `then` runs
  /// before the grant is delivered.
  caf::result<token_grant> answer_audited(persistence::audit_events events,
                                          std::optional<session_record> before, token_grant g,
                                          std::function<void()> then = {}) {
    if (!ctx_->group_commit_audit) {
      if (!ctx_->stores.audit->append(events)) {
        undo(before);
        return fail(errc::temporarily_unavailable, "audit store unavailable");
      }
      if (then)
        then();
      return g;
    }
    auto rp = self_->make_response_promise<token_grant>();
    self_->request(writer_, std::chrono::seconds{5}, protocols::audit_append{std::move(events)})
      .await(
        [this, rp, g, then](bool) mutable {
          // In a cluster, another node may have taken the session over meanwhile and decided
          // that this grant was never acknowledged (see take_back): then it must not be.
          if (ctx_->cluster && !fresh()) {
            rp.deliver(fail(errc::temporarily_unavailable, "session moved to another node; retry"));
            return;
          }
          if (then)
            then();
          rp.deliver(std::move(g));
        },
        [this, rp, before](caf::error&) mutable {
          undo(before);
          rp.deliver(fail(errc::temporarily_unavailable, "audit store unavailable"));
        });
    return rp;
  }

  /// Restores `before` in memory and in the store (none: removes the new session).
  void undo(const std::optional<session_record>& before) {
    if (before) {
      st_.rec = *before;
      write();
    } else if (st_.rec) {
      remove();
      st_.rec.reset();
    }
  }

  /// Writes the record; on failure restores `before` so memory matches the store.
  bool persist(const session_record& before) {
    if (write())
      return true;
    st_.rec = before;
    return false;
  }

  caf::result<token_grant> open(protocols::session_open& m) {
    auto now = unix_now();
    if (st_.rec)
      return fail(errc::conflict, "session exists");
    auto erased = user_erased(m.user_id);
    if (!erased)
      return fail(errc::temporarily_unavailable, "revocation store unavailable");
    if (*erased)
      return fail(errc::invalid_credentials, "user was erased");
    session_record r;
    r.id = m.session_id;
    r.user_id = m.user_id;
    r.device = m.device;
    r.ip = m.from.ip;
    r.created_at = r.last_seen_at = now;
    r.expires_at = now + ctx_->tokens.session_ttl;
    refresh_family_record f;
    f.family_id = m.session_id;
    f.client_id = m.client_id;
    f.scope = m.scope;
    f.created_at = now;
    r.families.push_back(std::move(f));
    st_.rec = std::move(r);
    auto& fam = st_.rec->families.back();
    auto g = issue(fam, now);
    fam.current_hash = protocols::sha256_hex(g.refresh_token);
    if (!write()) {
      st_.rec.reset();
      return fail(errc::temporarily_unavailable, "session store unavailable");
    }
    auto who = fields(m.from, m.client_id);
    // The events are built before the call: argument evaluation order is unspecified, and `g`
    // may be moved from before its jti is read.
    persistence::audit_events events{
      ctx_->audit->make("login.succeeded", who),
      ctx_->audit->make("token.issued", who,
                        {{"grant_type", "password"}, {"scope", fam.scope}, {"jti", g.jti}})};
    return answer_audited(std::move(events), std::nullopt, std::move(g));
  }

  caf::result<token_grant> add_family(protocols::session_add_family& m) {
    auto now = unix_now();
    if (!alive(now))
      return fail(errc::invalid_grant, "session has ended");
    if (family_by_id(m.family_id)
        || std::find(st_.rec->revoked_family_ids.begin(), st_.rec->revoked_family_ids.end(),
                     m.family_id)
             != st_.rec->revoked_family_ids.end())
      return fail(errc::invalid_grant, "authorization code was already used");
    auto erased = user_erased(st_.rec->user_id);
    if (!erased)
      return fail(errc::temporarily_unavailable, "revocation store unavailable");
    if (*erased)
      return fail(errc::invalid_grant, "user was erased");
    auto before = *st_.rec;
    prune_families(now);
    refresh_family_record f;
    f.family_id = m.family_id;
    f.client_id = m.client_id;
    f.scope = m.scope;
    f.created_at = now;
    f.consent_expires_at = m.consent_expires_at;
    st_.rec->families.push_back(std::move(f));
    auto& fam = st_.rec->families.back();
    auto g = issue(fam, now);
    fam.current_hash = protocols::sha256_hex(g.refresh_token);
    st_.rec->last_seen_at = now;
    if (!persist(before))
      return fail(errc::temporarily_unavailable, "session store unavailable");
    persistence::audit_events events{ctx_->audit->make(
      "token.issued", fields(m.from, m.client_id),
      {{"grant_type", "authorization_code"}, {"scope", fam.scope}, {"jti", g.jti}})};
    return answer_audited(std::move(events), std::move(before), std::move(g));
  }

  caf::result<token_grant> refresh(protocols::session_refresh& m) {
    auto now = unix_now();
    if (!alive(now))
      return fail(errc::invalid_grant, "refresh token is invalid");
    auto* f = family_by_hash(m.refresh_hash);
    if ((!f || f->client_id != m.client_id) && !fresh())
      return fail(errc::temporarily_unavailable, "session was changed on another node; retry");
    if (!f || f->client_id != m.client_id)
      return fail(errc::invalid_grant, "refresh token is invalid");
    if (m.consent_checked)
      f->consent_expires_at = m.consent_expires_at;
    auto cached = st_.successors.find(f->family_id);
    auto outcome = decide_refresh(*f, m.refresh_hash, now, ctx_->tokens.refresh_grace,
                                  cached != st_.successors.end());
    if (outcome == refresh_outcome::rotate) {
      auto cut = grant_cut(*f);
      if (!cut)
        return fail(errc::temporarily_unavailable, "revocation store unavailable");
      if (*cut)
        outcome = refresh_outcome::invalid;
    }
    switch (outcome) {
      case refresh_outcome::rotate:
        return rotate(*f, m, now);
      case refresh_outcome::grace_replay:
        ctx_->audit->record("token.refreshed", fields(m.from, m.client_id),
                            {{"scope", cached->second.scope}, {"grace_replay", true}});
        return cached->second;
      case refresh_outcome::reuse: {
        if (ctx_->cluster && m.refresh_hash == f->previous_hash && m.owner_died
            && !m.attempt_id.empty() && f->rotation_attempt == m.attempt_id) {
          if (auto st = write(); !st)  // fence off the dead (or cut-off) owner first
            return fail(errc::temporarily_unavailable, "session store unavailable");
          take_back(*f);
          return rotate(*f, m, now);
        }
        if (ctx_->cluster && m.refresh_hash == f->previous_hash && !f->rotation_event_id.empty()) {
          auto acknowledged = rotation_acknowledged(*f);
          if (!acknowledged)
            return fail(errc::temporarily_unavailable, "cannot tell a replay from a retry; retry");
          if (!*acknowledged) {
            take_back(*f);
            return rotate(*f, m, now);
          }
        }
        auto family_id = f->family_id;
        ctx_->metrics->refresh_token_reuse();
        ctx_->audit->record("refresh_token.reuse_detected", fields(m.from, m.client_id),
                            {{"family_id_hash", protocols::sha256_hex(family_id).substr(0, 16)}});
        if (family_id == st_.rec->id)
          end("refresh_token_reuse", m.from);  // the login grant is the session itself
        else
          revoke_family(*f, m.from, "refresh_token_reuse");
        return fail(errc::invalid_grant, "refresh token was already used; grant revoked");
      }
      case refresh_outcome::invalid:
        break;
    }
    return fail(errc::invalid_grant, "refresh token is invalid");
  }

  caf::result<token_grant> rotate(refresh_family_record& f, protocols::session_refresh& m,
                                  std::int64_t now) {
    auto before = *st_.rec;
    auto g = issue(f, now);
    apply_rotation(f, protocols::sha256_hex(g.refresh_token), now);
    auto event = ctx_->audit->make("token.refreshed", fields(m.from, m.client_id),
                                   {{"scope", g.scope}, {"jti", g.jti}});
    f.rotation_event_id = event.event_id;
    f.rotation_attempt = m.attempt_id;
    st_.rec->last_seen_at = now;
    if (!persist(before))
      return fail(errc::temporarily_unavailable, "session store unavailable");
    std::function<void()> remember;
    if (ctx_->tokens.refresh_grace > 0)
      remember = [this, family_id = f.family_id, g] { st_.successors[family_id] = g; };
    return answer_audited({std::move(event)}, std::move(before), g, std::move(remember));
  }

  /// The previous token of `f` came back. If the last rotation's event was never stored, that
  /// rotation was never acknowledged (a grant is answered only after its event is stored): its
  /// owner died or lost the session before answering, and this is the client's retry, not a
  /// replay. The session is fenced first (a write), so an owner still waiting for that event
  /// finds the session changed and does not answer (answer_audited). An error when the stores
  /// cannot tell.
  result<bool> rotation_acknowledged(const refresh_family_record& f) {
    if (auto st = write(); !st)
      return {st.error(), st.description()};
    return ctx_->stores.audit->contains(f.rotation_event_id);
  }

  /// Makes the presented (previous) token current again and revokes the access token of the
  /// rotation nobody received.
  void take_back(refresh_family_record& f) {
    if (!f.access_tokens.empty()) {
      auto& t = f.access_tokens.back();
      ctx_->stores.revocations->revoke_token(t.jti, t.exp);
      f.access_tokens.pop_back();
    }
    f.current_hash = f.previous_hash;
    f.previous_hash.clear();
    f.rotation_event_id.clear();
    f.rotation_attempt.clear();
  }

  void revoke_family(refresh_family_record& f, const protocols::origin& from,
                     const char* reason) {
    revoke_tokens(f);
    st_.successors.erase(f.family_id);
    // Never rolled back: a failed write keeps the family revoked in memory (the access tokens
    // are already in the revocation set); the next successful write persists it.
    write();
    ctx_->audit->record("token.revoked", fields(from, f.client_id),
                        {{"reason", reason}, {"what", "grant"}});
  }

  bool end(const std::string& reason, const protocols::origin& from) {
    if (!st_.rec)
      return false;
    for (auto& f : st_.rec->families)
      revoke_tokens(f);
    if (!remove() && !st_.stale)
      write();  // at least every grant is stored as revoked
    ctx_->audit->record("session.ended", fields(from, st_.rec->families.front().client_id),
                        {{"reason", reason}});
    st_.rec.reset();
    st_.successors.clear();
    return true;
  }

  bool revoke(protocols::session_revoke_family& m) {
    if (!alive(unix_now()))
      return false;
    auto* f = m.family_id.empty() ? family_by_hash(m.refresh_hash) : family_by_id(m.family_id);
    if (!f && !m.family_id.empty()) {
      // The grant may still be on its way (a replayed code racing its first exchange).
      st_.rec->revoked_family_ids.push_back(m.family_id);
      write();
      return true;
    }
    if (!f || f->revoked)
      return false;
    if (!m.refresh_hash.empty() && f->current_hash != m.refresh_hash)
      return false;  // RFC 7009 on a used token: nothing more to revoke than reuse would
    if (!m.client_id.empty() && f->client_id != m.client_id)
      return false;
    if (f->family_id == st_.rec->id)
      return end("revoked", m.from);
    revoke_family(*f, m.from, "revoked");
    return true;
  }

  protocols::refresh_info inspect(const protocols::session_inspect_refresh& m) {
    protocols::refresh_info info;
    auto now = unix_now();
    if (!alive(now))
      return info;
    auto* f = family_by_hash(m.refresh_hash);
    if (!f && !fresh())
      return info;  // stale: inactive now, the next question reloads
    if (!f || f->revoked || f->current_hash != m.refresh_hash
        || (f->consent_expires_at > 0 && f->consent_expires_at <= now))
      return info;
    if (auto cut = grant_cut(*f); !cut || *cut)
      return info;  // cut off, or cannot tell: inactive
    info.active = true;
    info.sub = st_.rec->user_id;
    info.client_id = f->client_id;
    info.scope = f->scope;
    info.session_id = st_.rec->id;
    info.iat = f->rotated_at ? f->rotated_at : f->created_at;
    info.exp = st_.rec->expires_at;
    return info;
  }

 private:
  caf::event_based_actor* self_;
  context_ptr ctx_;
  session_state& st_;
  caf::actor writer_;
};

}  // namespace

caf::behavior session_entity(caf::event_based_actor* self, context_ptr ctx, std::string sid,
                             caf::actor registry, std::chrono::milliseconds idle,
                             caf::actor audit_writer) {
  auto st = std::make_shared<session_state>();
  if (auto loaded = ctx->stores.sessions->load(sid)) {
    st->rec = std::move(*loaded);
    st->stored_revision = st->rec ? st->rec->revision : 0;
  } else {
    st->load_failed = true;
  }
  auto logic = std::make_shared<session_logic>(self, ctx, *st, std::move(audit_writer));
  auto unavailable = [self, st]() -> std::optional<caf::error> {
    if (!st->load_failed)
      return std::nullopt;
    // Could not hydrate: answer, then stop so that the next message activates a fresh copy.
    self->quit();
    return caf::make_error(errc::temporarily_unavailable, "session store unavailable");
  };
  // A write refused as stale overrides the answer: the client retries and the next activation
  // (here or on the key's owner) works on the current state.
  auto checked = [st](auto r) {
    if (st->stale && r.flag == caf::rt_value)
      return decltype(r){caf::make_error(errc::temporarily_unavailable,
                                         "session was changed on another node; retry")};
    return r;
  };
  return {
    [=](protocols::session_open& m) -> caf::result<token_grant> {
      if (auto e = unavailable())
        return std::move(*e);
      return checked(logic->open(m));
    },
    [=](protocols::session_add_family& m) -> caf::result<token_grant> {
      if (auto e = unavailable())
        return std::move(*e);
      return checked(logic->add_family(m));
    },
    [=](protocols::session_refresh& m) -> caf::result<token_grant> {
      if (auto e = unavailable())
        return std::move(*e);
      return checked(logic->refresh(m));
    },
    [=](protocols::session_end& m) -> caf::result<bool> {
      if (auto e = unavailable())
        return std::move(*e);
      return checked(caf::result<bool>{logic->end(m.reason, m.from)});
    },
    [=](protocols::session_revoke_family& m) -> caf::result<bool> {
      if (auto e = unavailable())
        return std::move(*e);
      return checked(caf::result<bool>{logic->revoke(m)});
    },
    [=](protocols::session_inspect_refresh& m) -> caf::result<protocols::refresh_info> {
      if (auto e = unavailable())
        return std::move(*e);
      return logic->inspect(m);
    },
    [=](protocols::handoff_atom) { self->quit(); },
    [=](protocols::session_crash&) {  // fault injection: fail after answering
      self->quit(caf::make_error(errc::internal_error, "injected fault"));
      return true;
    },  // the key moved to another node
    caf::after(idle) >> [=] {
      self->request(registry, caf::infinite, protocols::passivate_atom::value, sid)
        .then([=](bool granted) {
          if (granted)
            self->quit();
        });
    },
  };
}

}  // namespace credo::actors
