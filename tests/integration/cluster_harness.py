"""Cluster nodes for black-box tests: start credod nodes joined over plain (--cluster-insecure)
links on the durable stores, read their views (/admin/cluster, /admin/actors), kill them, and
send requests through several of them. Shared by test_cluster.py and tests/chaos/."""

import dataclasses
import re
import secrets
import signal
import time
from typing import Callable, Iterable

from backend_harness import poll, store_env
from credo_harness import CredoClient, CredoServer, Response, unique_id


# Nodes of one deployment share the issuer (tokens name it), whatever port each listens on.
ISSUER = "http://credo.test"
ADDRESS_RE = re.compile(r"^127\.0\.0\.1:([1-9][0-9]*)$")

# Bounds of the polls: limits on waiting, not goals.
CONVERGE_S = 15.0        # a fresh node joins and every member agrees
RETRY_S = 5.0            # 503 temporarily_unavailable while ownership moves


def cluster_secret() -> str:
    return secrets.token_hex(32)


# --------------------------------------------------------------------------------------------
# Nodes
# --------------------------------------------------------------------------------------------

@dataclasses.dataclass
class Node:
    node_id: str
    server: CredoServer
    api: CredoClient
    cluster: str  # HOST:PORT of the cluster listener, from the "listening" log line

    @property
    def http(self) -> str:
        return f"{self.server.host}:{self.server.port}"


def listening_record(server: CredoServer) -> dict:
    for record in server.log_records():
        if record.get("msg") == "listening":
            return record
    raise AssertionError(f"no 'listening' line in credod's log\n{server.output_tail()}")


def cluster_address(server: CredoServer) -> str:
    record = listening_record(server)
    address = record.get("cluster")
    if not isinstance(address, str) or not ADDRESS_RE.match(address):
        raise AssertionError(f"the 'listening' line carries no usable cluster address "
                             f"(want 127.0.0.1:PORT with the port actually bound): {record}")
    return address


def cluster_flags(node_id: str, seeds: Iterable[str] = ()) -> list[str]:
    flags = ["--issuer", ISSUER, "--node-id", node_id, "--cluster", "127.0.0.1:0",
             "--cluster-insecure"]
    seeds = list(seeds)
    if seeds:
        flags += ["--seeds", ",".join(seeds)]
    return flags


def cluster_env(secret: str | None, **stores) -> dict[str, str]:
    env = store_env(**stores)
    if secret is not None:
        env["CREDO_CLUSTER_SECRET"] = secret
    return env


def ready_status(api: CredoClient) -> tuple[int, dict]:
    resp = api.get("/health/ready", check=False)  # 503 here is the readiness shape, not an error
    return resp.status, (resp.json or {}).get("checks", {})


def start_node(add_cleanup: Callable, secret: str, node_id: str | None = None,
               seeds: Iterable[str] = (), ready: bool = True,
               extra_flags: Iterable[str] = ()) -> Node:
    """Starts one cluster node; `add_cleanup` (a test's addCleanup or a class's addClassCleanup)
    stops it. `extra_flags` go after the cluster flags."""
    node_id = node_id or unique_id("node")
    server = CredoServer(cluster_flags(node_id, seeds) + list(extra_flags),
                         extra_env=cluster_env(secret))
    add_cleanup(server.stop)
    server.start()
    node = Node(node_id, server, CredoClient(server), cluster_address(server))
    if ready:
        poll(lambda: ready_status(node.api)[0] == 200, 20,
             what=f"/health/ready of {node_id} to answer 200")
    return node


def start_cluster(add_cleanup: Callable, secret: str, size: int = 3,
                  extra_flags: Iterable[str] = ()) -> list[Node]:
    """The first node has no seeds; the others join through it."""
    first = start_node(add_cleanup, secret, extra_flags=extra_flags)
    nodes = [first] + [start_node(add_cleanup, secret, seeds=[first.cluster],
                                  extra_flags=extra_flags)
                       for _ in range(size - 1)]
    wait_converged(nodes, CONVERGE_S)
    return nodes


def resume(server: CredoServer) -> None:
    """SIGCONT for a node a test froze; harmless when it runs or has exited."""
    if server.running:
        server.proc.send_signal(signal.SIGCONT)


def kill(node: Node) -> None:
    node.server.proc.send_signal(signal.SIGKILL)
    node.server.proc.wait(timeout=10)
    node.server.stop()  # reaps the output threads


# --------------------------------------------------------------------------------------------
# Views: /admin/cluster and /admin/actors
# --------------------------------------------------------------------------------------------

def cluster_view(node: Node) -> dict:
    resp = node.api.admin("GET", "/admin/cluster")
    if resp.status != 200 or not isinstance(resp.json, dict) or \
            not isinstance(resp.json.get("members"), list):
        raise AssertionError(f"/admin/cluster of {node.node_id}: {resp.describe()}")
    return resp.json


