#include "persistence/memory_stores.hpp"

#include <algorithm>
#include <deque>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <unordered_map>

#include "protocols/clock.hpp"

namespace credo::persistence {
namespace {

using lock = std::unique_lock<std::shared_mutex>;
using shared_lock = std::shared_lock<std::shared_mutex>;

class memory_audit_store final : public audit_store {
 public:
  explicit memory_audit_store(std::size_t capacity) : capacity_(capacity) {}
  status append(const audit_events& events) override {
    lock guard{mtx_};
    for (auto& e : events) {
      events_.push_back(e);
      if (events_.size() > capacity_)
        events_.pop_front();
    }
    return ok();
  }
  result<std::vector<audit_event>> query(const std::string& subject, std::size_t limit) override {
    shared_lock guard{mtx_};
    std::vector<audit_event> out;
    for (auto i = events_.rbegin(); i != events_.rend() && out.size() < limit; ++i)
      if (subject.empty() || i->subject == subject)
        out.push_back(*i);
    return out;
  }
  status scrub_subject(const std::string& subject) override {
    lock guard{mtx_};
    for (auto& e : events_)
      if (e.subject == subject)
        e.ip.clear();
    return ok();
  }
  result<bool> contains(const std::string& event_id) override {
    shared_lock guard{mtx_};
    return std::any_of(events_.begin(), events_.end(),
                       [&](auto& e) { return e.event_id == event_id; });
  }

 private:
  std::size_t capacity_;
  std::shared_mutex mtx_;
  std::deque<audit_event> events_;
};

/// The in-memory stand-in for "the change and its events in one transaction": events are
/// appended after the change succeeded (nothing can fail in between).
class with_audit {
 public:
  explicit with_audit(std::shared_ptr<audit_store> audit) : audit_(std::move(audit)) {}

 protected:
  status committed(status st, const audit_events& events) {
    if (st)
      audit_->append(events);
    return st;
  }

 private:
  std::shared_ptr<audit_store> audit_;
};

class memory_user_store final : public user_store, with_audit {
 public:
  using with_audit::with_audit;
  status create(const user_record& user, const audit_events& events) override {
    return committed(insert(user), events);
  }
  status update(const user_record& user, const audit_events& events) override {
    return committed(replace(user), events);
  }
  status erase(const std::string& id, const audit_events& events) override {
    return committed(remove(id), events);
  }

 private:
  status insert(const user_record& user) {
    lock guard{mtx_};
    if (by_email_.count(user.email))
      return errc::email_taken;
    by_email_.emplace(user.email, user.id);
    by_id_.emplace(user.id, user);
    return ok();
  }

 public:
  result<std::optional<user_record>> find_by_id(const std::string& id) override {
    shared_lock guard{mtx_};
    auto i = by_id_.find(id);
    if (i == by_id_.end())
      return std::optional<user_record>{};
    return std::optional<user_record>{i->second};
  }
  result<std::optional<user_record>> find_by_email(const std::string& email) override {
    shared_lock guard{mtx_};
    auto i = by_email_.find(email);
    if (i == by_email_.end())
      return std::optional<user_record>{};
    return std::optional<user_record>{by_id_.at(i->second)};
  }

 private:
  status replace(const user_record& user) {
    lock guard{mtx_};
    auto i = by_id_.find(user.id);
    if (i == by_id_.end())
      return errc::not_found;
    if (i->second.email != user.email) {
      if (by_email_.count(user.email))
        return errc::email_taken;
      by_email_.erase(i->second.email);
      by_email_.emplace(user.email, user.id);
    }
    i->second = user;
    return ok();
  }
  status remove(const std::string& id) {
    lock guard{mtx_};
    auto i = by_id_.find(id);
    if (i == by_id_.end())
      return errc::not_found;
    by_email_.erase(i->second.email);
    by_id_.erase(i);
    return ok();
  }

 private:
  std::shared_mutex mtx_;
  std::unordered_map<std::string, user_record> by_id_;
  std::unordered_map<std::string, std::string> by_email_;
};

class memory_client_store final : public client_store, with_audit {
 public:
  using with_audit::with_audit;
  status create(const client_record& client, const audit_events& events) override {
    lock guard{mtx_};
    if (!clients_.emplace(client.client_id, client).second)
      return errc::conflict;
    return committed(ok(), events);
  }
  result<std::optional<client_record>> find(const std::string& client_id) override {
    shared_lock guard{mtx_};
    auto i = clients_.find(client_id);
    if (i == clients_.end())
      return std::optional<client_record>{};
    return std::optional<client_record>{i->second};
  }

