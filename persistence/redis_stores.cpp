#include "persistence/redis_stores.hpp"

#include <algorithm>

#include "persistence/record_json.hpp"
#include "protocols/clock.hpp"

namespace credo::persistence {
namespace {

using kind = redis_reply::kind;

result<std::optional<session_record>> parse_session(const redis_reply& r) {
  if (r.type == kind::nil)
    return std::optional<session_record>{};
  if (r.type != kind::string)
    return {errc::internal_error, "unexpected redis reply for a session"};
  auto j = nlohmann::json::parse(r.str, nullptr, false);
  if (j.is_discarded())
    return {errc::internal_error, "corrupt session record"};
  try {
    return std::optional<session_record>{j.get<session_record>()};
  } catch (const nlohmann::json::exception&) {
    return {errc::internal_error, "corrupt session record"};
  }
}

class redis_session_store final : public session_store {
 public:
  redis_session_store(std::shared_ptr<redis_client> r, std::string prefix)
    : redis_(std::move(r)), p_(std::move(prefix)) {}

  result<std::optional<session_record>> load(const std::string& id) override {
    auto r = redis_->command({"GET", session_key(id)});
    if (!r)
      return {r.error(), r.description()};
    return parse_session(*r);
  }

  status save(const session_record& s) override {
    // Fenced: the revision key holds the stored revision (absent: 0), checked and written in
    // the same script as the record.
    auto exp = std::to_string(s.expires_at);
    bool over = s.expires_at <= unix_now();  // already over: nothing of it may resolve any more
    std::vector<std::string> cmd{"EVAL", save_session_lua, "", session_key(s.id),
                                 revision_key(s.id), p_ + "user_sessions:" + s.user_id};
    if (!over)
      for (auto& f : s.families)
        for (auto* h : {&f.current_hash, &f.previous_hash})
          if (!h->empty())
            cmd.push_back(refresh_key(*h));
    cmd[2] = std::to_string(cmd.size() - 3);
    cmd.push_back(std::to_string(s.revision - 1));
    cmd.push_back(std::to_string(s.revision));
    cmd.push_back(over ? std::string{} : nlohmann::json(s).dump());
    cmd.push_back(exp);
    cmd.push_back(s.id);
    return fenced(redis_->command(cmd));
  }

  status erase(const session_record& s) override {
    // Refresh-index entries stay until they expire (see the in-memory store).
    return fenced(redis_->command({"EVAL", erase_session_lua, "3", session_key(s.id),
                                   revision_key(s.id), p_ + "user_sessions:" + s.user_id,
                                   std::to_string(s.revision), s.id}));
  }

  result<std::optional<std::string>> find_by_refresh_hash(const std::string& hash) override {
    auto r = redis_->command({"GET", refresh_key(hash)});
    if (!r)
      return {r.error(), r.description()};
    if (r->type != kind::string)
      return std::optional<std::string>{};
    return std::optional<std::string>{r->str};
  }

  result<std::vector<session_record>> list_for_user(const std::string& user_id) override {
    auto user_key = p_ + "user_sessions:" + user_id;
    auto ids = redis_->command({"SMEMBERS", user_key});
    if (!ids)
      return {ids.error(), ids.description()};
    std::vector<session_record> out;
    if (ids->type != kind::array || ids->elements.empty())
      return out;
    std::vector<std::string> mget{"MGET"};
    for (auto& e : ids->elements)
      mget.push_back(session_key(e.str));
    auto docs = redis_->command(mget);
    if (!docs)
      return {docs.error(), docs.description()};
    std::vector<std::string> gone{"SREM", user_key};
    for (std::size_t i = 0; i < docs->elements.size(); ++i) {
      auto s = parse_session(docs->elements[i]);
      if (!s)
        return {s.error(), s.description()};
      if (s->has_value())
        out.push_back(std::move(**s));
      else
        gone.push_back(ids->elements[i].str);  // expired: drop the stale index entry
    }
    if (gone.size() > 2)
      redis_->command(gone);
    return out;
  }

