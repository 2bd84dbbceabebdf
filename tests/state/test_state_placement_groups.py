"""``list_placement_groups``/``get_placement_group``/``summarize_objects`` of ``spindle.util.state`` on a real
cluster, with Ray's row and summary shapes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import spindle
from spindle.util import placement_group, remove_placement_group, state
from tests.state.conftest import Cluster, eventually


@pytest.fixture(scope="module")
def driver(cluster: Cluster) -> Iterator[None]:
    mp = pytest.MonkeyPatch()
    mp.setenv("SPINDLE_TOKEN", cluster.token)
    spindle.init(address=cluster.procs.head_address)
    try:
        yield
    finally:
        spindle.shutdown()
        mp.undo()


def test_a_placement_group_is_listed_and_found_by_id_with_rays_fields(cluster: Cluster, driver: None) -> None:
    pg = placement_group([{"CPU": 1}], strategy="PACK", name="listed-pg")
    spindle.get(pg.ready(), timeout=60)
    [brief] = state.list_placement_groups(cluster.url, filters=[("name", "=", "listed-pg")])
    assert set(brief) == {"placement_group_id", "name", "creator_job_id", "state"}
    assert brief.placement_group_id == pg.id.hex() and brief.state == "CREATED"
    assert brief.creator_job_id == spindle.get_runtime_context().get_job_id()
    row = state.get_placement_group(pg.id.hex(), address=cluster.url)
    assert row is not None and row.is_detached is False and row.stats["scheduling_state"] == "FINISHED"
    [bundle] = row.bundles
    assert bundle["unit_resources"] == {"CPU": 1.0} and bundle["node_id"]
    remove_placement_group(pg)
    assert eventually(lambda: state.get_placement_group(pg.id.hex(), address=cluster.url).state == "REMOVED",
                      what="the removed group's state")
    assert state.get_placement_group("ab" * 14, address=cluster.url) is None


def test_objects_are_summarized_per_call_site_with_counts_and_sizes(cluster: Cluster, driver: None) -> None:
    refs = [spindle.put(b"x" * (2 * 1024 * 1024)) for _ in range(3)]
    summary = eventually(
        lambda: (s := state.summarize_objects(cluster.url)["node_id_to_summary"]["cluster"])["total_objects"] >= 3
        and s, what="three objects in the summary")
    assert summary["summary_by"] == "callsite" and summary["total_size_mb"] >= 6
    per_site = summary["summary"]["disabled"]
    assert per_site["total_objects"] >= 3 and per_site["total_num_nodes"] == 1
    assert per_site["ref_type_counts"]["PINNED_IN_MEMORY"] >= 3
    del refs