 private:
  std::shared_mutex mtx_;
  std::unordered_map<std::string, client_record> clients_;
};

class memory_session_store final : public session_store {
 public:
  result<std::optional<session_record>> load(const std::string& session_id) override {
    shared_lock guard{mtx_};
    auto i = sessions_.find(session_id);
    if (i == sessions_.end())
      return std::optional<session_record>{};
    return std::optional<session_record>{i->second};
  }
  status save(const session_record& session) override {
    lock guard{mtx_};
    auto cur = sessions_.find(session.id);
    if ((cur == sessions_.end() ? 0 : cur->second.revision) != session.revision - 1)
      return {errc::conflict, "session was changed by another owner"};
    sessions_[session.id] = session;
    by_user_[session.user_id].insert(session.id);
    for (auto& f : session.families) {
      if (!f.current_hash.empty())
        refresh_index_[f.current_hash] = {session.id, session.expires_at};
      if (!f.previous_hash.empty())
        refresh_index_[f.previous_hash] = {session.id, session.expires_at};
    }
    maybe_prune();
    return ok();
  }
  status erase(const session_record& session) override {
    lock guard{mtx_};
    auto& session_id = session.id;
    auto i = sessions_.find(session_id);
    if (i == sessions_.end())
      return ok();
    if (i->second.revision != session.revision)
      return {errc::conflict, "session was changed by another owner"};
    auto u = by_user_.find(i->second.user_id);
    if (u != by_user_.end()) {
      u->second.erase(session_id);
      if (u->second.empty())
        by_user_.erase(u);
    }
    sessions_.erase(i);
    // Refresh index entries stay until they expire: a replay of an ended session's token must
    // still resolve to "no such session" rather than be confused with a foreign token.
    return ok();
  }
  result<std::optional<std::string>> find_by_refresh_hash(const std::string& hash) override {
    shared_lock guard{mtx_};
    auto i = refresh_index_.find(hash);
    if (i == refresh_index_.end() || i->second.expires_at <= unix_now())
      return std::optional<std::string>{};
    return std::optional<std::string>{i->second.session_id};
  }
  result<std::vector<session_record>> list_for_user(const std::string& user_id) override {
    shared_lock guard{mtx_};
    std::vector<session_record> out;
    auto u = by_user_.find(user_id);
    if (u == by_user_.end())
      return out;
    for (auto& sid : u->second)
      if (auto i = sessions_.find(sid); i != sessions_.end())
        out.push_back(i->second);
    return out;
  }

 private:
  struct index_entry {
    std::string session_id;
    std::int64_t expires_at;
  };
  // Called with the lock held; amortised: a full sweep every 4096 writes.
  void maybe_prune() {
    if (++writes_ % 4096 != 0)
      return;
    auto now = unix_now();
    std::erase_if(refresh_index_, [now](auto& kv) { return kv.second.expires_at <= now; });
    std::vector<std::string> dead;
    for (auto& [id, s] : sessions_)
      if (s.expires_at <= now)
        dead.push_back(id);
    for (auto& id : dead) {
      by_user_[sessions_[id].user_id].erase(id);
      sessions_.erase(id);
    }
  }
  std::shared_mutex mtx_;
  std::unordered_map<std::string, session_record> sessions_;
  std::unordered_map<std::string, std::set<std::string>> by_user_;
  std::unordered_map<std::string, index_entry> refresh_index_;
  std::uint64_t writes_ = 0;
};

class memory_consent_store final : public consent_store, with_audit {
 public:
  using with_audit::with_audit;
  result<consent_set> load(const std::string& user_id) override {
    shared_lock guard{mtx_};
    auto i = sets_.find(user_id);
    if (i == sets_.end())
      return consent_set{};
    return i->second;
  }
  status save(const std::string& user_id, const consent_set& set,
              const audit_events& events) override {
    lock guard{mtx_};
    auto& cur = sets_[user_id];  // kept when empty: the revision still fences
    if (cur.revision != set.revision - 1)
      return {errc::conflict, "consents were changed by another owner"};
    cur = set;
    return committed(ok(), events);
  }

 private:
  std::shared_mutex mtx_;
  std::unordered_map<std::string, consent_set> sets_;
};

class memory_revocation_store final : public revocation_store {
 public:
  status revoke_token(const std::string& jti, std::int64_t exp) override {
    lock guard{mtx_};
    tokens_[jti] = exp;
    if (++writes_ % 4096 == 0) {
      auto now = unix_now();
      std::erase_if(tokens_, [now](auto& kv) { return kv.second < now; });
    }
    return ok();
  }
  result<bool> is_token_revoked(const std::string& jti) override {
    shared_lock guard{mtx_};
    return tokens_.count(jti) > 0;
  }
  status add_cutoff(const std::string& user_id, const std::string& client_id,
                    const std::string& scope, std::int64_t cutoff) override {
    lock guard{mtx_};
    auto& c = cutoffs_[key(user_id, client_id, scope)];
    c = std::max(c, cutoff);
    return ok();
  }
  result<std::int64_t> cutoff(const std::string& user_id, const std::string& client_id,
                              const std::string& scope) override {
    shared_lock guard{mtx_};
    auto i = cutoffs_.find(key(user_id, client_id, scope));
    return i == cutoffs_.end() ? std::int64_t{0} : i->second;
  }
  result<revocation_snapshot> snapshot() override {
    shared_lock guard{mtx_};
    revocation_snapshot out;
    auto now = unix_now();
    for (auto& [jti, exp] : tokens_)
      if (exp >= now)
        out.tokens.emplace_back(jti, exp);
    for (auto& [k, at] : cutoffs_) {
      auto a = k.find('\n');
      auto b = k.find('\n', a + 1);
      out.cutoffs.push_back({k.substr(0, a), k.substr(a + 1, b - a - 1), k.substr(b + 1), at});
    }
    return out;
  }