def member_names(view: dict) -> set:
    return {m.get("node") for m in view["members"] if isinstance(m, dict)}


def ring_version(view: dict) -> int:
    version = view.get("ring_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise AssertionError(f"ring_version is not an integer: {view}")
    return version


def wait_converged(nodes: list[Node], timeout: float) -> dict[str, dict]:
    """Polls until every node lists exactly `nodes` as members, all "up", at one ring_version.
    Returns the views by node id."""
    expected = {n.node_id for n in nodes}
    deadline = time.monotonic() + timeout
    while True:
        views = {n.node_id: cluster_view(n) for n in nodes}
        if all(member_names(v) == expected and len(v["members"]) == len(expected) and
               all(m.get("status") == "up" for m in v["members"]) for v in views.values()) and \
                len({ring_version(v) for v in views.values()}) == 1:
            return views
        if time.monotonic() > deadline:
            raise AssertionError(f"the members did not agree on {sorted(expected)} within "
                                 f"{timeout:.0f} s; last views: {views}")
        time.sleep(0.05)


def supervisors(node: Node) -> dict[str, dict]:
    resp = node.api.admin("GET", "/admin/actors")
    if resp.status != 200 or not isinstance(resp.json, dict) or \
            not isinstance(resp.json.get("supervisors"), list):
        raise AssertionError(f"/admin/actors of {node.node_id}: {resp.describe()}")
    if resp.json.get("node") != node.node_id:
        raise AssertionError(f"/admin/actors of {node.node_id} names node "
                             f"{resp.json.get('node')!r}")
    return {s.get("kind"): s for s in resp.json["supervisors"]}


def live_sessions(node: Node) -> int:
    live = supervisors(node).get("session", {}).get("live")
    if not isinstance(live, int) or isinstance(live, bool):
        raise AssertionError(f"session supervisor of {node.node_id} has no integer 'live'")
    return live


def live_entities(node: Node, kind: str) -> int:
    """The "live" count of the supervisor of `kind` ("session", "consent", "rate_limit") in
    the node's /admin/actors."""
    live = supervisors(node).get(kind, {}).get("live")
    if not isinstance(live, int) or isinstance(live, bool):
        raise AssertionError(f"{kind} supervisor of {node.node_id} has no integer 'live'")
    return live


# --------------------------------------------------------------------------------------------
# Ownership: which member owns an entity key (a replica of cluster/ownership.cpp, since no
# endpoint names the owner)
# --------------------------------------------------------------------------------------------

_MASK64 = (1 << 64) - 1


def stable_hash(text: str) -> int:
    """64-bit FNV-1a of the UTF-8 bytes (cluster::stable_hash)."""
    h = 0xcbf29ce484222325
    for byte in text.encode():
        h = ((h ^ byte) * 0x100000001b3) & _MASK64
    return h


def _mix(a: int, b: int) -> int:
    """cluster/ownership.cpp's mix(): the member's seed and the key's hash combined, then
    splitmix64's finaliser, in uint64 arithmetic."""
    z = a ^ ((b + 0x9e3779b97f4a7c15 + ((a << 6) & _MASK64) + (a >> 2)) & _MASK64)
    z = ((z ^ (z >> 30)) * 0xbf58476d1ce4e5b9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94d049bb133111eb) & _MASK64
    return z ^ (z >> 31)


def owner_of(node_ids: Iterable[str], key: str) -> str:
    """The member that owns entity `key` among `node_ids` (rendezvous hashing: the highest
    mix(stable_hash(node), stable_hash(key)) wins, a tie goes to the smaller node name)."""
    k = stable_hash(key)
    best, best_weight = None, 0
    for node in node_ids:
        w = _mix(stable_hash(node), k)
        if best is None or w > best_weight or (w == best_weight and node.encode() < best.encode()):
            best, best_weight = node, w
    if best is None:
        raise ValueError("owner_of: no members")
    return best


# --------------------------------------------------------------------------------------------
# Requests through several nodes
# --------------------------------------------------------------------------------------------

def unavailable(resp: Response) -> bool:
    return resp.status == 503 and isinstance(resp.json, dict) and \
        resp.json.get("error") == "temporarily_unavailable"


def through_any(nodes: list[Node], call: Callable[[Node], Response],
                bound: float = RETRY_S) -> Response:
    """call(node), moving on to the next node after a 503 temporarily_unavailable (what a request
    may get while ownership moves), until another answer or `bound` seconds."""
    deadline = time.monotonic() + bound
    attempt = 0
    while True:
        resp = call(nodes[attempt % len(nodes)])
        attempt += 1
        if not unavailable(resp) or time.monotonic() > deadline:
            return resp
        time.sleep(0.05)
