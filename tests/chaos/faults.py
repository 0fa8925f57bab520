"""Process faults for chaos tests: kill -9 of a node, its restart under the same --node-id, and
SIGSTOP/SIGCONT. Every fault is bounded in time (the process wait, the restart and the membership
convergence each have a limit) and is recorded as a FaultEvent with monotonic timestamps, so that
a workload's request log can be read against it.

The faults act on a ChaosCluster: the nodes started by the test, by node id, with the HTTP address
a client would use. A killed node keeps its last address in `endpoints()` (clients still try it and
are refused, as with a node behind a fixed address list) until it is restarted, which gives it a
new one."""

import contextlib
import dataclasses
import signal
import threading
import time
from typing import Callable, Iterable, Iterator

from cluster_harness import Node, cluster_secret, wait_converged
from cluster_harness import start_node as start_cluster_node

# Bounds, not goals.
EXIT_S = 10.0        # a SIGKILLed process is reaped
KILL_CONVERGE_S = 8.0   # the survivors agree on the members without the victim
REJOIN_S = 20.0      # a restarted or resumed node is back and every member agrees


@dataclasses.dataclass
class FaultEvent:
    kind: str                 # "kill", "restart", "pause", "resume"
    node_id: str
    at: float                 # time.monotonic() when the fault took effect
    converged_s: float | None = None  # from `at` until the members agreed again
    detail: str = ""
    wall: float = dataclasses.field(default_factory=time.time)  # to read against node logs


class ChaosCluster:
    """The nodes of one test, alive or killed, and the addresses clients use."""

    def __init__(self, add_cleanup: Callable, size: int = 3,
                 extra_flags: Iterable[str] = ()) -> None:
        self.add_cleanup = add_cleanup
        self.secret = cluster_secret()
        self.extra_flags = list(extra_flags)
        self._lock = threading.Lock()
        self._nodes: dict[str, Node] = {}      # every node id ever started -> its latest Node
        self.processes: list[Node] = []         # every process started, in order
        self._alive: set[str] = set()
        self._addresses: dict[str, tuple[str, int]] = {}
        first = self.start_node(None, ())
        for _ in range(size - 1):
            self.start_node(None, [first.cluster])
        wait_converged(self.alive(), REJOIN_S)

    def start_node(self, node_id: str | None, seeds: Iterable[str]) -> Node:
        """Starts a node (a new id when `node_id` is None) and lists it as alive."""
        node = start_cluster_node(self.add_cleanup, self.secret, node_id=node_id, seeds=seeds,
                                  extra_flags=self.extra_flags)
        with self._lock:
            self._nodes[node.node_id] = node
            self.processes.append(node)
            self._alive.add(node.node_id)
            self._addresses[node.node_id] = (node.server.host, node.server.port)
        return node

    def alive(self) -> list[Node]:
        with self._lock:
            return [self._nodes[n] for n in sorted(self._alive)]

    def node(self, node_id: str) -> Node:
        with self._lock:
            return self._nodes[node_id]

    def all_nodes(self) -> list[Node]:
        with self._lock:
            return list(self._nodes.values())

    def endpoints(self) -> list[tuple[str, str, int]]:
        """(node_id, host, port) of every node a client knows, killed ones included."""
        with self._lock:
            return [(n, *self._addresses[n]) for n in sorted(self._addresses)]

    def mark_dead(self, node_id: str) -> None:
        """The node's process is gone: clients keep its address until it is restarted."""
        with self._lock:
            self._alive.discard(node_id)

    def unexpected_exits(self) -> list[str]:
        """Nodes that should be running but are not, with their output tails."""
        out = []
        for node in self.alive():
            if not node.server.running:
                out.append(f"{node.node_id} exited with {node.server.proc.poll()}\n"
                           f"{node.server.output_tail(30)}")
        return out