 private:
  std::string session_key(const std::string& id) const { return p_ + "session:" + id; }
  std::string refresh_key(const std::string& h) const { return p_ + "refresh:" + h; }
  std::string revision_key(const std::string& id) const { return p_ + "session_rev:" + id; }

  static status fenced(const result<redis_reply>& r) {
    if (!r)
      return {r.error(), r.description()};
    if (r->type == kind::error && r->str.rfind("CONFLICT", 0) == 0)
      return {errc::conflict, "session was changed by another owner"};
    if (r->type == kind::error)
      return {errc::internal_error, "redis error: " + r->str};
    return ok();
  }

  // KEYS: session, revision, user index, refresh index entries...; ARGV: expected revision,
  // new revision, document ('' deletes: the session is over), EXAT, session id.
  static constexpr const char* save_session_lua =
    "if tonumber(redis.call('GET', KEYS[2]) or '0') ~= tonumber(ARGV[1]) then "
    "  return redis.error_reply('CONFLICT stale session revision') end "
    "if ARGV[3] == '' then "
    "  redis.call('DEL', KEYS[1], KEYS[2]) redis.call('SREM', KEYS[3], ARGV[5]) return 1 end "
    "redis.call('SET', KEYS[1], ARGV[3], 'EXAT', ARGV[4]) "
    "redis.call('SET', KEYS[2], ARGV[2], 'EXAT', ARGV[4]) "
    "redis.call('SADD', KEYS[3], ARGV[5]) "
    "redis.call('EXPIREAT', KEYS[3], ARGV[4], 'NX') "
    "redis.call('EXPIREAT', KEYS[3], ARGV[4], 'GT') "
    "for i = 4, #KEYS do redis.call('SET', KEYS[i], ARGV[5], 'EXAT', ARGV[4]) end "
    "return 1";
  // KEYS: session, revision, user index; ARGV: expected revision, session id.
  static constexpr const char* erase_session_lua =
    "if redis.call('EXISTS', KEYS[1]) == 0 then return 1 end "
    "if tonumber(redis.call('GET', KEYS[2]) or '0') ~= tonumber(ARGV[1]) then "
    "  return redis.error_reply('CONFLICT stale session revision') end "
    "redis.call('DEL', KEYS[1], KEYS[2]) redis.call('SREM', KEYS[3], ARGV[2]) "
    "return 1";

  std::shared_ptr<redis_client> redis_;
  std::string p_;
};

// Raises a cut-off, never lowers it, atomically.
constexpr const char* raise_cutoff_lua =
  "local c = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0') "
  "if tonumber(ARGV[2]) > c then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end "
  "return 1";

class redis_revocation_store final : public revocation_store {
 public:
  redis_revocation_store(std::shared_ptr<redis_client> r, std::string prefix)
    : redis_(std::move(r)), p_(std::move(prefix)) {}

  status revoke_token(const std::string& jti, std::int64_t exp) override {
    auto at = std::to_string(std::max<std::int64_t>(exp, unix_now() + 1));
    auto r = redis_->command({"SET", p_ + "revoked:" + jti, "1", "EXAT", at});
    if (!r)
      return {r.error(), r.description()};
    if (r->type == kind::error)
      return {errc::internal_error, "redis error: " + r->str};
    return ok();
  }

  result<bool> is_token_revoked(const std::string& jti) override {
    auto r = redis_->command({"EXISTS", p_ + "revoked:" + jti});
    if (!r)
      return {r.error(), r.description()};
    if (r->type != kind::integer)
      return {errc::internal_error, "unexpected redis reply"};
    return r->integer != 0;
  }

