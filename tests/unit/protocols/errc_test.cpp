#include "protocols/errc.hpp"

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace credo {
namespace {

TEST(errc, to_string_names_each_enumerator) {
  EXPECT_EQ(to_string(errc::ok), "ok");
  EXPECT_EQ(to_string(errc::invalid_grant), "invalid_grant");
  EXPECT_EQ(to_string(errc::temporarily_unavailable), "temporarily_unavailable");
  EXPECT_EQ(to_string(errc::rate_limited), "rate_limited");
}

TEST(errc, names_are_distinct_and_out_of_range_is_printable) {
  std::set<std::string> seen;
  const auto last = static_cast<int>(errc::rate_limited);
  for (int i = 0; i <= last; ++i) {
    const auto name = std::string(to_string(static_cast<errc>(i)));
    EXPECT_NE(name, "unknown") << i;
    EXPECT_TRUE(seen.insert(name).second) << name;
  }
  EXPECT_EQ(to_string(static_cast<errc>(200)), "unknown");
}

}  // namespace
}  // namespace credo
