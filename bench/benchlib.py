"""What the bench scripts share: a keep-alive client, polling, and credod's rendezvous
ownership (cluster/ownership.cpp) to tell which node owns a key. Standard library only."""

import http.client
import json
import time
import urllib.parse

M64 = (1 << 64) - 1


class Client:
    """One keep-alive connection to one node."""

    def __init__(self, hostport):
        self.host, port = hostport.rsplit(":", 1)
        self.port = int(port)
        self.conn = None

    def call(self, method, path, body=None, headers=None, form=None, raw=False):
        hdrs = dict(headers or {})
        if form is not None:
            body = urllib.parse.urlencode(form).encode()
            hdrs["Content-Type"] = "application/x-www-form-urlencoded"
        elif body is not None:
            body = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        for attempt in range(2):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
                self.conn.request(method, path, body=body, headers=hdrs)
                r = self.conn.getresponse()
                data = r.read()
                if raw:
                    return r.status, data.decode()
                return r.status, (json.loads(data) if data else None)
            except (OSError, http.client.HTTPException):
                self.conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")


def poll(fn, timeout, what):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if fn():
            return
        time.sleep(0.02)
    raise SystemExit(f"timed out waiting for {what}")


def fnv1a(text):
    h = 0xcbf29ce484222325
    for b in text.encode():
        h = ((h ^ b) * 0x100000001b3) & M64
    return h


def mix(a, b):  # cluster/ownership.cpp
    z = (a ^ ((b + 0x9e3779b97f4a7c15 + (a << 6) + (a >> 2)) & M64)) & M64
    z = ((z ^ (z >> 30)) * 0xbf58476d1ce4e5b9) & M64
    z = ((z ^ (z >> 27)) * 0x94d049bb133111eb) & M64
    return z ^ (z >> 31)


def owner_of(names, key):
    """The name in `names` that owns `key` (highest weight; ties to the smaller name)."""
    k = fnv1a(key)
    return max(names, key=lambda n: (mix(fnv1a(n), k), [-ord(c) for c in n]))