  status add_cutoff(const std::string& user_id, const std::string& client_id,
                    const std::string& scope, std::int64_t cutoff) override {
    auto r = redis_->command({"EVAL", raise_cutoff_lua, "1", p_ + "cutoffs",
                              field(user_id, client_id, scope), std::to_string(cutoff)});
    if (!r)
      return {r.error(), r.description()};
    if (r->type == kind::error)
      return {errc::internal_error, "redis error: " + r->str};
    return ok();
  }

  result<std::int64_t> cutoff(const std::string& user_id, const std::string& client_id,
                              const std::string& scope) override {
    auto r = redis_->command({"HGET", p_ + "cutoffs", field(user_id, client_id, scope)});
    if (!r)
      return {r.error(), r.description()};
    if (r->type == kind::nil)
      return std::int64_t{0};
    if (r->type != kind::string)
      return {errc::internal_error, "unexpected redis reply"};
    try {
      return static_cast<std::int64_t>(std::stoll(r->str));
    } catch (const std::exception&) {
      return {errc::internal_error, "corrupt cut-off"};
    }
  }

  // SCAN over the revoked keys (their expiry is the token's exp), then the cut-off hash.
  result<revocation_snapshot> snapshot() override {
    revocation_snapshot out;
    std::string cursor = "0";
    auto prefix = p_ + "revoked:";
    do {
      auto r = redis_->command({"SCAN", cursor, "MATCH", prefix + "*", "COUNT", "1000"});
      if (!r)
        return {r.error(), r.description()};
      if (r->type != kind::array || r->elements.size() != 2)
        return {errc::internal_error, "unexpected redis reply"};
      cursor = r->elements[0].str;
      std::vector<std::vector<std::string>> cmds;
      for (auto& key : r->elements[1].elements)
        cmds.push_back({"EXPIRETIME", key.str});
      if (cmds.empty())
        continue;
      auto times = redis_->pipeline(cmds);
      if (!times)
        return {times.error(), times.description()};
      for (std::size_t i = 0; i < cmds.size(); ++i)
        if ((*times)[i].type == kind::integer && (*times)[i].integer > 0)
          out.tokens.emplace_back(cmds[i][1].substr(prefix.size()), (*times)[i].integer);
    } while (cursor != "0");
    auto all = redis_->command({"HGETALL", p_ + "cutoffs"});
    if (!all)
      return {all.error(), all.description()};
    for (std::size_t i = 0; i + 1 < all->elements.size(); i += 2) {
      auto& k = all->elements[i].str;
      auto a = k.find('\n');
      auto b = a == std::string::npos ? a : k.find('\n', a + 1);
      if (b == std::string::npos)
        continue;
      std::int64_t at = 0;
      try {
        at = std::stoll(all->elements[i + 1].str);
      } catch (const std::exception&) {
        return {errc::internal_error, "corrupt cut-off"};
      }
      out.cutoffs.push_back({k.substr(0, a), k.substr(a + 1, b - a - 1), k.substr(b + 1), at});
    }
    return out;
  }

 private:
  static std::string field(const std::string& u, const std::string& c, const std::string& s) {
    return u + "\n" + c + "\n" + s;
  }
  std::shared_ptr<redis_client> redis_;
  std::string p_;
};

// Returns the code and whether it had been used, marking it used, atomically. The used marker
// expires with the code.
constexpr const char* consume_code_lua = R"(
local v = redis.call('GET', KEYS[1])
if not v then return false end
local used = redis.call('GETSET', KEYS[2], '1')
local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
if used then return {v, '1'} end
return {v, '0'}
)";

class redis_code_store final : public code_store {
 public:
  redis_code_store(std::shared_ptr<redis_client> r, std::string prefix)
    : redis_(std::move(r)), p_(std::move(prefix)) {}

  status put(const authorization_code_record& c) override {
    auto at = std::to_string(std::max<std::int64_t>(c.expires_at, unix_now() + 1));
    auto r = redis_->command({"SET", p_ + "code:" + c.code_hash, nlohmann::json(c).dump(), "EXAT", at});
    if (!r)
      return {r.error(), r.description()};
    if (r->type == kind::error)
      return {errc::internal_error, "redis error: " + r->str};
    return ok();
  }

