"""Supervision seen by operators: an entity crashed on purpose (credod --enable-fault-injection)
is restarted by its registry with its state rebuilt from the store, the request that crashed it
got its answer, and /admin/actors counts the failure and the restart. Without the flag the fault
call does not exist."""

import unittest

from credo_harness import CredoServer, CredoClient, CredoTestCase


def supervisor(api: CredoClient, kind: str) -> dict:
    resp = api.admin("GET", "/admin/actors")
    assert resp.status == 200, resp.describe()
    for s in resp.json["supervisors"]:
        if s["kind"] == kind:
            return s
    raise AssertionError(f"no supervisor of kind {kind}: {resp.json}")


class FaultInjectionTest(CredoTestCase):
    server_flags = ("--enable-fault-injection",)

    def crash(self, kind: str, key: str):
        resp = self.api.admin("POST", "/admin/faults/crash", {"kind": kind, "key": key})
        self.assertStatus(resp, 200, f"crash of the {kind} entity")
        self.assertEqual(resp.json, {"crashed": True})

    def test_a_crashed_session_is_restarted_with_its_state(self):
        user, tokens = self.api.new_user_session()
        before = supervisor(self.api, "session")
        self.crash("session", tokens["session_id"])
        after = supervisor(self.api, "session")
        self.assertEqual(after["failures"], before["failures"] + 1, after)
        self.assertIsInstance(after["last_failure"], str)
        self.assertIn("injected fault", after["last_failure"])
        # The next message re-activates the entity from the store: the refresh token it issued
        # before the crash still rotates, exactly once.
        resp = self.api.refresh_first_party(tokens["refresh_token"])
        self.assertStatus(resp, 200, "refresh after the crash")
        self.assertEqual(supervisor(self.api, "session")["restarts"], before["restarts"] + 1)
        sessions = self.api.get("/auth/sessions", bearer=resp.json["access_token"])
        self.assertStatus(sessions, 200, "sessions after the restart")
        self.assertIn(tokens["session_id"], [s["id"] for s in sessions.json["sessions"]])
        # The rebuilt entity knows the token was rotated: a replay is reuse (the session ends).
        self.assertRefreshFails(self.api.refresh_first_party(tokens["refresh_token"]),
                                "replay of the rotated token after the restart")

    def test_a_crashed_consent_record_is_rebuilt(self):
        client = self.api.admin_register_client(scopes=["photos.read"])
        user, tokens = self.api.new_user_session()
        self.api.grant_consent(tokens["access_token"], client.client_id, ["photos.read"])
        before = supervisor(self.api, "consent")
        self.crash("consent", user.id)
        self.assertEqual(supervisor(self.api, "consent")["failures"], before["failures"] + 1)
        listed = self.api.get("/auth/consent", bearer=tokens["access_token"])
        self.assertStatus(listed, 200, "consents after the crash")
        self.assertEqual([(c["client_id"], c["scope"]) for c in listed.json["consents"]],
                         [(client.client_id, "photos.read")])
        self.assertEqual(supervisor(self.api, "consent")["restarts"], before["restarts"] + 1)

    def test_bad_fault_requests_are_refused(self):
        for body in ({"kind": "session"}, {"kind": "bucket", "key": "k"}, {"key": "k"},
                     {"kind": "session", "key": ""}):
            self.assertError(self.api.admin("POST", "/admin/faults/crash", body), 400,
                             "invalid_request", f"crash {body}")
        self.assertError(self.api.admin("POST", "/admin/faults/crash",
                                        {"kind": "session", "key": "x"}, token="wrong"),
                         401, "invalid_token", "crash without the admin token")


class WithoutFaultInjectionTest(CredoTestCase):

    def test_the_fault_call_does_not_exist(self):
        self.assertError(self.api.admin("POST", "/admin/faults/crash",
                                        {"kind": "session", "key": "x"}),
                         404, "not_found", "crash without --enable-fault-injection")


if __name__ == "__main__":
    unittest.main()
