#include "http/router.hpp"

#include <gtest/gtest.h>

namespace credo::http {
namespace {

using kind = router::match::kind;

router make_router() {
  router r;
  r.add("GET", "/", 0);
  r.add("POST", "/users", 1);
  r.add("GET", "/me", 2);
  r.add("PATCH", "/me", 3);
  r.add("DELETE", "/me", 4);
  r.add("GET", "/auth/sessions", 5);
  r.add("DELETE", "/auth/sessions/{id}", 6);
  r.add("DELETE", "/auth/consent/{client_id}/{scope}", 7);
  r.add("GET", "/.well-known/jwks.json", 8);
  return r;
}

TEST(router, exact_match) {
  auto r = make_router();
  auto m = r.resolve("GET", "/me");
  EXPECT_EQ(m.result, kind::found);
  EXPECT_EQ(m.route_id, 2);
  EXPECT_TRUE(m.params.empty());
  EXPECT_EQ(r.resolve("GET", "/").route_id, 0);
  EXPECT_EQ(r.resolve("GET", "/.well-known/jwks.json").route_id, 8);
}

TEST(router, captures_params) {
  auto r = make_router();
  auto m = r.resolve("DELETE", "/auth/consent/my-app/openid");
  ASSERT_EQ(m.result, kind::found);
  EXPECT_EQ(m.route_id, 7);
  ASSERT_EQ(m.params.size(), 2u);
  EXPECT_EQ(find(m.params, "client_id"), "my-app");
  EXPECT_EQ(find(m.params, "scope"), "openid");
  auto s = r.resolve("DELETE", "/auth/sessions/abc");
  EXPECT_EQ(find(s.params, "id"), "abc");
}

TEST(router, not_found) {
  auto r = make_router();
  EXPECT_EQ(r.resolve("GET", "/nope").result, kind::not_found);
  EXPECT_EQ(r.resolve("GET", "/me/").result, kind::not_found);        // trailing slash
  EXPECT_EQ(r.resolve("GET", "/ME").result, kind::not_found);         // case-sensitive
  EXPECT_EQ(r.resolve("GET", "me").result, kind::not_found);
  EXPECT_EQ(r.resolve("GET", "").result, kind::not_found);
  EXPECT_EQ(r.resolve("DELETE", "/auth/sessions/").result, kind::not_found);  // empty capture
  EXPECT_EQ(r.resolve("DELETE", "/auth/sessions/a/b").result, kind::not_found);
  EXPECT_EQ(r.resolve("GET", "//me").result, kind::not_found);
}

TEST(router, method_not_allowed_lists_allow) {
  auto r = make_router();
  auto m = r.resolve("PUT", "/me");
  EXPECT_EQ(m.result, kind::method_not_allowed);
  EXPECT_EQ(m.allow, "GET, PATCH, DELETE");
  auto s = r.resolve("GET", "/auth/sessions/x");
  EXPECT_EQ(s.result, kind::method_not_allowed);
  EXPECT_EQ(s.allow, "DELETE");
}

TEST(router, head_is_not_special) {
  auto r = make_router();
  auto m = r.resolve("HEAD", "/me");
  EXPECT_EQ(m.result, kind::method_not_allowed);
  EXPECT_EQ(m.allow, "GET, PATCH, DELETE");
}

TEST(router, allow_merges_patterns_without_duplicates) {
  router r;
  r.add("GET", "/items/{id}", 1);
  r.add("DELETE", "/items/special", 2);
  r.add("GET", "/items/special", 3);
  r.add("PUT", "/items/{id}", 4);
  auto m = r.resolve("POST", "/items/special");
  EXPECT_EQ(m.result, kind::method_not_allowed);
  EXPECT_EQ(m.allow, "GET, DELETE, PUT");
  // First registered matching pattern wins.
  auto g = r.resolve("GET", "/items/special");
  EXPECT_EQ(g.route_id, 1);
  EXPECT_EQ(find(g.params, "id"), "special");
  auto d = r.resolve("DELETE", "/items/special");
  EXPECT_EQ(d.route_id, 2);
  EXPECT_TRUE(d.allow.empty());
}

}  // namespace
}  // namespace credo::http