class Faults:
    """Injects process faults into a ChaosCluster and records them."""

    def __init__(self, cluster: ChaosCluster, log: Callable[[str], None] = print) -> None:
        self.cluster = cluster
        self.log = log
        self.events: list[FaultEvent] = []
        self._lock = threading.Lock()

    def _record(self, event: FaultEvent) -> FaultEvent:
        with self._lock:
            self.events.append(event)
        return event

    def kill(self, node_id: str) -> FaultEvent:
        """kill -9, reaped within EXIT_S; then waits (bounded) until the survivors agree on the
        members without it: that wait is the failover time."""
        node = self.cluster.node(node_id)
        node.server.proc.send_signal(signal.SIGKILL)
        at, wall = time.monotonic(), time.time()
        node.server.proc.wait(timeout=EXIT_S)
        node.server.stop()  # reaps the output threads
        self.cluster.mark_dead(node_id)
        event = self._record(FaultEvent("kill", node_id, at, wall=wall))
        wait_converged(self.cluster.alive(), KILL_CONVERGE_S)
        event.converged_s = time.monotonic() - at
        self.log(f"kill -9 {node_id}: survivors agree after {event.converged_s * 1000:.0f} ms")
        return event

    def restart(self, node_id: str) -> FaultEvent:
        """Starts a killed node again with the same --node-id, seeded with the live members.
        `at` is when it was started (it may join the ring before it answers /health/ready),
        `converged_s` from then until every member agrees (bounded by REJOIN_S)."""
        seeds = [n.cluster for n in self.cluster.alive()]
        at, wall = time.monotonic(), time.time()
        node = self.cluster.start_node(node_id, seeds)
        ready = time.monotonic()
        event = self._record(FaultEvent("restart", node_id, at, wall=wall,
                                        detail=f"ready {(ready - at) * 1000:.0f} ms after "
                                               f"exec, on {node.http}"))
        wait_converged(self.cluster.alive(), REJOIN_S)
        event.converged_s = time.monotonic() - at
        self.log(f"restart {node_id}: {event.detail}; members agree after "
                 f"{event.converged_s * 1000:.0f} ms")
        return event

    def wait_dropped(self, event: FaultEvent, bound: float = KILL_CONVERGE_S) -> float:
        """While `event.node_id` is paused: waits until the other members agree on the ring
        without it; returns the seconds since the pause and stores them in the event."""
        others = [n for n in self.cluster.alive() if n.node_id != event.node_id]
        deadline = event.at + bound
        while True:
            views = [_view_or_none(n) for n in others]
            if all(v is not None and {m.get("node") for m in v["members"]} ==
                   {n.node_id for n in others} for v in views) and \
                    len({v.get("ring_version") for v in views}) == 1:
                event.converged_s = time.monotonic() - event.at
                self.log(f"SIGSTOP {event.node_id}: dropped after "
                         f"{event.converged_s * 1000:.0f} ms")
                return event.converged_s
            if time.monotonic() > deadline:
                raise AssertionError(f"{event.node_id} was not dropped within {bound:.0f} s of "
                                     f"its SIGSTOP; views: {views}")
            time.sleep(0.05)

    @contextlib.contextmanager
    def paused(self, node_id: str, max_s: float) -> Iterator[FaultEvent]:
        """SIGSTOP for the body of the `with`, and never longer than `max_s`: a timer sends
        SIGCONT when the bound passes, and the cluster's cleanup sends it too. On exit waits
        (bounded) until every member agrees again."""
        node = self.cluster.node(node_id)
        proc = node.server.proc
        self.cluster.add_cleanup(_resume, proc)  # LIFO: before the node's own stop

        timer = threading.Timer(max_s, _resume, args=(proc,))
        timer.daemon = True
        proc.send_signal(signal.SIGSTOP)
        event = self._record(FaultEvent("pause", node_id, time.monotonic()))
        timer.start()
        self.log(f"SIGSTOP {node_id} (at most {max_s:.1f} s)")
        try:
            yield event
        finally:
            timer.cancel()
            _resume(proc)
            resumed = self._record(FaultEvent("resume", node_id, time.monotonic()))
            wait_converged(self.cluster.alive(), REJOIN_S)
            resumed.converged_s = time.monotonic() - resumed.at
            self.log(f"SIGCONT {node_id}: members agree after "
                     f"{resumed.converged_s * 1000:.0f} ms")


def _view_or_none(node: Node) -> dict | None:
    resp = node.api.admin("GET", "/admin/cluster", check=False, timeout=2)
    return resp.json if resp.status == 200 and isinstance(resp.json, dict) else None


def _resume(proc) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGCONT)
