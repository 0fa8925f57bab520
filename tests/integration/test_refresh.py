"""Refresh-token rotation, reuse detection, grace period, concurrency, access-token lifetime."""

import concurrent.futures
import threading
import unittest

from credo_harness import CredoTestCase, decode_jwt, wait_until


class RotationAndReuseTest(CredoTestCase):

    def test_refresh_rotates_both_tokens(self):
        _, tokens = self.api.new_user_session()
        resp = self.api.refresh_first_party(tokens["refresh_token"])
        self.assertStatus(resp, 200, "first-party refresh")
        self.assertNoStore(resp, "refresh")
        new = resp.json
        self.assertEqual(new.get("token_type", "").lower(), "bearer")
        self.assertNotEqual(new["refresh_token"], tokens["refresh_token"], "refresh not rotated")
        self.assertNotEqual(new["access_token"], tokens["access_token"])
        old_claims, new_claims = decode_jwt(tokens["access_token"])[1], \
            decode_jwt(new["access_token"])[1]
        self.assertEqual(new_claims["sid"], old_claims["sid"], "refresh changed the session")
        self.assertEqual(new_claims["sub"], old_claims["sub"])
        self.assertNotEqual(new_claims["jti"], old_claims["jti"])
        self.assertEqual(set(new_claims["scope"].split()), {"openid", "profile"})
        self.assertStatus(self.api.get("/me", bearer=new["access_token"]), 200,
                          "/me with the refreshed access token")
        # A chain of rotations keeps working.
        again = self.api.refresh_first_party(new["refresh_token"])
        self.assertStatus(again, 200, "second refresh in a chain")

    def test_first_party_refresh_needs_no_client_authentication(self):
        _, tokens = self.api.new_user_session()
        resp = self.api.post_form("/auth/token", {"grant_type": "refresh_token",
                                                  "refresh_token": tokens["refresh_token"]})
        self.assertStatus(resp, 200, "refresh with no client_id at all (API.md first-party rule)")

    def test_replay_of_rotated_token_revokes_the_family(self):
        user, tokens = self.api.new_user_session()
        first = self.api.refresh_first_party(tokens["refresh_token"])
        self.assertStatus(first, 200, "refresh")
        successor = first.json

        replay = self.api.refresh_first_party(tokens["refresh_token"])
        self.assertRefreshFails(replay, "replay of a rotated refresh token")
        self.assertRefreshFails(self.api.refresh_first_party(successor["refresh_token"]),
                                "successor refresh token after reuse detection")
        self.assertInactive(successor["access_token"], "successor access token after reuse")
        self.assertInactive(tokens["access_token"], "original access token after reuse")
        self.assertError(self.api.get("/me", bearer=successor["access_token"]), 401,
                         "invalid_token", "/me with an access token of a revoked family")

        # For /auth/login the family is the session: it is gone.
        other = self.api.login(user.email, user.password)
        ids = [s["id"] for s in self.api.get("/auth/sessions", bearer=other["access_token"])
               .json["sessions"]]
        self.assertNotIn(tokens["session_id"], ids, "session survived refresh-token reuse")

        types = [e.get("type") for e in self.api.audit(subject=user.id)]
        self.assertIn("refresh_token.reuse_detected", types,
                      f"no refresh_token.reuse_detected audit event: {types}")
        self.assertIn("token.refreshed", types, f"no token.refreshed audit event: {types}")

    def test_reuse_in_one_grant_leaves_other_grants_of_the_session_alone(self):
        client = self.api.admin_register_client(scopes=["files.read"])
        user, login = self.api.new_user_session()
        self.api.grant_consent(login["access_token"], client.client_id, ["files.read"])
        grant = self.api.code_flow(login["access_token"], client, "files.read")

        rotated = self.api.refresh(client, grant["refresh_token"])
        self.assertStatus(rotated, 200, "refresh of a code-flow grant")
        self.assertRefreshFails(self.api.refresh(client, grant["refresh_token"]),
                                "replay in the code-flow grant")
        self.assertRefreshFails(self.api.refresh(client, rotated.json["refresh_token"]),
                                "successor in the code-flow grant after reuse")
        self.assertInactive(rotated.json["access_token"], "code-flow access token after reuse")

        self.assertActive(login["access_token"], "login access token after reuse in another grant")
        self.assertStatus(self.api.refresh_first_party(login["refresh_token"]), 200,
                          "login refresh after reuse in another grant of the same session")

    def test_refresh_errors(self):
        resp = self.api.refresh_first_party("not-a-refresh-token")
        self.assertRefreshFails(resp, "refresh with a made-up token")
        resp = self.api.post_form("/auth/token", {"grant_type": "refresh_token",
                                                  "client_id": "credo"})
        self.assertError(resp, 400, "invalid_request", "refresh without refresh_token")

    def test_refresh_token_is_bound_to_its_client(self):
        client = self.api.admin_register_client(scopes=["x.read"])
        _, tokens = self.api.new_user_session()
        resp = self.api.refresh(client, tokens["refresh_token"])
        self.assertRefreshFails(resp, "another client presenting a first-party refresh token")

    def test_access_token_is_not_a_refresh_token(self):
        _, tokens = self.api.new_user_session()
        self.assertRefreshFails(self.api.refresh_first_party(tokens["access_token"]),
                                "an access token presented as refresh token")


