#include "persistence/redis_client.hpp"

#include <gtest/gtest.h>

#include <sys/socket.h>
#include <netinet/in.h>
#include <unistd.h>

#include "persistence/redis_stores.hpp"

namespace {

using namespace credo;
using namespace credo::persistence;

TEST(parse_redis_url, accepts_the_documented_forms) {
  auto a = parse_redis_url("redis://127.0.0.1:6379");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 6379);
  EXPECT_EQ(a->db, 0);
  EXPECT_TRUE(a->password.empty());
  auto b = parse_redis_url("redis://:s3cret@cache.internal:6380/2");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->password, "s3cret");
  EXPECT_EQ(b->host, "cache.internal");
  EXPECT_EQ(b->port, 6380);
  EXPECT_EQ(b->db, 2);
  auto c = parse_redis_url("redis://app:pw@[::1]:7000");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->user, "app");
  EXPECT_EQ(c->host, "::1");
}

TEST(parse_redis_url, rejects_malformed_urls) {
  for (auto* bad : {"", "http://h:1", "redis://h", "redis://h:0", "redis://h:99999",
                    "redis://h:1/x", "redis:// h:1", "redis://h:1/123"})
    EXPECT_FALSE(parse_redis_url(bad)) << bad;
}

// A port nobody listens on: bind, read the port, close.
int closed_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

TEST(redis_client, unreachable_server_is_temporarily_unavailable_not_fatal) {
  redis_options o;
  o.port = closed_port();
  o.timeout = std::chrono::milliseconds{200};
  auto client = std::make_shared<redis_client>(o);
  auto r = client->command({"PING"});
  EXPECT_EQ(r.error(), errc::temporarily_unavailable);
  EXPECT_FALSE(client->healthy());
  auto sessions = make_redis_session_store(client);
  EXPECT_EQ(sessions->load("s").error(), errc::temporarily_unavailable);
  auto revocations = make_redis_revocation_store(client);
  EXPECT_EQ(revocations->is_token_revoked("j").error(), errc::temporarily_unavailable);
  EXPECT_EQ(revocations->cutoff("u", "", "").error(), errc::temporarily_unavailable);
}

}  // namespace
