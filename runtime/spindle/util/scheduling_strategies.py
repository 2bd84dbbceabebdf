"""Scheduling strategies, named as in ``ray.util.scheduling_strategies``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class NodeAffinitySchedulingStrategy:
    """Run on the node ``node_id``; with ``soft=True`` fall back to any node when it cannot."""

    node_id: str
    soft: bool = False


@dataclass(frozen=True)
class PlacementGroupSchedulingStrategy:
    """Run in a bundle of ``placement_group`` (index -1: any of its bundles), using the bundle's resources.

    With ``placement_group_capture_child_tasks=True`` the tasks and actors this one submits go into the same
    group unless they say otherwise.
    """

    placement_group: Any
    placement_group_bundle_index: int = -1
    placement_group_capture_child_tasks: bool | None = None


__all__ = ["NodeAffinitySchedulingStrategy", "PlacementGroupSchedulingStrategy"]