 private:
  static std::string key(const std::string& u, const std::string& c, const std::string& s) {
    std::string k;
    k.reserve(u.size() + c.size() + s.size() + 2);
    k.append(u).push_back('\n');
    k.append(c).push_back('\n');
    k.append(s);
    return k;
  }
  std::shared_mutex mtx_;
  std::unordered_map<std::string, std::int64_t> tokens_;
  std::unordered_map<std::string, std::int64_t> cutoffs_;
  std::uint64_t writes_ = 0;
};

class memory_code_store final : public code_store {
 public:
  status put(const authorization_code_record& code) override {
    std::lock_guard guard{mtx_};
    auto now = unix_now();
    std::erase_if(codes_, [now](auto& kv) { return kv.second.expires_at + 600 < now; });
    codes_[code.code_hash] = code;
    return ok();
  }
  result<std::optional<authorization_code_record>> consume(const std::string& hash) override {
    std::lock_guard guard{mtx_};
    auto i = codes_.find(hash);
    if (i == codes_.end())
      return std::optional<authorization_code_record>{};
    auto before = i->second;
    i->second.used = true;
    return std::optional<authorization_code_record>{before};
  }

 private:
  std::mutex mtx_;
  std::unordered_map<std::string, authorization_code_record> codes_;
};

class memory_key_store final : public key_store, with_audit {
 public:
  using with_audit::with_audit;
  result<std::vector<protocols::signing_key_record>> load_all() override {
    std::lock_guard guard{mtx_};
    return keys_;
  }
  status save(const protocols::signing_key_record& key, const audit_events& events) override {
    std::lock_guard guard{mtx_};
    auto i = std::find_if(keys_.begin(), keys_.end(), [&](auto& k) { return k.kid == key.kid; });
    if (i == keys_.end())
      keys_.push_back(key);
    else
      *i = key;
    return committed(ok(), events);
  }
  status erase(const std::string& kid) override {
    std::lock_guard guard{mtx_};
    std::erase_if(keys_, [&](auto& k) { return k.kid == kid; });
    return ok();
  }

 private:
  std::mutex mtx_;
  std::vector<protocols::signing_key_record> keys_;
};

class memory_bucket_store final : public bucket_store {
 public:
  result<std::optional<bucket_record>> load(const std::string& key) override {
    std::lock_guard guard{mtx_};
    auto i = records_.find(key);
    if (i == records_.end() || i->second.second <= unix_now_ms())
      return std::optional<bucket_record>{};
    return std::optional<bucket_record>{i->second.first};
  }
  status save(const std::string& key, const bucket_record& record,
              std::int64_t expires_at_ms) override {
    std::lock_guard guard{mtx_};
    // Expired records go in sweeps, amortised over saves: memory follows live buckets.
    if (++saves_ % 1024 == 0) {
      auto now = unix_now_ms();
      std::erase_if(records_, [now](auto& kv) { return kv.second.second <= now; });
    }
    records_[key] = {record, expires_at_ms};
    return ok();
  }
  status erase(const std::string& key) override {
    std::lock_guard guard{mtx_};
    records_.erase(key);
    return ok();
  }

 private:
  std::mutex mtx_;
  std::uint64_t saves_ = 0;
  std::unordered_map<std::string, std::pair<bucket_record, std::int64_t>> records_;
};

}  // namespace

std::shared_ptr<revocation_store> make_memory_revocation_store() {
  return std::make_shared<memory_revocation_store>();
}

stores make_memory_stores(std::size_t audit_capacity) {
  stores s;
  s.audit = std::make_shared<memory_audit_store>(audit_capacity);
  s.users = std::make_shared<memory_user_store>(s.audit);
  s.clients = std::make_shared<memory_client_store>(s.audit);
  s.sessions = std::make_shared<memory_session_store>();
  s.consents = std::make_shared<memory_consent_store>(s.audit);
  s.revocations = std::make_shared<memory_revocation_store>();
  s.codes = std::make_shared<memory_code_store>();
  s.keys = std::make_shared<memory_key_store>(s.audit);
  s.buckets = std::make_shared<memory_bucket_store>();
  return s;
}

}  // namespace credo::persistence
