#include "http/request_builder.hpp"

#include <gtest/gtest.h>

namespace credo::http {
namespace {

namespace bhttp = boost::beast::http;

detail::beast_request make(std::string_view target) {
  detail::beast_request msg{bhttp::verb::post, target, 11};
  msg.set("X-Custom-Header", "Value");
  msg.set(bhttp::field::content_type, "application/json");
  msg.body() = "{\"a\":1}";
  return msg;
}

TEST(build_request, fills_every_field) {
  request req;
  ASSERT_TRUE(detail::build_request(make("/a%20b/c?x=1&y=a+b%2B&flag&x=2"), "10.0.0.1", req));
  EXPECT_EQ(req.method, "POST");
  EXPECT_EQ(req.target, "/a%20b/c?x=1&y=a+b%2B&flag&x=2");
  EXPECT_EQ(req.path, "/a b/c");
  ASSERT_EQ(req.query.size(), 4u);  // repeated query keys are kept in order
  EXPECT_EQ(req.query_param("x"), "1");
  EXPECT_EQ(req.query_param("y"), "a b+");
  EXPECT_EQ(req.query_param("flag"), "");
  EXPECT_EQ(req.query[3].second, "2");
  EXPECT_EQ(req.header("x-custom-header"), "Value");
  EXPECT_EQ(req.header("content-type"), "application/json");
  EXPECT_EQ(req.body, "{\"a\":1}");
  EXPECT_EQ(req.remote_ip, "10.0.0.1");
  EXPECT_EQ(req.request_id.size(), 32u);
}

TEST(build_request, request_id_kept_when_sane) {
  auto msg = make("/");
  msg.set("X-Request-ID", "trace-42");
  request req;
  ASSERT_TRUE(detail::build_request(std::move(msg), "", req));
  EXPECT_EQ(req.request_id, "trace-42");

  auto bad = make("/");
  bad.set("X-Request-ID", "no spaces allowed");
  request req2;
  ASSERT_TRUE(detail::build_request(std::move(bad), "", req2));
  EXPECT_EQ(req2.request_id.size(), 32u);
  EXPECT_EQ(req2.request_id.find_first_not_of("0123456789abcdef"), std::string::npos);
}

TEST(build_request, rejects_bad_targets_but_sets_request_id) {
  for (const char* target : {"/a%zz", "/a%00b", "/%", "/ok?x=%g1", "/ok?%=1"}) {
    request req;
    EXPECT_FALSE(detail::build_request(make(target), "", req)) << target;
    EXPECT_FALSE(req.request_id.empty());
  }
}

TEST(new_request_id, is_random_hex) {
  auto a = detail::new_request_id();
  auto b = detail::new_request_id();
  EXPECT_NE(a, b);
  EXPECT_EQ(a.size(), 32u);
  EXPECT_TRUE(sane_request_id(a));
}

}  // namespace
}  // namespace credo::http