class ConcurrentRefreshTest(CredoTestCase):
    THREADS = 32

    def test_exactly_one_of_concurrent_refreshes_wins(self):
        _, tokens = self.api.new_user_session()
        barrier = threading.Barrier(self.THREADS, timeout=20)

        def attempt(_):
            barrier.wait()
            try:
                return self.api.refresh_first_party(tokens["refresh_token"], check=False)
            except OSError as exc:  # reported below instead of aborting the whole race
                return exc

        with concurrent.futures.ThreadPoolExecutor(self.THREADS) as pool:
            results = list(pool.map(attempt, range(self.THREADS)))

        ok, refused, other = [], [], []
        for r in results:
            if isinstance(r, OSError):
                other.append(f"transport error: {r!r}")
            elif r.status == 200:
                ok.append(r)
            elif r.status == 400 and isinstance(r.json, dict) and \
                    r.json.get("error") == "invalid_grant":
                refused.append(r)
            else:
                other.append(r.describe(200))
        self.assertEqual(len(ok), 1, f"{len(ok)} of {self.THREADS} concurrent refreshes "
                                     f"succeeded; exactly one must (grace 0)")
        self.assertEqual(len(refused), self.THREADS - 1,
                         f"the losers must all get 400 invalid_grant; others: {other}")
        # Every loser presented a used token: that is reuse, and the family is revoked.
        self.assertRefreshFails(self.api.refresh_first_party(ok[0].json["refresh_token"]),
                                "the winner's refresh token after concurrent reuse")


class GracePeriodTest(CredoTestCase):
    server_flags = ("--refresh-grace-seconds", "30")

    def test_replay_inside_grace_returns_the_same_successor_pair(self):
        _, tokens = self.api.new_user_session()
        first = self.api.refresh_first_party(tokens["refresh_token"])
        self.assertStatus(first, 200, "refresh")
        replay = self.api.refresh_first_party(tokens["refresh_token"])
        self.assertStatus(replay, 200, "replay inside the grace period")
        self.assertNoStore(replay, "grace replay")
        self.assertEqual(replay.json["refresh_token"], first.json["refresh_token"],
                         "grace replay must return the same successor refresh token")
        self.assertEqual(replay.json["access_token"], first.json["access_token"],
                         "grace replay must return the same successor access token")
        self.assertActive(first.json["access_token"], "successor access token after grace replay")
        nxt = self.api.refresh_first_party(first.json["refresh_token"])
        self.assertStatus(nxt, 200, "the successor refresh token after a grace replay")
        self.assertNotEqual(nxt.json["refresh_token"], first.json["refresh_token"])


class AccessTokenTtlTest(CredoTestCase):
    server_flags = ("--access-token-ttl", "2", "--clock-skew", "0")

    def test_short_lived_access_token_expires(self):
        _, tokens = self.api.new_user_session()
        self.assertEqual(tokens["expires_in"], 2, "expires_in must follow --access-token-ttl")
        claims = decode_jwt(tokens["access_token"])[1]
        self.assertEqual(claims["exp"] - claims["iat"], 2, "exp - iat must follow the flag")
        self.assertActive(tokens["access_token"], "fresh 2-second access token")

        wait_until(claims["exp"] + 1.1)
        self.assertInactive(tokens["access_token"], "access token past exp")
        self.assertError(self.api.get("/me", bearer=tokens["access_token"]), 401, "invalid_token",
                         "/me with an expired access token")
        resp = self.api.refresh_first_party(tokens["refresh_token"])
        self.assertStatus(resp, 200, "refresh after the access token expired")
        self.assertEqual(resp.json["expires_in"], 2)
        self.assertStatus(self.api.get("/me", bearer=resp.json["access_token"]), 200,
                          "/me with the refreshed access token")


class ClockSkewTest(CredoTestCase):
    """--clock-skew: a token stays valid that many seconds past its exp (nodes' clocks differ),
    and not longer."""
    server_flags = ("--access-token-ttl", "1", "--clock-skew", "2")

    def test_the_leeway_follows_the_flag(self):
        _, tokens = self.api.new_user_session()
        claims = decode_jwt(tokens["access_token"])[1]
        wait_until(claims["exp"] + 1.1)
        self.assertActive(tokens["access_token"], "1 s past exp, within a skew of 2 s")
        wait_until(claims["exp"] + 2 + 1.1)
        self.assertInactive(tokens["access_token"], "past exp plus the skew")

    def test_the_flag_is_bounded(self):
        import subprocess
        from credo_harness import credod_path, server_env
        for value in ("-1", "301", "x"):
            with self.subTest(value=value):
                result = subprocess.run([credod_path(), "--http", "127.0.0.1:0", "--clock-skew",
                                         value], env=server_env("adm-" + "k1m2n3o4p5" * 4),
                                        stdin=subprocess.DEVNULL, capture_output=True,
                                        text=True, timeout=15)
                self.assertEqual(result.returncode, 2, f"--clock-skew {value} accepted")
                self.assertIn("clock-skew", result.stdout + result.stderr)


if __name__ == "__main__":
    unittest.main()
