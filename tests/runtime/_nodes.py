"""A real cluster whose nodes a test can kill: an embedded ``init()`` plus extra node agents on loopback.

Each extra agent runs in its own process group, so killing the group takes its workers with it
(a pod's whole process tree dying). The driver's own node can be killed too (agent and workers).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psutil
import pytest

import spindle
from spindle import _ids
from spindle._core import api
from spindle.util.scheduling_strategies import NodeAffinitySchedulingStrategy


@spindle.remote(num_cpus=0)
def _node_of() -> str:
    return str(spindle.get_runtime_context().get_node_id())


@spindle.remote(num_cpus=0)
class Sleeper:
    """An actor whose call touches a flag file, then sleeps: a test knows the call is running before it acts."""

    def sleep(self, flag: str, seconds: float) -> str:
        with open(flag, "w") as f:
            f.write("started")
        time.sleep(seconds)
        return "woke"


@spindle.remote(num_cpus=0)
class RelayCaller:
    """An actor that calls another actor and reports how the call ended: what a worker (not the driver) sees."""

    def call(self, callee: Any, flag: str, seconds: float) -> str:
        try:
            return str(spindle.get(callee.sleep.remote(flag, seconds)))
        except Exception as e:  # noqa: BLE001 - the test reads which error, and its text
            return f"{type(e).__name__}: {e}"


@contextmanager
def init_with_env(env: dict[str, str], **init_kwargs: Any) -> Iterator[None]:
    """``spindle.init`` with ``env`` set while it starts the cluster (its agent, a child, inherits it); ``shutdown``
    and the environment restored afterwards."""
    with pytest.MonkeyPatch.context() as mp:
        for name, value in env.items():
            mp.setenv(name, value)
        spindle.init(**init_kwargs)
        try:
            yield
        finally:
            spindle.shutdown()


def actor_stream_call(actor: Any) -> Any:
    """The driver's current call stream to ``actor`` (a gRPC call, or ``LocalCall`` over a direct frame stream)."""
    from spindle._core import context

    return context.core().actors.conns[actor._actor_id].call


def process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def wait_until(pred: Any, timeout: float = 30.0, what: str = "condition") -> float:
    """Poll ``pred`` with backoff; return the seconds it took, fail the test after ``timeout``."""
    start = time.monotonic()
    delay = 0.02
    while not pred():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 2, 0.25)
    return time.monotonic() - start


def answer_when_restarted(call: Any, timeout: float = 120.0) -> Any:
    """``get(call())`` once the actor answers: as in Ray, calls without retries made while an actor restarts fail
    with ActorUnavailableError, so a caller that wants the restarted actor tries again."""
    from spindle.exceptions import ActorUnavailableError

    got: list[Any] = []

    def attempt() -> bool:
        try:
            got.append(spindle.get(call(), timeout=60))
            return True
        except ActorUnavailableError:
            return False

    wait_until(attempt, timeout, "the restarted actor answered")
    return got[0]


@dataclass
class Node:
    node_id: str
    proc: subprocess.Popen[bytes] | None  # None: the driver's own node (its agent is in api's local cluster)


def _signal_tree(pid: int, sig: int) -> list[psutil.Process]:
    """Send ``sig`` to process ``pid`` and all its descendants; return those it reached."""
    try:
        procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return []
    reached = []
    for p in procs:
        try:
            p.send_signal(sig)
            reached.append(p)
        except psutil.NoSuchProcess:
            pass
    return reached


def _kill_tree(pid: int) -> None:
    _signal_tree(pid, signal.SIGKILL)


class Cluster:
    def __init__(self, num_cpus: float = 1, **init_kwargs: Any):
        # head and agent as two processes (as `spindle start` runs them), so that killing the driver's own node
        # leaves the head up; the embedded cluster's one process would take the head down with it
        before = os.environ.get("SPINDLE_EMBEDDED_SPLIT")
        os.environ["SPINDLE_EMBEDDED_SPLIT"] = "1"
        try:
            spindle.init(num_cpus=num_cpus, **init_kwargs)
        finally:
            if before is None:
                os.environ.pop("SPINDLE_EMBEDDED_SPLIT")
            else:
                os.environ["SPINDLE_EMBEDDED_SPLIT"] = before
        self.local = api._state["local"]
        self.nodes: list[Node] = [Node(self.local.node_id, None)]
        self.frozen: list[psutil.Process] = []

    @property
    def head_address(self) -> str:
        return str(self.local.head_address)

    def add_node(self, num_cpus: float = 1, resources: dict[str, float] | None = None,
                 labels: dict[str, str] | None = None, wait_for_work: bool = True) -> Node:
        """Start an agent; ``wait_for_work``: also until a task is placed there (else only until it is alive)."""
        node_id = _ids.new_id().hex()
        argv = [sys.executable, "-m", "spindle._agent", "--head", self.head_address, "--node-id", node_id,
                "--num-cpus", str(num_cpus), "--node-ip", "127.0.0.1"]
        if resources:
            import json

            argv += ["--resources", json.dumps(resources)]
        if labels:
            import json

            argv += ["--labels", json.dumps(labels)]
        env = {**os.environ, "SPINDLE_TOKEN": self.local.token}
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        node = Node(node_id, proc)
        self.nodes.append(node)
        wait_until(lambda: self.alive(node_id), 60, f"node {node_id[:8]} to join")
        if not wait_for_work:
            return node
        # agents learn of a new node on their next heartbeat: until then soft affinity to it runs elsewhere
        wait_until(lambda: spindle.get(_node_of.options(scheduling_strategy=NodeAffinitySchedulingStrategy(
            node_id=node_id, soft=True)).remote(), timeout=60) == node_id, 60, f"work to be placed on {node_id[:8]}")
        return node

    def alive(self, node_id: str) -> bool:
        return any(n["NodeID"] == node_id and n["Alive"] for n in spindle.nodes())

    def freeze(self, node: Node) -> None:
        """SIGSTOP the node's agent and workers: their sockets stay open and the kernel still answers for them
        (a machine whose processes hang); ``close`` kills them."""
        assert node.proc is not None, "freeze an added node (the driver's own would freeze this test's cluster)"
        self.frozen += _signal_tree(node.proc.pid, signal.SIGSTOP)

    def kill(self, node: Node) -> float:
        """Kill the node's agent and every worker of it (SIGKILL); return the monotonic time of the kill."""
        if node.proc is None:
            _kill_tree(self.local.procs[-1].pid)
        else:
            _kill_tree(node.proc.pid)
            node.proc.wait()
        return time.monotonic()

    def wait_dead(self, node: Node, timeout: float = 30.0) -> float:
        return wait_until(lambda: not self.alive(node.node_id), timeout, f"node {node.node_id[:8]} marked dead")

    def close(self) -> None:
        for p in self.frozen:  # a frozen worker may have left the agent's process group
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        for n in self.nodes:
            if n.proc is not None and n.proc.poll() is None:
                try:
                    os.killpg(n.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                n.proc.wait()
        spindle.shutdown()
