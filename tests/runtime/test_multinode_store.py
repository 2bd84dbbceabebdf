"""Spilled objects across nodes: a node whose store is over its budget still serves every object it
spilled, to tasks on another node and to a driver outside the cluster (each node in its own network
namespace, started with `spindle start --object-store-memory`)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import spindle
from spindle.util.scheduling_strategies import NodeAffinitySchedulingStrategy
from tests.netns_harness.spindle_nodes import joined_cluster

TOKEN = "multinode-store-test-token"
MiB = 1 << 20


@pytest.fixture(scope="module")
def small_node(netns_hosts_module: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("multinode-store")
    head, a, b = netns_hosts_module(3)
    agents = [(a, ["--num-cpus", "1", "--object-store-memory", str(40 * MiB)]), (b, ["--num-cpus", "1"])]
    with joined_cluster(TOKEN, head, agents, tmp) as nodes:
        yield {"a": nodes[a.ip], "b": nodes[b.ip], "a_dir": tmp / a.name}


def on(node_id: str) -> NodeAffinitySchedulingStrategy:
    return NodeAffinitySchedulingStrategy(node_id=node_id, soft=False)


def test_objects_spilled_on_one_node_are_read_on_another_and_by_an_outside_driver(small_node: dict[str, Any]) -> None:
    @spindle.remote
    def make(i: int) -> np.ndarray:
        return np.full(8 * MiB, i, dtype=np.uint8)

    @spindle.remote
    def first_and_last(arr: np.ndarray) -> tuple[int, int]:
        return int(arr[0]), int(arr[-1])

    refs = [make.options(scheduling_strategy=on(small_node["a"])).remote(i) for i in range(10)]  # 80 MiB > 40
    spindle.wait(refs, num_returns=len(refs), timeout=120)
    spill_dirs = [os.path.join(r, d) for r, ds, _ in os.walk(small_node["a_dir"]) for d in ds
                  if d.startswith("spill-")]
    assert spill_dirs and any(os.listdir(d) for d in spill_dirs), "node a never spilled"
    got = spindle.get([first_and_last.options(scheduling_strategy=on(small_node["b"])).remote(r) for r in refs])
    assert got == [(i, i) for i in range(10)]
    assert int(spindle.get(refs[0])[12345]) == 0  # streamed from node a's spill directory to this driver
