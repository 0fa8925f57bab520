#include "http/message.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace credo::http {
namespace {

request with_authorization(std::string value) {
  request r;
  r.headers.emplace_back("authorization", std::move(value));
  return r;
}

TEST(parse_form, decodes_pairs_in_order) {
  auto f = parse_form("grant_type=refresh_token&refresh_token=abc%2Fdef&scope=openid+profile");
  ASSERT_TRUE(f);
  ASSERT_EQ(f->size(), 3u);
  EXPECT_EQ((*f)[0], (std::pair<std::string, std::string>{"grant_type", "refresh_token"}));
  EXPECT_EQ((*f)[1].second, "abc/def");
  EXPECT_EQ((*f)[2].second, "openid profile");
  EXPECT_EQ(find(*f, "scope"), "openid profile");
  EXPECT_FALSE(find(*f, "missing"));
}

TEST(parse_form, empty_values_and_empty_body) {
  auto f = parse_form("a=&b&c=1");
  ASSERT_TRUE(f);
  EXPECT_EQ(find(*f, "a"), "");
  EXPECT_EQ(find(*f, "b"), "");
  EXPECT_EQ(find(*f, "c"), "1");
  auto empty = parse_form("");
  ASSERT_TRUE(empty);
  EXPECT_TRUE(empty->empty());
  auto gaps = parse_form("&a=1&&");
  ASSERT_TRUE(gaps);
  EXPECT_EQ(gaps->size(), 1u);
}

TEST(parse_form, plus_is_space_and_encoded_plus_is_plus) {
  auto f = parse_form("q=a+b%2Bc&k%20x=v");
  ASSERT_TRUE(f);
  EXPECT_EQ(find(*f, "q"), "a b+c");
  EXPECT_EQ(find(*f, "k x"), "v");
}

TEST(parse_form, rejects_bad_escapes) {
  EXPECT_FALSE(parse_form("a=%"));
  EXPECT_FALSE(parse_form("a=%4"));
  EXPECT_FALSE(parse_form("a=%zz"));
  EXPECT_FALSE(parse_form("a%G1=1"));
  EXPECT_FALSE(parse_form("a=1&b=%%41"));
}

TEST(parse_form, rejects_repeated_key_even_when_spelled_differently) {
  EXPECT_FALSE(parse_form("a=1&a=2"));
  EXPECT_FALSE(parse_form("scope=x&sc%6Fpe=y"));
  EXPECT_FALSE(parse_form("a&a"));
}

TEST(parse_form, rejects_empty_name) { EXPECT_FALSE(parse_form("=value")); }

TEST(url_decode, edge_cases) {
  EXPECT_EQ(url_decode("", false), "");
  EXPECT_EQ(url_decode("abc", false), "abc");
  EXPECT_EQ(url_decode("a+b", false), "a+b");
  EXPECT_EQ(url_decode("a+b", true), "a b");
  EXPECT_EQ(url_decode("%41%62%2f", false), "Ab/");
  EXPECT_EQ(url_decode("%e2%82%ac", false), "\xe2\x82\xac");
  EXPECT_EQ(url_decode("%00", false), std::string(1, '\0'));
  EXPECT_EQ(url_decode("100%25", false), "100%");
  EXPECT_FALSE(url_decode("%", false));
  EXPECT_FALSE(url_decode("%4", false));
  EXPECT_FALSE(url_decode("abc%", false));
  EXPECT_FALSE(url_decode("%g0", false));
  EXPECT_FALSE(url_decode("%0g", false));
  EXPECT_FALSE(url_decode("% 1", false));
}

TEST(url_encode, keeps_unreserved_and_round_trips) {
  EXPECT_EQ(url_encode("AZaz09-._~"), "AZaz09-._~");
  EXPECT_EQ(url_encode("a b+c/d?e=f&g"), "a%20b%2Bc%2Fd%3Fe%3Df%26g");
  EXPECT_EQ(url_encode("\xff"), "%FF");
  std::string all;
  for (int c = 0; c < 256; ++c) all.push_back(static_cast<char>(c));
  EXPECT_EQ(url_decode(url_encode(all), false), all);
  EXPECT_EQ(url_decode(url_encode(all), true), all);
}

TEST(sane_request_id, accepts_and_rejects) {
  EXPECT_EQ(sane_request_id("abc-123_x.y:z"), "abc-123_x.y:z");
  EXPECT_TRUE(sane_request_id(std::string(128, 'a')));
  EXPECT_FALSE(sane_request_id(std::string(129, 'a')));
  EXPECT_FALSE(sane_request_id(""));
  EXPECT_FALSE(sane_request_id("has space"));
  EXPECT_FALSE(sane_request_id("line\r\nbreak"));
  EXPECT_FALSE(sane_request_id("<script>"));
  EXPECT_FALSE(sane_request_id("caf\xc3\xa9"));
}

TEST(bearer_token, parses_scheme_case_insensitively) {
  EXPECT_EQ(bearer_token(with_authorization("Bearer abc.def-ghi_~+/==")), "abc.def-ghi_~+/==");
  EXPECT_EQ(bearer_token(with_authorization("bearer tok")), "tok");
  EXPECT_EQ(bearer_token(with_authorization("BEARER  tok  ")), "tok");
}

TEST(bearer_token, rejects_malformed) {
  EXPECT_FALSE(bearer_token(request{}));
  EXPECT_FALSE(bearer_token(with_authorization("Bearer")));
  EXPECT_FALSE(bearer_token(with_authorization("Bearer ")));
  EXPECT_FALSE(bearer_token(with_authorization("Bearertok")));
  EXPECT_FALSE(bearer_token(with_authorization("Basic dXNlcjpwYXNz")));
  EXPECT_FALSE(bearer_token(with_authorization("Bearer a b")));
  EXPECT_FALSE(bearer_token(with_authorization("Bearer a=b")));
  EXPECT_FALSE(bearer_token(with_authorization("Bearer =")));
}

TEST(basic_credentials, decodes_id_and_secret) {
  // "client:s3cret"
  auto c = basic_credentials(with_authorization("Basic Y2xpZW50OnMzY3JldA=="));
  ASSERT_TRUE(c);
  EXPECT_EQ(c->first, "client");
  EXPECT_EQ(c->second, "s3cret");
  // Scheme is case-insensitive; unpadded base64 is accepted.
  auto d = basic_credentials(with_authorization("basic Y2xpZW50OnMzY3JldA"));
  ASSERT_TRUE(d);
  EXPECT_EQ(d->second, "s3cret");
}

TEST(basic_credentials, splits_at_first_colon_and_percent_decodes) {
  // "my%3Aclient:p%40ss:w+rd%2B" → id "my:client", secret "p@ss:w rd+"
  auto c = basic_credentials(with_authorization("Basic bXklM0FjbGllbnQ6cCU0MHNzOncrcmQlMkI="));
  ASSERT_TRUE(c);
  EXPECT_EQ(c->first, "my:client");
  EXPECT_EQ(c->second, "p@ss:w rd+");
  // "id:" → empty secret
  auto e = basic_credentials(with_authorization("Basic aWQ6"));
  ASSERT_TRUE(e);
  EXPECT_EQ(e->first, "id");
  EXPECT_EQ(e->second, "");
}

TEST(basic_credentials, rejects_bad_input) {
  EXPECT_FALSE(basic_credentials(request{}));
  EXPECT_FALSE(basic_credentials(with_authorization("Basic")));
  EXPECT_FALSE(basic_credentials(with_authorization("Basic !!!!")));
  EXPECT_FALSE(basic_credentials(with_authorization("Basic Y2xpZW50OnMzY3JldA=")));   // bad pad
  EXPECT_FALSE(basic_credentials(with_authorization("Basic Y2xp=ZW50")));             // pad inside
  EXPECT_FALSE(basic_credentials(with_authorization("Basic Y")));                     // 1 char
  EXPECT_FALSE(basic_credentials(with_authorization("Basic bm9jb2xvbg==")));          // "nocolon"
  EXPECT_FALSE(basic_credentials(with_authorization("Basic OnNlY3JldA==")));          // ":secret"
  EXPECT_FALSE(basic_credentials(with_authorization("Basic aWQ6JXp6")));              // "id:%zz"
  EXPECT_FALSE(basic_credentials(with_authorization("Bearer Y2xpZW50OnMzY3JldA==")));
}

TEST(error_response, builds_json) {
  auto r = error_response(400, "invalid_request", "bad \"thing\"\n");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.content_type, "application/json; charset=utf-8");
  auto j = nlohmann::json::parse(r.body);
  EXPECT_EQ(j["error"], "invalid_request");
  EXPECT_EQ(j["error_description"], "bad \"thing\"\n");
  // Invalid UTF-8 in a description must not throw.
  auto bad = error_response(400, "invalid_request", "\xff\xfe");
  EXPECT_TRUE(nlohmann::json::accept(bad.body));
}

