"""The head's placement group table reports pending groups as gang demand for the autoscaler."""

from __future__ import annotations

from spindle._head.head_state import HeadState
from spindle._proto import pb
from spindle._rpc.channels import Channels


def group(name: str, strategy: str, *bundles: dict[str, float]) -> pb.PlacementGroupSpec:
    return pb.PlacementGroupSpec(pg_id=name.encode().ljust(16, b"-"), name=name, namespace="ns", strategy=strategy,
                                 bundles=[pb.Resources(amounts=b) for b in bundles], job_id=b"\0\0\0\1")


def test_pending_groups_are_reported_as_gang_bundles_and_removed_ones_are_not() -> None:
    head = HeadState(Channels("token"), session="test")
    node = pb.NodeInfo(node_id="n1", address="127.0.0.1:1", total=pb.Resources(amounts={"CPU": 2}),
                       available=pb.Resources(amounts={"CPU": 2}))
    with head.lock:  # a node known to the head, not reachable: nothing can be reserved on it
        from spindle._head.head_state import NodeRecord
        from spindle._scheduling import NodeView

        head.nodes["n1"] = NodeRecord(node, NodeView("n1", "127.0.0.1:1", {"CPU": 2}, {"CPU": 2}))
    info = head.pgs.create(group("gpus", "SPREAD", {"CPU": 1, "GPU": 1}, {"CPU": 1, "GPU": 1}))
    assert info.found and info.state == "PENDING" and "stays pending" in info.message
    head.pgs.create(group("pack", "STRICT_PACK", {"CPU": 1}, {"CPU": 3}))
    assert sorted(head.pgs.pending_demand(), key=lambda d: d["count"]) == [
        {"shape": {"CPU": 4.0}, "count": 1, "kind": "placement_group", "infeasible": True},
        {"shape": {"CPU": 1.0, "GPU": 1.0}, "count": 2, "kind": "placement_group", "infeasible": True},
    ]
    head.pgs.remove(b"gpus".ljust(16, b"-"))
    assert head.pgs.pending_demand() == [{"shape": {"CPU": 4.0}, "count": 1, "kind": "placement_group",
                                          "infeasible": True}]
    assert not head.pgs.create(group("pack", "PACK", {"CPU": 1})).found  # the name is taken
