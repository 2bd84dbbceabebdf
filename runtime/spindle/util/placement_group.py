"""Placement groups, as ``ray.util.placement_group``: reserve bundles of resources as one gang.

``placement_group(bundles, strategy)`` asks the head to reserve every bundle atomically (all or
none) and returns at once; ``pg.ready()`` is an ObjectRef that resolves when the group is placed
and ``pg.wait(timeout_seconds)`` blocks for it. Tasks and actors run inside a bundle with
``PlacementGroupSchedulingStrategy`` (or the legacy ``placement_group=`` option) and use the
bundle's reserved resources. A group lives until ``remove_placement_group`` or until the job that
created it ends (``lifetime="detached"``: until removed).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from spindle import _ids
from spindle._core.context import core, maybe_core
from spindle._core.object_ref import ObjectRef
from spindle._id_types import PlacementGroupID
from spindle._placement import validate


class PlacementGroup:
    """A handle on a placement group; it pickles, so tasks and actors can be given one."""

    def __init__(self, id: PlacementGroupID | bytes, bundle_specs: Sequence[Mapping[str, float]] | None = None):
        self.id = id if isinstance(id, PlacementGroupID) else PlacementGroupID(id)
        self._bundles = [dict(b) for b in bundle_specs] if bundle_specs is not None else None
        self._ready: ObjectRef | None = None

    @staticmethod
    def empty() -> PlacementGroup:
        return PlacementGroup(PlacementGroupID(b""), [])

    @property
    def is_empty(self) -> bool:
        return not self.id.binary()

    @property
    def bundle_specs(self) -> list[dict[str, float]]:
        if self._bundles is None:
            info = _client().info(self.id.binary(), 0)
            self._bundles = [dict(b.amounts) for b in info.spec.bundles]
        return [dict(b) for b in self._bundles]

    @property
    def bundle_count(self) -> int:
        return len(self.bundle_specs)

    def ready(self) -> ObjectRef:
        """An ObjectRef that resolves to this group once all its bundles are reserved (use with get/wait)."""
        if self._ready is None:
            cw = core()
            oid = _ids.new_id()
            ref = cw.new_ref(oid)
            threading.Thread(target=_resolve_ready, args=(cw, self, oid), daemon=True, name="pg-ready").start()
            self._ready = ref
        return self._ready

    def wait(self, timeout_seconds: float | int = 30) -> bool:
        """Block until the group is placed (True) or ``timeout_seconds`` pass (False)."""
        deadline = time.monotonic() + float(timeout_seconds)
        while True:
            left = deadline - time.monotonic()
            info = _client().info(self.id.binary(), max(0.0, min(left, 5.0)))
            if info.state == "CREATED":
                return True
            if info.state == "REMOVED" or not info.found or left <= 0:
                return False

    def __reduce__(self) -> Any:
        return (PlacementGroup, (self.id.binary(), self._bundles))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PlacementGroup) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"PlacementGroup({self.id.hex()})"


def _client() -> Any:
    from spindle._core.pg_client import client

    return client(core())


def _resolve_ready(cw: Any, pg: PlacementGroup, oid: bytes) -> None:
    from spindle.exceptions import RayError

    while not cw.closed:
        try:
            info = _client().info(pg.id.binary(), 5.0)
        except Exception as e:  # noqa: BLE001 - the head is unreachable: the ref carries the error
            cw.store.put(oid, cw.error_value(oid, RayError(f"placement group {pg.id.hex()}: {e}")))
            return
        if info.state == "CREATED":
            cw.store.put(oid, cw.to_object_value(oid, pg))
            return
        if info.state == "REMOVED" or not info.found:
            why = info.message or "it was removed"
            cw.store.put(oid, cw.error_value(oid, RayError(f"Placement group {pg.id.hex()} will never be ready: "
                                                                f"{why}.")))
            return


def placement_group(bundles: list[dict[str, float]], strategy: str = "PACK", name: str = "",
                    lifetime: str | None = None, _soft_target_node_id: str | None = None,
                    bundle_label_selector: Any = None, _max_cpu_fraction_per_node: Any = None) -> PlacementGroup:
    """Reserve ``bundles`` (dicts of resources) on the cluster with ``strategy``; returns at once."""
    validate(bundles, strategy)
    if lifetime not in (None, "detached"):
        raise ValueError("Placement group `lifetime` argument must be either `None` or 'detached'. "
                         f"Got {lifetime!r}.")
    bundles = [{k: float(v) for k, v in b.items()} for b in bundles]
    pg_id = _client().create(bundles, strategy, name or "", lifetime == "detached")
    return PlacementGroup(pg_id, bundles)


def remove_placement_group(placement_group: PlacementGroup) -> None:
    """Release the group's bundles; tasks and actors still using them are killed."""
    if not isinstance(placement_group, PlacementGroup):
        raise TypeError(f"remove_placement_group() expects a PlacementGroup, got {type(placement_group).__name__}")
    _client().remove(placement_group.id.binary())


def get_placement_group(placement_group_name: str) -> PlacementGroup:
    """The live group named ``placement_group_name`` in this job's namespace (ValueError if none)."""
    if not placement_group_name:
        raise ValueError("Please supply a non-empty value to get_placement_group")
    info = _client().by_name(placement_group_name)
    if not info.found or info.state == "REMOVED":
        raise ValueError(f"Failed to look up placement group with name: {placement_group_name}")
    return PlacementGroup(info.spec.pg_id, [dict(b.amounts) for b in info.spec.bundles])


def placement_group_table(placement_group: PlacementGroup | None = None) -> dict[str, Any]:
    """Ray's table: {pg id hex: {placement_group_id, name, bundles, bundles_to_node_id, strategy, state}}."""
    c = _client()
    if placement_group is not None:
        return _row(c.info(placement_group.id.binary(), 0))
    return {info.spec.pg_id.hex(): _row(info) for info in c.list()}


def _row(info: Any) -> dict[str, Any]:
    return {
        "placement_group_id": info.spec.pg_id.hex(),
        "name": info.spec.name,
        "bundles": {i: dict(b.amounts) for i, b in enumerate(info.spec.bundles)},
        "bundles_to_node_id": {i: n for i, n in enumerate(info.bundle_nodes) if n},
        "strategy": info.spec.strategy,
        "state": info.state,
        "is_detached": info.spec.detached,
        "stats": {"scheduling_state": info.message or info.state},
    }


def get_current_placement_group() -> PlacementGroup | None:
    """The group the current task or actor runs in; None in a driver or outside any group."""
    cw = maybe_core()
    if cw is None or cw.executor is None:
        return None
    from spindle._core.pg_client import current_strategy

    s = current_strategy(cw)
    return PlacementGroup(s.placement_group_id) if s is not None else None


__all__ = [
    "PlacementGroup",
    "PlacementGroupID",
    "get_current_placement_group",
    "get_placement_group",
    "placement_group",
    "placement_group_table",
    "remove_placement_group",
]
