"""Placement groups on a real multi-node cluster: a head (no CPUs) and two 2-CPU nodes, each in its
own network namespace; a third node joins later. Bundles land where their strategy says, survive a
worker crash, and are released when the driver that owns them dies."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from typing import Any

import pytest

import spindle
from spindle.exceptions import WorkerCrashedError
from spindle.util import placement_group, placement_group_table, remove_placement_group
from spindle.util.scheduling_strategies import PlacementGroupSchedulingStrategy
from tests.netns_harness.spindle_nodes import joined_cluster, start_node

TOKEN = "placement-groups-test-token"

pytestmark = pytest.mark.multinode


@pytest.fixture(scope="module")
def hosts(netns_hosts_module: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("pg-multinode")
    head, a, b, late = netns_hosts_module(4)
    with joined_cluster(TOKEN, head, [(a, ["--num-cpus", "2"]), (b, ["--num-cpus", "2"])], tmp) as ids:
        yield {"a": ids[a.ip], "b": ids[b.ip], "address": f"{head.ip}:6380", "late": late, "tmp": tmp}


def wait_for(pred: Any, timeout: float, what: str) -> None:
    deadline, delay = time.monotonic() + timeout, 0.05
    while not pred():
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f} s waiting for {what}"
        time.sleep(delay)
        delay = min(delay * 2, 0.5)


@spindle.remote(num_cpus=1)
def where() -> str:
    return str(spindle.get_runtime_context().get_node_id())


def in_bundle(pg: Any, i: int) -> PlacementGroupSchedulingStrategy:
    return PlacementGroupSchedulingStrategy(pg, placement_group_bundle_index=i)


def test_strict_spread_bundles_land_on_different_nodes(hosts: dict[str, Any]) -> None:
    pg = placement_group([{"CPU": 1}, {"CPU": 1}], strategy="STRICT_SPREAD")
    assert pg.wait(60)
    nodes = placement_group_table(pg)["bundles_to_node_id"]
    assert {nodes[0], nodes[1]} == {hosts["a"], hosts["b"]}
    ran = spindle.get([where.options(scheduling_strategy=in_bundle(pg, i)).remote() for i in (0, 1)], timeout=60)
    assert ran == [nodes[0], nodes[1]]
    remove_placement_group(pg)


def test_strict_pack_bundles_land_on_one_node_and_survive_a_worker_crash(hosts: dict[str, Any]) -> None:
    pg = placement_group([{"CPU": 1}, {"CPU": 1}], strategy="STRICT_PACK")
    assert pg.wait(60)
    nodes = placement_group_table(pg)["bundles_to_node_id"]
    assert nodes[0] == nodes[1] and nodes[0] in (hosts["a"], hosts["b"])

    @spindle.remote(num_cpus=1, max_retries=0)
    def crash() -> None:
        os._exit(1)

    with pytest.raises(WorkerCrashedError):
        spindle.get(crash.options(scheduling_strategy=in_bundle(pg, 1)).remote(), timeout=60)
    assert placement_group_table(pg)["state"] == "CREATED"
    assert spindle.get(where.options(scheduling_strategy=in_bundle(pg, 1)).remote(), timeout=60) == nodes[1]
    remove_placement_group(pg)


def test_an_infeasible_group_is_placed_when_a_node_joins(hosts: dict[str, Any]) -> None:
    pg = placement_group([{"CPU": 1}] * 3, strategy="STRICT_SPREAD")  # 2 nodes with CPUs: one short
    assert not pg.wait(1)
    assert placement_group_table(pg)["state"] == "PENDING"
    start_node(TOKEN, hosts["late"], ["--address", hosts["address"], "--num-cpus", "1"], hosts["tmp"])
    assert pg.wait(90)
    assert len(set(placement_group_table(pg)["bundles_to_node_id"].values())) == 3
    remove_placement_group(pg)


def test_a_group_is_released_when_the_driver_that_owns_it_dies(hosts: dict[str, Any]) -> None:
    code = f"""
        import os, spindle
        from spindle.util import placement_group
        spindle.init(address={hosts["address"]!r})
        pg = placement_group([{{"CPU": 2}}, {{"CPU": 2}}], strategy="STRICT_SPREAD")
        assert pg.wait(60)
        print(pg.id.hex(), flush=True)
        os._exit(1)
    """
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env={**os.environ, "SPINDLE_TOKEN": TOKEN},
                         capture_output=True, text=True, timeout=120)
    owned = out.stdout.strip()
    assert owned, out.stderr
    wait_for(lambda: placement_group_table()[owned]["state"] == "REMOVED", 60, "the dead driver's group to go")
    # its 4 CPUs are free again: a group needing all of both nodes' CPUs is placed
    pg = placement_group([{"CPU": 2}, {"CPU": 2}], strategy="STRICT_SPREAD")
    assert pg.wait(60)
    remove_placement_group(pg)
