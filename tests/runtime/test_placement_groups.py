"""Placement groups on a real embedded cluster: reservation, use of the bundle's resources, removal.

The cluster has 2 CPUs on the driver's node (plus a node added by the last test), so a group of two
1-CPU bundles takes the whole node and anything outside the group has to wait for its removal.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest

import spindle
from spindle.exceptions import ActorDiedError, TaskPlacementGroupRemoved, WorkerCrashedError
from spindle.util import (
    get_current_placement_group,
    get_placement_group,
    placement_group,
    placement_group_table,
    remove_placement_group,
)
from spindle.util.scheduling_strategies import PlacementGroupSchedulingStrategy
from tests.runtime._nodes import Cluster, wait_until


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    c = Cluster(num_cpus=2)
    try:
        yield c
    finally:
        c.close()


def in_pg(pg: Any, index: int = -1, capture: bool | None = None) -> PlacementGroupSchedulingStrategy:
    return PlacementGroupSchedulingStrategy(pg, placement_group_bundle_index=index,
                                            placement_group_capture_child_tasks=capture)


@spindle.remote
def current() -> Any:
    return get_current_placement_group()


@spindle.remote
def node() -> str:
    return str(spindle.get_runtime_context().get_node_id())


def free_cpus() -> float:
    return float(spindle.available_resources().get("CPU", 0.0))


def test_a_group_is_ready_and_its_tasks_run_in_it_on_the_reserved_cpus(cluster: Cluster) -> None:
    pg = placement_group([{"CPU": 1}, {"CPU": 1}], strategy="PACK")
    assert spindle.get(pg.ready(), timeout=30) == pg
    assert pg.wait(5) and pg.bundle_count == 2 and pg.bundle_specs == [{"CPU": 1.0}, {"CPU": 1.0}]
    wait_until(lambda: free_cpus() == 0, 10, "the node to report its 2 CPUs reserved")
    # the node's free pool is empty, yet tasks in the group run: they use the bundles' resources
    assert spindle.get([current.options(scheduling_strategy=in_pg(pg, i)).remote() for i in (0, 1, -1)],
                       timeout=30) == [pg, pg, pg]
    outside = node.remote()  # needs a CPU outside the group: waits for the group to go
    ready, _ = spindle.wait([outside], timeout=0.5)
    assert ready == []
    remove_placement_group(pg)
    assert spindle.get(outside, timeout=30)
    wait_until(lambda: free_cpus() == 2, 10, "the removed group's CPUs to come back")
    assert placement_group_table(pg)["state"] == "REMOVED"


def test_the_legacy_placement_group_option_and_actors_use_the_bundle(cluster: Cluster) -> None:
    pg = placement_group([{"CPU": 1}], strategy="STRICT_PACK")
    pg.wait(120)

    @spindle.remote
    class Member:
        def group(self) -> Any:
            return get_current_placement_group()

    a = Member.options(num_cpus=1, scheduling_strategy=in_pg(pg, 0)).remote()
    assert spindle.get(a.group.remote(), timeout=30) == pg
    assert spindle.get(current.options(placement_group=pg, num_cpus=0).remote(), timeout=30) == pg
    remove_placement_group(pg)  # the actor in it dies with it
    with pytest.raises(ActorDiedError):
        spindle.get(a.group.remote(), timeout=30)


def test_child_tasks_join_the_group_only_when_captured(cluster: Cluster) -> None:
    pg = placement_group([{"CPU": 1}, {"CPU": 1}])
    pg.wait(120)

    @spindle.remote
    def parent() -> Any:
        return spindle.get(current.options(num_cpus=0).remote())

    assert spindle.get(parent.options(scheduling_strategy=in_pg(pg, capture=True)).remote(), timeout=30) == pg
    assert spindle.get(parent.options(scheduling_strategy=in_pg(pg)).remote(), timeout=30) is None
    assert spindle.get(current.options(num_cpus=0).remote(), timeout=30) is None
    assert get_current_placement_group() is None  # the driver is in no group
    remove_placement_group(pg)


def test_a_worker_crash_keeps_the_bundle_reserved_for_the_group(cluster: Cluster) -> None:
    pg = placement_group([{"CPU": 2}])
    pg.wait(120)

    @spindle.remote(max_retries=0, num_cpus=2)
    def crash() -> None:
        os._exit(1)

    with pytest.raises(WorkerCrashedError):
        spindle.get(crash.options(scheduling_strategy=in_pg(pg, 0)).remote(), timeout=60)
    assert placement_group_table(pg)["state"] == "CREATED"
    # the crashed worker's 2 CPUs went back to the bundle, not to the node
    assert spindle.get(current.options(num_cpus=2, scheduling_strategy=in_pg(pg, 0)).remote(), timeout=30) == pg
    wait_until(lambda: free_cpus() == 0, 10, "the node to report its CPUs still reserved")
    remove_placement_group(pg)


def test_a_busy_group_waits_and_is_placed_when_the_resources_come_back(cluster: Cluster) -> None:
    first = placement_group([{"CPU": 2}])
    first.wait(30)
    second = placement_group([{"CPU": 1}, {"CPU": 1}], strategy="STRICT_PACK", name="second")
    queued = current.options(scheduling_strategy=in_pg(second, 1)).remote()  # waits for its group
    assert not second.wait(0.5)
    assert placement_group_table(second)["state"] == "PENDING"
    assert get_placement_group("second") == second
    remove_placement_group(first)
    assert spindle.get(queued, timeout=30) == second
    assert spindle.get(second.ready(), timeout=30) == second
    remove_placement_group(second)
    with pytest.raises(TaskPlacementGroupRemoved):
        spindle.get(current.options(scheduling_strategy=in_pg(second)).remote(), timeout=30)
    with pytest.raises(ValueError, match="Failed to look up placement group"):
        get_placement_group("second")


def test_bad_requests_fail_at_submission_with_a_clear_error(cluster: Cluster) -> None:
    pg = placement_group([{"CPU": 1}], name="only")
    with pytest.raises(ValueError, match="out of range"):
        current.options(scheduling_strategy=in_pg(pg, 3)).remote()
    with pytest.raises(ValueError, match="does not fit"):
        current.options(num_cpus=2, scheduling_strategy=in_pg(pg)).remote()
    with pytest.raises(ValueError, match="already taken"):
        placement_group([{"CPU": 1}], name="only")
    with pytest.raises(ValueError, match="strategy"):
        placement_group([{"CPU": 1}], strategy="TIGHT")
    with pytest.raises(ValueError, match="lifetime"):
        placement_group([{"CPU": 1}], lifetime="forever")
    remove_placement_group(pg)


def test_a_group_is_removed_when_its_owner_driver_dies(cluster: Cluster) -> None:
    code = f"""
        import os, spindle
        from spindle.util import placement_group
        spindle.init(address={cluster.head_address!r})
        pg = placement_group([{{"CPU": 1}}], name="owned", lifetime=None)
        keep = placement_group([{{"CPU": 1}}], name="kept", lifetime="detached")
        assert pg.wait(120) and keep.wait(30)
        print(pg.id.hex(), flush=True)
        os._exit(1)  # dies without a shutdown()
    """
    env = {**os.environ, "SPINDLE_TOKEN": cluster.local.token}
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True,
                         timeout=120)
    owned = out.stdout.strip()
    assert owned, out.stderr
    wait_until(lambda: placement_group_table()[owned]["state"] == "REMOVED", 30, "the dead driver's group to go")
    table = placement_group_table()
    kept = next(pid for pid, row in table.items() if row["name"] == "kept")
    assert table[kept]["state"] == "CREATED" and table[kept]["is_detached"]
    remove_placement_group(spindle.util.PlacementGroup(bytes.fromhex(kept)))
    wait_until(lambda: free_cpus() == 2, 10, "the groups' CPUs to come back")


def test_an_infeasible_group_warns_stays_pending_and_is_placed_when_a_node_joins(
        cluster: Cluster, capfd: pytest.CaptureFixture[str]) -> None:
    pg = placement_group([{"CPU": 1, "accelerator": 1}])
    assert "stays pending until nodes that can join" in capfd.readouterr().err
    assert not pg.wait(0.5)
    joined = cluster.add_node(num_cpus=1, resources={"accelerator": 1})
    assert pg.wait(120)
    assert spindle.get(node.options(scheduling_strategy=in_pg(pg, 0)).remote(), timeout=30) == joined.node_id
    remove_placement_group(pg)


def test_bundles_lost_with_a_node_are_placed_again_on_the_nodes_left(cluster: Cluster) -> None:
    extra = cluster.add_node(num_cpus=1, resources={"spare": 1})
    pg = placement_group([{"CPU": 1}, {"CPU": 1, "spare": 0.5}], strategy="SPREAD")
    assert pg.wait(120)
    assert placement_group_table(pg)["bundles_to_node_id"][1] == extra.node_id
    cluster.kill(extra)
    cluster.wait_dead(extra)
    # bundle 1 needs "spare", which died with the node: the group waits to be placed again
    wait_until(lambda: placement_group_table(pg)["state"] == "RESCHEDULING", 30, "the group to lose its bundle")
    again = cluster.add_node(num_cpus=1, resources={"spare": 1})
    assert pg.wait(60)
    assert placement_group_table(pg)["bundles_to_node_id"][1] == again.node_id
    assert spindle.get(node.options(scheduling_strategy=in_pg(pg, 1)).remote(), timeout=60) == again.node_id
    remove_placement_group(pg)
