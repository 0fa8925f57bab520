#include "actors/refresh_family.hpp"

#include <gtest/gtest.h>

using credo::actors::apply_rotation;
using credo::actors::decide_refresh;
using credo::actors::family_knows;
using credo::actors::max_used_fingerprints;
using credo::actors::refresh_outcome;
using credo::persistence::refresh_family_record;

namespace {

std::string h(int i) {
  // 64 hex chars, distinct in the first 16.
  char buf[65];
  std::snprintf(buf, sizeof buf, "%016x%048x", i, 0);
  return buf;
}

refresh_family_record fresh() {
  refresh_family_record f;
  f.family_id = "fam";
  f.current_hash = h(1);
  f.created_at = 1000;
  return f;
}

}  // namespace

TEST(refresh_family, current_token_rotates) {
  auto f = fresh();
  EXPECT_EQ(decide_refresh(f, h(1), 1001, 0, false), refresh_outcome::rotate);
  apply_rotation(f, h(2), 1001);
  EXPECT_EQ(f.current_hash, h(2));
  EXPECT_EQ(f.previous_hash, h(1));
  EXPECT_EQ(f.rotated_at, 1001);
  EXPECT_EQ(decide_refresh(f, h(2), 1002, 0, false), refresh_outcome::rotate);
}

TEST(refresh_family, replay_without_grace_is_reuse) {
  auto f = fresh();
  apply_rotation(f, h(2), 1001);
  EXPECT_EQ(decide_refresh(f, h(1), 1001, 0, true), refresh_outcome::reuse);
}

TEST(refresh_family, replay_inside_grace_returns_same_successor) {
  auto f = fresh();
  apply_rotation(f, h(2), 1001);
  EXPECT_EQ(decide_refresh(f, h(1), 1005, 10, true), refresh_outcome::grace_replay);
  EXPECT_EQ(decide_refresh(f, h(1), 1011, 10, true), refresh_outcome::grace_replay);
}

TEST(refresh_family, replay_after_grace_is_reuse) {
  auto f = fresh();
  apply_rotation(f, h(2), 1001);
  EXPECT_EQ(decide_refresh(f, h(1), 1012, 10, true), refresh_outcome::reuse);
}

TEST(refresh_family, replay_inside_grace_without_cached_successor_is_refused_not_punished) {
  auto f = fresh();
  apply_rotation(f, h(2), 1001);
  EXPECT_EQ(decide_refresh(f, h(1), 1002, 10, false), refresh_outcome::invalid);
}

TEST(refresh_family, older_token_is_reuse_even_inside_grace) {
  auto f = fresh();
  apply_rotation(f, h(2), 1001);
  apply_rotation(f, h(3), 1002);
  EXPECT_EQ(decide_refresh(f, h(1), 1003, 60, true), refresh_outcome::reuse);
  EXPECT_TRUE(family_knows(f, h(1)));
}

TEST(refresh_family, unknown_token_is_invalid) {
  auto f = fresh();
  EXPECT_EQ(decide_refresh(f, h(9), 1001, 0, false), refresh_outcome::invalid);
  EXPECT_EQ(decide_refresh(f, "", 1001, 0, false), refresh_outcome::invalid);
  EXPECT_FALSE(family_knows(f, h(9)));
}

TEST(refresh_family, revoked_family_refuses_everything) {
  auto f = fresh();
  f.revoked = true;
  EXPECT_EQ(decide_refresh(f, h(1), 1001, 0, false), refresh_outcome::invalid);
}

TEST(refresh_family, expired_consent_refuses_refresh) {
  auto f = fresh();
  f.consent_expires_at = 1500;
  EXPECT_EQ(decide_refresh(f, h(1), 1499, 0, false), refresh_outcome::rotate);
  EXPECT_EQ(decide_refresh(f, h(1), 1500, 0, false), refresh_outcome::invalid);
}

TEST(refresh_family, used_fingerprints_are_bounded) {
  auto f = fresh();
  for (int i = 2; i < 2 + static_cast<int>(max_used_fingerprints) + 50; ++i)
    apply_rotation(f, h(i), 1000 + i);
  EXPECT_EQ(f.used_fingerprints.size(), max_used_fingerprints);
  EXPECT_FALSE(family_knows(f, h(1)));  // forgotten: oldest fingerprints fall off
}