TEST(media_type, strips_parameters_and_lowercases) {
  request r;
  EXPECT_EQ(media_type(r), "");
  r.headers.emplace_back("content-type", " Application/X-WWW-Form-URLencoded ; charset=UTF-8");
  EXPECT_EQ(media_type(r), "application/x-www-form-urlencoded");
}

TEST(request, accessors) {
  request r;
  r.headers = {{"accept", "a"}, {"accept", "b"}};
  r.query = {{"q", "1"}};
  r.path_params = {{"id", "42"}};
  EXPECT_EQ(r.header("accept"), "a");
  EXPECT_FALSE(r.header("Accept"));
  EXPECT_EQ(r.query_param("q"), "1");
  EXPECT_EQ(r.path_param("id"), "42");
  EXPECT_FALSE(r.path_param("nope"));
}

}  // namespace
}  // namespace credo::http

namespace credo::http {
namespace {

TEST(parse_json_object, accepts_objects_only) {
  EXPECT_TRUE(parse_json_object(R"({"a":[1,{"b":"}]"}]})", 16));
  EXPECT_FALSE(parse_json_object("[1,2]", 16));
  EXPECT_FALSE(parse_json_object("\"s\"", 16));
  EXPECT_FALSE(parse_json_object("{\"a\":", 16));
  EXPECT_FALSE(parse_json_object("", 16));
}

TEST(parse_json_object, bounds_nesting_before_parsing) {
  std::string deep = "{\"a\":" + std::string(100000, '[') + std::string(100000, ']') + "}";
  EXPECT_FALSE(parse_json_object(deep, 16));
  std::string ok = "{\"a\":" + std::string(15, '[') + std::string(15, ']') + "}";
  EXPECT_TRUE(parse_json_object(ok, 16));
  // Brackets inside strings do not count.
  EXPECT_TRUE(parse_json_object("{\"a\":\"" + std::string(100, '[') + "\"}", 16));
}

}  // namespace
}  // namespace credo::http
