"""Objects move between node agents over the data port (spindle._agent.transfer): every byte arrives for odd
sizes and several parallel ranges, concurrent pulls of one object make one transfer, and a node that dies
mid-transfer fails the pull with an error naming it (never a hang). Each node is a network namespace started
with `spindle start`; the pulls are asked of node A's agent as a driver or worker on A would ask them.
"""

from __future__ import annotations

import hashlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import spindle
from spindle import _store
from spindle._agent.transfer import RANGE_MIN
from spindle._core import context
from spindle._proto import pb, rpc
from spindle._serialization import deserialize
from spindle.util.scheduling_strategies import NodeAffinitySchedulingStrategy
from tests.netns_harness.spindle_nodes import joined_cluster

TOKEN = "multinode-transfer-test-token"
MiB = 1 << 20


@pytest.fixture(scope="module")
def two_nodes(netns_hosts_module: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("multinode-transfer")
    head, a, b = netns_hosts_module(3)
    # node A's agent logs each pull it makes (counted below)
    with joined_cluster(TOKEN, head, [(a, ["--num-cpus", "1"]), (b, ["--num-cpus", "1"])], tmp,
                        agent_env={a.name: {"SPINDLE_LOG_LEVEL": "INFO"}}):
        view = context.core().head().GetClusterView(pb.Empty(), metadata=context.core().md, timeout=10)
        by_ip = {n.ip: n for n in view.nodes}
        yield {"a": by_ip[a.ip], "b": by_ip[b.ip], "b_host": b, "a_log_dir": tmp / a.name}


@spindle.remote
def make(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8)


def _made_on_b(nodes: dict[str, Any], n: int, seed: int) -> tuple[Any, pb.ObjectLocation]:
    on_b = NodeAffinitySchedulingStrategy(node_id=nodes["b"].node_id, soft=False)
    ref = make.options(scheduling_strategy=on_b).remote(n, seed)
    spindle.wait([ref], timeout=120)
    ov = context.core().store.get(ref.binary())
    assert ov is not None and ov.in_store and ov.location.node_id == nodes["b"].node_id
    return ref, ov.location


def _pull_on_a(nodes: dict[str, Any], oid: bytes, loc: pb.ObjectLocation) -> pb.PullReply:
    cw = context.core()
    stub = rpc.NodeAgentStub(cw.channels.get(nodes["a"].address))
    return stub.PullObject(pb.PullRequest(object_id=oid, location=loc), metadata=cw.md, timeout=120)


def _pull_into(nodes: dict[str, Any], oid: bytes, loc: pb.ObjectLocation, out: list[pb.PullReply]) -> None:
    out.append(_pull_on_a(nodes, oid, loc))


def _copy_on_a(nodes: dict[str, Any], oid: bytes) -> Any:
    return deserialize(_store.map_object(_store.object_path(nodes["a"].node_id, oid)))


def _pull_lines(nodes: dict[str, Any], oid: bytes) -> int:
    logs = [Path(r) / f for r, _, fs in os.walk(nodes["a_log_dir"]) for f in fs if f == "agent.log"]
    needle = f"pulled object {oid.hex()}"
    return sum(p.read_text(errors="replace").count(needle) for p in logs)


@pytest.mark.parametrize("n", [100 * 1024 + 1, RANGE_MIN - 1, RANGE_MIN * 3 + 12_345, 41 * MiB + 7])
def test_every_byte_of_an_object_of_odd_size_arrives_on_the_other_node(two_nodes: dict[str, Any], n: int) -> None:
    ref, loc = _made_on_b(two_nodes, n, seed=n)
    reply = _pull_on_a(two_nodes, ref.binary(), loc)
    assert reply.ok, reply.message
    got = _copy_on_a(two_nodes, ref.binary())
    want = np.random.default_rng(n).integers(0, 256, n, dtype=np.uint8)
    assert got.shape == want.shape
    assert hashlib.sha256(got.tobytes()).digest() == hashlib.sha256(want.tobytes()).digest()


def test_concurrent_pulls_of_one_object_make_one_transfer(two_nodes: dict[str, Any]) -> None:
    ref, loc = _made_on_b(two_nodes, 200 * MiB, seed=7)
    with ThreadPoolExecutor(4) as pool:
        replies = list(pool.map(lambda _: _pull_on_a(two_nodes, ref.binary(), loc), range(4)))
    assert all(r.ok for r in replies), [r.message for r in replies]
    deadline = time.monotonic() + 30  # the agent's log is written by its logging handler: wait for the line
    while _pull_lines(two_nodes, ref.binary()) < 1:
        assert time.monotonic() < deadline, "node A's agent never logged the pull"
        time.sleep(0.1)
    assert _pull_lines(two_nodes, ref.binary()) == 1
    assert int(_copy_on_a(two_nodes, ref.binary())[-1]) == int(np.random.default_rng(7).integers(0, 256, 200 * MiB,
                                                                                              dtype=np.uint8)[-1])


def test_a_node_that_dies_mid_transfer_fails_the_pull_with_an_error_naming_it(two_nodes: dict[str, Any]) -> None:
    b_host = two_nodes["b_host"]
    for attempt in range(5):  # a transfer can finish before we stop its sender: then try a fresh object
        on_b = NodeAffinitySchedulingStrategy(node_id=two_nodes["b"].node_id, soft=False)

        @spindle.remote
        def big(i: int) -> np.ndarray:
            return np.full(1536 * MiB, i, dtype=np.uint8)

        ref = big.options(scheduling_strategy=on_b).remote(attempt)
        spindle.wait([ref], timeout=300)
        ov = context.core().store.get(ref.binary())
        assert ov is not None and ov.in_store
        partial = _store.object_path(two_nodes["a"].node_id, ref.binary())
        result: list[pb.PullReply] = []
        puller = threading.Thread(target=_pull_into, args=(two_nodes, ref.binary(), ov.location, result))
        puller.start()
        deadline = time.monotonic() + 120
        while not any(f.startswith(os.path.basename(partial) + ".") for f in os.listdir(_store.SHM_DIR)):
            assert time.monotonic() < deadline and puller.is_alive(), "the pull never started writing"
            time.sleep(0.002)
        b_host.signal_all(signal.SIGSTOP)  # freeze node B: its transfer stops where it is
        time.sleep(0.2)
        if not puller.is_alive():  # it had already finished: the node was not mid-transfer
            b_host.signal_all(signal.SIGCONT)
            del ref
            continue
        b_host.signal_all(signal.SIGKILL)
        puller.join(timeout=150)
        assert not puller.is_alive(), "the pull hung after its source node died"
        reply = result[0]
        assert not reply.ok
        assert two_nodes["b"].address in reply.message and "connection ended after" in reply.message, reply.message
        assert not os.path.exists(partial)  # nothing half-written is left published
        assert not any(f.startswith(os.path.basename(partial)) for f in os.listdir(_store.SHM_DIR))
        return
    pytest.fail("every transfer finished before node B could be stopped")