  result<std::optional<authorization_code_record>> consume(const std::string& hash) override {
    auto r = redis_->command({"EVAL", consume_code_lua, "2", p_ + "code:" + hash,
                              p_ + "code_used:" + hash});
    if (!r)
      return {r.error(), r.description()};
    if (r->type == kind::nil)
      return std::optional<authorization_code_record>{};
    if (r->type != kind::array || r->elements.size() != 2)
      return {errc::internal_error, "unexpected redis reply for a code"};
    auto j = nlohmann::json::parse(r->elements[0].str, nullptr, false);
    if (j.is_discarded())
      return {errc::internal_error, "corrupt authorization code record"};
    try {
      auto code = j.get<authorization_code_record>();
      code.used = r->elements[1].str == "1";
      return std::optional<authorization_code_record>{std::move(code)};
    } catch (const nlohmann::json::exception&) {
      return {errc::internal_error, "corrupt authorization code record"};
    }
  }

 private:
  std::shared_ptr<redis_client> redis_;
  std::string p_;
};

class redis_bucket_store final : public bucket_store {
 public:
  redis_bucket_store(std::shared_ptr<redis_client> r, std::string prefix)
    : redis_(std::move(r)), p_(std::move(prefix)) {}

  result<std::optional<bucket_record>> load(const std::string& key) override {
    auto r = redis_->command({"GET", p_ + "rl:" + key});
    if (!r)
      return {r.error(), r.description()};
    if (r->type == kind::nil)
      return std::optional<bucket_record>{};
    if (r->type != kind::string)
      return {errc::internal_error, "unexpected redis reply for a bucket"};
    auto j = nlohmann::json::parse(r->str, nullptr, false);
    if (j.is_discarded())
      return {errc::internal_error, "corrupt bucket record"};
    try {
      return std::optional<bucket_record>{j.get<bucket_record>()};
    } catch (const nlohmann::json::exception&) {
      return {errc::internal_error, "corrupt bucket record"};
    }
  }

  status save(const std::string& key, const bucket_record& record,
              std::int64_t expires_at_ms) override {
    auto at = std::to_string(std::max<std::int64_t>(expires_at_ms, unix_now_ms() + 1));
    auto r = redis_->command({"SET", p_ + "rl:" + key, nlohmann::json(record).dump(), "PXAT", at});
    if (!r)
      return {r.error(), r.description()};
    if (r->type == kind::error)
      return {errc::internal_error, "redis error: " + r->str};
    return ok();
  }

  status erase(const std::string& key) override {
    auto r = redis_->command({"DEL", p_ + "rl:" + key});
    if (!r)
      return {r.error(), r.description()};
    return ok();
  }

 private:
  std::shared_ptr<redis_client> redis_;
  std::string p_;
};

}  // namespace

std::shared_ptr<bucket_store> make_redis_bucket_store(std::shared_ptr<redis_client> redis,
                                                      std::string prefix) {
  return std::make_shared<redis_bucket_store>(std::move(redis), std::move(prefix));
}

std::shared_ptr<code_store> make_redis_code_store(std::shared_ptr<redis_client> redis,
                                                  std::string prefix) {
  return std::make_shared<redis_code_store>(std::move(redis), std::move(prefix));
}

std::shared_ptr<session_store> make_redis_session_store(std::shared_ptr<redis_client> redis,
                                                        std::string prefix) {
  return std::make_shared<redis_session_store>(std::move(redis), std::move(prefix));
}

std::shared_ptr<revocation_store> make_redis_revocation_store(std::shared_ptr<redis_client> redis,
                                                              std::string prefix) {
  return std::make_shared<redis_revocation_store>(std::move(redis), std::move(prefix));
}

}  // namespace credo::persistence
