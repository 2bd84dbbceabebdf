"""Ray's ``list_placement_groups`` rows (``/api/v0/placement_groups``) built from the head's placement group table.

Its own module so the state API's other rows stay small; a pure function of the table's ``PlacementGroupInfo``
messages, in Ray's ``PlacementGroupState`` shape (``bundles``/``is_detached``/``stats`` are detail columns).
"""

from __future__ import annotations

from typing import Any

from spindle._proto import pb

# Ray's stats.scheduling_state for each of the head's group states
SCHEDULING_STATE = {"CREATED": "FINISHED", "REMOVED": "REMOVED", "PENDING": "QUEUED", "RESCHEDULING": "QUEUED"}


def placement_group_row(info: pb.PlacementGroupInfo) -> dict[str, Any]:
    spec = info.spec
    bundles = []
    for i, shape in enumerate(spec.bundles):
        node = info.bundle_nodes[i] if i < len(info.bundle_nodes) else ""
        bundles.append({"bundle_id": f"{spec.pg_id.hex()}_{i}", "node_id": node or None,
                        "unit_resources": dict(shape.amounts)})
    return {"placement_group_id": spec.pg_id.hex(), "name": spec.name, "creator_job_id": spec.job_id.hex(),
            "state": info.state, "bundles": bundles, "is_detached": spec.detached,
            "stats": {"scheduling_state": SCHEDULING_STATE.get(info.state, "QUEUED"), "message": info.message},
            "strategy": spec.strategy, "namespace": spec.namespace,
            "topology_strategy": {}, "topology_assignments": {}}


def placement_groups(table: pb.PlacementGroupList) -> list[dict[str, Any]]:
    return [placement_group_row(g) for g in table.groups]
