#include "persistence/redis_client.hpp"

#include <mutex>
#include <regex>

#include <hiredis/hiredis.h>

namespace credo::persistence {
namespace {

using clock = std::chrono::steady_clock;

struct context_deleter {
  void operator()(redisContext* c) const noexcept {
    if (c)
      redisFree(c);
  }
};
using context_ptr = std::unique_ptr<redisContext, context_deleter>;

redis_reply convert(const redisReply* r) {
  redis_reply out;
  switch (r->type) {
    case REDIS_REPLY_STRING:
      out.type = redis_reply::kind::string;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_STATUS:
      out.type = redis_reply::kind::status;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ERROR:
      out.type = redis_reply::kind::error;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_INTEGER:
      out.type = redis_reply::kind::integer;
      out.integer = r->integer;
      break;
    case REDIS_REPLY_ARRAY:
      out.type = redis_reply::kind::array;
      out.elements.reserve(r->elements);
      for (std::size_t i = 0; i < r->elements; ++i)
        out.elements.push_back(convert(r->element[i]));
      break;
    default:
      out.type = redis_reply::kind::nil;
  }
  return out;
}

// hiredis wants parallel arrays of pointers and lengths.
struct argv_view {
  std::vector<const char*> ptrs;
  std::vector<std::size_t> lens;
  explicit argv_view(const std::vector<std::string>& args) {
    ptrs.reserve(args.size());
    lens.reserve(args.size());
    for (auto& a : args) {
      ptrs.push_back(a.data());
      lens.push_back(a.size());
    }
  }
  int argc() const { return static_cast<int>(ptrs.size()); }
};

timeval to_timeval(std::chrono::milliseconds ms) {
  return {static_cast<time_t>(ms.count() / 1000), static_cast<suseconds_t>((ms.count() % 1000) * 1000)};
}

}  // namespace

std::optional<redis_options> parse_redis_url(const std::string& url) {
  static const std::regex re{R"(^redis://(?:([^:@/]*):([^@/]*)@)?([A-Za-z0-9.\-]+|\[[0-9A-Fa-f:]+\]):([0-9]{1,5})(?:/([0-9]{1,2}))?/?$)"};
  std::smatch m;
  if (!std::regex_match(url, m, re))
    return std::nullopt;
  redis_options o;
  o.user = m[1].str();
  o.password = m[2].str();
  o.host = m[3].str();
  if (o.host.size() > 2 && o.host.front() == '[')
    o.host = o.host.substr(1, o.host.size() - 2);
  o.port = std::stoi(m[4].str());
  if (o.port < 1 || o.port > 65535)
    return std::nullopt;
  o.db = m[5].matched ? std::stoi(m[5].str()) : 0;
  return o;
}

struct redis_client::impl {
  redis_options options;
  std::mutex mtx;
  std::vector<context_ptr> idle;
  clock::time_point retry_after{};
  std::chrono::milliseconds backoff{50};

  // A connected, authenticated context, or nullptr (then: unavailable, retry after backoff).
  context_ptr acquire() {
    {
      std::lock_guard guard{mtx};
      if (!idle.empty()) {
        auto c = std::move(idle.back());
        idle.pop_back();
        return c;
      }
      if (clock::now() < retry_after)
        return nullptr;
    }
    context_ptr c{redisConnectWithTimeout(options.host.c_str(), options.port,
                                          to_timeval(options.timeout))};
    bool ok = c && !c->err && redisSetTimeout(c.get(), to_timeval(options.timeout)) == REDIS_OK;
    auto run = [&](const std::vector<std::string>& args) {
      argv_view argv{args};
      auto* r = static_cast<redisReply*>(
        redisCommandArgv(c.get(), argv.argc(), argv.ptrs.data(), argv.lens.data()));
      bool good = r && r->type != REDIS_REPLY_ERROR;
      if (r)
        freeReplyObject(r);
      return good;
    };
    if (ok && !options.password.empty())
      ok = options.user.empty() ? run({"AUTH", options.password})
                                : run({"AUTH", options.user, options.password});
    if (ok && options.db != 0)
      ok = run({"SELECT", std::to_string(options.db)});
    std::lock_guard guard{mtx};
    if (!ok) {
      retry_after = clock::now() + backoff;
      backoff = std::min(backoff * 2, std::chrono::milliseconds{2000});
      return nullptr;
    }
    backoff = std::chrono::milliseconds{50};
    return c;
  }

  void release(context_ptr c) {
    std::lock_guard guard{mtx};
    if (idle.size() < options.pool_size)
      idle.push_back(std::move(c));
  }
};

redis_client::redis_client(redis_options options) : impl_(std::make_unique<impl>()) {
  impl_->options = std::move(options);
}

redis_client::~redis_client() = default;

result<redis_reply> redis_client::command(const std::vector<std::string>& args) {
  auto r = pipeline({args});
  if (!r)
    return {r.error(), r.description()};
  return std::move(r->front());
}

result<std::vector<redis_reply>> redis_client::pipeline(
  const std::vector<std::vector<std::string>>& cmds) {
  auto c = impl_->acquire();
  if (!c)
    return {errc::temporarily_unavailable, "redis unreachable"};
  for (auto& args : cmds) {
    argv_view argv{args};
    if (redisAppendCommandArgv(c.get(), argv.argc(), argv.ptrs.data(), argv.lens.data())
        != REDIS_OK)
      return {errc::temporarily_unavailable, "redis write failed"};
  }
  std::vector<redis_reply> out;
  out.reserve(cmds.size());
  for (std::size_t i = 0; i < cmds.size(); ++i) {
    void* raw = nullptr;
    if (redisGetReply(c.get(), &raw) != REDIS_OK || !raw)
      return {errc::temporarily_unavailable, "redis read failed or timed out"};  // c dropped
    auto* r = static_cast<redisReply*>(raw);
    out.push_back(convert(r));
    freeReplyObject(r);
  }
  impl_->release(std::move(c));
  return out;
}

bool redis_client::healthy() {
  auto r = command({"PING"});
  return r && r->type == redis_reply::kind::status && r->str == "PONG";
}

}  // namespace credo::persistence
