"""The local provider: the autoscaling policy driving node agents started as local processes.

``spindle start --head --autoscale-local MAX`` runs this inside the head process, so a laptop or a
single VM autoscales like a Kubernetes cluster does: queued work that fits no node starts agents
(up to MAX), and agents idle for the idle timeout are drained through the head and stopped (down
to the minimum). Tests use the same class against an embedded cluster's HTTP API. Each round reads
the head's autoscaler state, calls ``policy.decide`` with one worker group (the local node shape),
starts the agents the decision adds, drains the ones it removes and stops each only once the head
confirms it drained, exactly as the operator deletes a pod only after its drain.
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from spindle.autoscaler.policy import GROUP_LABEL, POD_LABEL, Options, WorkerGroup, decide, state_from_json

log = logging.getLogger("spindle.autoscaler")

GROUP = "local"


class HeadApi(Protocol):
    """The head's autoscaler API: over HTTP (``HttpHeadApi``) or in the head process itself."""

    def state(self) -> dict[str, Any]: ...

    def drain(self, node_id: str, deadline_s: float, reason: str) -> None: ...

    def drained(self, node_id: str) -> bool: ...


class HttpHeadApi:
    def __init__(self, url: str, token: str):
        self.url, self.token = url.rstrip("/"), token

    def _call(self, path: str, body: Any = None) -> Any:
        # imported here: the head imports this module for its flags, and urllib.request (with http.client and
        # email) is ~1 MiB of every head's memory that only this client uses
        import urllib.error
        import urllib.request

        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method="POST" if data is not None else "GET",
                                     headers={"Authorization": f"Bearer {self.token}",
                                              "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return json.load(r)
        except urllib.error.HTTPError as e:
            raise RuntimeError(f"{path}: HTTP {e.code}: {e.read().decode(errors='replace')}") from None

    def state(self) -> dict[str, Any]:
        return dict(self._call("/api/autoscaler/state"))

    def drain(self, node_id: str, deadline_s: float, reason: str) -> None:
        self._call("/api/autoscaler/drain", {"node_id": node_id, "deadline_s": deadline_s, "reason": reason})

    def drained(self, node_id: str) -> bool:
        return bool(self._call(f"/api/autoscaler/drain/{node_id}")["drained"])


class InProcessHeadApi:
    """The same calls on the head's own state (the provider runs in the head process)."""

    def __init__(self, head: Any):
        self.head = head

    def state(self) -> dict[str, Any]:
        from spindle._head import autoscaler_api

        return autoscaler_api.state(self.head)

    def drain(self, node_id: str, deadline_s: float, reason: str) -> None:
        from spindle._head import autoscaler_api

        autoscaler_api.drain(self.head, node_id, deadline_s, reason)

    def drained(self, node_id: str) -> bool:
        from spindle._head import autoscaler_api

        return bool(autoscaler_api.drain_status(self.head, node_id)["drained"])


@dataclass
class LocalNode:
    name: str
    node_id: str
    procs: list[subprocess.Popen[bytes]]
    started: float
    draining: bool = False

    def stop(self, grace_s: float = 10.0) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            if p.stdout is not None:
                p.stdout.close()


@dataclass
class LocalProvider:
    """Starts and stops node agents on this machine as ``policy.decide`` says. ``start()`` runs it in a thread."""

    api: HeadApi
    head_address: str
    token: str
    max_nodes: int
    node_resources: Mapping[str, float] = field(default_factory=lambda: {"CPU": 1.0})
    min_nodes: int = 0
    options: Options = field(default_factory=Options)
    interval_s: float = 0.5
    drain_deadline_s: float = 600.0
    node_ip: str = "127.0.0.1"
    object_store_memory: int | None = None
    nodes: dict[str, LocalNode] = field(default_factory=dict)  # by name (the pod-name label)
    last_reasons: tuple[str, ...] = ()
    _stop: threading.Event = field(default_factory=threading.Event)
    _counter: int = 0

    def __post_init__(self) -> None:
        if self.max_nodes < self.min_nodes or self.min_nodes < 0:
            raise ValueError(f"need 0 <= min nodes ({self.min_nodes}) <= max nodes ({self.max_nodes})")
        if not any(v > 0 for v in self.node_resources.values()):
            raise ValueError(f"the local node shape {dict(self.node_resources)} offers no resources")

    @property
    def group(self) -> WorkerGroup:
        return WorkerGroup(GROUP, dict(self.node_resources), self.min_nodes, self.max_nodes)

    def start(self) -> threading.Thread:
        t = threading.Thread(target=self._loop, daemon=True, name="autoscale-local")
        t.start()
        return t

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.step()
            except Exception:  # a failed round is logged and retried; the provider keeps running
                log.exception("local autoscaler round failed")

    def step(self) -> None:
        """One round: read the head's state, decide, launch, drain, stop drained nodes."""
        self._reap()
        nodes, demand = state_from_json(self.api.state())
        current = {GROUP: len(self.nodes)}
        d = decide([self.group], nodes, demand, self.options, current)
        if d.reasons and d.reasons != self.last_reasons:
            log.warning("autoscaler: %s", "; ".join(d.reasons))
        self.last_reasons = d.reasons
        by_id = {n.node_id: n for n in self.nodes.values()}
        removing = [by_id[nid] for nid in d.drain if nid in by_id]
        for n in removing:
            if not n.draining:
                self.api.drain(n.node_id, self.drain_deadline_s, "idle (local autoscaler)")
                n.draining = True
        for n in [n for n in self.nodes.values() if n.draining]:
            if self.api.drained(n.node_id):
                log.warning("autoscaler: stopping node %s (%s): drained", n.name, n.node_id[:8])
                n.stop()
                del self.nodes[n.name]
        keep = len(self.nodes) - sum(1 for n in self.nodes.values() if n.draining)
        want = d.replicas.get(GROUP, 0) - keep
        if want > 0:
            self._launch(want)
        elif want < 0:  # above the target without a node to drain: drop agents that never joined
            joined = {n.node_id for n in nodes if n.state != "DEAD"}
            for n in [n for n in self.nodes.values() if n.node_id not in joined and not n.draining][:-want]:
                n.stop()
                del self.nodes[n.name]

    def _launch(self, count: int) -> None:
        from spindle import _local_cluster

        res = dict(self.node_resources)
        cpus = res.pop("CPU", 0.0)
        gpus = res.pop("GPU", None)
        started = []
        for _ in range(count):
            self._counter += 1
            name = f"local-{self._counter}"
            pending = _local_cluster.spawn(head=False, head_address=self.head_address, num_cpus=cpus,
                                           num_gpus=gpus, resources=res or None, token=self.token,
                                           node_ip=self.node_ip, tie_to_parent=True,
                                           object_store_memory=self.object_store_memory,
                                           labels={GROUP_LABEL: GROUP, POD_LABEL: name})
            started.append((name, pending))
            log.warning("autoscaler: starting node %s (%s) with %s", name, pending.node_id[:8],
                        dict(self.node_resources))
        for name, pending in started:
            node = LocalNode(name, pending.node_id, pending.procs, time.monotonic())
            self.nodes[name] = node
            try:
                pending.wait_ready()
            except RuntimeError as e:
                log.error("autoscaler: node %s failed to start: %s", name, e)
                node.stop(grace_s=1)
                del self.nodes[name]

    def _reap(self) -> None:
        for n in list(self.nodes.values()):
            if all(p.poll() is not None for p in n.procs):
                log.warning("autoscaler: node %s (%s) exited on its own", n.name, n.node_id[:8])
                n.stop(grace_s=0)
                del self.nodes[n.name]

    def shutdown(self) -> None:
        self._stop.set()
        nodes = list(self.nodes.values())
        self.nodes.clear()
        for n in nodes:
            for p in n.procs:
                if p.poll() is None:
                    p.terminate()
        for n in nodes:
            n.stop()


def add_head_args(p: argparse.ArgumentParser) -> None:
    """The head's flags for the local provider (``spindle start --head --autoscale-local MAX`` passes them)."""
    g = p.add_argument_group("local autoscaling (node agents as local processes)")
    g.add_argument("--autoscale-local", type=int, default=None, metavar="MAX",
                   help="start up to MAX node agents on this machine for queued work; stop idle ones")
    g.add_argument("--autoscale-min", type=int, default=0, metavar="MIN", help="keep at least MIN of them (default 0)")
    g.add_argument("--autoscale-node-resources", default='{"CPU": 1}', metavar="JSON",
                   help='resources of each started node (default \'{"CPU": 1}\')')
    g.add_argument("--idle-timeout-s", type=float, default=60.0,
                   help="seconds a started node stays idle before it is drained and stopped (default 60)")
    g.add_argument("--upscaling-mode", default="Default", choices=("Conservative", "Default", "Aggressive"),
                   help="Conservative: a group's pending nodes never exceed its running ones (at least 1); "
                        "Default/Aggressive: no limit")


def parse_node_resources(text: str) -> dict[str, float]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"--autoscale-node-resources is not JSON ({e}): pass e.g. '{{\"CPU\": 2}}'") from None
    if not isinstance(value, dict) or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0
                                              for v in value.values()):
        raise ValueError(f"--autoscale-node-resources must map resource names to non-negative numbers, got {text!r}")
    return {str(k): float(v) for k, v in value.items()}


def from_head_args(args: argparse.Namespace, head: Any, grpc_port: int, token: str) -> LocalProvider | None:
    """The provider the head's flags ask for (None without ``--autoscale-local``); exits on bad flags."""
    if args.autoscale_local is None:
        return None
    host = "127.0.0.1" if args.host in ("0.0.0.0", "", "::") else args.host
    try:
        return LocalProvider(InProcessHeadApi(head), f"{host}:{grpc_port}", token, args.autoscale_local,
                             parse_node_resources(args.autoscale_node_resources), args.autoscale_min,
                             Options(idle_timeout_s=args.idle_timeout_s, upscaling_mode=args.upscaling_mode),
                             node_ip=host)
    except ValueError as e:
        raise SystemExit(f"spindle head: {e}") from None
